package client

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestQueryThenAbort(t *testing.T) {
	c, _ := pipe(t, func(s *fakeServer) {
		s.expect("q:SELECT n FROM t")
		s.write(withoutEOS(ipcStream(t, intSchema, intBatch(1, 2, 3))), abortMarker("out of memory"))
	})
	ctx := testContext(t)
	rows, err := c.Query(ctx, "SELECT n FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() || rows.RecordBatch().NumRows() != 3 {
		t.Fatal("expected the batch sent before the abort")
	}
	if rows.Next() {
		t.Fatal("Next succeeded after the abort marker")
	}
	var le *Error
	if err := rows.Err(); !errors.As(err, &le) || !le.Aborted || le.Message != "out of memory" || le.Input != "SELECT n FROM t" {
		t.Fatalf("Err() = %#v, want aborted *Error", err)
	}
	if err := c.Exec(ctx, "SELECT 1"); !errors.Is(err, ErrBroken) {
		t.Errorf("Exec after abort: got %v, want ErrBroken", err)
	}
}

func TestConnectionClosedAtBoundary(t *testing.T) {
	c, _ := pipe(t, func(s *fakeServer) {
		s.readRequest()
		s.write(withoutEOS(ipcStream(t, intSchema, intBatch(1))))
	})
	rows, err := c.Query(testContext(t), "q")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got, err := collect(t, rows)
	if fmtVals(got) != "[1]" || !errors.Is(err, ErrIncompleteResult) {
		t.Fatalf("got %v, %v; want [1], ErrIncompleteResult", got, err)
	}
}

func TestSequentialRequests(t *testing.T) {
	// The server sends nothing until it has read the next request, so a
	// client peeking past an end-of-stream marker would block here until
	// the context expired.
	c, _ := pipe(t, func(s *fakeServer) {
		s.expect("q:first")
		s.write(ipcStream(t, intSchema, intBatch(1), intBatch(2)))
		s.expect("x:CREATE TABLE t(n INT)")
		s.write(statusStream(t, "CREATE TABLE t(n INT)", "OK", true))
		s.expect("q:second")
		s.write(ipcStream(t, intSchema, intBatch(3)))
	})
	ctx := testContext(t)
	for i, step := range []string{"first", "exec", "second"} {
		if step == "exec" {
			if err := c.Exec(ctx, "CREATE TABLE t(n INT)"); err != nil {
				t.Fatalf("Exec: %v", err)
			}
			continue
		}
		rows, err := c.Query(ctx, step)
		if err != nil {
			t.Fatalf("Query %s: %v", step, err)
		}
		got, err := collect(t, rows)
		rows.Close()
		want := []string{"[1 2]", "", "[3]"}[i]
		if err != nil || fmtVals(got) != want {
			t.Fatalf("%s: got %v, %v; want %s", step, got, err, want)
		}
	}
}

func TestStatusErrors(t *testing.T) {
	c, _ := pipe(t, func(s *fakeServer) {
		s.readRequest()
		s.write(statusStream(t, "SELEC 1", "Parser Error: syntax error", true))
		s.readRequest()
		s.write(statusStream(t, "DROP TABLE x", "Catalog Error: no table x", false))
		s.readRequest()
		s.write(statusStream(t, "CHECKPOINT", "OK", true))
	})
	ctx := testContext(t)

	_, err := c.Query(ctx, "SELEC 1")
	var le *Error
	if !errors.As(err, &le) || le.Message != "Parser Error: syntax error" || le.Input != "SELEC 1" || le.Aborted {
		t.Fatalf("Query: got %#v, want status *Error", err)
	}
	if got, want := err.Error(), "luna: Parser Error: syntax error"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// An unmarked status table (older servers) is still recognised, and a
	// status error leaves the connection usable.
	if err := c.Exec(ctx, "DROP TABLE x"); !errors.As(err, &le) || le.Message != "Catalog Error: no table x" {
		t.Fatalf("Exec: got %v", err)
	}
	rows, err := c.Query(ctx, "CHECKPOINT")
	if err != nil {
		t.Fatalf("Query with OK status: %v", err)
	}
	defer rows.Close()
	if rows.Schema().NumFields() != 0 || rows.Next() || rows.Err() != nil {
		t.Errorf("OK status: want an empty result, got schema %v", rows.Schema())
	}
}

func TestCloseDrainsRows(t *testing.T) {
	c, _ := pipe(t, func(s *fakeServer) {
		s.readRequest()
		s.write(ipcStream(t, intSchema, intBatch(1), intBatch(2), intBatch(3)))
		s.expect("x:next")
		s.write(statusStream(t, "next", "OK", true))
	})
	ctx := testContext(t)
	rows, err := c.Query(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	if err := c.Exec(ctx, "next"); !errors.Is(err, ErrBusy) {
		t.Errorf("Exec with open Rows: got %v, want ErrBusy", err)
	}
	if err := rows.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Exec(ctx, "next"); err != nil {
		t.Fatalf("Exec after Close: %v", err)
	}
}

func TestCancelBreaksConn(t *testing.T) {
	c, done := pipe(t, func(s *fakeServer) {
		s.readRequest()
		s.write(withoutEOS(ipcStream(t, intSchema, intBatch(1))))
		// Stall until the client hangs up.
		s.br.ReadByte()
	})
	ctx, cancel := context.WithCancel(testContext(t))
	rows, err := c.Query(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	cancel()
	if rows.Next() {
		t.Fatal("Next succeeded after cancel")
	}
	if err := rows.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err() = %v, want context.Canceled", err)
	}
	if err := c.Exec(context.Background(), "x"); !errors.Is(err, ErrBroken) {
		t.Errorf("Exec after cancel: got %v, want ErrBroken", err)
	}
	<-done // the broken conn hung up, releasing the server
}

func TestDeadline(t *testing.T) {
	c, _ := pipe(t, func(s *fakeServer) {
		s.readRequest()
		s.br.ReadByte() // never answer
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Exec(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func TestDialAuth(t *testing.T) {
	for _, tt := range []struct {
		password, reply string
	}{{"good", "OK"}, {"bad", "DENIED"}} {
		dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
			cc, sc := net.Pipe()
			go func() {
				defer sc.Close()
				s := &fakeServer{t: t, nc: sc, br: bufio.NewReader(sc)}
				s.expect("AUTH " + tt.password)
				s.write(statusStream(t, "AUTH", tt.reply, true))
				s.br.ReadByte() // wait for the client to hang up
			}()
			return cc, nil
		}
		c, err := Dial(testContext(t), "luna", Options{Password: tt.password, Dialer: dialer})
		if tt.reply == "OK" {
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			c.Close()
			continue
		}
		var le *Error
		if !errors.As(err, &le) || le.Message != "DENIED" || le.Input != "AUTH" {
			t.Fatalf("Dial with bad password: got %v, want DENIED", err)
		}
	}
}
