//go:build duckdb_arrow

package server_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server"
)

func TestSeedREADMERequests(t *testing.T) {
	ts := start(t, server.Options{})
	r := ts.raw(t)
	r.send(cmd("x:", "CREATE TABLE tmpcur AS SELECT 'u1' AS uuid, 7 AS n;"))
	r.wantStatus("CREATE TABLE tmpcur AS SELECT 'u1' AS uuid, 7 AS n;", "OK")
	// Byte for byte as the original README writes it.
	r.send("$18\r\nq:DESCRIBE tmpcur;\r\n")
	tb := r.read()
	if tb.schema.Field(0).Name != "column_name" || len(tb.rows) != 2 || tb.rows[0][0] != "uuid" || tb.rows[1][1] != "INTEGER" {
		t.Fatalf("DESCRIBE gave %s %v", tb.schema, tb.rows)
	}
	r.send(cmd("q:", "DESCRIBE me;"))
	r.wantStatus("DESCRIBE me;", "Catalog Error: Table with name me does not exist!")
}

func TestPipelinedFifty(t *testing.T) {
	ts := start(t, server.Options{})
	r := ts.raw(t)
	var b strings.Builder
	for i := range 50 {
		switch i % 3 {
		case 0:
			b.WriteString(cmd("q:", fmt.Sprintf("SELECT %d AS i, range AS j FROM range(%d)", i, i)))
		case 1:
			b.WriteString(cmd("x:", fmt.Sprintf("SELECT %d", i)))
		case 2:
			b.WriteString(cmd("q:", fmt.Sprintf("SELECT * FROM missing_%d", i)))
		}
	}
	r.send(b.String()) // one write
	for i := range 50 {
		tb := r.read()
		switch i % 3 {
		case 0:
			if len(tb.rows) != i || (i > 0 && tb.rows[0][0] != fmt.Sprint(i)) {
				t.Fatalf("response %d: %v", i, tb.rows)
			}
		case 1:
			if in, msg, _ := tb.status(); in != fmt.Sprintf("SELECT %d", i) || msg != "OK" {
				t.Fatalf("response %d: %q %q", i, in, msg)
			}
		case 2:
			if _, msg, _ := tb.status(); !strings.Contains(msg, fmt.Sprintf("missing_%d", i)) {
				t.Fatalf("response %d: %q", i, msg)
			}
		}
	}
}

func TestFramingBytesInsideLiterals(t *testing.T) {
	ts := start(t, server.Options{})
	r := ts.raw(t)
	lit := "a\r\n$5\r\nq:x\r\nAUTH p\r\n \"$\" ü ✓"
	sql := "SELECT '" + lit + "' AS s, $$" + "$" + "x$$ AS d"
	r.send(cmd("q:", sql))
	tb := r.read()
	if len(tb.rows) != 1 || tb.rows[0][0] != lit || tb.rows[0][1] != "$x" {
		t.Fatalf("got %q", tb.rows)
	}
	r.send(cmd("x:", "CREATE TABLE lits AS SELECT '\r\n' AS crlf"))
	r.wantStatus("CREATE TABLE lits AS SELECT '\r\n' AS crlf", "OK")
}

func TestZeroRowResultIsSchemaOnly(t *testing.T) {
	ts := start(t, server.Options{})
	r := ts.raw(t)
	r.send(cmd("q:", "SELECT 1 AS a, 'x' AS b WHERE false"))
	tb := r.read()
	if tb.batches != 0 || tb.schema.NumFields() != 2 || tb.schema.Field(1).Name != "b" {
		t.Fatalf("got %d batches, schema %s", tb.batches, tb.schema)
	}
	// The connection goes on.
	r.send(cmd("q:", "SELECT 42"))
	if tb := r.read(); tb.rows[0][0] != "42" {
		t.Fatalf("got %v", tb.rows)
	}
}

func TestUnknownPrefixKeepsConnection(t *testing.T) {
	ts := start(t, server.Options{})
	r := ts.raw(t)
	r.send("$10\r\nz:SELECT 1\r\n$1\r\nq\r\n")
	r.wantStatus("z:SELECT 1", `unknown request prefix "z:"`)
	r.wantStatus("q", `unknown request prefix "q"`)
	r.send(cmd("q:", "SELECT 7"))
	if tb := r.read(); tb.rows[0][0] != "7" {
		t.Fatalf("got %v", tb.rows)
	}
}

func TestMalformedFramingClosesConnection(t *testing.T) {
	ts := start(t, server.Options{MaxRequestBytes: 1024})
	cases := []struct{ name, in, msg string }{
		{"bad first byte", "GET / HTTP/1.1\r\n", "expected '$' or AUTH"},
		{"non-numeric length", "$abc\r\nq:1\r\n", "decimal digits"},
		{"missing CRLF after length", "$3\nq:1\r\n", "decimal digits"},
		{"missing CRLF after data", "$3\r\nq:1XY", "not followed by CRLF"},
		{"oversized", "$2000\r\n", "exceeds the limit of 1024 bytes"},
		{"overflowing length", "$99999999999999999999999\r\n", "exceeds the limit"},
		{"auth without CRLF", "AUTH x\n", "must end with CRLF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.raw(t)
			// A good request first: its answer must still come, in order.
			r.send(cmd("q:", "SELECT 1") + c.in)
			if tb := r.read(); tb.rows[0][0] != "1" {
				t.Fatalf("got %v", tb.rows)
			}
			tb := r.read()
			if _, msg, ok := tb.status(); !ok || !strings.Contains(msg, c.msg) {
				t.Fatalf("status %v, want %q", tb.rows, c.msg)
			}
			r.wantClosed()
		})
	}
}

func TestExecRunsStatementsInOrderAndStopsAtError(t *testing.T) {
	ts := start(t, server.Options{})
	c := ts.dial(t, client.Options{})
	err := c.Exec(ctx(t), "CREATE TABLE a(x INT); INSERT INTO a VALUES (1); INSERT INTO a VALUES ('x'); INSERT INTO a VALUES (3)")
	var e *client.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "Conversion Error") {
		t.Fatalf("err = %v", err)
	}
	rows, err := c.Query(ctx(t), "SELECT sum(x) FROM a")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() || rows.RecordBatch().Column(0).ValueStr(0) != "1" {
		t.Fatalf("sum is not 1: later statements ran or earlier ones did not")
	}
}

func TestSessionsArePrivateTablesShared(t *testing.T) {
	ts := start(t, server.Options{})
	a := ts.dial(t, client.Options{})
	b := ts.dial(t, client.Options{})
	c := ctx(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Exec(c, "CREATE TABLE shared AS SELECT 1 AS x; CREATE TEMP TABLE mine AS SELECT 2 AS y; SET VARIABLE v = 42"))
	must(b.Exec(c, "SELECT * FROM shared"))
	if err := b.Exec(c, "SELECT * FROM mine"); err == nil || !strings.Contains(err.Error(), "mine") {
		t.Fatalf("temp table visible to another session: %v", err)
	}
	// An open transaction's writes are private until COMMIT.
	must(a.Exec(c, "BEGIN; INSERT INTO shared VALUES (10)"))
	count := func(conn *client.Conn) string {
		rows, err := conn.Query(c, "SELECT count(*) FROM shared")
		must(err)
		defer rows.Close()
		rows.Next()
		return rows.RecordBatch().Column(0).ValueStr(0)
	}
	if got := count(b); got != "1" {
		t.Fatalf("uncommitted row visible: count %s", got)
	}
	if got := count(a); got != "2" {
		t.Fatalf("own uncommitted row invisible: count %s", got)
	}
	must(a.Exec(c, "COMMIT"))
	if got := count(b); got != "2" {
		t.Fatalf("committed row invisible: count %s", got)
	}
	// A setting belongs to its session.
	rows, err := b.Query(c, "SELECT getvariable('v') IS NULL")
	must(err)
	rows.Next()
	if got := rows.RecordBatch().Column(0).ValueStr(0); got != "true" {
		t.Fatalf("SET leaked into another session")
	}
	rows.Close()
}

func TestConcurrentClients(t *testing.T) {
	ts := start(t, server.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial(ctx(t), ts.addr, client.Options{})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range 10 {
				n := 1000 * (i + j + 1)
				rows, err := c.Query(ctx(t), fmt.Sprintf("SELECT %d AS id, count(*) AS n, sum(range) AS s FROM range(%d)", i, n))
				if err != nil {
					errs <- err
					return
				}
				rows.Next()
				rec := rows.RecordBatch()
				want := fmt.Sprintf("%d %d %d", i, n, n*(n-1)/2)
				got := fmt.Sprintf("%s %s %s", rec.Column(0).ValueStr(0), rec.Column(1).ValueStr(0), rec.Column(2).ValueStr(0))
				rows.Close()
				if got != want {
					errs <- fmt.Errorf("client %d: got %s, want %s", i, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDisconnectInterruptsQuery(t *testing.T) {
	ts := start(t, server.Options{})
	r := ts.raw(t)
	r.send(cmd("q:", "SELECT count(*) FROM range(100000000000)"))
	if !waitFor(5*time.Second, func() bool { return ts.OpenConnections() == 1 }) {
		t.Fatal("connection not served")
	}
	time.Sleep(200 * time.Millisecond) // the query is running
	r.nc.Close()
	start := time.Now()
	if !waitFor(time.Second, func() bool { return ts.OpenConnections() == 0 }) {
		t.Fatal("query still running a second after the client left")
	}
	t.Logf("idle %v after disconnect", time.Since(start))
}

func TestErrorAfterBatchesIsNotACompleteResult(t *testing.T) {
	ts := start(t, server.Options{BatchRows: 2048})
	// With several threads DuckDB sometimes reports "Interrupted!" for the
	// thread that saw the error instead of the error itself.
	if err := ts.dial(t, client.Options{}).Exec(ctx(t), "SET threads = 1"); err != nil {
		t.Fatal(err)
	}
	sql := "SELECT CASE WHEN i < 500000 THEN i ELSE error('boom at ' || i) END AS v FROM range(1000000) t(i)"
	// A generic Arrow reader must fail, not see a short result.
	r := ts.raw(t)
	r.send(cmd("q:", sql))
	tb, err := r.tryRead()
	if err == nil {
		t.Fatalf("generic reader took %d rows for a complete result", len(tb.rows))
	}
	if len(tb.rows) == 0 {
		t.Fatal("want some rows before the failure")
	}
	r.wantClosed()
	// Luna's client reports DuckDB's message.
	c := ts.dial(t, client.Options{})
	rows, err := c.Query(ctx(t), sql)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	var e *client.Error
	if !errors.As(rows.Err(), &e) || !strings.Contains(e.Message, "boom at") {
		t.Fatalf("err = %v", rows.Err())
	}
}

func TestAuth(t *testing.T) {
	ts := start(t, server.Options{Password: "s3cr3t pw"})
	t.Run("right", func(t *testing.T) {
		r := ts.raw(t)
		r.send("AUTH s3cr3t pw\r\n" + cmd("q:", "SELECT 1"))
		r.wantStatus("AUTH", "OK")
		if tb := r.read(); tb.rows[0][0] != "1" {
			t.Fatal(tb.rows)
		}
		c := ts.dial(t, client.Options{Password: "s3cr3t pw"})
		if err := c.Exec(ctx(t), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong", func(t *testing.T) {
		r := ts.raw(t)
		r.send("AUTH nope\r\n" + cmd("q:", "SELECT 1"))
		r.wantStatus("AUTH", "DENIED")
		r.wantClosed()
		if _, err := client.Dial(ctx(t), ts.addr, client.Options{Password: "s3cr3t"}); err == nil {
			t.Fatal("dial with wrong password succeeded")
		}
	})
	t.Run("missing", func(t *testing.T) {
		r := ts.raw(t)
		r.send(cmd("q:", "SELECT 1"))
		r.wantStatus("AUTH", "DENIED")
		r.wantClosed()
	})
	t.Run("repeated failures slow the address, right password included", func(t *testing.T) {
		var last time.Duration
		for range 4 {
			r := ts.raw(t)
			start := time.Now()
			r.send("AUTH bad\r\n")
			r.wantStatus("AUTH", "DENIED")
			last = time.Since(start)
		}
		if last < 250*time.Millisecond {
			t.Fatalf("fourth failure answered in %v", last)
		}
		// The right password waits the address's penalty too, so the
		// answer time says nothing; then the penalty is cleared.
		r := ts.raw(t)
		start := time.Now()
		r.send("AUTH s3cr3t pw\r\n")
		r.wantStatus("AUTH", "OK")
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Fatalf("right password answered in %v during the penalty", d)
		}
		r = ts.raw(t)
		start = time.Now()
		r.send("AUTH s3cr3t pw\r\n")
		r.wantStatus("AUTH", "OK")
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("penalty not cleared by a success: %v", d)
		}
	})
}

func TestPreAuthRequestLimit(t *testing.T) {
	ts := start(t, server.Options{Password: "pw"})
	// Refused on the length alone, before the body is sent.
	r := ts.raw(t)
	r.send("$100000\r\n")
	r.wantStatus("$10000", "exceeds the limit of 4096 bytes before AUTH")
	r.wantClosed()
	// After AUTH, even pipelined right behind it, --max-request-bytes applies.
	r = ts.raw(t)
	big := "SELECT length('" + strings.Repeat("y", 100000) + "') AS n"
	r.send("AUTH pw\r\n" + cmd("q:", big))
	r.wantStatus("AUTH", "OK")
	if tb := r.read(); len(tb.rows) != 1 || tb.rows[0][0] != "100000" {
		t.Fatalf("got %v", tb.rows)
	}
}

func TestAuthTimeout(t *testing.T) {
	ts := start(t, server.Options{Password: "pw", AuthTimeout: 300 * time.Millisecond})
	for _, send := range []string{"", "$1000\r\n", "AUTH p"} {
		r := ts.raw(t)
		r.send(send)
		start := time.Now()
		r.wantClosed()
		if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
			t.Errorf("sent %q: closed after %v, want about 300ms", send, d)
		}
	}
	// A client that authenticates in time is not affected later.
	c := ts.dial(t, client.Options{Password: "pw"})
	time.Sleep(500 * time.Millisecond)
	if err := c.Exec(ctx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := start(t, server.Options{IdleTimeout: 300 * time.Millisecond})
	c := ts.dial(t, client.Options{})
	// A request that runs longer than the idle timeout is not idleness.
	if err := c.Exec(ctx(t), "SELECT count(*) FROM range(1000000000)"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.Exec(ctx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	r := ts.raw(t)
	start := time.Now()
	r.wantClosed()
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}
}

// TestUnauthenticatedCannotLockOut: connections that never authenticate
// hold at most --max-unauthenticated-connections, and a new one replaces
// the oldest, so a real client still gets in.
func TestUnauthenticatedCannotLockOut(t *testing.T) {
	ts := start(t, server.Options{Password: "pw", MaxConnections: 4})
	in := ts.dial(t, client.Options{Password: "pw"})
	for range 10 {
		ts.raw(t) // never sends anything
	}
	if !waitFor(5*time.Second, func() bool { return ts.OpenConnections() == 3 }) {
		t.Fatalf("%d connections open, want 1 + 2 unauthenticated", ts.OpenConnections())
	}
	c := ts.dial(t, client.Options{Password: "pw"})
	for _, c := range []*client.Conn{in, c} {
		if err := c.Exec(ctx(t), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	ts := start(t, server.Options{MaxConnections: 2})
	a := ts.dial(t, client.Options{})
	b := ts.dial(t, client.Options{})
	// TCP accepts before the server does: let it take both first.
	if !waitFor(5*time.Second, func() bool { return ts.OpenConnections() == 2 }) {
		t.Fatal("connections not served")
	}
	r := ts.raw(t)
	r.wantStatus("", "too many connections: the server allows 2")
	r.wantClosed()
	for _, c := range []*client.Conn{a, b} {
		if err := c.Exec(ctx(t), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	if !waitFor(5*time.Second, func() bool { return ts.OpenConnections() == 1 }) {
		t.Fatal("closed connection still counted")
	}
	ts.dial(t, client.Options{})
}

func TestQueryTimeout(t *testing.T) {
	ts := start(t, server.Options{QueryTimeout: 300 * time.Millisecond})
	c := ts.dial(t, client.Options{})
	start := time.Now()
	_, err := c.Query(ctx(t), "SELECT count(*) FROM range(100000000000)")
	if err == nil || !strings.Contains(err.Error(), "query timeout") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if err := c.Exec(ctx(t), "SELECT 1"); err != nil {
		t.Fatalf("session unusable after timeout: %v", err)
	}
}
