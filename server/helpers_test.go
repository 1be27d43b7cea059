//go:build duckdb_arrow

package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server"
	"github.com/lunadb/luna/server/engine"
)

// testServer is a server on a real loopback listener.
type testServer struct {
	*server.Server
	addr string
	done chan error
}

func start(t *testing.T, opts server.Options) *testServer {
	t.Helper()
	db, err := engine.Open(engine.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: server.New(db, opts, nil), addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- ts.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-ts.done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("serve returned %v", err)
		}
		db.Close()
	})
	return ts
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func (ts *testServer) dial(t *testing.T, opts client.Options) *client.Conn {
	t.Helper()
	c, err := client.Dial(ctx(t), ts.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// raw is a plain TCP connection for byte-level tests.
type raw struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) raw(t *testing.T) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.nc, s); err != nil {
		r.t.Fatal(err)
	}
}

// table is one decoded response.
type table struct {
	schema  *arrow.Schema
	rows    [][]string
	batches int
}

func (tb table) status() (input, msg string, ok bool) {
	if tb.schema.NumFields() != 2 || tb.schema.Field(0).Name != "input" || len(tb.rows) != 1 {
		return "", "", false
	}
	return tb.rows[0][0], tb.rows[0][1], true
}

// read decodes the next complete response stream.
func (r *raw) read() table {
	r.t.Helper()
	tb, err := r.tryRead()
	if err != nil {
		r.t.Fatal(err)
	}
	return tb
}

func (r *raw) tryRead() (table, error) {
	rd, err := ipc.NewReader(r.br)
	if err != nil {
		return table{}, err
	}
	defer rd.Release()
	tb := table{schema: rd.Schema()}
	for rd.Next() {
		rec := rd.RecordBatch()
		tb.batches++
		for i := range int(rec.NumRows()) {
			row := make([]string, rec.NumCols())
			for j := range row {
				col := rec.Column(j)
				if col.IsNull(i) {
					row[j] = "NULL"
				} else {
					row[j] = col.ValueStr(i)
				}
			}
			tb.rows = append(tb.rows, row)
		}
	}
	return tb, rd.Err()
}

func (r *raw) wantStatus(input, msg string) {
	r.t.Helper()
	tb := r.read()
	gotIn, gotMsg, ok := tb.status()
	if !ok {
		r.t.Fatalf("want status table, got %s with %d rows", tb.schema, len(tb.rows))
	}
	if gotIn != input || !strings.Contains(gotMsg, msg) {
		r.t.Fatalf("status = (%q, %q), want (%q, containing %q)", gotIn, gotMsg, input, msg)
	}
}

// wantClosed asserts the server closed the connection.
func (r *raw) wantClosed() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.br.Read(make([]byte, 1)); err != io.EOF {
		r.t.Fatalf("connection still open: read %d, %v", n, err)
	}
}

func cmd(prefix, stmt string) string { return string(client.AppendRequest(nil, prefix, stmt)) }

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}
