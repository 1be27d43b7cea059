package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/remote"
	"github.com/lunadb/luna/internal/nspawn"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// group is a lister whose membership the test changes.
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

func (c *container) instance(name string) deploy.Instance {
	return deploy.Instance{Name: name, State: "RUNNING", InternalIP: c.ip, SSHPort: c.ports.ssh, HealthPort: c.ports.health}
}

// TestFleetOverSSH boots two appliances running sshd and Luna and drives
// luna-deploy's log tailing and rolling restart against them.
func TestFleetOverSSH(t *testing.T) {
	needs(t)
	luna, lunactl := binaries(t)
	rootfs := applianceRootfs(t)
	key := newClientKey(t)
	ips := loopbackIPs(t, 3) // the third for a node that moves
	p := fleetPorts(t, ips...)
	// No load balancer waits for these nodes to drain: keep restarts quick.
	a := newContainer(t, rootfs, luna, lunactl, key, ips[0], p, "LUNA_DRAIN_DELAY=1s")
	b := newContainer(t, rootfs, luna, lunactl, key, ips[1], p, "LUNA_DRAIN_DELAY=1s")
	boot(a, b)

	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(a.hostKeyLine()+"\n"+b.hostKeyLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dialer, err := remote.NewDialer(remote.Options{
		User: "root", KeyFiles: []string{key.file}, KnownHosts: []string{knownHosts}, InternalIP: true,
		KeepAlive: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dialer.Close()

	t.Run("logs", func(t *testing.T) { testLogs(t, dialer, a, b) })
	t.Run("host key mismatch", func(t *testing.T) { testHostKeyMismatch(t, key, a) })
	t.Run("restart", func(t *testing.T) { testRestart(t, dialer, a, b) })
	t.Run("restart --instance", func(t *testing.T) { testRestartInstance(t, key, knownHosts, a, b) })
	// Last: it gives beta new host keys and moves it.
	t.Run("logs through fleet churn", func(t *testing.T) { testLogsChurn(t, key, a, b, ips[2]) })
}

// testLogs follows alpha, then beta when it joins the group, checks that
// the merged stream holds whole lines with the right prefixes, kills
// alpha's SSH session and sees the stream resume without losing or
// repeating an entry, and stops cleanly on cancel.
func testLogs(t *testing.T, dialer *remote.Dialer, a, b *container) {
	g := &group{}
	g.set(a.instance("alpha"))
	var out, notices nspawn.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- remote.Tail(ctx, g, dialer, remote.LogOptions{
			Follow: true, Lines: 5, Relist: 300 * time.Millisecond,
			MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second, Notices: &notices,
		}, &out)
	}()
	waitLine := func(what, prefix, text string) {
		t.Helper()
		if !nspawn.WaitFor(30*time.Second, 50*time.Millisecond, func() bool {
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, prefix) && strings.Contains(l, text) {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("%s: no %q line with %q; output:\n%s\nnotices:\n%s", what, prefix, text, nspawn.Tail(out.String(), 30), notices.String())
		}
	}

	// The past entries: Luna's own records are there.
	waitLine("past entries", "alpha | ", "luna is serving")
	a.journalMark("mark-a1")
	waitLine("new entry", "alpha | ", "]: mark-a1")

	// beta joins the group and is picked up by the next listing.
	g.set(a.instance("alpha"), b.instance("beta"))
	waitLine("joined instance", "beta | ", "luna is serving")
	b.journalMark("mark-b1")
	waitLine("joined instance entry", "beta | ", "]: mark-b1")
	if strings.Contains(out.String(), "alpha | ") && strings.Contains(out.String(), "mark-b1") {
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, "mark-b1") && !strings.HasPrefix(l, "beta | ") {
				t.Errorf("beta's entry under another prefix: %q", l)
			}
		}
	}

	// A dropped connection: the session's sshd process is killed.
	if _, err := a.Exec("pkill", "-f", "sshd: root@notty"); err != nil {
		t.Fatal(err)
	}
	if !nspawn.WaitFor(30*time.Second, 50*time.Millisecond, func() bool { return strings.Contains(notices.String(), "alpha: connection lost") }) {
		t.Fatalf("no reconnection notice:\n%s", notices.String())
	}
	a.journalMark("mark-a2")
	waitLine("after reconnecting", "alpha | ", "]: mark-a2")
	b.journalMark("mark-b2")
	waitLine("the other stream", "beta | ", "]: mark-b2")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Tail after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not return after cancel")
	}

	text := out.String()
	if n := strings.Count(text, "mark-a1"); n != 1 {
		t.Errorf("mark-a1 shown %d times, want once (the reconnection resumes after the last entry)", n)
	}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if !strings.HasPrefix(l, "alpha | ") && !strings.HasPrefix(l, "beta | ") {
			t.Errorf("line without an instance prefix (lines mixed up?): %q", l)
		}
	}
	t.Logf("merged output (last lines):\n%s\nnotices:\n%s", nspawn.Tail(text, 12), notices.String())
}

// testHostKeyMismatch: a known_hosts entry with another key for the host
// stops the tail with a clear error.
func testHostKeyMismatch(t *testing.T, key clientKey, a *container) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.sshAddr()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(knownhosts.Line([]string{addr}, other)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := remote.NewDialer(remote.Options{User: "root", KeyFiles: []string{key.file}, KnownHosts: []string{kh}, InternalIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	g := &group{}
	g.set(a.instance("alpha"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = remote.Tail(ctx, g, d, remote.LogOptions{Follow: true, MinBackoff: 100 * time.Millisecond}, &nspawn.Buffer{})
	var hk *remote.HostKeyError
	if !errors.As(err, &hk) || !hk.Mismatch {
		t.Fatalf("Tail with a wrong known host key: %v, want a host key mismatch", err)
	}
	for _, want := range []string{"host key mismatch for " + addr, "ssh-keygen -R", kh + ":1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// testRestart restarts Luna on both instances in turn and checks that each
// got a new process and answered /readyz; then a restart whose /readyz
// never answers stops before the second instance.
func testRestart(t *testing.T, dialer *remote.Dialer, a, b *container) {
	beforeA, beforeB := a.mainPID(), b.mainPID()
	var progress nspawn.Buffer
	err := remote.RollingRestart(context.Background(), []deploy.Instance{a.instance("alpha"), b.instance("beta")}, dialer,
		remote.RestartOptions{Timeout: 2 * time.Minute, Interval: 200 * time.Millisecond, Progress: &deploy.Progress{W: &progress}})
	if err != nil {
		t.Fatalf("rolling restart: %v\n%s", err, progress.String())
	}
	afterA, afterB := a.mainPID(), b.mainPID()
	if afterA == beforeA || afterA == "0" || afterB == beforeB || afterB == "0" {
		t.Errorf("MainPID alpha %s -> %s, beta %s -> %s: want new processes", beforeA, afterA, beforeB, afterB)
	}
	p := progress.String()
	ia, ib := strings.Index(p, "alpha is ready"), strings.Index(p, "restarting luna on beta")
	if ia < 0 || ib < 0 || ia > ib {
		t.Errorf("progress does not show alpha ready before beta's restart:\n%s", p)
	}
	if j, err := a.Exec("journalctl", "--no-pager", "-o", "cat", "-u", "luna.service"); err != nil || strings.Count(j, "luna is serving") < 2 {
		t.Errorf("alpha's journal does not show a second start: %v\n%s", err, nspawn.Tail(j, 20))
	}

	// alpha's /readyz is looked for on a port nothing listens on.
	broken := a.instance("alpha")
	free, _ := net.Listen("tcp", net.JoinHostPort(a.ip, "0"))
	broken.HealthPort = free.Addr().(*net.TCPAddr).Port
	free.Close()
	beforeB = b.mainPID()
	err = remote.RollingRestart(context.Background(), []deploy.Instance{broken, b.instance("beta")}, dialer,
		remote.RestartOptions{Timeout: 2 * time.Second, Interval: 200 * time.Millisecond, Progress: &deploy.Progress{W: &progress}})
	if err == nil || !strings.Contains(err.Error(), "rolling restart stopped at alpha (1 of 2); not restarted: beta") ||
		!strings.Contains(err.Error(), "did not become ready within 2s") {
		t.Errorf("restart with an unready instance: %v", err)
	}
	if got := b.mainPID(); got != beforeB {
		t.Errorf("beta was restarted (MainPID %s -> %s) after alpha failed", beforeB, got)
	}
}
