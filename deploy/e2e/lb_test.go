package e2e

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/remote"
	"github.com/lunadb/luna/internal/nspawn"
)

// The load balancer's health checks, as a cloud's but faster. GCP's and
// AWS's load balancers send TCP through to a backend and decide where new
// connections go by an HTTP check of each backend's /readyz on the health
// port: a backend is taken out after `fall` failed checks (the unhealthy
// threshold) and put back after `rise` passing ones (the healthy
// threshold), and connections already open are left alone. The Terraform
// modules check every 10s, 3 to fall and 2 to rise; AWS's target groups
// default to 2 to fall and 5 to rise. Here every 1s, 2 to fall and 3 to
// rise: slower to put a node back than to take one out, so that a rolling
// restart that moves on before the balancer has the restarted node back
// (no --settle) leaves it with none.
const (
	checkInter = time.Second
	checkFall  = 2
	checkRise  = 3
)

// drainDelay covers a node's way out of rotation after SIGTERM: fall
// failed checks, plus one interval for where in its cycle the first check
// falls (LUNA_DRAIN_DELAY's rule; 40s for the 10s checks).
const drainDelay = checkFall*checkInter + checkInter

// settle is how long a restarted node must stay ready before the next is
// restarted: rise passing checks, plus one interval (--settle's rule).
const settle = checkRise*checkInter + checkInter

// preloadRows is the table every node rebuilds at startup.
const preloadRows = 1000000

// probeSQL reads the preloaded table and names the node that answered.
const probeSQL = "SELECT (SELECT name FROM node) AS node, count(*) AS n, sum(x)::BIGINT AS s FROM t"

// haproxy is an HAProxy in TCP mode in front of the nodes' API ports.
type haproxy struct {
	addr   string // where clients connect
	socket string // the stats socket
	log    *nspawn.Buffer
}

func haproxyBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	t.Fatal("haproxy not found: run make tools (scripts/test-deps.sh installs Debian's haproxy)")
	return ""
}

// startHAProxy balances round robin over the nodes, checking each one's
// /readyz; it is stopped when the test ends.
func startHAProxy(t *testing.T, nodes map[string]*container) *haproxy {
	t.Helper()
	bin := haproxyBinary(t)
	dir := t.TempDir()
	h := &haproxy{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), socket: filepath.Join(dir, "stats.sock"), log: &nspawn.Buffer{}}
	var servers strings.Builder
	for name, c := range nodes {
		fmt.Fprintf(&servers, "    server %s %s:%d check port %d\n", name, c.ip, c.ports.api, c.ports.health)
	}
	cfg := fmt.Sprintf(`global
    nbthread 1
    maxconn 1000
    stats socket %s mode 600 level admin
    log stderr format raw local0 info

defaults
    mode tcp
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    # A connection a backend refuses fails, as through a cloud's
    # passthrough load balancer: no retry elsewhere hides a node that
    # stopped accepting while still in rotation.
    retries 0

frontend luna
    bind %s
    default_backend nodes

backend nodes
    # The log shows the checks' verdicts (a server going DOWN or UP); the
    # frontend logs nothing, not every connection.
    log global
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter %dms fall %d rise %d
%s`, h.socket, h.addr, checkInter.Milliseconds(), checkFall, checkRise, servers.String())
	file := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	cmd := exec.Command(bin, "-db", "-f", file)
	cmd.Stdout, cmd.Stderr = h.log, h.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("haproxy log (last lines):\n%s", nspawn.Tail(h.log.String(), 40))
		}
	})
	if !nspawn.WaitFor(30*time.Second, 100*time.Millisecond, func() bool {
		st, err := h.stats()
		if err != nil {
			return false
		}
		for name := range nodes {
			if st[name]["status"] != "UP" {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("haproxy does not see the nodes up:\n%s", h.log.String())
	}
	return h
}

// stats is HAProxy's "show stat" for the backend's rows: by server name
// (and BACKEND), field name to value.
func (h *haproxy) stats() (map[string]map[string]string, error) {
	conn, err := net.DialTimeout("unix", h.socket, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	r := csv.NewReader(bufio.NewReader(conn))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("reading show stat: %w", err)
	}
	if len(recs) == 0 {
		return nil, errors.New("show stat: no output")
	}
	head := recs[0]
	head[0] = strings.TrimPrefix(head[0], "# ")
	out := map[string]map[string]string{}
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, v := range rec {
			if i < len(head) {
				row[head[i]] = v
			}
		}
		if row["pxname"] == "nodes" {
			out[row["svname"]] = row
		}
	}
	return out, nil
}

// ask runs probeSQL and checks the answer: the whole preloaded table.
func ask(ctx context.Context, c *client.Conn) (node string, err error) {
	rows, err := c.Query(ctx, probeSQL)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", err
		}
		return "", errors.New("no rows")
	}
	rec := rows.RecordBatch()
	// Values live in the batch's buffers, reused once it is released.
	node = strings.Clone(rec.Column(0).ValueStr(0))
	n, s := rec.Column(1).ValueStr(0), rec.Column(2).ValueStr(0)
	if n != strconv.Itoa(preloadRows) || s != strconv.Itoa(preloadRows*(preloadRows-1)/2) {
		return node, &wrongAnswer{fmt.Sprintf("%s answered count %s, sum %s", node, n, s)}
	}
	return node, rows.Close()
}

type wrongAnswer struct{ msg string }

func (e *wrongAnswer) Error() string { return e.msg }

// tally is what the client loops saw.
type tally struct {
	mu       sync.Mutex
	answered map[string]int // by node
	failed   []string       // queries on new connections that failed
	wrong    []string       // answers that were not the preloaded table
	closes   []closeEvent   // the long-lived connection's
	longOK   int            // its answers
	lastOK   time.Time      // its last answer
}

type closeEvent struct {
	node string // the node the connection was on
	err  error
	at   time.Time
}

func (c closeEvent) String() string {
	return fmt.Sprintf("on %s at %s: %v", c.node, c.at.Format("15:04:05.000"), c.err)
}

func (ta *tally) ok(node string) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.answered[node]++
}

func (ta *tally) fail(what string, err error) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var wa *wrongAnswer
	if errors.As(err, &wa) {
		ta.wrong = append(ta.wrong, wa.msg)
		return
	}
	ta.failed = append(ta.failed, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), what, err))
}

// newConnLoop sends probeSQL on a new connection through the balancer
// each time, until ctx ends.
func newConnLoop(ctx context.Context, lb string, ta *tally) {
	for ctx.Err() == nil {
		c, err := client.Dial(ctx, lb, client.Options{DialTimeout: 10 * time.Second})
		if err != nil {
			if ctx.Err() == nil {
				ta.fail("connecting", err)
			}
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		node, err := ask(qctx, c)
		cancel()
		c.Close()
		switch {
		case err == nil:
			ta.ok(node)
		case ctx.Err() == nil:
			ta.fail("query on a new connection", err)
		}
		deploy.Sleep(ctx, 10*time.Millisecond)
	}
}

// longLoop sends probeSQL over one connection, connecting again when the
// server closes it.
func longLoop(ctx context.Context, lb string, ta *tally) {
	var c *client.Conn
	on := ""
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		if c == nil {
			var err error
			if c, err = client.Dial(ctx, lb, client.Options{DialTimeout: 10 * time.Second}); err != nil {
				if ctx.Err() == nil {
					ta.fail("reconnecting the long-lived connection", err)
				}
				c = nil
				continue
			}
			on = ""
		}
		qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		node, err := ask(qctx, c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var wa *wrongAnswer
		if err != nil && !errors.As(err, &wa) {
			ta.mu.Lock()
			ta.closes = append(ta.closes, closeEvent{node: on, err: err, at: time.Now()})
			ta.mu.Unlock()
			c.Close()
			c = nil
			continue
		}
		if err != nil {
			ta.fail("long-lived connection", err)
		} else {
			if on != "" && node != on {
				ta.fail("long-lived connection", fmt.Errorf("answered by %s, then by %s", on, node))
			}
			on = node
			ta.mu.Lock()
			ta.longOK++
			ta.lastOK = time.Now()
			ta.mu.Unlock()
		}
		deploy.Sleep(ctx, 10*time.Millisecond)
	}
}

// cleanClose reports whether a long-lived connection's error is the
// server going away between requests (no server error, no partial
// result).
func cleanClose(err error) bool {
	var ce *client.Error
	if errors.As(err, &ce) {
		return false
	}
	return errors.Is(err, client.ErrIncompleteResult) || errors.Is(err, client.ErrBroken) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// preload gives a node its startup SQL: its name, a pause that stands in
// for a slow load (while it lasts the node is up, /readyz says 503 and the
// table does not exist yet), then the table.
func preload(c *container, name string) {
	c.Write("etc/luna/init.d/10-node.sql", fmt.Sprintf("CREATE TABLE node AS SELECT '%s' AS name;\n", name), 0o644)
	c.Write("etc/luna/init.d/20-pause.sql", "CREATE TABLE pause AS SELECT count(*) AS c FROM range(500000000);\n", 0o644)
	c.Write("etc/luna/init.d/30-preload.sql", fmt.Sprintf("CREATE TABLE t AS SELECT range AS x FROM range(%d);\n", preloadRows), 0o644)
}

// TestFleetBehindLoadBalancer: two appliances behind HAProxy, which
// routes on their /readyz like a cloud load balancer. While clients query
// through it without pause, luna-deploy's rolling restart goes over both
// nodes: not one query on a new connection fails, every answer is the
// whole preloaded table (no node takes traffic before its startup SQL is
// done), and a long-lived connection is closed at most once per restart
// and reconnects. Then one node's Luna is killed mid-query: only that
// query fails, the balancer marks the dead one down and the other node
// answers the next queries, and systemd brings the dead one back.
func TestFleetBehindLoadBalancer(t *testing.T) {
	needs(t)
	haproxyBinary(t)
	luna, lunactl := binaries(t)
	rootfs := applianceRootfs(t)
	key := newClientKey(t)
	ips := loopbackIPs(t, 2)
	p := fleetPorts(t, ips...)
	env := []string{"LUNA_DRAIN_DELAY=" + drainDelay.String(), "LUNA_SHUTDOWN_TIMEOUT=10s"}
	nodes := map[string]*container{
		"alpha": newContainer(t, rootfs, luna, lunactl, key, ips[0], p, env...),
		"beta":  newContainer(t, rootfs, luna, lunactl, key, ips[1], p, env...),
	}
	for name, c := range nodes {
		preload(c, name)
	}
	a, b := nodes["alpha"], nodes["beta"]
	boot(a, b)
	lb := startHAProxy(t, nodes)

	d, err := remote.NewDialer(remote.Options{User: "root", KeyFiles: []string{key.file},
		KnownHosts: []string{filepath.Join(t.TempDir(), "known_hosts")}, InternalIP: true, KeepAlive: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	t.Run("rolling restart", func(t *testing.T) { testRollingRestartBehindLB(t, lb, d, a, b) })
	t.Run("killed mid-query", func(t *testing.T) { testKilledBehindLB(t, lb, nodes) })
}

func testRollingRestartBehindLB(t *testing.T, lb *haproxy, d *remote.Dialer, a, b *container) {
	before := map[string]string{"alpha": a.mainPID(), "beta": b.mainPID()}
	a.journalMark("lb-restart")
	b.journalMark("lb-restart")

	ta := &tally{answered: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	loops.Go(func() { newConnLoop(ctx, lb.addr, ta) })
	loops.Go(func() { newConnLoop(ctx, lb.addr, ta) })
	loops.Go(func() { longLoop(ctx, lb.addr, ta) })
	// Traffic on both nodes first.
	if !nspawn.WaitFor(30*time.Second, 50*time.Millisecond, func() bool {
		ta.mu.Lock()
		defer ta.mu.Unlock()
		return ta.answered["alpha"] > 5 && ta.answered["beta"] > 5 && ta.longOK > 5
	}) {
		stop()
		loops.Wait()
		t.Fatalf("no answers from both nodes through the balancer: %v, failures %q", ta.answered, ta.failed)
	}

	var progress nspawn.Buffer
	start := time.Now()
	err := remote.RollingRestart(context.Background(), []deploy.Instance{a.instance("alpha"), b.instance("beta")}, d, remote.RestartOptions{
		Timeout: 2 * time.Minute, Interval: 200 * time.Millisecond, Settle: settle, Progress: &deploy.Progress{W: &progress},
	})
	took := time.Since(start)
	// Traffic goes on for a moment after the last node is back.
	time.Sleep(time.Second)
	stop()
	loops.Wait()
	if err != nil {
		t.Fatalf("rolling restart: %v\n%s", err, progress.String())
	}
	t.Logf("rolling restart took %s:\n%s", took.Round(100*time.Millisecond), progress.String())

	ta.mu.Lock()
	defer ta.mu.Unlock()
	t.Logf("answers by node %v; long-lived connection: %d answers, closes %v", ta.answered, ta.longOK, ta.closes)
	if len(ta.failed) > 0 {
		t.Errorf("%d queries failed:\n%s", len(ta.failed), strings.Join(ta.failed, "\n"))
	}
	if len(ta.wrong) > 0 {
		t.Errorf("%d answers were not the preloaded table:\n%s", len(ta.wrong), strings.Join(ta.wrong, "\n"))
	}
	if ta.answered["alpha"] == 0 || ta.answered["beta"] == 0 {
		t.Errorf("answers by node %v: want both", ta.answered)
	}
	// The long-lived connection is on one node at a time: each node's
	// restart closes it at most once, and it connects again.
	perNode := map[string]int{}
	for _, c := range ta.closes {
		perNode[c.node]++
		if !cleanClose(c.err) {
			t.Errorf("the long-lived connection on %s failed with %v, not a clean close", c.node, c.err)
		}
	}
	for node, n := range perNode {
		if n > 1 || node == "" {
			t.Errorf("the long-lived connection was closed %d times on %q, want at most once per restart", n, node)
		}
	}
	if len(ta.closes) == 0 {
		t.Error("the long-lived connection was never closed, though both nodes restarted")
	}
	if n := len(ta.closes); n > 0 && !ta.lastOK.After(ta.closes[n-1].at) {
		t.Error("the long-lived connection did not answer again after its last close")
	}

	// The balancer took each node out and put it back, and no node
	// refused a connection while it was routed to.
	st, err := lb.stats()
	if err != nil {
		t.Fatal(err)
	}
	if n := st["BACKEND"]["econ"]; n != "0" {
		t.Errorf("haproxy failed to connect to a node %s times: a node refused connections while in rotation", n)
	}
	log := lb.log.String()
	for _, node := range []string{"alpha", "beta"} {
		down, up := strings.Index(log, "nodes/"+node+" is DOWN"), strings.LastIndex(log, "nodes/"+node+" is UP")
		if down < 0 || up < down {
			t.Errorf("haproxy's log does not show %s going down and back up:\n%s", node, nspawn.Tail(log, 20))
		}
	}

	// Each node drained in order and came back as a new process.
	for name, c := range map[string]*container{"alpha": a, "beta": b} {
		j, err := c.Exec("journalctl", "--no-pager", "-o", "cat", "-u", "luna.service")
		if err != nil {
			t.Fatal(err)
		}
		i := strings.LastIndex(j, "lb-restart")
		if i < 0 {
			t.Fatalf("%s's journal lacks the mark:\n%s", name, nspawn.Tail(j, 30))
		}
		j = j[i:]
		at := 0
		for _, step := range []string{`"msg":"unready"`, `"msg":"draining"`, `"msg":"stopped"`, `"msg":"luna is serving"`} {
			i := strings.Index(j[at:], step)
			if i < 0 {
				t.Errorf("%s's journal lacks %s after the restart began, in order:\n%s", name, step, nspawn.Tail(j, 30))
				break
			}
			at += i
		}
		if now := c.mainPID(); now == before[name] || now == "0" {
			t.Errorf("%s's MainPID %s -> %s: want a new process", name, before[name], now)
		}
	}
}

func testKilledBehindLB(t *testing.T, lb *haproxy, nodes map[string]*container) {
	if !nspawn.WaitFor(30*time.Second, 100*time.Millisecond, func() bool {
		st, err := lb.stats()
		return err == nil && st["alpha"]["status"] == "UP" && st["beta"]["status"] == "UP"
	}) {
		t.Fatal("the nodes are not both up in the balancer")
	}
	ctx := context.Background()
	long, err := client.Dial(ctx, lb.addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	failed := make(chan error, 1)
	go func() {
		_, err := long.Query(ctx, "SELECT count(*) FROM range(100000000000)")
		failed <- err
	}()
	// The balancer's session count says which node runs it.
	victim := ""
	if !nspawn.WaitFor(10*time.Second, 20*time.Millisecond, func() bool {
		st, err := lb.stats()
		if err != nil {
			return false
		}
		for name := range nodes {
			if st[name]["scur"] == "1" {
				victim = name
			}
		}
		return victim != ""
	}) {
		t.Fatal("no node holds the long query's connection")
	}
	time.Sleep(500 * time.Millisecond) // well into the query
	survivor := "alpha"
	if victim == "alpha" {
		survivor = "beta"
	}
	v := nodes[victim]
	pid := v.mainPID()
	down := "nodes/" + victim + " is DOWN"
	downs := strings.Count(lb.log.String(), down) // from the rolling restart
	if _, err := v.Exec("kill", "-KILL", pid); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case err := <-failed:
		if err == nil || !cleanClose(err) {
			t.Errorf("the query in flight on the killed node: %v, want the connection cut", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the query in flight on the killed node did not end")
	}

	// Until its checks fail, the balancer still sends new connections to
	// the dead node (the drain delay covers this window for a restart, not
	// for a crash); from then on every query goes to the survivor.
	if !nspawn.WaitFor(15*time.Second, 20*time.Millisecond, func() bool {
		return strings.Count(lb.log.String(), down) > downs
	}) {
		t.Fatalf("haproxy did not mark %s down:\n%s", victim, nspawn.Tail(lb.log.String(), 20))
	}
	t.Logf("%s marked down %s after the kill", victim, time.Since(killed).Round(100*time.Millisecond))
	for i := range 20 {
		c, err := client.Dial(ctx, lb.addr, client.Options{})
		if err != nil {
			t.Fatalf("query %d after the kill: %v", i, err)
		}
		node, err := ask(ctx, c)
		c.Close()
		if err != nil || node != survivor {
			t.Errorf("query %d after the kill: answered by %q: %v, want %s", i, node, err, survivor)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// systemd starts it again (Restart=on-failure); the balancer takes it
	// back once its startup SQL has run.
	if !nspawn.WaitFor(time.Minute, 100*time.Millisecond, func() bool {
		st, err := lb.stats()
		return err == nil && st[victim]["status"] == "UP"
	}) {
		t.Fatalf("%s did not come back into rotation", victim)
	}
	if now := v.mainPID(); now == pid || now == "0" {
		t.Errorf("%s's MainPID %s -> %s after the kill: want a new process", victim, pid, now)
	}
	seen := map[string]bool{}
	for i := 0; i < 10 && len(seen) < 2; i++ {
		c, err := client.Dial(ctx, lb.addr, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		node, err := ask(ctx, c)
		c.Close()
		if err != nil {
			t.Fatalf("after %s came back: %v", victim, err)
		}
		seen[node] = true
	}
	if !seen[victim] {
		t.Errorf("%s does not answer after coming back (answers from %v)", victim, seen)
	}
}
