//go:build duckdb_arrow

package server_test

import (
	"bufio"
	"crypto/tls"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/internal/testpki"
	"github.com/lunadb/luna/server"
)

// tlsConfigs returns a server configuration with a certificate for
// 127.0.0.1 and a client configuration trusting its CA.
func tlsConfigs(t *testing.T) (srv, cli *tls.Config) {
	t.Helper()
	ca := testpki.New(t, "test CA")
	cert := ca.Server(t, "luna", 1, time.Now().Add(time.Hour), "127.0.0.1")
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert.TLS}},
		&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
}

// rawTLS is raw over a TLS connection.
func (ts *testServer) rawTLS(t *testing.T, cfg *tls.Config) *raw {
	t.Helper()
	r := ts.raw(t)
	tc := tls.Client(r.nc, cfg.Clone())
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r.nc, r.br = tc, bufio.NewReader(tc)
	return r
}

func TestTLSPipelinedRequestsAndLongResults(t *testing.T) {
	srvCfg, cliCfg := tlsConfigs(t)
	ts := start(t, server.Options{Password: "pw", TLS: srvCfg})
	r := ts.rawTLS(t, cliCfg)
	// AUTH and three requests in one write: answered in order.
	r.send("AUTH pw\r\n" + cmd("q:", "SELECT 1 AS a") + cmd("x:", "CREATE TABLE t AS SELECT range AS n FROM range(400000)") +
		cmd("q:", "SELECT n FROM t ORDER BY n"))
	r.wantStatus("AUTH", "OK")
	if tb := r.read(); len(tb.rows) != 1 || tb.rows[0][0] != "1" {
		t.Fatalf("first answer %v", tb.rows)
	}
	r.wantStatus("CREATE TABLE t AS SELECT range AS n FROM range(400000)", "OK")
	// Several MiB: written in many flushes, each many TLS records.
	tb := r.read()
	if len(tb.rows) != 400000 || tb.rows[399999][0] != "399999" {
		t.Fatalf("long result: %d rows", len(tb.rows))
	}
	// The plain protocol still works on the same port.
	c := ts.dial(t, client.Options{Password: "pw"})
	if err := c.Exec(ctx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

func TestRequireTLSAnswersAPipelinedPlainClient(t *testing.T) {
	srvCfg, cliCfg := tlsConfigs(t)
	ts := start(t, server.Options{Password: "pw", TLS: srvCfg, RequireTLS: true})
	r := ts.raw(t)
	// Unread input must not reset the connection before the answer is read.
	r.send("AUTH pw\r\n" + cmd("q:", "SELECT 1"))
	r.wantStatus("", server.RequireTLSMessage)
	r.wantClosed()
	tr := ts.rawTLS(t, cliCfg)
	tr.send("AUTH pw\r\n")
	tr.wantStatus("AUTH", "OK")
}

func TestTLSSilentAndStalledHandshakesAreClosed(t *testing.T) {
	srvCfg, _ := tlsConfigs(t)
	ts := start(t, server.Options{Password: "pw", TLS: srvCfg, AuthTimeout: 300 * time.Millisecond})
	silent, stalled := ts.raw(t), ts.raw(t)
	stalled.send("\x16\x03\x01") // the start of a ClientHello, and no more
	start := time.Now()
	silent.wantClosed()
	stalled.wantClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestTLSHandshakesCountAsUnauthenticated(t *testing.T) {
	srvCfg, cliCfg := tlsConfigs(t)
	ts := start(t, server.Options{Password: "pw", TLS: srvCfg, MaxUnauthenticated: 1})
	stalled := ts.raw(t)
	stalled.send("\x16")
	if !waitFor(5*time.Second, func() bool { return ts.OpenConnections() == 1 }) {
		t.Fatal("the stalled handshake is not counted")
	}
	// A newer connection takes its place.
	r := ts.rawTLS(t, cliCfg)
	stalled.wantClosed()
	r.send("AUTH pw\r\n")
	r.wantStatus("AUTH", "OK")
}
