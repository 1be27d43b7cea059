//go:build duckdb_arrow

package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
)

// The tests here run luna with --max-concurrent-queries and watch its
// queue through /metrics: luna_queries_running, luna_queries_waiting,
// luna_query_wait_seconds and luna_admission_rejected_total.

// endless runs until interrupted: its client going away or the query
// timeout.
const endless = "SELECT count(*) FROM range(10000000000000)"

// admValue runs sql and returns the first value of its result as text,
// reading the result to its end.
func admValue(ctx context.Context, c *client.Conn, sql string) (string, error) {
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	v := ""
	for rows.Next() {
		if rec := rows.RecordBatch(); v == "" && rec.NumRows() > 0 {
			v = rec.Column(0).ValueStr(0)
		}
	}
	return v, rows.Err()
}

type admResult struct {
	val string
	err error
}

// admStart runs sql on c in the background.
func admStart(ctx context.Context, c *client.Conn, sql string) <-chan admResult {
	out := make(chan admResult, 1)
	go func() {
		v, err := admValue(ctx, c, sql)
		out <- admResult{v, err}
	}()
	return out
}

// admAwait waits until the metric has the value want.
func admAwait(t *testing.T, base, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := metric(t, base, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func admResultOf(t *testing.T, ch <-chan admResult, within time.Duration) admResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("no answer within %v", within)
		return admResult{}
	}
}

// TestAdmissionQueueWaitsThenRuns: with one slot, a query sent while
// another runs waits (luna_queries_waiting 1) and runs once the first is
// done; transaction and SET statements do not queue.
func TestAdmissionQueueWaitsThenRuns(t *testing.T) {
	haddr := freePort(t)
	base := "http://" + haddr
	p := startLuna(t, true, nil, "--max-concurrent-queries", "1", "--health-host-port", haddr, "--log-level", "debug")
	ctx := context.Background()
	a, b, c := p.dial(t, client.Options{}), p.dial(t, client.Options{}), p.dial(t, client.Options{})

	// Long enough to watch the other wait (a few seconds on two cores),
	// but it ends on its own.
	slow := admStart(ctx, a, "SELECT count(*) FROM range(1000000000) x, range(16) y")
	admAwait(t, base, "luna_queries_running", 1)
	// These answer while the slot is taken: the check below that the slow
	// query still runs shows they did not queue behind it.
	for _, sql := range []string{"BEGIN", "SET enable_progress_bar = false", "ROLLBACK"} {
		if err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	waiting := admStart(ctx, b, "SELECT 42")
	admAwait(t, base, "luna_queries_waiting", 1)
	select {
	case r := <-slow:
		t.Fatalf("the slow query ended (%v) before the waiting one could be seen waiting: BEGIN, SET or ROLLBACK queued behind it, or it is too fast", r.err)
	case r := <-waiting:
		t.Fatalf("a query ran while the only slot was taken: %+v", r)
	default:
	}

	first := admResultOf(t, slow, 2*time.Minute)
	if first.err != nil || first.val != "16000000000" {
		t.Fatalf("slow query: %q, %v", first.val, first.err)
	}
	// The slot is released once the slow query's pipeline is done, before
	// its last bytes are flushed, so the two answers may reach their
	// clients in either order.
	second := admResultOf(t, waiting, 30*time.Second)
	if second.err != nil || second.val != "42" {
		t.Fatalf("waiting query: %q, %v", second.val, second.err)
	}
	admAwait(t, base, "luna_queries_running", 0)
	admAwait(t, base, "luna_queries_waiting", 0)
	if n := metric(t, base, "luna_query_wait_seconds_count"); n < 2 {
		t.Errorf("luna_query_wait_seconds_count = %v, want at least 2", n)
	}
	if s := metric(t, base, "luna_query_wait_seconds_sum"); s <= 0 {
		t.Errorf("luna_query_wait_seconds_sum = %v, want the wait of the second query", s)
	}
	if !p.logs.Await("query waits for a slot") || !p.logs.Await("query admitted") {
		t.Errorf("no debug log line tells of the wait")
	}
}

// TestAdmissionWaitIsBoundedByQueryTimeout: the wait counts against
// --query-timeout, the error says so and names the flag, and the session
// goes on.
func TestAdmissionWaitIsBoundedByQueryTimeout(t *testing.T) {
	haddr := freePort(t)
	base := "http://" + haddr
	const timeout = 2 * time.Second
	p := startLuna(t, true, nil, "--max-concurrent-queries", "1", "--query-timeout", timeout.String(), "--health-host-port", haddr)
	ctx := context.Background()
	a, b := p.dial(t, client.Options{}), p.dial(t, client.Options{})

	holder := admStart(ctx, a, endless)
	admAwait(t, base, "luna_queries_running", 1)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	waiter := admStart(ctx, b, endless)
	admAwait(t, base, "luna_queries_waiting", 1)

	r := admResultOf(t, holder, timeout+10*time.Second)
	if r.err == nil || !strings.Contains(r.err.Error(), "query timeout") {
		t.Fatalf("holder: %v, want a query timeout", r.err)
	}
	r = admResultOf(t, waiter, timeout+10*time.Second)
	d := time.Since(start)
	// Admitted at the holder's deadline, it has its own remaining time;
	// or its deadline passes in the queue. Either way the answer tells of
	// the wait and the flag.
	if r.err == nil || !strings.Contains(r.err.Error(), "query timeout") || !strings.Contains(r.err.Error(), "--max-concurrent-queries") {
		t.Fatalf("waiter: %v, want a query timeout naming --max-concurrent-queries", r.err)
	}
	var ce *client.Error
	if !errors.As(r.err, &ce) {
		t.Fatalf("waiter: %T %v, want the server's error", r.err, r.err)
	}
	t.Logf("waiter answered after %v: %v", d, r.err)
	if d < timeout-200*time.Millisecond || d > timeout+2*time.Second {
		t.Errorf("waiter answered after %v, want about --query-timeout %v", d, timeout)
	}
	// Both sessions go on.
	for _, c := range []*client.Conn{a, b} {
		if v, err := admValue(ctx, c, "SELECT 7"); err != nil || v != "7" {
			t.Fatalf("after the timeout: %q, %v", v, err)
		}
	}
	admAwait(t, base, "luna_queries_running", 0)
	admAwait(t, base, "luna_queries_waiting", 0)
}

// TestAdmissionClosedWaiterFreesItsPlace: a client that goes away while
// its query waits leaves the queue at once, and the one behind it gets
// the slot next.
func TestAdmissionClosedWaiterFreesItsPlace(t *testing.T) {
	haddr := freePort(t)
	base := "http://" + haddr
	p := startLuna(t, true, nil, "--max-concurrent-queries", "1", "--health-host-port", haddr)
	a, b, c := p.dial(t, client.Options{}), p.dial(t, client.Options{}), p.dial(t, client.Options{})

	actx, stopA := context.WithCancel(context.Background())
	defer stopA()
	holder := admStart(actx, a, endless)
	admAwait(t, base, "luna_queries_running", 1)
	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	gone := admStart(bctx, b, "SELECT 1")
	admAwait(t, base, "luna_queries_waiting", 1)
	next := admStart(context.Background(), c, "SELECT 'next'")
	admAwait(t, base, "luna_queries_waiting", 2)

	stopB() // the client closes its connection
	if r := admResultOf(t, gone, 10*time.Second); r.err == nil {
		t.Fatalf("canceled client got %q", r.val)
	}
	admAwait(t, base, "luna_queries_waiting", 1)
	admAwait(t, base, `luna_admission_rejected_total{reason="canceled"}`, 1)
	admAwait(t, base, "luna_connections_open", 2)

	stopA()
	if r := admResultOf(t, holder, 10*time.Second); r.err == nil {
		t.Fatalf("interrupted holder got %q", r.val)
	}
	if r := admResultOf(t, next, 10*time.Second); r.err != nil || r.val != "next" {
		t.Fatalf("next: %q, %v", r.val, r.err)
	}
	admAwait(t, base, "luna_queries_running", 0)
	admAwait(t, base, "luna_queries_waiting", 0)
	admAwait(t, base, "luna_connections_open", 1)
}

// TestAdmissionSlotReleasedOnPanic: a statement that panics while it
// holds the only slot gives it back as the panic unwinds to the server's
// recovery, so the next query runs.
func TestAdmissionSlotReleasedOnPanic(t *testing.T) {
	p := startPanicky(t, "statement:panic_in_statement", nil, "--max-concurrent-queries", "1", "--query-timeout", "20s")
	c, other := p.dial(t, client.Options{}), p.dial(t, client.Options{})
	wantInternal(t, c.Exec(context.Background(), "SELECT 'panic_in_statement' AS x"), "running the statement")
	wantInternal(t, drainErr(c, "SELECT 'panic_in_statement' AS x"), "running the statement")
	for _, conn := range []*client.Conn{c, other} {
		if v, err := admValue(context.Background(), conn, "SELECT 3"); err != nil || v != "3" {
			t.Fatalf("after the panics: %q, %v", v, err)
		}
	}
	admAwait(t, p.base, "luna_queries_running", 0)
	p.waitPanics(t, "statement", 2)
}

func TestAdmissionMalformedFlag(t *testing.T) {
	bin := binary(t, "luna", true)
	for _, tc := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"--max-concurrent-queries", "-1"}, nil, "--max-concurrent-queries: must not be negative"},
		{[]string{"--max-concurrent-queries", "two"}, nil, "-max-concurrent-queries"},
		{nil, []string{"LUNA_MAX_CONCURRENT_QUERIES=4x"}, "LUNA_MAX_CONCURRENT_QUERIES (--max-concurrent-queries)"},
	} {
		_, errOut, code := run(t, "", tc.env, bin, append([]string{"--api-host-port", "127.0.0.1:0"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q", tc.args, tc.env, code, errOut)
		}
	}
}

// TestAdmissionUnderLoad measures 64 clients each running a parallel
// GROUP BY over a 5M-row table in a loop, without a cap and with
// --max-concurrent-queries 2, against one client alone: throughput,
// latency and the server's peak RSS. Queries still running when the time
// is up are waited for and counted. It takes about two minutes; set
// LUNA_ADMISSION_LOAD=1 to run it (LUNA_ADMISSION_LOAD_TIME=30s,
// LUNA_ADMISSION_LOAD_CLIENTS=16, LUNA_ADMISSION_LOAD_LIMITS=2,4 and
// LUNA_ADMISSION_LOAD_QUERY change the 15 s per side, the 64 clients, the
// caps tried and the query over t(id, k, v, city)).
func TestAdmissionUnderLoad(t *testing.T) {
	if os.Getenv("LUNA_ADMISSION_LOAD") == "" {
		t.Skip("set LUNA_ADMISSION_LOAD=1 to measure")
	}
	clients, run := 64, 15*time.Second
	if v, err := time.ParseDuration(os.Getenv("LUNA_ADMISSION_LOAD_TIME")); err == nil {
		run = v
	}
	if v, err := strconv.Atoi(os.Getenv("LUNA_ADMISSION_LOAD_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	sides := []struct{ clients, limit int }{{1, 0}, {clients, 0}}
	for _, v := range strings.Split(cmp.Or(os.Getenv("LUNA_ADMISSION_LOAD_LIMITS"), "2"), ",") {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("LUNA_ADMISSION_LOAD_LIMITS: %v", err)
		}
		sides = append(sides, struct{ clients, limit int }{clients, n})
	}
	dir := t.TempDir()
	seed := writeFile(t, dir, "seed.sql", `CREATE TABLE t AS
SELECT i AS id, (i * 7919) % 100000 AS k, (i % 1000) / 10.0 AS v, 'c' || (i % 5000) AS city
FROM range(5000000) r(i);`)
	query := cmp.Or(os.Getenv("LUNA_ADMISSION_LOAD_QUERY"), "SELECT k, sum(v), count(*) FROM t GROUP BY k ORDER BY 2 DESC LIMIT 5")
	var report []string
	for _, side := range sides {
		limit := side.limit
		haddr := freePort(t)
		p := startLuna(t, false, nil, "--init-sql", seed, "--health-host-port", haddr,
			"--max-concurrent-queries", fmt.Sprint(limit))
		conns := make([]*client.Conn, side.clients)
		for i := range conns {
			conns[i] = p.dial(t, client.Options{})
		}
		if _, err := admValue(context.Background(), conns[0], query); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var lat []time.Duration
		var failed int
		var firstErr error
		stop := time.Now().Add(run)
		var wg sync.WaitGroup
		start, cpu0 := time.Now(), admCPU(t, p.cmd.Process.Pid)
		for _, c := range conns {
			wg.Go(func() {
				for time.Now().Before(stop) {
					t0 := time.Now()
					_, err := admValue(context.Background(), c, query)
					d := time.Since(t0)
					mu.Lock()
					if err != nil {
						failed++
						firstErr = cmp.Or(firstErr, err)
					} else {
						lat = append(lat, d)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		cores := (admCPU(t, p.cmd.Process.Pid) - cpu0).Seconds() / elapsed.Seconds()
		loadAvg, _ := os.ReadFile("/proc/loadavg")
		slices.Sort(lat)
		q := func(f float64) time.Duration {
			if len(lat) == 0 {
				return 0
			}
			return lat[min(len(lat)-1, int(f*float64(len(lat))))].Round(time.Millisecond)
		}
		name := fmt.Sprintf("%2d clients, unlimited", side.clients)
		if limit > 0 {
			name = fmt.Sprintf("%2d clients, --max-concurrent-queries %d", side.clients, limit)
		}
		// The server's CPU use and the machine's load tell a run that
		// shared the cores with other work.
		qps := float64(len(lat)) / elapsed.Seconds()
		line := fmt.Sprintf("%-40s %5d queries in %v: %5.1f q/s, p50 %v, p99 %v, max %v, failed %d, peak RSS %d MiB, server CPU %.2f cores (%.1f q per CPU-second), load %s",
			name, len(lat), elapsed.Round(100*time.Millisecond), qps, q(0.50), q(0.99), q(1), failed,
			vmHWM(t, p.cmd.Process.Pid)>>20, cores, qps/cores, strings.Join(strings.Fields(string(loadAvg))[:3], " "))
		if firstErr != nil {
			line += fmt.Sprintf(" (first error: %v)", firstErr)
		}
		t.Log(line)
		report = append(report, line)
		for _, c := range conns {
			c.Close()
		}
		p.cmd.Process.Kill()
		<-p.done
	}
	fmt.Printf("\nadmission under load: %v each side, %q over 5M rows\n  %s\n", run, query, strings.Join(report, "\n  "))
}

// admCPU is a process's user and system CPU time so far.
func admCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var ticks int64
	for _, v := range f[11:13] { // utime, stime
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
