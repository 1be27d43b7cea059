//go:build duckdb_arrow

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// The tests here run a luna built with the lunapanic tag, which panics
// where LUNA_PANIC_AT=<site>[:<match>] says (package recovery's Inject),
// and show for each place that the panic fails one client's request alone:
// that client gets an error, another client's query running meanwhile
// completes with the right rows, the process goes on serving, and
// luna_panics_total{where=…} counts the panic.

// panicky is a running luna that panics as told.
type panicky struct {
	*proc
	base string // the health port's URL
}

func startPanicky(t *testing.T, at string, env []string, args ...string) *panicky {
	t.Helper()
	haddr := freePort(t)
	bin := binaryTags(t, "luna", true, "lunapanic")
	p := launchBinary(t, bin, append([]string{"LUNA_PANIC_AT=" + at}, env...), append([]string{"--health-host-port", haddr}, args...)...)
	p.waitServing()
	return &panicky{proc: p, base: "http://" + haddr}
}

// panics is luna_panics_total{where=where}, scraped from /metrics.
func (p *panicky) panics(t *testing.T, where string) float64 {
	t.Helper()
	return metric(t, p.base, `luna_panics_total{where="`+where+`"}`)
}

// waitPanics waits until where has counted want panics.
func (p *panicky) waitPanics(t *testing.T, where string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.panics(t, where) < want {
		if time.Now().After(deadline) {
			t.Fatalf("luna_panics_total{where=%q} = %v, want %v", where, p.panics(t, where), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := p.panics(t, where); got != want {
		t.Fatalf("luna_panics_total{where=%q} = %v, want %v", where, got, want)
	}
}

// stillServing checks that the process lives and answers a new client.
func (p *panicky) stillServing(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("luna exited: %v", p.err)
	default:
	}
	if got := scalar(t, p.dial(t, client.Options{}), "SELECT 6 * 7"); got != "42" {
		t.Fatalf("SELECT 6 * 7 = %s after the panic", got)
	}
	if code, body := httpGet(t, p.base+"/healthz"); code != 200 {
		t.Fatalf("/healthz after the panic: %d %s", code, body)
	}
}

// panicLogs returns the server's log records of recovered panics at where,
// checking what each must and must not hold.
func (p *panicky) panicLogs(t *testing.T, where string, never ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(p.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "recovered from a panic; the server goes on" || rec["where"] != where {
			continue
		}
		if rec["level"] != "ERROR" {
			t.Errorf("panic logged at %v, want ERROR", rec["level"])
		}
		if s, _ := rec["stack"].(string); !strings.Contains(s, "recovery.Inject") {
			t.Errorf("the log's stack does not show the panic's place:\n%s", s)
		}
		if v, _ := rec["panic"].(string); !strings.Contains(v, "interface conversion") {
			t.Errorf("the log's panic value is %q", v)
		}
		for _, n := range never {
			if strings.Contains(line, n) {
				t.Errorf("the panic's log holds %q: %s", n, line)
			}
		}
		out = append(out, rec)
	}
	return out
}

// bystanderRows is the size of the bystander's result: far more than the
// socket buffers hold, so its query is still running while it is not read.
const bystanderRows = 3_000_000

// bystander is another client's query that runs while a panic happens.
type bystander struct {
	c          *client.Conn
	rows       *client.Rows
	count, sum int64
}

// startBystander starts the query and reads its first batch: it is then
// running, held up by the rest of its result.
func startBystander(t *testing.T, p *panicky) *bystander {
	t.Helper()
	b := &bystander{c: p.dial(t, client.Options{})}
	rows, err := b.c.Query(context.Background(), fmt.Sprintf("SELECT i FROM range(%d) t(i)", bystanderRows))
	if err != nil {
		t.Fatal(err)
	}
	b.rows = rows
	if !rows.Next() {
		t.Fatalf("bystander: no first batch: %v", rows.Err())
	}
	b.add()
	return b
}

func (b *bystander) add() {
	col := b.rows.RecordBatch().Column(0).(*array.Int64)
	for i := range col.Len() {
		b.count++
		b.sum += col.Value(i)
	}
}

// finish reads the rest and checks that the result is whole and right.
func (b *bystander) finish(t *testing.T) {
	t.Helper()
	for b.rows.Next() {
		b.add()
	}
	if err := b.rows.Err(); err != nil {
		t.Fatalf("bystander's query failed: %v", err)
	}
	b.rows.Close()
	if want := int64(bystanderRows) * (bystanderRows - 1) / 2; b.count != bystanderRows || b.sum != want {
		t.Fatalf("bystander read %d rows summing to %d, want %d summing to %d", b.count, b.sum, bystanderRows, want)
	}
	if got := scalar(t, b.c, "SELECT 1"); got != "1" {
		t.Fatalf("bystander's next query: %s", got)
	}
}

func wantInternal(t *testing.T, err error, doing string) {
	t.Helper()
	want := "Internal Error: " + doing + " failed unexpectedly (a bug; the server logged it)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got error %v, want one with %q", err, want)
	}
}

func drainErr(c *client.Conn, sql string) error {
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// TestPanicInStatement: the statement's client gets an error and keeps its
// session, open transaction included (see session.run for why that is
// safe).
func TestPanicInStatement(t *testing.T) {
	p := startPanicky(t, "statement:panic_in_statement", nil)
	by := startBystander(t, p)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, "BEGIN; CREATE TABLE kept AS SELECT 7 AS n"); err != nil {
		t.Fatal(err)
	}
	wantInternal(t, c.Exec(ctx, "SELECT 'panic_in_statement' AS x"), "running the statement")
	wantInternal(t, drainErr(c, "SELECT 'panic_in_statement' AS x"), "running the statement")

	// The session, its transaction and its work go on.
	if got := scalar(t, c, "SELECT n FROM kept"); got != "7" {
		t.Fatalf("after the panic the transaction's table reads %s", got)
	}
	if err := c.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("COMMIT after the panic: %v", err)
	}
	by.finish(t)
	if got := scalar(t, p.dial(t, client.Options{}), "SELECT n FROM kept"); got != "7" {
		t.Fatalf("the committed table reads %s", got)
	}
	p.waitPanics(t, "statement", 2)
	if logs := p.panicLogs(t, "statement", "panic_in_statement"); len(logs) != 2 || logs[0]["remote"] == nil {
		t.Errorf("want 2 statement panic logs with the client's address, got %v", logs)
	}
	p.stillServing(t)
}

// TestPanicInSession: a panic in a session's own machinery, serving or
// reading requests, is answered as an error, and then that connection
// alone is closed: the session's state is unknown.
func TestPanicInSession(t *testing.T) {
	for _, tc := range []struct{ site, doing string }{
		{"session", "serving the connection"},
		{"reader", "reading requests"},
	} {
		t.Run(tc.site, func(t *testing.T) {
			p := startPanicky(t, tc.site+":panic_in_session", nil)
			by := startBystander(t, p)
			c := p.dial(t, client.Options{})
			ctx := context.Background()
			if got := scalar(t, c, "SELECT 1"); got != "1" {
				t.Fatal(got)
			}
			wantInternal(t, c.Exec(ctx, "SELECT 'panic_in_session'"), tc.doing)
			if err := c.Exec(ctx, "SELECT 1"); err == nil {
				t.Fatal("the connection whose session panicked still serves")
			}
			by.finish(t)
			p.waitPanics(t, "session", 1)
			if logs := p.panicLogs(t, "session", "panic_in_session"); len(logs) != 1 || logs[0]["remote"] == nil {
				t.Errorf("want 1 session panic log with the client's address, got %v", logs)
			}
			p.stillServing(t)
		})
	}
}

// TestPanicInSharedDownload: two statements wait on one download of an
// object, which panics: both get an error, and the next statement that
// reads the object downloads it afresh.
func TestPanicInSharedDownload(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "shared")
	put(t, b, "slow/boom.csv", "n\n1\n2\n3\n")
	put(t, b, "ok.csv", "n\n10\n20\n")
	p := startPanicky(t, "download:boom.csv", []string{"LUNA_PANIC_COUNT=1"})
	ctx := context.Background()
	setup := p.dial(t, client.Options{})
	if err := setup.Exec(ctx, s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	by := startBystander(t, p)

	// The download is held long enough for the second statement to join
	// it; it panics once it has the object.
	srv.SlowGets(2 * time.Second)
	srv.Reset()
	const boom = "SELECT sum(n) FROM 's3://shared/slow/boom.csv'"
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		c := p.dial(t, client.Options{})
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 500 * time.Millisecond)
			errs[i] = drainErr(c, boom)
		})
	}
	// Another object meanwhile downloads and reads as usual.
	if got := scalar(t, setup, "SELECT sum(n) FROM 's3://shared/ok.csv'"); got != "30" {
		t.Fatalf("another object read %s while a download panicked", got)
	}
	wg.Wait()
	for _, err := range errs {
		wantInternal(t, err, "downloading s3://shared/slow/boom.csv")
	}
	if n := srv.Count(objstoretest.S3Get); n != 2 {
		t.Fatalf("%d object downloads, want 2 (boom.csv once, shared by its two statements; ok.csv): %v", n, srv.Requests())
	}
	p.waitPanics(t, "download", 1)

	// Nothing is left stuck: the next statement downloads again.
	srv.SlowGets(0)
	if got := scalar(t, setup, boom); got != "6" {
		t.Fatalf("boom.csv reads %s after the panic, want 6", got)
	}
	if n := srv.Count(objstoretest.S3Get); n != 3 {
		t.Fatalf("%d object downloads, want 3: %v", n, srv.Requests())
	}
	by.finish(t)
	if logs := p.panicLogs(t, "download", srv.Secret); len(logs) != 1 || logs[0]["url"] != "s3://shared/slow/boom.csv" {
		t.Errorf("want 1 download panic log naming the object, got %v", logs)
	}
	p.waitPanics(t, "download", 1)
	p.stillServing(t)
}

// TestPanicInXLSXConversion: a panic converting one workbook fails that
// statement; the session goes on converting others.
func TestPanicInXLSXConversion(t *testing.T) {
	dir := t.TempDir()
	boom, ok := filepath.Join(dir, "boom.xlsx"), filepath.Join(dir, "ok.xlsx")
	salesWorkbook(t, boom)
	salesWorkbook(t, ok)
	p := startPanicky(t, "conversion:boom.xlsx", nil)
	by := startBystander(t, p)
	c := p.dial(t, client.Options{})
	wantInternal(t, drainErr(c, fmt.Sprintf("SELECT count(*) FROM read_xlsx('%s')", boom)), "running the statement")
	wantRows(t, c, fmt.Sprintf("SELECT count(*) FROM read_xlsx('%s')", ok), "4")
	by.finish(t)
	p.waitPanics(t, "statement", 1)
	if logs := p.panicLogs(t, "statement", "boom.xlsx"); len(logs) != 1 {
		t.Errorf("want 1 statement panic log, got %v", logs)
	}
	p.stillServing(t)
}

// TestPanicInIcebergScan: a panic planning one table's scan fails that
// statement; the session goes on scanning others.
func TestPanicInIcebergScan(t *testing.T) {
	dir := t.TempDir()
	boom, ok := filepath.Join(dir, "boomtable"), filepath.Join(dir, "oktable")
	snapshotsTable(t, boom, "file://"+boom, nil)
	snapshotsTable(t, ok, "file://"+ok, nil)
	p := startPanicky(t, "iceberg:boomtable", nil)
	by := startBystander(t, p)
	c := p.dial(t, client.Options{})
	wantInternal(t, drainErr(c, fmt.Sprintf("SELECT count(*) FROM iceberg_scan('%s')", boom)), "running the statement")
	wantRows(t, c, fmt.Sprintf("SELECT count(*) FROM iceberg_scan('%s')", ok), "6")
	by.finish(t)
	p.waitPanics(t, "statement", 1)
	if logs := p.panicLogs(t, "statement", "boomtable"); len(logs) != 1 {
		t.Errorf("want 1 statement panic log, got %v", logs)
	}
	p.stillServing(t)
}

// TestPanicInResultReader: the goroutine that reads DuckDB's result
// ahead of the socket is the statement's too.
func TestPanicInResultReader(t *testing.T) {
	p := startPanicky(t, "result:panic_in_result", nil)
	by := startBystander(t, p)
	c := p.dial(t, client.Options{})
	wantInternal(t, drainErr(c, "SELECT range AS panic_in_result FROM range(10)"), "reading the result")
	wantRows(t, c, "SELECT 5 AS fine", "5")
	by.finish(t)
	p.waitPanics(t, "statement", 1)
	p.stillServing(t)
}

// TestPanicInWatcher: checks of a watched table panic three times; the
// watcher goes on, and reloads the table when its sources change.
func TestPanicInWatcher(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "live")
	put(t, b, "w/part-1.csv", partCSV(1, 10))
	dir := t.TempDir()
	writeFile(t, dir, "10-load.sql", s3Secret(srv)+`
CREATE TABLE events AS FROM read_csv('s3://live/w/*.csv');
`)
	p := startPanicky(t, "watch:events", []string{"LUNA_PANIC_COUNT=3"}, "--init-sql", dir, "--watch-interval", "100ms")
	by := startBystander(t, p)
	c := p.dial(t, client.Options{})
	p.waitPanics(t, "watch", 3)
	if got := scalar(t, c, "SELECT count(*) FROM events"); got != "10" {
		t.Fatalf("events has %s rows after the panics, want 10", got)
	}
	put(t, b, "w/part-2.csv", partCSV(2, 10))
	deadline := time.Now().Add(30 * time.Second)
	for scalar(t, c, "SELECT count(*) FROM events") != "20" {
		if time.Now().After(deadline) {
			t.Fatal("the watcher stopped: events was not reloaded after its sources changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	by.finish(t)
	logs := p.panicLogs(t, "watch", srv.Secret)
	if len(logs) != 3 || logs[0]["table"] != "events" {
		t.Errorf("want 3 watch panic logs naming the table, got %v", logs)
	}
	p.waitPanics(t, "watch", 3)
	p.stillServing(t)
}

// TestPanicInHealthHandler: a panicking endpoint answers 500; the other
// endpoints and the API go on.
func TestPanicInHealthHandler(t *testing.T) {
	p := startPanicky(t, "health:/readyz", nil)
	by := startBystander(t, p)
	for i := range 2 {
		code, body := httpGet(t, p.base+"/readyz")
		if code != 500 {
			t.Fatalf("/readyz: %d %q, want 500", code, body)
		}
		wantInternal(t, errors.New(body), "serving /readyz")
		p.waitPanics(t, "health", float64(i+1))
	}
	by.finish(t)
	if logs := p.panicLogs(t, "health"); len(logs) != 2 || logs[0]["path"] != "/readyz" {
		t.Errorf("want 2 health panic logs naming the path, got %v", logs)
	}
	p.stillServing(t)
}

// TestPanicInjectionIsNotShipped: the binary built without the lunapanic
// tag ignores LUNA_PANIC_AT.
func TestPanicInjectionIsNotShipped(t *testing.T) {
	p := startLuna(t, true, []string{"LUNA_PANIC_AT=statement"})
	if got := scalar(t, p.dial(t, client.Options{}), "SELECT 6 * 7"); got != "42" {
		t.Fatalf("SELECT 6 * 7 = %s", got)
	}
}
