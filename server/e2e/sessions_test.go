//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/lunadb/luna/client"
)

// longQuery runs for hours unless interrupted; marker tells its sessions
// apart in luna_sessions().
func longQuery(marker string) string {
	return "SELECT count(*) FROM range(1000000000000) a /* " + marker + " */"
}

// sessUsers writes a users file: alice may read, bob may write.
func sessUsers(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range [][2]string{{"alice", "read"}, {"bob", "write"}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u[0]+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s:%s\n", u[0], h, u[1])
	}
	path := filepath.Join(dir, "users")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sessRows runs sql and returns its rows as column name → value text.
func sessRows(t *testing.T, c *client.Conn, sql string) []map[string]string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		rec := rows.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			m := map[string]string{}
			for j, f := range rec.Schema().Fields() {
				if rec.Column(j).IsNull(i) {
					m[f.Name] = "NULL"
				} else {
					m[f.Name] = rec.Column(j).ValueStr(i)
				}
			}
			out = append(out, m)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// awaitRunning polls luna_sessions() on admin until a session runs a
// statement holding marker for at least min, and returns its row.
func awaitRunning(t *testing.T, admin *client.Conn, marker string, min time.Duration) map[string]string {
	t.Helper()
	return awaitState(t, admin, marker, "running", min)
}

// awaitState is awaitRunning for a state of choice. The marker is split
// in the poll's own text, so the poll never finds itself.
func awaitState(t *testing.T, admin *client.Conn, marker, state string, min time.Duration) map[string]string {
	t.Helper()
	half := len(marker) / 2
	q := fmt.Sprintf("SELECT * FROM luna_sessions() WHERE strpos(statement, '%s' || '%s') > 0 AND state = '%s' AND running_for >= %f",
		marker[:half], marker[half:], state, min.Seconds())
	deadline := time.Now().Add(20 * time.Second)
	for {
		if rows := sessRows(t, admin, q); len(rows) == 1 {
			return rows[0]
		} else if len(rows) > 1 {
			t.Fatalf("%d sessions run %s: %v", len(rows), marker, rows)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session runs %s; sessions: %v", marker, sessRows(t, admin, "FROM luna_sessions()"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ownID is the id of c's own session.
func ownID(t *testing.T, c *client.Conn) string {
	t.Helper()
	rows := sessRows(t, c, "SELECT id FROM luna_sessions() WHERE statement LIKE '%own-id-probe%'")
	if len(rows) != 1 {
		t.Fatalf("own session: %v", rows)
	}
	return rows[0]["id"]
}

type runResult struct {
	err error
	at  time.Time
}

func runAsync(c *client.Conn, sql string) <-chan runResult {
	ch := make(chan runResult, 1)
	go func() {
		_, err := admValue(context.Background(), c, sql)
		ch <- runResult{err, time.Now()}
	}()
	return ch
}

func awaitResult(t *testing.T, ch <-chan runResult, within time.Duration) runResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("the query did not end within %v", within)
	}
	return runResult{}
}

func TestLunaSessionsCancelKill(t *testing.T) {
	p := startLuna(t, true, nil, "--passwd", "admin-pw", "--users-file", sessUsers(t, t.TempDir()))
	admin := p.dial(t, client.Options{Password: "admin-pw"})
	bob := p.dial(t, client.Options{Password: "bob bob-pw"})
	bob2 := p.dial(t, client.Options{Password: "bob bob-pw"})
	alice := p.dial(t, client.Options{Password: "alice alice-pw"})
	adminID := ownID(t, admin)
	ctx := context.Background()

	// Another connection's running query, with its user and elapsed time.
	long := runAsync(bob, longQuery("bob-long-1"))
	row := awaitRunning(t, admin, "bob-long-1", 300*time.Millisecond)
	bobID := row["id"]
	if row["user"] != "bob" || row["role"] != "write" || row["tls"] != "false" || !strings.HasPrefix(row["remote"], "127.0.0.1:") ||
		!strings.HasPrefix(row["statement"], "SELECT count(*) FROM range(1000000000000) a") {
		t.Errorf("bob's session: %v", row)
	}
	if rf, err := strconv.ParseFloat(row["running_for"], 64); err != nil || rf < 0.3 || rf > 60 {
		t.Errorf("running_for %q", row["running_for"])
	}
	since, err := time.Parse("2006-01-02T15:04:05.999999Z", row["connected_since"])
	if err != nil || time.Since(since) < 0 || time.Since(since) > time.Minute {
		t.Errorf("connected_since %q: %v", row["connected_since"], err)
	}
	idle := sessRows(t, admin, "SELECT state, statement, running_for FROM luna_sessions() WHERE \"user\" = 'alice'")
	if len(idle) != 1 || idle[0]["state"] != "idle" || idle[0]["statement"] != "NULL" || idle[0]["running_for"] != "NULL" {
		t.Errorf("alice's idle session: %v", idle)
	}
	// luna_sessions() joins like any table.
	if got := scalar(t, admin, "SELECT count(*) FROM luna_sessions() s JOIN (VALUES ('bob'), ('alice')) u(name) ON s.\"user\" = u.name"); got != "3" {
		t.Errorf("sessions of bob and alice: %s", got)
	}

	// A read user may not cancel another user's session.
	err = alice.Exec(ctx, "CALL luna_cancel("+bobID+")")
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("alice cancelling bob: %v", err)
	}
	// Nor see other users' sessions: luna_sessions() is denied her, or
	// shows her own alone.
	if rows, err := alice.Query(ctx, "SELECT \"user\" FROM luna_sessions()"); err != nil {
		if !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("alice listing sessions: %v", err)
		}
	} else {
		for rows.Next() {
			rec := rows.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				if u := rec.Column(0).ValueStr(i); u != "alice" {
					t.Errorf("alice sees a session of %s", u)
				}
			}
		}
		rows.Close()
	}

	// An admin cancels it: it stops within a second, and the session
	// goes on.
	start := time.Now()
	if err := admin.Exec(ctx, "CALL luna_cancel("+bobID+")"); err != nil {
		t.Fatal(err)
	}
	r := awaitResult(t, long, 5*time.Second)
	if d := r.at.Sub(start); d > time.Second {
		t.Errorf("cancelled query took %v to stop", d)
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "cancelled by session "+adminID+" (luna_cancel)") {
		t.Errorf("cancelled query: %v", r.err)
	}
	if got := scalar(t, bob, "SELECT 42"); got != "42" {
		t.Errorf("bob after the cancel: %s", got)
	}
	sent := sessRows(t, admin, "SELECT rows_sent, bytes_sent FROM luna_sessions() WHERE id = "+bobID)
	if len(sent) != 1 || sent[0]["rows_sent"] != "1" {
		t.Errorf("bob's counters: %v", sent)
	} else if n, err := strconv.ParseInt(sent[0]["bytes_sent"], 10, 64); err != nil || n < 1000 {
		t.Errorf("bob's bytes_sent: %v", sent)
	}

	// A user cancels a session of its own, through q: this time.
	long = runAsync(bob2, longQuery("bob-long-2"))
	bob2ID := awaitRunning(t, admin, "bob-long-2", 0)["id"]
	rows, err := bob.Query(ctx, "CALL luna_cancel("+bob2ID+")")
	if err != nil {
		t.Fatalf("bob cancelling his own session: %v", err)
	}
	rows.Close()
	r = awaitResult(t, long, 5*time.Second)
	if r.err == nil || !strings.Contains(r.err.Error(), "cancelled by session "+bobID) {
		t.Errorf("query cancelled by its own user: %v", r.err)
	}
	if got := scalar(t, bob2, "SELECT 43"); got != "43" {
		t.Errorf("bob2 after the cancel: %s", got)
	}

	// Unknown sessions and wrong arguments are clear errors.
	if err := admin.Exec(ctx, "CALL luna_cancel(987654)"); err == nil || !strings.Contains(err.Error(), "no session 987654") {
		t.Errorf("unknown session: %v", err)
	}
	if err := admin.Exec(ctx, "CALL luna_kill('x')"); err == nil || !strings.Contains(err.Error(), "CALL luna_kill(42)") {
		t.Errorf("bad argument: %v", err)
	}
	if err := alice.Exec(ctx, "CALL luna_kill("+bobID+")"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("alice killing bob: %v", err)
	}

	// luna_kill interrupts the query and closes the connection.
	long = runAsync(bob2, longQuery("bob-long-3"))
	awaitRunning(t, admin, "bob-long-3", 0)
	start = time.Now()
	if err := admin.Exec(ctx, "CALL luna_kill("+bob2ID+")"); err != nil {
		t.Fatal(err)
	}
	r = awaitResult(t, long, 5*time.Second)
	if d := r.at.Sub(start); d > time.Second {
		t.Errorf("killed query took %v to stop", d)
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "killed by session "+adminID+" (luna_kill)") {
		t.Errorf("killed query: %v", r.err)
	}
	if _, err := admValue(ctx, bob2, "SELECT 44"); err == nil {
		t.Error("the killed session still answers")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if scalar(t, admin, "SELECT count(*) FROM luna_sessions() WHERE id = "+bob2ID) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed session is still listed")
		}
	}
	if got := scalar(t, bob, "SELECT 45"); got != "45" {
		t.Errorf("bob's other session after the kill: %s", got)
	}
}

// Statements holding quotes, backslashes, NUL and control characters, or
// 10 KB long, are listed as text and never become SQL; this with the
// --allowed-directories lockdown on.
func TestLunaSessionsHostileText(t *testing.T) {
	dir := t.TempDir()
	p := startLuna(t, true, nil, "--allowed-directories", dir)
	admin := p.dial(t, client.Options{})
	ctx := context.Background()
	if err := admin.Exec(ctx, "CREATE TABLE victim AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, admin, "SELECT current_setting('lock_configuration')"); got != "true" {
		t.Fatalf("lock_configuration = %s", got)
	}

	inject := `'); DROP TABLE victim; SELECT ('`
	hostile := []string{
		// DuckDB reads a statement up to a NUL: what follows one in a
		// comment never runs, but luna_sessions() shows it.
		longQuery("hostile-quotes it's \\' \"x\" "+inject) + " -- \x00 " + inject + "\x01\x1b[31m\x7f\n\r\t",
		longQuery("hostile-long") + " WHERE '" + strings.Repeat(`a''b\`, 2000) + "' <> ''",
		longQuery("hostile-utf8 \xff\xfe ü 🌙") + " -- " + strings.Repeat("é'", 5000),
	}
	var running []<-chan runResult
	for _, sql := range hostile {
		c := p.dial(t, client.Options{})
		running = append(running, runAsync(c, sql))
	}
	for _, m := range []string{"hostile-quotes", "hostile-long", "hostile-utf8"} {
		row := awaitRunning(t, admin, m, 0)
		st := row["statement"]
		if n := utf8.RuneCountInString(st); n > 201 || !utf8.ValidString(st) || strings.ContainsAny(st, "\x00\x01\x1b\x7f\n") {
			t.Errorf("%s: statement of %d characters: %q", m, n, st)
		}
		if m == "hostile-quotes" && !strings.Contains(st, `it's \' "x" `+inject) {
			t.Errorf("quotes not shown as written: %q", st)
		}
		if m == "hostile-long" && !strings.HasSuffix(st, "…") {
			t.Errorf("a long statement is not cut: %q", st)
		}
	}
	all := sessRows(t, admin, "SELECT id, statement FROM luna_sessions() ORDER BY id")
	if len(all) != 4 {
		t.Errorf("%d sessions listed, want 4: %v", len(all), all)
	}
	if got := scalar(t, admin, "SELECT count(*) FROM victim"); got != "1" {
		t.Fatalf("victim has %s rows", got)
	}
	for _, row := range all {
		if strings.Contains(row["statement"], "hostile") {
			if err := admin.Exec(ctx, "CALL luna_cancel("+row["id"]+")"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ch := range running {
		if r := awaitResult(t, ch, 5*time.Second); r.err == nil || !strings.Contains(r.err.Error(), "cancelled by session") {
			t.Errorf("hostile query: %v", r.err)
		}
	}

	// A result the client does not read is streaming, its rows counted.
	reader := p.dial(t, client.Options{})
	rows, err := reader.Query(ctx, "SELECT * FROM range(1000000000) /* stream-me */")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	row := awaitState(t, admin, "stream-me", "streaming", 0)
	if n, err := strconv.ParseInt(row["rows_sent"], 10, 64); err != nil || n < 2048 {
		t.Errorf("streaming session: %v", row)
	}
	if err := admin.Exec(ctx, "CALL luna_kill("+row["id"]+")"); err != nil {
		t.Fatal(err)
	}
}

// A TLS session is listed as one, and luna_kill closes it like a plain one.
func TestLunaSessionsTLS(t *testing.T) {
	s := newTLSSetup(t)
	p := startLuna(t, true, nil, s.args()...)
	plain := p.dial(t, client.Options{})
	secure := p.dial(t, client.Options{TLS: s.clientConfig(t)})
	long := runAsync(secure, longQuery("tls-long"))
	row := awaitRunning(t, plain, "tls-long", 0)
	if row["tls"] != "true" {
		t.Errorf("TLS session: %v", row)
	}
	if got := scalar(t, plain, "SELECT tls FROM luna_sessions() WHERE statement LIKE '%plain-probe%'"); got != "false" {
		t.Errorf("plain session: tls = %s", got)
	}
	if err := plain.Exec(context.Background(), "CALL luna_kill("+row["id"]+")"); err != nil {
		t.Fatal(err)
	}
	if r := awaitResult(t, long, 5*time.Second); r.err == nil || !strings.Contains(r.err.Error(), "killed by session") {
		t.Errorf("killed TLS query: %v", r.err)
	}
	if _, err := admValue(context.Background(), secure, "SELECT 1"); err == nil {
		t.Error("the killed TLS session still answers")
	}
}

// luna_sessions() shows how far a running statement has got, from
// DuckDB's own query progress once the session has turned it on, and
// which row is the asker's own.
func TestSessionsProgress(t *testing.T) {
	p := startLuna(t, false, nil)
	ctx := context.Background()
	worker := p.dial(t, client.Options{})
	if err := worker.Exec(ctx, "SET enable_progress_bar = true; SET enable_progress_bar_print = false; "+
		"CREATE TABLE big AS SELECT range AS i FROM range(50000000)"); err != nil {
		t.Fatal(err)
	}
	watcher := p.dial(t, client.Options{})
	own := sessRows(t, watcher, "SELECT id, this_session, progress, rows_processed, bytes_downloaded FROM luna_sessions() ORDER BY id")
	if len(own) != 2 || own[0]["this_session"] != "false" || own[1]["this_session"] != "true" {
		t.Fatalf("this_session: %v", own)
	}
	if r := own[0]; r["progress"] != "NULL" || r["rows_processed"] != "NULL" || r["bytes_downloaded"] != "NULL" {
		t.Errorf("an idle session's progress: %v", r)
	}
	workerID := own[0]["id"]

	done := make(chan error, 1)
	go func() {
		// Slow enough to be seen half-way on any machine; cancelled below.
		done <- worker.Exec(ctx, "SELECT i % 1000 AS g, median(hash(i::VARCHAR || 'x')) FROM big GROUP BY g")
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := sessRows(t, watcher, "SELECT state, progress, rows_processed, bytes_downloaded FROM luna_sessions() WHERE id = "+workerID)
		if len(rows) == 1 && rows[0]["progress"] != "NULL" {
			pct, err := strconv.ParseFloat(rows[0]["progress"], 64)
			n, err2 := strconv.ParseInt(rows[0]["rows_processed"], 10, 64)
			if err != nil || err2 != nil || pct < 0 || pct > 100 || n < 0 || rows[0]["bytes_downloaded"] != "0" {
				t.Fatalf("progress of a running statement: %v", rows)
			}
			if n > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress shown in 30s: %v", rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := watcher.Exec(ctx, "CALL luna_cancel("+workerID+")"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "cancelled by session") {
		t.Fatalf("the cancelled statement: %v", err)
	}
}
