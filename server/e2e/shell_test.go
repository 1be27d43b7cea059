//go:build duckdb_arrow

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
)

// tmuxShell is lunactl's interactive shell running in a real terminal:
// a tmux pane, typed into with send-keys and read with capture-pane, as
// a person at the keyboard would use it.
type tmuxShell struct {
	t      *testing.T
	tmux   string
	socket string
	prompt string // "luna host:port>"; the screen's lines have no trailing blanks
}

// startShell runs lunactl with args in a fresh tmux server of its own,
// HOME set to home, and waits for its prompt.
func startShell(t *testing.T, home, addr string, env []string, args ...string) *tmuxShell {
	t.Helper()
	args = append([]string{"-addr", addr}, args...)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is not installed (scripts/test-deps.sh installs it)")
	}
	s := &tmuxShell{t: t, tmux: tmux, socket: filepath.Join(t.TempDir(), "tmux.sock"), prompt: "luna " + addr + ">"}
	cmd := append([]string{"env", "HOME=" + home, "LANG=C.UTF-8"}, env...)
	cmd = append(cmd, binary(t, "lunactl", true)) // race-checked: Ctrl-C and the progress line run beside the statement
	cmd = append(cmd, args...)
	// A wide pane, so lines of the results do not wrap.
	s.tmuxCmd(append([]string{"new-session", "-d", "-s", "luna", "-x", "200", "-y", "50", "--"}, cmd...)...)
	s.tmuxCmd("set-option", "-t", "luna", "remain-on-exit", "on")
	t.Cleanup(func() {
		if strings.Contains(s.screen(), "WARNING: DATA RACE") {
			t.Error("the race detector found a data race in lunactl")
		}
		if t.Failed() {
			t.Logf("screen:\n%s", s.screen())
		}
		exec.Command(s.tmux, "-S", s.socket, "kill-server").Run()
	})
	s.await(s.prompt, 1)
	return s
}

func (s *tmuxShell) tmuxCmd(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.tmux, append([]string{"-S", s.socket, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// typeLine types text and Enter. tmux reads a ';' ending an argument as
// its own command separator, so it is escaped.
func (s *tmuxShell) typeLine(text string) {
	s.t.Helper()
	if strings.HasSuffix(text, ";") {
		text = strings.TrimSuffix(text, ";") + `\;`
	}
	s.tmuxCmd("send-keys", "-t", "luna", "-l", "--", text)
	s.tmuxCmd("send-keys", "-t", "luna", "Enter")
}

// awaitExit waits for lunactl to end (the pane stays, dead, so its
// screen can still be read).
func (s *tmuxShell) awaitExit() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.TrimSpace(s.tmuxCmd("list-panes", "-t", "luna", "-F", "#{pane_dead}")) != "1" {
		if time.Now().After(deadline) {
			s.t.Fatal("lunactl did not exit")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *tmuxShell) key(name string) { s.t.Helper(); s.tmuxCmd("send-keys", "-t", "luna", name) }

// screen is the pane's scrollback and screen, trailing blanks dropped.
func (s *tmuxShell) screen() string {
	out, _ := exec.Command(s.tmux, "-S", s.socket, "capture-pane", "-p", "-J", "-S", "-5000", "-t", "luna").Output()
	return strings.TrimRight(string(out), "\n ")
}

// await waits until sub shows at least n times, and returns the screen.
func (s *tmuxShell) await(sub string, n int) string {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		scr := s.screen()
		if strings.Count(scr, sub) >= n {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%q not shown %d times within 30s", sub, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run types a statement or command and waits for the next prompt, as a
// person waits for the answer before typing on; it returns what the
// statement printed.
func (s *tmuxShell) run(line string) string {
	s.t.Helper()
	prompts := strings.Count(s.screen(), s.prompt)
	s.typeLine(line)
	scr := s.await(s.prompt, prompts+1)
	// What follows the line typed, up to the new prompt.
	typed := s.prompt + " " + line
	i := strings.LastIndex(scr, typed)
	j := strings.LastIndex(scr, "\n"+s.prompt)
	if i < 0 || j < i {
		return scr
	}
	return scr[i+len(typed) : j]
}

func TestShellSession(t *testing.T) {
	p := startLuna(t, true, nil, "--passwd", "ShellPw12345")
	home := t.TempDir()
	sh := startShell(t, home, p.addr, nil, "-pass", "ShellPw12345")
	if scr := sh.screen(); !strings.Contains(scr, "luna "+p.addr+">") {
		t.Fatalf("prompt does not name the server:\n%s", scr)
	}

	// A statement over two lines: the first gets the continuation prompt
	// and runs nothing; the ';' inside the literal does not end it.
	sh.typeLine("CREATE TEMP TABLE k AS")
	sh.await("...>", 1)
	out := sh.run("SELECT range AS i, 'a;b' AS s FROM range(3);")
	if !strings.Contains(out, "Count") || !strings.Contains(out, "3") {
		t.Fatalf("CREATE printed %q", out)
	}
	out = sh.run("SELECT * FROM k ORDER BY i;")
	for _, want := range []string{"| i | s   |", "| 0 | a;b |", "| 2 | a;b |", "(3 rows, "} {
		if !strings.Contains(out, want) {
			t.Fatalf("SELECT printed %q, want %q in it", out, want)
		}
	}
	sh.run(".mode csv")
	if out = sh.run("SELECT i, s FROM k ORDER BY i LIMIT 2;"); !strings.Contains(out, "i,s\n0,a;b\n1,a;b") {
		t.Fatalf(".mode csv printed %q", out)
	}
	sh.run(".timer on")
	if out = sh.run("SELECT 7 AS seven;"); !regexp.MustCompile(`seven\n7\nRun Time \(s\): real \d+\.\d{3}`).MatchString(out) {
		t.Fatalf(".timer on printed %q", out)
	}
	sh.run(".timer off")
	if out = sh.run(".tables"); !strings.Contains(out, "name\nk") {
		t.Fatalf(".tables printed %q", out)
	}
	if out = sh.run(".schema k"); !strings.Contains(out, "CREATE") || !strings.Contains(out, "k(") {
		t.Fatalf(".schema k printed %q", out)
	}
	out = sh.run("SELECT id AS me FROM luna_sessions() WHERE this_session;")
	m := regexp.MustCompile(`me\n(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("own session id: %q", out)
	}
	id := m[1]
	sh.run(".mode table")

	// Ctrl-C during a long statement cancels it on the server; the
	// progress line shows meanwhile, and the session goes on.
	admin := p.dial(t, client.Options{Password: "ShellPw12345"})
	prompts := strings.Count(sh.screen(), sh.prompt)
	sh.typeLine("SELECT count(*) FROM range(100000000000);")
	waitState(t, admin, id, "running")
	sh.await("(Ctrl-C cancels)", 1) // the progress line, after a second
	sent := time.Now()
	sh.key("C-c")
	sh.await("cancelled after ", 1)
	if took := time.Since(sent); took > time.Second {
		t.Errorf("cancelled shown %v after Ctrl-C, want within a second", took)
	}
	sh.await(sh.prompt, prompts+1)
	waitState(t, admin, id, "idle")
	if out = sh.run("SELECT count(*) AS n FROM k;"); !strings.Contains(out, " 3 |") {
		t.Fatalf("after the cancel, the temp table: %q", out)
	}
	if rows := sessRows(t, admin, "SELECT state FROM luna_sessions() WHERE id = "+id); len(rows) != 1 || rows[0]["state"] != "idle" {
		t.Fatalf("shell session after the cancel: %v", rows)
	}

	// A Ctrl-C at the prompt drops what was typed; nothing runs.
	sh.tmuxCmd("send-keys", "-t", "luna", "-l", "--", "SELECT 'never run'")
	sh.key("C-c")
	if out = sh.run("SELECT 'after' AS x;"); strings.Contains(out, "never run") || !strings.Contains(out, "after") {
		t.Fatalf("after Ctrl-C at the prompt: %q", out)
	}

	// The server drops the connection: the shell says the session is
	// gone, and the next statement reconnects.
	if err := admin.Exec(context.Background(), "CALL luna_kill("+id+")"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, admin, id)
	if out = sh.run("SELECT 1 AS one;"); !strings.Contains(out, "connection to the server is lost") {
		t.Fatalf("after luna_kill: %q", out)
	}
	out = sh.run("SELECT 42 AS answer;")
	if !strings.Contains(out, "reconnected to "+p.addr) || !strings.Contains(out, " 42 |") {
		t.Fatalf("next statement: %q", out)
	}
	if out = sh.run("SELECT count(*) FROM k;"); !strings.Contains(out, "error:") || !strings.Contains(out, "Table with name k does not exist") {
		t.Fatalf("the old session's temp table should be gone: %q", out)
	}
	sh.key("C-d")
	sh.awaitExit()
}

// waitState waits until session id shows state in luna_sessions().
func waitState(t *testing.T, admin *client.Conn, id, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := sessRows(t, admin, "SELECT state FROM luna_sessions() WHERE id = "+id)
		if len(rows) == 1 && rows[0]["state"] == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s: %v, want %s", id, rows, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitGone(t *testing.T, admin *client.Conn, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(sessRows(t, admin, "SELECT id FROM luna_sessions() WHERE id = "+id)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("session %s still listed after luna_kill", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestShellHistoryAndLiterals(t *testing.T) {
	p := startLuna(t, false, nil)
	home := t.TempDir()
	sh := startShell(t, home, p.addr, nil)
	// One line, two statements, a ';' and a quote inside the first's
	// literals: two results, the literal whole.
	out := sh.run("SELECT 'semi;colon' AS v, 'it''s' AS w; SELECT 2 AS two;")
	if !strings.Contains(out, "| semi;colon | it's |") || !strings.Contains(out, "| two |") {
		t.Fatalf("printed %q", out)
	}
	sh.key("C-d")
	sh.awaitExit()
	hist, err := os.ReadFile(filepath.Join(home, ".lunactl_history"))
	if err != nil || !strings.Contains(string(hist), "SELECT 'semi;colon' AS v, 'it''s' AS w; SELECT 2 AS two;") {
		t.Fatalf("history file: %q, %v", hist, err)
	}

	// A second run recalls it with the up arrow.
	sh = startShell(t, home, p.addr, nil)
	sh.key("Up")
	sh.await("> SELECT 'semi;colon'", 1)
	sh.key("Enter")
	sh.await("| semi;colon |", 1)
}

func TestShellMaxRowsAndPager(t *testing.T) {
	p := startLuna(t, false, nil)
	home := t.TempDir()
	paged := filepath.Join(home, "paged.txt")
	pager := filepath.Join(home, "pager.sh")
	if err := os.WriteFile(pager, []byte("#!/bin/sh\ncat > "+paged+"\necho PAGER-RAN\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh := startShell(t, home, p.addr, []string{"PAGER=" + pager})

	sh.run(".maxrows 5")
	out := sh.run("SELECT range AS r FROM range(1000);")
	if !strings.Contains(out, "| 4 |") || strings.Contains(out, "| 5 |") || !strings.Contains(out, "(5 rows shown of 1000, ") {
		t.Fatalf(".maxrows 5: %q", out)
	}
	// Taller than the 50-line pane: the pager gets it, the screen not.
	sh.run(".maxrows 0")
	out = sh.run("SELECT range AS r FROM range(200);")
	if !strings.Contains(out, "PAGER-RAN") || strings.Contains(out, "| 199 |") {
		t.Fatalf("a long result: %q", out)
	}
	if b, err := os.ReadFile(paged); err != nil || !strings.Contains(string(b), "| 199 |") || !strings.Contains(string(b), "(200 rows, ") {
		t.Fatalf("the pager read %q (%v)", b, err)
	}
	// .output sends results to a file; .read runs a script.
	script := filepath.Join(home, "script.sql")
	os.WriteFile(script, []byte("CREATE TABLE s AS SELECT 1 AS a;\n-- a comment; not a statement\nINSERT INTO s VALUES (2);\n"), 0o644)
	sh.run(".read " + script)
	file := filepath.Join(home, "out.csv")
	sh.run(".mode csv")
	sh.run(".output " + file)
	sh.run("SELECT a FROM s ORDER BY a;")
	sh.run(".output")
	if b, err := os.ReadFile(file); err != nil || string(b) != "a\n1\n2\n" {
		t.Fatalf(".output file: %q (%v)", b, err)
	}
	if out = sh.run(".mode nope"); !strings.Contains(out, "error: .mode takes") {
		t.Fatalf("bad .mode: %q", out)
	}
	if out = sh.run(".maxrows abc"); !strings.Contains(out, "error: .maxrows takes") {
		t.Fatalf("bad .maxrows: %q", out)
	}
	if out = sh.run(".frobnicate"); !strings.Contains(out, "unknown command .frobnicate") {
		t.Fatalf("unknown command: %q", out)
	}
	if out = sh.run(".help"); !strings.Contains(out, ".maxrows N") {
		t.Fatalf(".help: %q", out)
	}
	sh.typeLine(".quit")
	sh.awaitExit()
}
