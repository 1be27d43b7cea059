//go:build duckdb_arrow

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
)

// queryLines are the query-log lines of logs (JSON, log=query).
func queryLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["log"] != "query" {
			continue
		}
		out = append(out, m)
	}
	return out
}

// TestQueryLog runs a known sequence of requests and finds each exactly
// once in the query log, with its fields, and no secret anywhere.
func TestQueryLog(t *testing.T) {
	p := startLuna(t, true, nil, "--passwd", "admin-s3cret-value-0", "--users-file", sessUsers(t, t.TempDir()), "--query-log", "all")
	ctx := context.Background()
	admin := p.dial(t, client.Options{Password: "admin-s3cret-value-0"})
	bob := p.dial(t, client.Options{Password: "bob bob-pw"})
	other := p.dial(t, client.Options{Password: "admin-s3cret-value-0"})

	type want struct{ kind, user, outcome, class, statement string }
	var wants []want
	ok := func(c *client.Conn, user, kind, sql string) {
		t.Helper()
		var err error
		if kind == "exec" {
			err = c.Exec(ctx, sql)
		} else {
			_, err = admValue(ctx, c, sql)
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		wants = append(wants, want{kind, user, "ok", "", sql})
	}
	wants = append(wants, want{"auth", "", "ok", "", ""}, want{"auth", "bob", "ok", "", ""}, want{"auth", "", "ok", "", ""})

	ok(admin, "", "exec", "CREATE TABLE ql AS SELECT range AS x FROM range(10)")
	ok(admin, "", "query", "SELECT x FROM ql ORDER BY x")
	ok(admin, "", "exec", "CREATE SECRET ql_s3 (TYPE s3, KEY_ID 'AKIAs3cret-value-1', SECRET 's3cret-value-2')")
	ok(admin, "", "exec", "SELECT 2; SELECT 3")
	ok(bob, "bob", "query", "SELECT count(*) FROM ql")
	if _, err := admValue(ctx, admin, "SELECT * FROM ql_nosuch"); err == nil {
		t.Fatal("no error")
	}
	wants = append(wants, want{"query", "", "error", "catalog", "SELECT * FROM ql_nosuch"})
	rows, err := admin.Do(ctx, client.AppendRequest(nil, "z:", "ql-unknown"), "ql-unknown")
	if err == nil {
		rows.Close()
		t.Fatal("unknown prefix: no error")
	}
	wants = append(wants, want{"unknown", "", "error", "protocol", "z:ql-unknown"})

	// A write user may not create a secret; until roles are enforced it
	// may, and the line says so.
	bobSecret := "CREATE SECRET ql_bob (TYPE s3, KEY_ID 'AKIAs3cret-value-4', SECRET 's3cret-value-5')"
	if err := bob.Exec(ctx, bobSecret); err != nil {
		if !strings.Contains(err.Error(), "permission denied") {
			t.Fatal(err)
		}
		wants = append(wants, want{"exec", "bob", "denied", "permission", bobSecret})
	} else {
		wants = append(wants, want{"exec", "bob", "ok", "", bobSecret})
	}

	// A cancelled query, and the requests that found and cancelled it.
	long := runAsync(other, longQuery("ql-long"))
	id := awaitRunning(t, admin, "ql-long", 0)["id"]
	if err := admin.Exec(ctx, "CALL luna_cancel("+id+")"); err != nil {
		t.Fatal(err)
	}
	if r := awaitResult(t, long, 5*time.Second); r.err == nil {
		t.Fatal("the long query was not cancelled")
	}
	wants = append(wants, want{"query", "", "error", "cancelled", longQuery("ql-long")}, want{"exec", "", "ok", "", "CALL luna_cancel(" + id + ")"})

	// A wrong password, never logged.
	if _, err := client.Dial(ctx, p.addr, client.Options{Password: "bob s3cret-value-3"}); err == nil {
		t.Fatal("a wrong password was taken")
	}
	wants = append(wants, want{"auth", "", "denied", "auth", ""})
	if !p.logs.Await(`"outcome":"denied","error_class":"auth"`) {
		t.Fatalf("the refused AUTH was not logged:\n%s", p.logs)
	}
	time.Sleep(200 * time.Millisecond) // the polls' lines may trail

	key := func(kind, user, outcome, class, statement string) string {
		return strings.Join([]string{kind, user, outcome, class, statement}, " | ")
	}
	wantCount := map[string]int{}
	for _, w := range wants {
		// Secret values are logged redacted.
		shown := regexp.MustCompile(`'[A-Za-z]*s3cret-value-[0-9]'`).ReplaceAllString(w.statement, "'***'")
		wantCount[key(w.kind, w.user, w.outcome, w.class, shown)]++
	}
	got := map[string]int{}
	polls := 0
	for _, m := range queryLines(t, p.logs.String()) {
		for _, f := range []string{"session", "user", "remote", "kind", "types", "duration_ms", "rows", "bytes", "outcome", "time", "level"} {
			if _, ok := m[f]; !ok {
				t.Errorf("line without %s: %v", f, m)
			}
		}
		st, _ := m["statement"].(string)
		if strings.Contains(st, "luna_sessions()") {
			polls++ // awaitRunning's
			continue
		}
		class, _ := m["error_class"].(string)
		if m["outcome"] != "ok" && class == "" {
			t.Errorf("a failure without an error class: %v", m)
		}
		got[key(m["kind"].(string), m["user"].(string), m["outcome"].(string), class, st)]++
		switch st {
		case "SELECT x FROM ql ORDER BY x":
			if m["rows"] != 10.0 || m["bytes"].(float64) < 100 || fmt.Sprint(m["types"]) != "[SELECT]" {
				t.Errorf("query line: %v", m)
			}
		case "SELECT 2; SELECT 3":
			if fmt.Sprint(m["types"]) != "[SELECT SELECT]" {
				t.Errorf("multi-statement types: %v", m["types"])
			}
		case "CREATE TABLE ql AS SELECT range AS x FROM range(10)":
			if fmt.Sprint(m["types"]) != "[CREATE]" {
				t.Errorf("CREATE types: %v", m["types"])
			}
		}
	}
	if polls == 0 {
		t.Error("luna_sessions() requests were not logged")
	}
	var diff []string
	for k, n := range wantCount {
		if got[k] != n {
			diff = append(diff, fmt.Sprintf("want %d, got %d: %s", n, got[k], k))
		}
	}
	for k, n := range got {
		if _, ok := wantCount[k]; !ok {
			diff = append(diff, fmt.Sprintf("unexpected %d: %s", n, k))
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("query log:\n%s\n\nlogs:\n%s", strings.Join(diff, "\n"), p.logs)
	}
	noSecret(t, "the logs", p.logs.String())
	if strings.Contains(p.logs.String(), "bob-pw") {
		t.Error("the logs hold bob's password")
	}
}

// By default only failures are logged, and the statement is cut at
// --query-log-statement-length characters.
func TestQueryLogErrorsOnly(t *testing.T) {
	p := startLuna(t, true, nil, "--query-log-statement-length", "12")
	c := p.dial(t, client.Options{})
	if got := scalar(t, c, "SELECT 7"); got != "7" {
		t.Fatal(got)
	}
	if _, err := admValue(context.Background(), c, "SELECT * FROM nosuch_table_with_a_long_name"); err == nil {
		t.Fatal("no error")
	}
	if !p.logs.Await(`"error_class":"catalog"`) {
		t.Fatalf("the failure was not logged:\n%s", p.logs)
	}
	lines := queryLines(t, p.logs.String())
	if len(lines) != 1 || lines[0]["statement"] != "SELECT * FRO…" || lines[0]["outcome"] != "error" || lines[0]["level"] != "WARN" {
		t.Errorf("query log: %v", lines)
	}
}
