package cli

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRestartInstance: --instance restarts only the instances it names, in
// its order; a name the group lacks fails before anything is restarted.
func TestRestartInstance(t *testing.T) {
	var polls atomic.Int32
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { polls.Add(1) }))
	defer ready.Close()
	_, port, _ := net.SplitHostPort(ready.Listener.Addr().String())
	restart := func(h *harness, f sshFixture, extra ...string) result {
		args := append([]string{"mig", "restart", "--user", "root", "--health-port", port}, extra...)
		return h.run("", append(append(args, gcpFlags...), f.flags()...)...)
	}
	h := newHarness(t)
	h.twoInstances("127.0.0.1")
	f := newSSH(t, func(string, io.Writer, io.Writer) int { return 0 })

	r := restart(h, f, "--instance", "luna-b", "--settle", "0")
	if r.code != 0 || len(f.srv.Commands()) != 1 || !strings.Contains(r.stderr, "restarting luna on luna-b") ||
		!strings.Contains(r.stderr, "restarted luna-b (1 of 1)") || strings.Contains(r.stderr, "luna-a") {
		t.Errorf("--instance luna-b: exit %d, commands %q\n%s", r.code, f.srv.Commands(), r.stderr)
	}

	// The order given, each once; --settle holds each for a few polls.
	h.twoInstances("127.0.0.1")
	polls.Store(0)
	r = restart(h, f, "--instance", "luna-b,luna-a", "--instance", "luna-b", "--settle", "1ms")
	ib, ia := strings.Index(r.stderr, "restarted luna-b (1 of 2)"), strings.Index(r.stderr, "restarted luna-a (2 of 2)")
	if r.code != 0 || ib < 0 || ia < ib || len(f.srv.Commands()) != 3 || !strings.Contains(r.stderr, "luna-a stayed ready for 1ms (--settle)") {
		t.Errorf("--instance luna-b,luna-a: exit %d, %d commands\n%s", r.code, len(f.srv.Commands()), r.stderr)
	}
	if n := polls.Load(); n < 4 {
		t.Errorf("%d /readyz polls, want two or more per instance with --settle", n)
	}

	h.twoInstances("127.0.0.1")
	r = restart(h, f, "--instance", "luna-x", "--instance", "luna-a", "--instance", "luna-y")
	if r.code != 1 || !strings.Contains(r.stderr, `--instance "luna-x", "luna-y": no such instance in group luna (its instances: luna-a, luna-b); nothing was restarted`) {
		t.Errorf("unknown instance: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(f.srv.Commands()); n != 3 {
		t.Errorf("%d restarts after an unknown --instance, want none", n-3)
	}

	r = restart(h, f, "--settle", "-1s")
	if r.code != 2 || !strings.Contains(r.stderr, "--settle must not be negative") {
		t.Errorf("negative --settle: exit %d\n%s", r.code, r.stderr)
	}
	r = h.run("", append([]string{"mig", "logs", "--instance", "luna-a"}, gcpFlags...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "flag provided but not defined: -instance") {
		t.Errorf("logs --instance: exit %d\n%s", r.code, r.stderr)
	}
}
