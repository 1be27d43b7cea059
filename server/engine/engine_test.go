//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T) (*DB, *Conn) {
	t.Helper()
	db, err := Open(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); db.Close() })
	return db, c
}

func count(t *testing.T, r *Rows) (rows int64, batches int) {
	t.Helper()
	defer r.Close()
	for {
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if rec == nil {
			return
		}
		rows += rec.NumRows()
		batches++
		rec.Release()
	}
}

func TestQueryStreamsCoalescedBatches(t *testing.T) {
	_, c := open(t)
	r, err := c.Query(context.Background(), "SELECT range AS i, range*2 AS j FROM range(1000000)", 65536)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Schema().String(); !strings.Contains(got, "i: type=int64") {
		t.Fatalf("schema %s", got)
	}
	rows, batches := count(t, r)
	if rows != 1000000 {
		t.Fatalf("rows = %d", rows)
	}
	if batches > 1000000/65536+2 {
		t.Fatalf("batches = %d, want coalesced", batches)
	}
}

func TestExecStopsAtFirstError(t *testing.T) {
	_, c := open(t)
	err := c.Exec(context.Background(), "CREATE TABLE a(x INT); INSERT INTO nope VALUES (1); CREATE TABLE b(x INT)")
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "nope") {
		t.Fatalf("err = %v", err)
	}
	if err := c.Exec(context.Background(), "SELECT * FROM a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(context.Background(), "SELECT * FROM b"); err == nil {
		t.Fatal("b exists: execution went on after the error")
	}
}

func TestInterruptByContext(t *testing.T) {
	_, c := open(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(200*time.Millisecond, func() { cancel(errors.New("client gone")) })
	start := time.Now()
	_, err := c.Query(ctx, "SELECT count(*) FROM range(100000000000)", 1024)
	if err == nil || err.Error() != "client gone" {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if err := c.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatalf("conn unusable after interrupt: %v", err)
	}
}

func TestErrorAfterBatches(t *testing.T) {
	_, c := open(t)
	// With several threads, DuckDB now and then reports the threads it
	// stopped ("Interrupted!") instead of the error that stopped them.
	if err := c.Exec(context.Background(), "SET threads = 1"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Query(context.Background(), "SELECT CASE WHEN i < 300000 THEN i ELSE error('boom') END FROM range(1000000) t(i)", 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		rec, err := r.Next()
		if err != nil {
			if !strings.Contains(err.Error(), "boom") {
				t.Fatalf("err = %v", err)
			}
			break
		}
		if rec == nil {
			t.Fatal("result ended without the error")
		}
		n++
		rec.Release()
	}
	if n == 0 {
		t.Fatal("want batches before the error")
	}
}
