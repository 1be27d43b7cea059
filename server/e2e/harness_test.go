//go:build duckdb_arrow

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/internal/testenv"
)

var (
	buildDir  string
	buildMu   sync.Mutex
	buildErrs = map[string]error{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "luna-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds ./cmd/<name> once per test binary: with the race detector
// for tests, optimized as shipped for benchmarks.
func binary(tb testing.TB, name string, race bool) string {
	tb.Helper()
	return binaryTags(tb, name, race)
}

// binaryTags is binary built with extra build tags, as test-only builds
// need (lunapanic: package recovery's panic injection).
func binaryTags(tb testing.TB, name string, race bool, tags ...string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	out := filepath.Join(buildDir, strings.Join(append([]string{name}, tags...), "-"))
	args := []string{"build", "-tags=" + strings.Join(append([]string{"duckdb_arrow"}, tags...), ",")}
	if race {
		out += "-race"
		args = append(args, "-race")
	}
	if err, done := buildErrs[out]; done {
		if err != nil {
			tb.Fatal(err)
		}
		return out
	}
	args = append(args, "-o", out, "./cmd/"+name)
	cmd := exec.Command("go", args...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	buildErrs[out] = err
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// proc is a running bin/luna.
type proc struct {
	tb   testing.TB
	cmd  *exec.Cmd
	addr string
	logs *logBuffer
	done chan struct{}
	err  error

	serving chan string // the address, once serving
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Await reports whether the logs show sub within a few seconds: a line
// the server wrote before answering may still be in the pipe.
func (l *logBuffer) Await(sub string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(l.String(), sub) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// startLuna runs the server on a free loopback port and waits until it
// serves. Extra env entries are KEY=VALUE.
func startLuna(tb testing.TB, race bool, env []string, args ...string) *proc {
	tb.Helper()
	p := launchLuna(tb, race, env, args...)
	p.waitServing()
	return p
}

// launchLuna starts the server without waiting for it to serve.
func launchLuna(tb testing.TB, race bool, env []string, args ...string) *proc {
	tb.Helper()
	return launchBinary(tb, binary(tb, "luna", race), env, args...)
}

// launchBinary is launchLuna for a luna binary of its own (binaryTags).
func launchBinary(tb testing.TB, bin string, env []string, args ...string) *proc {
	tb.Helper()
	args = append([]string{"--api-host-port", "127.0.0.1:0", "--log-format", "json"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &proc{tb: tb, cmd: cmd, logs: &logBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p.serving = make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var ev struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "luna is serving" {
				p.serving <- ev.Addr
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		// A race-enabled server reports a race on stderr the moment it
		// sees one, and goes on: a test that passed must still fail.
		if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
			tb.Errorf("the server reported a data race")
		}
		if tb.Failed() {
			tb.Logf("luna logs:\n%s", p.logs)
		}
	})
	return p
}

// waitServing waits for the server's "luna is serving" log line.
func (p *proc) waitServing() {
	p.tb.Helper()
	select {
	case p.addr = <-p.serving:
	case <-p.done:
		p.tb.Fatalf("luna exited early: %v\n%s", p.err, p.logs)
	case <-time.After(60 * time.Second):
		p.tb.Fatalf("luna did not start serving\n%s", p.logs)
	}
}

// cleanEnv is the test's environment without LUNA_* variables, so a
// developer's settings cannot leak into a test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LUNA_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) signal(sig syscall.Signal) {
	p.tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.tb.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.tb.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.tb.Fatalf("luna still running after %v", d)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) dial(tb testing.TB, opts client.Options) *client.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, p.addr, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// run runs a command to completion and returns its output and exit code.
func run(t *testing.T, stdin string, env []string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}
