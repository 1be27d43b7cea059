package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/chzyer/readline"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/sqltext"
)

// defaultMaxRows is how many rows the shell's table formats show before
// the "N rows shown of M" footer; .maxrows changes it (0: all).
const defaultMaxRows = 1000

// cancelWait is how long a statement may take to stop after luna_cancel
// before the shell closes the connection under it.
const cancelWait = 5 * time.Second

// shell is an interactive session with one server: one connection for
// its whole life, so temporary tables, settings and transactions carry
// from one statement to the next.
type shell struct {
	cfg *config
	e   env
	rl  *readline.Instance

	conn *client.Conn // nil until the first statement, or after a drop
	id   uint64       // the session's id in luna_sessions(); 0: unknown
	lost bool         // a connection was lost: the next one says so
	// ctl is a second connection, opened when first needed, for
	// the progress line (luna_cancel goes on one of its own).
	ctl *client.Conn

	mode     string
	timer    bool
	progress bool
	maxRows  int
	out      io.Writer // results: standard output or .output's file
	outFile  *os.File

	mu      sync.Mutex
	current *statementRun // the running statement, for Ctrl-C
}

// statementRun is one running statement as Ctrl-C sees it.
type statementRun struct {
	start     time.Time
	cancelled bool
	closed    bool // the connection was closed to stop it
}

// runShell is lunactl at a terminal.
func runShell(ctx context.Context, cfg *config, e env) int {
	sh := &shell{cfg: cfg, e: e, mode: cfg.format, progress: true, maxRows: defaultMaxRows, out: e.stdout}
	if sh.mode == "arrow" {
		sh.mode = "table" // binary IPC is for pipes, not screens
	}
	history := ""
	if home, err := os.UserHomeDir(); err == nil {
		history = filepath.Join(home, ".lunactl_history")
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:                 sh.prompt(),
		HistoryFile:            history,
		HistoryLimit:           10000,
		DisableAutoSaveHistory: true, // a statement is saved whole, not line by line
		HistorySearchFold:      true,
		InterruptPrompt:        "^C",
		Stdout:                 e.stdout,
		Stderr:                 e.stderr,
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "error: starting the shell: %v\n", err)
		return exitError
	}
	sh.rl = rl
	defer sh.close()

	// SIGINT arrives while a statement runs (the terminal is not in raw
	// mode then); at the prompt, readline reads Ctrl-C as a key instead.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for range sigs {
			sh.interrupt(ctx)
		}
	}()

	fmt.Fprintf(e.stderr, "lunactl shell for %s: statements end with ';', .help lists commands, Ctrl-D quits.\n", cfg.addr)
	if err := sh.connect(ctx); err != nil {
		sh.report(err)
	}
	sh.loop(ctx)
	return exitOK
}

func (sh *shell) prompt() string { return "luna " + sh.cfg.addr + "> " }

func (sh *shell) continuation() string {
	return strings.Repeat(" ", max(0, len(sh.prompt())-5)) + "...> "
}

// loop reads lines until Ctrl-D or .quit, running each statement as soon
// as its ';' is typed.
func (sh *shell) loop(ctx context.Context) {
	var buf strings.Builder
	for {
		if buf.Len() == 0 {
			sh.rl.SetPrompt(sh.prompt())
		} else {
			sh.rl.SetPrompt(sh.continuation())
		}
		line, err := sh.rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			buf.Reset() // as in psql: Ctrl-C at the prompt drops what was typed
			continue
		case errors.Is(err, io.EOF):
			if buf.Len() > 0 {
				fmt.Fprintln(sh.e.stderr, "(unfinished statement dropped: it had no ';')")
			}
			return
		case err != nil:
			fmt.Fprintf(sh.e.stderr, "error: reading input: %v\n", err)
			return
		}
		if buf.Len() == 0 && strings.HasPrefix(strings.TrimSpace(line), ".") {
			sh.rl.SaveHistory(strings.TrimSpace(line))
			if quit := sh.meta(ctx, strings.TrimSpace(line)); quit {
				return
			}
			continue
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
		done, rest, open := sqltext.SplitTyped(buf.String())
		if len(done) > 0 {
			sh.rl.SaveHistory(historyEntry(buf.String()[:len(buf.String())-len(rest)]))
		}
		for _, st := range done {
			if !sh.execute(ctx, st.Text) {
				break // cancelled: the rest of the line is not run
			}
		}
		buf.Reset()
		if open {
			buf.WriteString(strings.TrimLeft(rest, " \t\r\n"))
		}
	}
}

// historyEntry is typed text as one history line: the history file holds
// a line per entry.
func historyEntry(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// connect opens the session's connection and learns its id, for
// luna_cancel, and turns on DuckDB's progress tracking for it.
func (sh *shell) connect(ctx context.Context) error {
	c, err := sh.dial(ctx)
	if err != nil {
		return err
	}
	sh.mu.Lock()
	sh.conn, sh.id = c, 0
	sh.mu.Unlock()
	// Tracking costs DuckDB little; a server whose configuration is
	// locked refuses it, and then the line shows time only.
	_ = c.Exec(ctx, "SET enable_progress_bar = true; SET enable_progress_bar_print = false")
	if rows, err := c.Query(ctx, "SELECT id FROM luna_sessions() WHERE this_session"); err == nil {
		for rows.Next() {
			if col, ok := rows.RecordBatch().Column(0).(*array.Uint64); ok && col.Len() == 1 {
				sh.mu.Lock()
				sh.id = col.Value(0)
				sh.mu.Unlock()
			}
		}
		rows.Close()
	}
	if sh.lost {
		fmt.Fprintf(sh.e.stderr, "reconnected to %s as a new session: temporary tables, settings and any open transaction of the old one are gone\n", sh.cfg.addr)
		sh.lost = false
	}
	return nil
}

func (sh *shell) dial(ctx context.Context) (*client.Conn, error) {
	if sh.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sh.cfg.timeout)
		defer cancel()
	}
	return client.Dial(ctx, sh.cfg.addr, client.Options{Password: sh.cfg.pass, TLS: sh.cfg.tls})
}

// ready connects when there is no connection, and reports whether there
// is one.
func (sh *shell) ready(ctx context.Context) bool {
	if sh.conn != nil {
		return true
	}
	if err := sh.connect(ctx); err != nil {
		sh.report(err)
		return false
	}
	return true
}

// execute runs one statement and prints its outcome; it reports false
// when the statement was cancelled, so what was queued behind it is not
// run.
func (sh *shell) execute(ctx context.Context, sql string) bool {
	if !sh.ready(ctx) {
		return true
	}
	run := &statementRun{start: time.Now()}
	sh.mu.Lock()
	sh.current = run
	sh.mu.Unlock()
	defer func() {
		sh.mu.Lock()
		sh.current = nil
		sh.mu.Unlock()
	}()

	var progress *progressLine
	if sh.progress && sh.e.term.stderrTTY && sh.id != 0 {
		progress = startProgress(sh.e.stderr, run.start, sh.sessionProgress)
	}
	err := sh.query(ctx, sql, run.start, progress)
	progress.end()
	elapsed := time.Since(run.start)

	sh.mu.Lock()
	cancelled, closed := run.cancelled, run.closed
	sh.mu.Unlock()
	switch {
	case err == nil:
	case cancelled:
		fmt.Fprintf(sh.e.stderr, "cancelled after %.1fs\n", elapsed.Seconds())
		if closed || !isServerError(err) {
			sh.dropped(nil)
		}
		return false
	default:
		sh.reportOrDrop(err)
	}
	if sh.timer {
		fmt.Fprintf(sh.e.stderr, "Run Time (s): real %.3f\n", elapsed.Seconds())
	}
	return true
}

// query sends sql on the session and prints its result in the shell's
// mode; the progress line is wiped before the first byte of it.
func (sh *shell) query(ctx context.Context, sql string, start time.Time, progress *progressLine) error {
	rows, err := sh.conn.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	page := sh.out == sh.e.stdout && sh.e.term.stdoutTTY && sh.mode != "csv" && sh.mode != "json"
	var screen bytes.Buffer
	var w io.Writer = &wipeFirst{w: sh.out, wipe: progress.end}
	if page {
		w = &screen // laid out first: whether it fits decides the pager
	}
	p, err := newLimitedPrinter(sh.mode, w, rows.Schema(), sh.maxRows)
	if err != nil {
		return err
	}
	err = printRows(p, rows, start)
	progress.end()
	if page && screen.Len() > 0 {
		sh.show(screen.Bytes())
	}
	return err
}

// wipeFirst calls wipe before the first write through it.
type wipeFirst struct {
	w     io.Writer
	wipe  func()
	wiped bool
}

func (w *wipeFirst) Write(b []byte) (int, error) {
	if !w.wiped {
		w.wiped = true
		w.wipe()
	}
	return w.w.Write(b)
}

// sessionProgress asks the second connection how far the running
// statement has got.
func (sh *shell) sessionProgress(ctx context.Context) (sessionProgress, error) {
	c, err := sh.control(ctx)
	if err != nil {
		return sessionProgress{}, err
	}
	rows, err := c.Query(ctx, progressQuery(sh.id))
	if err != nil {
		sh.dropControl(err)
		return sessionProgress{}, err
	}
	defer rows.Close()
	sp := sessionProgress{percent: -1, rows: -1}
	for rows.Next() {
		sp = readProgress(rows.RecordBatch())
	}
	return sp, rows.Err()
}

// control returns the second connection, opening it if need be. Only the
// progress line's goroutine uses it, one poll at a time; Ctrl-C cancels
// on a connection of its own (cancelOn).
func (sh *shell) control(ctx context.Context) (*client.Conn, error) {
	sh.mu.Lock()
	c := sh.ctl
	sh.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := sh.dial(ctx)
	if err != nil {
		return nil, err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ctl != nil {
		c.Close()
		return sh.ctl, nil
	}
	sh.ctl = c
	return c, nil
}

// dropControl forgets a second connection that failed other than with a
// server error, so the next use opens a fresh one.
func (sh *shell) dropControl(err error) {
	if isServerError(err) {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.ctl != nil {
		sh.ctl.Close()
		sh.ctl = nil
	}
}

// interrupt is Ctrl-C while a statement runs: the server cancels it
// through luna_cancel from the second connection and the session goes
// on. When that cannot be done (the session's id is unknown, the server
// does not answer), or on a second Ctrl-C, the connection is closed,
// which stops the statement too but ends the session.
func (sh *shell) interrupt(ctx context.Context) {
	sh.mu.Lock()
	run, conn, id := sh.current, sh.conn, sh.id
	if run == nil {
		sh.mu.Unlock()
		return
	}
	again := run.cancelled
	run.cancelled = true
	sh.mu.Unlock()
	closeConn := func() {
		sh.mu.Lock()
		run.closed = true
		sh.mu.Unlock()
		conn.Close()
	}
	if again || id == 0 {
		closeConn()
		return
	}
	go func() {
		cctx, cancel := context.WithTimeout(ctx, cancelWait)
		defer cancel()
		err := sh.cancelOn(cctx, id)
		if err != nil {
			fmt.Fprintf(sh.e.stderr, "\r\x1b[Kcould not cancel through the server (%s); closing the connection\n", errorText(err))
			closeConn()
			return
		}
		// Cancelled; should the statement still not stop (it is stuck
		// writing to this client, say), closing is the last resort.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for giveUp := time.Now().Add(cancelWait); ; <-tick.C {
			sh.mu.Lock()
			still := sh.current == run
			sh.mu.Unlock()
			switch {
			case !still:
				return
			case time.Now().After(giveUp):
				closeConn()
				return
			}
		}
	}()
}

// cancelOn sends CALL luna_cancel on a connection of its own: the second
// connection may be busy drawing the progress line.
func (sh *shell) cancelOn(ctx context.Context, id uint64) error {
	c, err := sh.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Exec(ctx, "CALL luna_cancel("+strconv.FormatUint(id, 10)+")")
}

// dropped reports a lost connection; the next statement reconnects.
func (sh *shell) dropped(err error) {
	if err != nil {
		fmt.Fprintf(sh.e.stderr, "error: %s\n", errorText(err))
	}
	fmt.Fprintln(sh.e.stderr, "the connection to the server is lost, and with it the session's temporary tables, settings and open transaction; the next statement reconnects")
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.conn != nil {
		sh.conn.Close()
	}
	sh.conn, sh.id, sh.lost = nil, 0, true
}

// reportOrDrop prints err; one other than the server's answer means the
// connection is lost.
func (sh *shell) reportOrDrop(err error) {
	if isServerError(err) {
		sh.report(err)
		return
	}
	sh.dropped(err)
}

// isServerError reports whether err is the server's answer to a request,
// after which the session goes on.
func isServerError(err error) bool {
	var status *client.Error
	return errors.As(err, &status)
}

// report prints an error that ends no session.
func (sh *shell) report(err error) {
	fmt.Fprintf(sh.e.stderr, "error: %s\n", errorText(err))
}

func (sh *shell) close() {
	if sh.conn != nil {
		sh.conn.Close()
	}
	sh.mu.Lock()
	if sh.ctl != nil {
		sh.ctl.Close()
	}
	sh.mu.Unlock()
	if sh.outFile != nil {
		sh.outFile.Close()
	}
	sh.rl.Close()
}
