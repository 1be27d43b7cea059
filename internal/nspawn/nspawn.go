// Package nspawn boots throwaway copies of the appliance root file system
// (a Debian with systemd, built and cached by scripts/appliance-rootfs.sh)
// with systemd-nspawn, for tests that need a real systemd: the unit, the
// package's maintainer scripts, the startup scripts, sshd. A machine shares
// the host's network, so what it serves is on the host's loopback. Needs
// root.
package nspawn

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Rootfs returns the cached root file system, building it first when needed
// (a minute or two). repo is the repository's root.
func Rootfs(tb testing.TB, repo string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "appliance-rootfs.sh"))
	cmd.Dir = repo
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("scripts/appliance-rootfs.sh: %v\n%s", err, stderr.String())
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		tb.Logf("appliance-rootfs.sh (%v): %s", time.Since(start).Round(time.Second), s)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	if fi, err := os.Stat(filepath.Join(dir, "usr/lib/systemd/systemd")); err != nil || !fi.Mode().IsRegular() {
		tb.Fatalf("appliance-rootfs.sh printed %q, which holds no systemd: %v", dir, err)
	}
	return dir
}

// Machine is one copy of the root file system and, once booted, the
// container running it.
type Machine struct {
	Dir  string // holds Root; removed at the end of the test
	Root string // the copy: the container's /
	Name string // the machine name, unique per copy
	// Console is the container's console output.
	Console *Buffer

	tb     testing.TB
	cmd    *exec.Cmd
	exited chan error
	leader int // the container's PID 1, as the host sees it
}

// Copy makes a fresh copy of rootfs, removed when the test ends. prefix
// starts the machine's name.
func Copy(tb testing.TB, rootfs, prefix string) *Machine {
	tb.Helper()
	// Next to the cache, so cp can share blocks where the file system can.
	dir, err := os.MkdirTemp(filepath.Dir(rootfs), prefix+"-")
	if err != nil {
		tb.Fatal(err)
	}
	m := &Machine{
		Dir:     dir,
		Root:    filepath.Join(dir, "root"),
		Name:    prefix + "-" + strings.TrimPrefix(filepath.Base(dir), prefix+"-"),
		Console: &Buffer{},
		tb:      tb,
	}
	tb.Cleanup(m.remove)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", rootfs, m.Root).CombinedOutput(); err != nil {
		tb.Fatalf("copying the root file system: %v\n%s", err, out)
	}
	return m
}

// Path is rel (a path inside the container) on the host.
func (m *Machine) Path(rel string) string { return filepath.Join(m.Root, rel) }

// Write writes a file inside the copy, making its directories.
func (m *Machine) Write(rel, content string, mode os.FileMode) {
	m.tb.Helper()
	p := m.Path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		m.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		m.tb.Fatal(err)
	}
}

// Read reads a file inside the copy.
func (m *Machine) Read(rel string) string {
	m.tb.Helper()
	b, err := os.ReadFile(m.Path(rel))
	if err != nil {
		m.tb.Fatal(err)
	}
	return string(b)
}

// Boot starts the container and waits until its systemd answers systemctl.
// The container is powered off when the test ends.
func (m *Machine) Boot() {
	tb := m.tb
	tb.Helper()
	m.cmd = exec.Command("systemd-nspawn", "-D", m.Root, "--machine="+m.Name,
		"--register=no", "--keep-unit", "-b", "--console=read-only")
	m.cmd.Stdout, m.cmd.Stderr = m.Console, m.Console
	// Should the test binary die without its cleanups (a -timeout panic),
	// nspawn still powers the container off.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := m.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	m.exited = make(chan error, 1)
	go func() { m.exited <- m.cmd.Wait() }()
	tb.Cleanup(m.Shutdown)

	// nspawn's child becomes the container's PID 1 once it execs systemd.
	ok := WaitFor(30*time.Second, 50*time.Millisecond, func() bool {
		if m.Exited() {
			return true
		}
		for _, pid := range children(m.cmd.Process.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
				m.leader = pid
				return true
			}
		}
		return false
	})
	if !ok || m.leader == 0 {
		tb.Fatalf("the container's systemd did not start:\n%s", Tail(m.Console.String(), 40))
	}
	// systemctl works once the manager's private socket is up.
	if !WaitFor(30*time.Second, 100*time.Millisecond, func() bool {
		out, _ := m.Exec("systemctl", "is-system-running")
		switch strings.TrimSpace(out) {
		case "initializing", "starting", "running", "degraded":
			return true
		}
		return false
	}) {
		tb.Fatalf("systemctl inside the container does not answer:\n%s", Tail(m.Console.String(), 40))
	}
}

// Leader is the container's PID 1 as the host sees it (0 before Boot).
func (m *Machine) Leader() int { return m.leader }

// Exited reports whether the container has stopped.
func (m *Machine) Exited() bool {
	if m.exited == nil {
		return false
	}
	select {
	case err := <-m.exited:
		m.exited <- err
		return true
	default:
		return false
	}
}

// children lists the child processes of pid.
func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// Exec runs a command inside the container (all its namespaces) and
// returns its combined output.
func (m *Machine) Exec(args ...string) (string, error) {
	return m.ExecEnv(nil, args...)
}

// ExecEnv is Exec with extra environment variables (NAME=value).
func (m *Machine) ExecEnv(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.leader), "-a", "--"}, args...)...)
	// The container's own locale and paths, not the test's environment.
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "LANG=C.UTF-8"}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w\n%s", m.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Shutdown powers the container off (SIGTERM makes nspawn ask its systemd
// for a clean shutdown), and kills it if that takes too long. A failed
// test gets the end of the container's journal and console in its log.
func (m *Machine) Shutdown() {
	tb := m.tb
	if m.cmd == nil {
		return
	}
	if tb.Failed() && m.leader != 0 && !m.Exited() {
		if out, err := m.Exec("journalctl", "--no-pager", "-b", "-n", "80", "-o", "short-precise"); err == nil {
			tb.Logf("%s journal (last lines):\n%s", m.Name, out)
		}
	}
	if !m.Exited() {
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(60 * time.Second):
			tb.Errorf("%s did not power off in 60s; killing it", m.Name)
			if m.leader != 0 {
				syscall.Kill(m.leader, syscall.SIGKILL) // takes its PID namespace along
			}
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
	if tb.Failed() {
		tb.Logf("%s console (last lines):\n%s", m.Name, Tail(m.Console.String(), 30))
	}
}

// remove deletes the copy, unless something is still mounted inside it
// (deleting through a mount could reach files outside the copy).
func (m *Machine) remove() {
	tb := m.tb
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Errorf("not removing %s: %v", m.Dir, err)
		return
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == m.Dir || strings.HasPrefix(f[4], m.Dir+"/")) {
			tb.Errorf("not removing %s: %s is still mounted", m.Dir, f[4])
			return
		}
	}
	if err := os.RemoveAll(m.Dir); err != nil {
		tb.Errorf("removing the container copy: %v", err)
	}
	os.Remove(filepath.Join("/run/systemd/nspawn/propagate", m.Name))
}

// WaitFor polls cond every interval until it returns true (true) or d
// passes (false).
func WaitFor(d, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Buffer collects a process's output while a test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var builds struct {
	once sync.Once
	dir  string
	err  error
}

// Binaries builds luna and lunactl as they are installed in an appliance
// (no race detector: they run inside the container), once per test
// binary. RemoveBinaries deletes them; call it from TestMain.
func Binaries(tb testing.TB, repo string) (luna, lunactl string) {
	tb.Helper()
	builds.once.Do(func() {
		builds.dir, builds.err = os.MkdirTemp("", "luna-appliance-bin-")
		if builds.err != nil {
			return
		}
		for _, name := range []string{"luna", "lunactl"} {
			args := []string{"build", "-tags=duckdb_arrow", "-o", filepath.Join(builds.dir, name), "./cmd/" + name}
			cmd := exec.Command("go", args...)
			cmd.Dir = repo
			cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
			if out, err := cmd.CombinedOutput(); err != nil {
				builds.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if builds.err != nil {
		tb.Fatal(builds.err)
	}
	return filepath.Join(builds.dir, "luna"), filepath.Join(builds.dir, "lunactl")
}

// RemoveBinaries deletes what Binaries built.
func RemoveBinaries() {
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
}
