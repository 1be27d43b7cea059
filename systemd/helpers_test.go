package systemd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lunadb/luna/internal/nspawn"
	"github.com/lunadb/luna/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nspawn.RemoveBinaries()
	os.Exit(code)
}

// binaries builds bin/luna and bin/lunactl as shipped (no race detector: they
// run inside the appliance) once per test binary and returns their paths.
func binaries(t *testing.T) (luna, lunactl string) {
	t.Helper()
	return nspawn.Binaries(t, testenv.RepoRoot())
}

// needTools fails the test when a tool the tests rely on is missing: a
// skipped test would hide that nothing was checked.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s not found in PATH: run make tools (scripts/test-deps.sh installs it)", name)
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (it installs into and boots a root file system)")
	}
}

// run runs a command and returns its stdout and stderr separately.
func run(ctx context.Context, dir, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String(), e.String(), err
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
