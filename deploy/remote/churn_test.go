package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/internal/sshtest"
	"github.com/lunadb/luna/internal/testenv"
	"golang.org/x/crypto/ssh/knownhosts"
)

// group is a lister whose membership a test changes.
type group struct {
	mu sync.Mutex
	in []deploy.Instance
}

func (g *group) set(in ...deploy.Instance) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.in = in
}

func (g *group) Instances(context.Context) ([]deploy.Instance, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]deploy.Instance(nil), g.in...), nil
}

func at(name string, srv *sshtest.Server) deploy.Instance {
	return deploy.Instance{Name: name, InternalIP: "127.0.0.1", SSHPort: srv.Port}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHostKeyAcceptNew: a first-seen key is recorded with the instance's
// name; a new key at the same address is accepted (and replaces the entry)
// only when another instance recorded it; the same instance with a changed
// key, an entry the operator made, and an unknown host under strict are
// refused.
func TestHostKeyAcceptNew(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	answer := func(string, io.Writer, io.Writer) int { return 0 }
	srv := sshtest.Start(t, pub, answer)
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts") // neither exists yet
	var notices testenv.SyncBuffer
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, KnownHosts: []string{kh}, InternalIP: true, Notices: &notices})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tail := func(in deploy.Instance) error {
		return Tail(context.Background(), deploy.ListerFunc(func(context.Context) ([]deploy.Instance, error) {
			return []deploy.Instance{in}, nil
		}), d, LogOptions{MinBackoff: time.Millisecond}, io.Discard)
	}
	line := func(s *sshtest.Server, name string) string {
		return knownhosts.Line([]string{s.Addr}, s.HostKey) + " luna-deploy-instance=" + name + "\n"
	}

	if err := tail(at("n1", srv)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, kh); got != line(srv, "n1") {
		t.Fatalf("known_hosts after the first contact:\n%s", got)
	}
	if fi, _ := os.Stat(kh); fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v", fi.Mode().Perm())
	}
	if !strings.Contains(notices.String(), "n1: recorded the host key of "+srv.Addr+" (ssh-ed25519 SHA256:") {
		t.Errorf("notices: %s", notices.String())
	}
	if err := tail(at("n1", srv)); err != nil || strings.Count(notices.String(), "recorded") != 1 {
		t.Errorf("second contact: %v; notices:\n%s", err, notices.String())
	}

	// n2 replaces n1 at the same address, with a key of its own; an entry
	// of the operator's for another host stays.
	other := sshtest.NewHostKey(t).PublicKey()
	theirs := knownhosts.Line([]string{"10.9.9.9"}, other) + "\n"
	os.WriteFile(kh, []byte(theirs+readFile(t, kh)), 0o600)
	srv.Close()
	srv2 := sshtest.StartConfig(t, sshtest.Config{Addr: srv.Addr}, pub, answer)
	if err := tail(at("n2", srv2)); err != nil {
		t.Fatalf("a replaced node: %v", err)
	}
	if got := readFile(t, kh); got != theirs+line(srv2, "n2") {
		t.Errorf("known_hosts after the replacement:\n%s", got)
	}
	if !strings.Contains(notices.String(), "n2: the host key of "+srv.Addr+" changed") ||
		!strings.Contains(notices.String(), "known_hosts had it for instance n1, which n2 replaced at this address") {
		t.Errorf("notices: %s", notices.String())
	}

	// n2 again, with yet another key: not a replacement.
	srv2.Close()
	srv3 := sshtest.StartConfig(t, sshtest.Config{Addr: srv.Addr}, pub, answer)
	err = tail(at("n2", srv3))
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Mismatch || hk.Recorded != "n2" ||
		!strings.Contains(err.Error(), "has a different key recorded for the same instance n2") {
		t.Errorf("a changed key of the same instance: %v", err)
	}
	if got := readFile(t, kh); got != theirs+line(srv2, "n2") {
		t.Errorf("known_hosts changed by a refused key:\n%s", got)
	}

	// An entry without the mark is the operator's: never replaced.
	os.WriteFile(kh, []byte(knownhosts.Line([]string{srv.Addr}, other)+"\n"), 0o600)
	d2, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, KnownHosts: []string{kh}, InternalIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	d = d2
	err = tail(at("n3", srv3))
	if !errors.As(err, &hk) || !hk.Mismatch || hk.Recorded != "" || !strings.Contains(err.Error(), "ssh-keygen -R") {
		t.Errorf("a changed key against the operator's entry: %v", err)
	}

	// strict: an unknown host is refused, nothing is written.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(empty, nil, 0o600)
	d3, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, KnownHosts: []string{empty}, InternalIP: true, HostKeyPolicy: Strict})
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	d = d3
	err = tail(at("n3", srv3))
	if !errors.As(err, &hk) || hk.Mismatch || !strings.Contains(err.Error(), "is not in known_hosts") {
		t.Errorf("strict, unknown host: %v", err)
	}
	if got := readFile(t, empty); got != "" {
		t.Errorf("strict wrote %q", got)
	}
}

// follower answers journalctl --follow with an entry every 10ms, tagged,
// until the client goes.
func follower(tag string) sshtest.Handler {
	return func(cmd string, out, _ io.Writer) int {
		for i := 0; ; i++ {
			line := fmt.Sprintf(`{"__CURSOR":"%s-%d","MESSAGE":"%s %d"}`+"\n", tag, i, tag, i)
			if _, err := io.WriteString(out, line); err != nil {
				return 0
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestTailFollowsChurn: an instance listed without an address is tailed
// once it has one; one that keeps its name but moves (recreated at another
// address, with another host key) is followed there, afresh.
func TestTailFollowsChurn(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	srvA := sshtest.Start(t, pub, follower("from-a"))
	srvB := sshtest.Start(t, pub, follower("from-b"))
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var notices, out testenv.SyncBuffer
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, KnownHosts: []string{kh}, InternalIP: true, Notices: &notices})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	g := &group{}
	g.set(deploy.Instance{Name: "n1", State: "PROVISIONING"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Tail(ctx, g, d, LogOptions{Follow: true, Lines: 5, Relist: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, Notices: &notices}, &out)
	}()
	waitFor := waiter(t, &out, &notices)

	waitFor("no notice of the instance without an address", func() bool {
		return strings.Contains(notices.String(), "instance n1 has no internal IP: it may still be starting; following it once it has one")
	})
	time.Sleep(100 * time.Millisecond) // a few listings
	if n := strings.Count(notices.String(), "has no internal IP"); n != 1 {
		t.Errorf("the missing address noticed %d times, want once", n)
	}

	g.set(at("n1", srvA))
	waitFor("n1 not tailed once it had an address", func() bool { return strings.Contains(out.String(), "n1 | from-a 3\n") })

	g.set(at("n1", srvB))
	waitFor("n1 not followed at its new address", func() bool { return strings.Contains(out.String(), "n1 | from-b 3\n") })
	if !strings.Contains(notices.String(), fmt.Sprintf("n1 moved from %s to %s", srvA.Addr, srvB.Addr)) {
		t.Errorf("no notice of the move:\n%s", notices.String())
	}
	// The old stream is let go.
	time.Sleep(50 * time.Millisecond)
	lastA := strings.LastIndex(out.String(), "from-a")
	time.Sleep(100 * time.Millisecond)
	if strings.LastIndex(out.String(), "from-a") != lastA {
		t.Error("entries from the old address after the move")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Tail: %v", err)
	}
	if got := srvA.Commands(); len(got) != 1 {
		t.Errorf("commands at the old address: %q", got)
	}
	// At the new address the journal is another machine's: no cursor.
	if got := srvB.Commands(); len(got) != 1 || !strings.HasSuffix(got[0], " -n 5 --follow") {
		t.Errorf("commands at the new address: %q", got)
	}
	for _, s := range []*sshtest.Server{srvA, srvB} {
		if !strings.Contains(readFile(t, kh), knownhosts.Line([]string{s.Addr}, s.HostKey)+" luna-deploy-instance=n1\n") {
			t.Errorf("known_hosts lacks the key of %s:\n%s", s.Addr, readFile(t, kh))
		}
	}
}

// TestTailSkipsAddressless: without --follow an instance that has no
// address yet is skipped with a notice; with none reachable, Tail fails.
func TestTailSkipsAddressless(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	srv := sshtest.Start(t, pub, func(_ string, out, _ io.Writer) int {
		io.WriteString(out, `{"__CURSOR":"c1","MESSAGE":"one"}`+"\n")
		return 0
	})
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, InsecureIgnoreHostKey: true, InternalIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out, notices testenv.SyncBuffer
	g := &group{}
	g.set(at("n1", srv), deploy.Instance{Name: "n2"})
	if err := Tail(context.Background(), g, d, LogOptions{Notices: &notices}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "n1 | one\n" || !strings.Contains(notices.String(), "instance n2 has no internal IP: it may still be starting; skipped") {
		t.Errorf("output %q, notices %q", out.String(), notices.String())
	}
	g.set(deploy.Instance{Name: "n2"})
	if err := Tail(context.Background(), g, d, LogOptions{}, &out); err == nil || !strings.Contains(err.Error(), "instance n2 has no internal IP") {
		t.Errorf("no instance with an address: %v", err)
	}
}

// TestRestartSettle: the next instance is restarted only once /readyz has
// answered 200 for Settle without a break; a break starts the wait again.
func TestRestartSettle(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	var mu sync.Mutex
	var lastNotOK time.Time
	var restarts []time.Time
	var calls atomic.Int32
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// The first instance: not ready, ready, a relapse, then ready.
		if n := calls.Add(1); n == 1 || n == 3 {
			mu.Lock()
			lastNotOK = time.Now()
			mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer ready.Close()
	srv := sshtest.Start(t, pub, func(string, io.Writer, io.Writer) int {
		mu.Lock()
		restarts = append(restarts, time.Now())
		mu.Unlock()
		return 0
	})
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, InsecureIgnoreHostKey: true, InternalIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := func(name string) deploy.Instance {
		i := at(name, srv)
		i.HealthPort = ready.Listener.Addr().(*net.TCPAddr).Port
		return i
	}
	var progress testenv.SyncBuffer
	const settle = 300 * time.Millisecond
	err = RollingRestart(context.Background(), []deploy.Instance{in("a"), in("b")}, d,
		RestartOptions{Settle: settle, Interval: 20 * time.Millisecond, Progress: &deploy.Progress{W: &progress}})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	mu.Lock()
	n, held := len(restarts), time.Duration(0)
	if n == 2 {
		held = restarts[1].Sub(lastNotOK)
	}
	mu.Unlock()
	if n != 2 {
		t.Fatalf("%d restarts", n)
	}
	if held < settle {
		t.Errorf("b restarted %s after a's last 503, want at least %s", held, settle)
	}
	p := progress.String()
	for _, want := range []string{"a is ready", "a stopped being ready after", "a stayed ready for 300ms (--settle)", "restarted a (1 of 2)", "b stayed ready for 300ms"} {
		if !strings.Contains(p, want) {
			t.Errorf("progress lacks %q:\n%s", want, p)
		}
	}

	// Never ready: the error says what was waited for.
	calls.Store(-1000)
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer never.Close()
	i := at("c", srv)
	i.HealthPort = never.Listener.Addr().(*net.TCPAddr).Port
	err = RollingRestart(context.Background(), []deploy.Instance{i}, d, RestartOptions{Timeout: 200 * time.Millisecond, Settle: 100 * time.Millisecond, Interval: 20 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "c did not become ready within 200ms and stay ready for 100ms") || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("never ready: %v", err)
	}
}

// TestTailFollowsRecreatedNode: GCP autohealing recreates a node under its
// name, here at the same address too; only the instance ID changes. The
// stream starts over on the new machine (the old cursor is another
// journal's) and its new host key is taken, with a notice.
func TestTailFollowsRecreatedNode(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	old := sshtest.Start(t, pub, follower("old"))
	addr := old.Addr
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var notices, out testenv.SyncBuffer
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, KnownHosts: []string{kh}, InternalIP: true, Notices: &notices})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	node := func(id string, srv *sshtest.Server) deploy.Instance {
		in := at("n1", srv)
		in.ID = id
		return in
	}
	g := &group{}
	g.set(node("111", old))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// Listed again every 300ms: the stream reconnects sooner.
		done <- Tail(ctx, g, d, LogOptions{Follow: true, Lines: 5, Relist: 300 * time.Millisecond, MinBackoff: 10 * time.Millisecond, Notices: &notices}, &out)
	}()
	waitFor := waiter(t, &out, &notices)
	waitFor("n1 not tailed", func() bool { return strings.Contains(out.String(), "n1 | old 3\n") })
	old.Close()
	recreated := sshtest.StartConfig(t, sshtest.Config{Addr: addr}, pub, follower("new"))
	// The stream reconnects before the group lists the new machine: its
	// key is refused, and following goes on.
	waitFor("the reconnect to the unlisted machine not refused", func() bool {
		return strings.Contains(notices.String(), "refusing it until the group lists a new instance there")
	})
	g.set(node("222", recreated))
	waitFor("the recreated n1 not followed", func() bool { return strings.Contains(out.String(), "n1 | new 3\n") })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Tail: %v", err)
	}
	if !strings.Contains(notices.String(), "n1 was recreated (instance 222, was 111); following the new one") {
		t.Errorf("no notice of the recreation:\n%s", notices.String())
	}
	if got := recreated.Commands(); len(got) == 0 || !strings.HasSuffix(got[0], " -n 5 --follow") {
		t.Errorf("the new machine was asked with the old cursor: %q", got)
	}
	if got, want := readFile(t, kh), knownhosts.Line([]string{addr}, recreated.HostKey)+" luna-deploy-instance=n1/222\n"; got != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", got, want)
	}
}

// waiter returns a function that waits up to 10 s for cond, failing the
// test with what and the tail's output and notices.
func waiter(t *testing.T, out, notices *testenv.SyncBuffer) func(what string, cond func() bool) {
	return func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s; output:\n%s\nnotices:\n%s", what, out.String(), notices.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
