//go:build duckdb_arrow

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
)

// Clients that attack the API port: password guessers, connections that
// never authenticate, readers that stall and pipeliners that never read.

const hostilePassword = "correct horse battery staple"

// TestAuthGuessersFromOneAddressAreRateLimited: 50 connections guessing
// in parallel from 127.0.0.1, each giving up after 50 ms without an answer
// (which the old throttle turned into "wrong"), get a handful of passwords
// checked per second between them; the right password is not answered
// faster than a wrong one meanwhile, and gets in once they stop.
func TestAuthGuessersFromOneAddressAreRateLimited(t *testing.T) {
	haddr := freePort(t)
	base := "http://" + haddr
	p := startLuna(t, true, []string{"LUNA_PASSWD=" + hostilePassword}, "--health-host-port", haddr)
	checked := func() float64 { return metric(t, base, "luna_auth_failures_total") }

	const guessers, window, patience = 50, 6 * time.Second, 50 * time.Millisecond
	ctx, stop := context.WithTimeout(context.Background(), window)
	defer stop()
	var attempts, answered atomic.Int64
	var wg sync.WaitGroup
	for g := range guessers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				attempts.Add(1)
				c, err := client.Dial(ctx, p.addr, client.Options{Password: fmt.Sprintf("guess-%d-%d", g, i), DialTimeout: patience})
				if err == nil {
					c.Close()
					t.Error("a wrong password was accepted")
					return
				}
				if le := (*client.Error)(nil); errors.As(err, &le) {
					answered.Add(1)
				}
			}
		})
	}
	// Mid-attack, the right password with the same patience: an answer
	// within it would tell right from wrong.
	time.Sleep(window / 2)
	if c, err := client.Dial(context.Background(), p.addr, client.Options{Password: hostilePassword, DialTimeout: patience}); err == nil {
		c.Close()
		t.Errorf("right password answered within %v while the address is penalised", patience)
	}
	t.Logf("metrics at %v: %v passwords checked", window/2, checked())
	wg.Wait()
	n := checked()
	t.Logf("%d guessers over %v: %d connections tried, %d answered, %v passwords checked (luna_auth_failures_total)",
		guessers, window, attempts.Load(), answered.Load(), n)
	if n > 15 {
		t.Errorf("%v passwords checked in %v from one address: not rate-limited", n, window)
	}

	// The server may still be taking connections the guessers left in its
	// accept queue; once it has, the right password waits out the
	// address's penalty, then gets in.
	drained := time.Now()
	for metric(t, base, "luna_connections_open") != 0 && time.Since(drained) < 30*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the server took %v to drain the guessers' connections", time.Since(drained))
	t0 := time.Now()
	c := p.dial(t, client.Options{Password: hostilePassword})
	if err := c.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	d := time.Since(t0)
	t.Logf("right password accepted %v after the guessing stopped", d)
	if d > 3*time.Second {
		t.Errorf("right password took %v after the guessing stopped", d)
	}
}

// TestSlowConnectionsAreDroppedAfterAuthTimeout: 20 connections that never
// complete AUTH (10 send nothing, 10 start a command and stop) cannot keep
// a real client out, and are closed after --auth-timeout.
func TestSlowConnectionsAreDroppedAfterAuthTimeout(t *testing.T) {
	const authTimeout = 2 * time.Second
	// A client already in, plus the 20 slow ones, fill --max-connections:
	// without the fix a new real client is refused.
	p := startLuna(t, true, []string{"LUNA_PASSWD=" + hostilePassword},
		"--auth-timeout", authTimeout.String(), "--max-connections", "21", "--max-unauthenticated-connections", "20")
	ctx := context.Background()
	early := p.dial(t, client.Options{Password: hostilePassword})

	type slow struct {
		nc     net.Conn
		opened time.Time
	}
	var conns []slow
	for i := range 20 {
		nc, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		if i%2 == 1 {
			if _, err := io.WriteString(nc, "$1000\r\n"); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, slow{nc, time.Now()})
	}
	time.Sleep(200 * time.Millisecond) // let the server take them all

	t0 := time.Now()
	late, err := client.Dial(ctx, p.addr, client.Options{Password: hostilePassword, DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("real client refused while slow connections are open: %v", err)
	}
	defer late.Close()
	if err := late.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := early.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("authenticated client locked out: %v", err)
	}
	t.Logf("real client served %v after connecting", time.Since(t0))

	// Each slow connection is closed by the server: at --auth-timeout, or
	// at once for the one dropped to make room for the late client.
	var atTimeout int
	for i, s := range conns {
		s.nc.SetReadDeadline(s.opened.Add(authTimeout + 2*time.Second))
		n, err := s.nc.Read(make([]byte, 512))
		d := time.Since(s.opened)
		if n > 0 || !(errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
			t.Fatalf("slow connection %d: read %d bytes, %v after %v: not closed by the server", i, n, err, d)
		}
		if d >= authTimeout-100*time.Millisecond {
			atTimeout++
		}
	}
	t.Logf("%d of 20 slow connections closed at --auth-timeout", atTimeout)
	if atTimeout < 19 {
		t.Errorf("only %d slow connections lasted until --auth-timeout", atTimeout)
	}
	if err := early.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// metric reads one sample from the health port's /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestClientThatStopsReadingIsDisconnected: a client that asks for a large
// result and stops reading is disconnected within --query-timeout, or
// --write-timeout when there is no query timeout, and its query ends
// (its session and DuckDB connection are released).
func TestClientThatStopsReadingIsDisconnected(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		limit time.Duration
	}{
		{"query-timeout", []string{"--query-timeout", "2s", "--write-timeout", "0"}, 2 * time.Second},
		{"write-timeout", []string{"--write-timeout", "1s"}, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			haddr := freePort(t)
			base := "http://" + haddr
			p := startLuna(t, true, nil, append([]string{"--health-host-port", haddr}, tc.args...)...)
			nc, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.(*net.TCPConn).SetReadBuffer(16 << 10)
			sql := "SELECT i, repeat('x', 200) AS pad FROM range(1000000000) t(i)"
			start := time.Now()
			if _, err := nc.Write(client.AppendRequest(nil, client.PrefixQuery, sql)); err != nil {
				t.Fatal(err)
			}
			// The client reads nothing from here on.
			open := func() float64 { return metric(t, base, "luna_connections_open") }
			// Counted first (the server may not have taken the connection
			// in yet when the first scrape comes), then released.
			for counted := start.Add(5 * time.Second); open() == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(counted) {
					t.Fatal("the connection was never counted open")
				}
			}
			deadline := start.Add(tc.limit + 3*time.Second)
			for open() != 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			d := time.Since(start)
			if open() != 0 {
				t.Fatalf("connection still served %v after the client stopped reading", d)
			}
			t.Logf("stalled client disconnected %v after its query started (limit %v)", d, tc.limit)
			if d > tc.limit+1500*time.Millisecond {
				t.Errorf("disconnected after %v, want about %v", d, tc.limit)
			}
			if got := metric(t, base, `luna_requests_total{kind="query",outcome="aborted"}`); got != 1 {
				t.Errorf("aborted queries = %v, want 1", got)
			}
			if !p.logs.Await("client stopped reading") {
				t.Errorf("no log line says why the connection was closed")
			}
			// The server goes on serving.
			c := p.dial(t, client.Options{})
			if err := c.Exec(context.Background(), "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// vmRSS is a process's resident set size in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// TestPipeliningClientThatNeverReadsHasBoundedMemory: a client that sends
// x: requests without ever reading their answers meets TCP push-back
// instead of growing the server's memory.
func TestPipeliningClientThatNeverReadsHasBoundedMemory(t *testing.T) {
	// No write deadline: memory must stay bounded by push-back alone.
	p := startLuna(t, true, nil, "--write-timeout", "0")
	pid := p.cmd.Process.Pid
	warm := p.dial(t, client.Options{})
	// As many statements as the stalled client gets in, so that what is
	// measured is its buffering, not DuckDB's and the allocator's warm-up.
	for range 1500 {
		if err := warm.Exec(context.Background(), "SELECT 1 -- "+strings.Repeat("w", 8<<10)); err != nil {
			t.Fatal(err)
		}
	}
	before := vmRSS(t, pid)

	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Every answer echoes its 8 KiB statement.
	req := client.AppendRequest(nil, client.PrefixExec, "SELECT 1 -- "+strings.Repeat("p", 8<<10))
	var burst []byte
	for range 64 {
		burst = append(burst, req...)
	}
	const total = 256 << 20
	sent, stalled := 0, false
	for sent < total {
		nc.SetWriteDeadline(time.Now().Add(3 * time.Second))
		n, err := nc.Write(burst)
		sent += n
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			stalled = true
			break
		}
	}
	after := vmRSS(t, pid)
	growth := after - before
	t.Logf("sent %d MiB of requests without reading (server pushed back: %v); server RSS %d MiB -> %d MiB (+%d MiB)",
		sent>>20, stalled, before>>20, after>>20, growth>>20)
	if growth >= 64<<20 {
		t.Errorf("server RSS grew by %d MiB", growth>>20)
	}
	if !stalled {
		t.Errorf("the server took all %d MiB without pushing back", sent>>20)
	}
	// Others are still served.
	if err := warm.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}
