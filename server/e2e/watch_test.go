//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// partCSV is one source file of the watched table: rows rows of part p.
func partCSV(p, rows int) string {
	var sb strings.Builder
	sb.WriteString("part,n\n")
	for range rows {
		fmt.Fprintf(&sb, "%d,1\n", p)
	}
	return sb.String()
}

// TestWatchReloadsTablesWhoseSourcesChanged changes, adds and deletes the
// objects a startup-SQL table was loaded from while a client reads the
// table without pause: every answer must be one of the table's whole
// states, and the table must follow its sources.
func TestWatchReloadsTablesWhoseSourcesChanged(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "live")
	put(t, b, "w/part-1.csv", partCSV(1, 5000))
	put(t, b, "w/part-2.csv", partCSV(2, 5000))

	dir := t.TempDir()
	writeFile(t, dir, "10-load.sql", s3Secret(srv)+`
CREATE TABLE IF NOT EXISTS events AS FROM read_csv('s3://live/w/*.csv');
CREATE TABLE fixed AS SELECT 42 AS answer;
`)
	haddr := freePort(t)
	p := startLuna(t, true, nil, "--init-sql", dir, "--watch-interval", "150ms", "--health-host-port", haddr)
	if !p.logs.Await("watching the sources of a table") {
		t.Fatalf("no watch log:\n%s", p.logs)
	}

	// The states the table goes through, as "rows:parts:sum".
	valid := map[string]bool{"10000:2:10000": true, "15000:3:15000": true, "11000:3:11000": true, "6000:2:6000": true,
		// Between the last two deletes a check may see part-3 alone.
		"5000:1:5000": true}
	var mu sync.Mutex
	seen := map[string]int{}
	var readErr error
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		c := p.dial(t, client.Options{})
		for ctx.Err() == nil {
			rows, err := c.Query(ctx, "SELECT count(*)::VARCHAR || ':' || count(DISTINCT part)::VARCHAR || ':' || sum(n)::VARCHAR FROM events")
			var got string
			if err == nil {
				got, err = firstString(rows)
			}
			mu.Lock()
			if err != nil && ctx.Err() == nil && readErr == nil {
				readErr = err
			}
			if err == nil {
				seen[got]++
			}
			mu.Unlock()
		}
	})
	waitState := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n, err := seen[want], readErr
			mu.Unlock()
			if err != nil {
				t.Fatalf("reader: %v", err)
			}
			if n > 0 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("table never reached %s; seen %v", want, seen)
	}

	waitState("10000:2:10000")
	put(t, b, "w/part-3.csv", partCSV(3, 5000)) // new
	waitState("15000:3:15000")
	put(t, b, "w/part-2.csv", partCSV(2, 1000)) // changed
	waitState("11000:3:11000")
	if err := srv.DeleteObject("live", "w/part-1.csv"); err != nil { // deleted
		t.Fatal(err)
	}
	waitState("6000:2:6000")

	// With every object gone the reload fails: the table keeps its rows.
	srv.DeleteObject("live", "w/part-2.csv")
	srv.DeleteObject("live", "w/part-3.csv")
	metric := regexp.MustCompile(`luna_table_refreshes_total\{outcome="error",table="events"\} [1-9]`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := httpGet(t, "http://"+haddr+"/metrics")
		if metric.MatchString(body) {
			// Three reloads above; a check between the two deletes
			// may reload the one-object state as well.
			if !regexp.MustCompile(`luna_table_refreshes_total\{outcome="ok",table="events"\} [34]\n`).MatchString(body) ||
				!strings.Contains(body, `luna_table_refreshed_timestamp_seconds{table="events"}`) {
				t.Fatalf("refresh metrics:\n%s", grepLines(body, "luna_table_"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed refresh in metrics:\n%s", grepLines(body, "luna_table_"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if readErr != nil {
		t.Fatalf("reader: %v", readErr)
	}
	reads := 0
	for s, n := range seen {
		reads += n
		if !valid[s] {
			t.Errorf("a reader saw %q, which is no whole state of the table (all: %v)", s, seen)
		}
	}
	if seen["6000:2:6000"]+seen["5000:1:5000"] < 2 {
		t.Errorf("after the failed reload the table should still read 6000:2:6000; seen %v", seen)
	}
	t.Logf("%d reads while the table was reloaded 3 times: %v", reads, seen)
	logs := p.logs.String()
	for _, want := range []string{"sources changed; reloading table", "table reloaded", "reloading table failed; it keeps its previous contents"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(logs, srv.Secret) {
		t.Error("the secret reached the logs")
	}
}

func firstString(rows *client.Rows) (string, error) {
	defer rows.Close()
	var out string
	for rows.Next() {
		rec := rows.RecordBatch()
		if out == "" && rec.NumRows() > 0 {
			out = rec.Column(0).ValueStr(0)
		}
	}
	return out, rows.Err()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestViewsOverObjectURLsAreRefused: a view would name local copies that
// last one statement.
func TestViewsOverObjectURLsAreRefused(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "views")
	put(t, b, "x.csv", "n\n1\n")
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	err := c.Exec(ctx, "CREATE VIEW v AS FROM 's3://views/x.csv'")
	if err == nil || !strings.Contains(err.Error(), "CREATE TABLE") {
		t.Fatalf("CREATE VIEW over s3: %v", err)
	}
	if err := c.Exec(ctx, "CREATE TABLE t AS FROM 's3://views/x.csv'"); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, c, "SELECT count(*) FROM duckdb_views() WHERE view_name = 'v'"); got != "0" {
		t.Fatalf("the refused view exists: %s", got)
	}
}
