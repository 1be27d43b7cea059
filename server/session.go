//go:build duckdb_arrow

package server

import (
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/admission"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/server/wire"
)

var errTooManyFiles = syscall.EMFILE

// session is one client connection: a reader goroutine that parses
// requests ahead (which is also how a vanished client is noticed while a
// query runs) and the serving goroutine that runs them in order.
type session struct {
	srv    *Server
	nc     net.Conn
	bw     *wire.Writer
	rd     *wire.Reader
	log    *slog.Logger
	remote string

	// id names the session in luna_sessions(), luna_cancel and the query
	// log; unique for the server's life.
	id uint64
	// user and role are who the session authenticated as: "" and
	// access.Admin without a password, or with the --passwd password.
	// tls is the connection's TLS state once its handshake is done; nil
	// on a plain connection. All three are written with srv.mu held
	// (other sessions read them for luna_sessions()), before the first
	// statement runs; only a later AUTH replaces them, between requests.
	user string
	role access.Role
	tls  *tls.ConnectionState
	// since is when the connection was accepted.
	since time.Time

	ctx    context.Context
	cancel context.CancelCauseFunc
	conn   *engine.Conn // opened on first use

	// needAuth: the server has a password or users. authed is the serving
	// goroutine's; authOK is closed when it becomes true, which lets the
	// reader go on past the AUTH line under the limits that then apply.
	needAuth  bool
	authed    bool
	authOK    chan struct{}
	authTimer *time.Timer
	// unauthEl and evicted belong to the server's mutex.
	unauthEl *list.Element
	evicted  bool

	// reqDeadline is when the request being answered must be done
	// (--query-timeout), writes to the client included; zero: never.
	reqDeadline time.Time
	// timeout is the cause reqDeadline carries; nil without one.
	timeout *queryTimeout
	// writeDeadline is the one last set on nc, to skip setting it again.
	writeDeadline time.Time

	// live is what luna_sessions() and luna_cancel see of the session;
	// types are the statement types of the request being answered, for
	// the query log.
	live  liveState
	types []string

	closeOnce sync.Once
}

// parsed is what the reader hands to the serving goroutine.
type parsed struct {
	req wire.Request
	err error
	// more reports that bytes of a further request were already buffered
	// when this one was parsed.
	more bool
}

func (s *Server) serveConn(nc net.Conn) {
	remote := nc.RemoteAddr().String()
	ss := &session{
		srv:      s,
		nc:       nc,
		bw:       wire.NewWriter(nc),
		remote:   remote,
		id:       s.nextID.Add(1),
		role:     access.Admin,
		since:    time.Now(),
		needAuth: s.needAuth(),
	}
	ss.log = s.log.With("session", ss.id, "remote", remote)
	ss.authed = !ss.needAuth
	ss.live.state = stateIdle
	if ss.needAuth {
		ss.live.state = stateAuthenticating
	}
	ss.ctx, ss.cancel = context.WithCancelCause(context.Background())
	defer ss.close()
	// A panic in the session's own machinery leaves its state unknown: the
	// client is told, then the connection closes (ss.close, deferred
	// before). Statements recover on their own and keep the session (run).
	defer recovery.Recover(ss.log, recovery.Session, "serving the connection", ss.answerPanic)

	if err := s.track(ss); err != nil {
		ss.log.Warn("connection refused", "err", err)
		ss.status("", err.Error())
		ss.flush()
		return
	}
	defer s.untrack(ss)

	defer func() {
		if ss.conn != nil {
			ss.conn.Close()
		}
	}()

	ss.log.Debug("connection opened")
	start := time.Now()
	defer func() {
		ss.log.Debug("connection closed", "duration", time.Since(start), "cause", context.Cause(ss.ctx))
	}()

	// With TLS configured, the first byte tells TLS from plain; the
	// handshake counts against the connection caps, as tracked above.
	src, ok := s.negotiate(ss)
	if !ok {
		return
	}
	nc = ss.nc
	ss.rd = wire.NewReader(src, s.opts.MaxRequestBytes)
	if ss.needAuth && s.opts.TLSClientCertUser && !s.certificateUser(ss) {
		return // dropped for a newer connection meanwhile
	}
	if !ss.authed {
		// Before AUTH nothing but AUTH is accepted: no reason to buffer a
		// large request, or to wait for one forever.
		ss.rd.SetLimit(wire.PreAuthMaxBytes, "before AUTH")
		ss.authOK = make(chan struct{})
		if t := s.opts.AuthTimeout; t > 0 {
			ss.authTimer = time.AfterFunc(t, func() {
				ss.log.Debug("AUTH not completed in time; closing connection", "auth_timeout", t)
				ss.cancel(errAuthTimeout)
				nc.Close()
			})
			defer ss.authTimer.Stop()
		}
	}
	// One request is read ahead: enough to notice EOF during a query and to
	// keep pipelined requests flowing, while a connection never buffers
	// more than two requests' worth of memory.
	reqs := make(chan parsed, 1)
	go func() {
		// A panic here ends the session with it as the cause: a running
		// request is interrupted and answered with it (engine reports the
		// cause), and the serving loop below answers one still waiting.
		defer recovery.Recover(ss.log, recovery.Session, "reading requests", func(e *recovery.Error) { ss.cancel(e) })
		ss.read(reqs)
	}()

	// The idle timer runs only while the session waits for a request, so
	// a long query is never taken for idleness. Before AUTH it adds to
	// --auth-timeout (which also bounds the AUTH line and its check).
	var idle *time.Timer
	if s.opts.IdleTimeout > 0 {
		idle = time.NewTimer(s.opts.IdleTimeout)
		idle.Stop()
		defer idle.Stop()
	}
	for {
		var idleC <-chan time.Time
		if idle != nil {
			idle.Reset(s.opts.IdleTimeout)
			idleC = idle.C
		}
		var p parsed
		select {
		case p = <-reqs:
		case <-idleC:
			ss.log.Debug("connection idle; closing it", "idle_timeout", s.opts.IdleTimeout)
			ss.cancel(errIdle)
			return
		case <-s.draining:
			return
		case <-ss.ctx.Done():
			var pe *recovery.Error
			if errors.As(context.Cause(ss.ctx), &pe) {
				ss.answerPanic(pe) // the reader panicked
			}
			return
		}
		if idle != nil {
			idle.Stop()
		}
		if s.shuttingDown() {
			// A request that arrives while draining is not started.
			return
		}
		if !ss.serve(p) {
			return
		}
		// Flush when no further pipelined request is waiting, so a burst of
		// requests is answered with few writes, and whenever FlushSize is
		// buffered: a client that sends without reading then meets TCP's
		// push-back (and the write deadline) instead of growing the buffer.
		if ss.bw.Buffered() >= wire.FlushSize || len(reqs) == 0 && !p.more {
			if err := ss.flush(); err != nil {
				ss.writeFailed(err)
				return
			}
		}
		ss.reqDeadline = time.Time{}
	}
}

// read parses requests until an error, which ends the session: after a
// framing error the stream cannot be resynchronized, and EOF means the
// client is gone, so whatever it is running is interrupted.
func (ss *session) read(out chan<- parsed) {
	for {
		req, err := ss.rd.Next()
		recovery.Inject("reader", req.Text)
		var fe *wire.FramingError
		if err != nil && !errors.As(err, &fe) {
			ss.readFailed(err)
			return
		}
		select {
		case out <- parsed{req, err, ss.rd.Buffered()}:
		case <-ss.ctx.Done():
			return
		}
		if err != nil {
			return
		}
		if req.Kind == wire.Auth && ss.authOK != nil {
			// What follows AUTH is parsed under the limit its verdict sets:
			// wait for it, noticing meanwhile a client that leaves.
			if err := ss.rd.Wait(); err != nil {
				ss.readFailed(err)
				return
			}
			select {
			case <-ss.authOK:
				ss.rd.SetLimit(ss.srv.opts.MaxRequestBytes, "(--max-request-bytes)")
				ss.authOK = nil
			case <-ss.ctx.Done():
				return
			}
		}
	}
}

func (ss *session) readFailed(err error) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
		ss.log.Debug("read failed", "err", err)
	}
	ss.cancel(errClientGone)
}

// flush sends what is buffered under the write deadline: the request's
// own (--query-timeout), or --write-timeout from now, whichever is first.
func (ss *session) flush() error {
	var dl time.Time
	now := time.Now()
	wt := ss.srv.opts.WriteTimeout
	if rd := ss.reqDeadline; !rd.IsZero() && rd.After(now) {
		dl = rd
	} else if !rd.IsZero() && wt <= 0 {
		// The request ran out of time and the answer says so: give that
		// answer as long again, not forever.
		wt = ss.srv.opts.QueryTimeout
	}
	if wt > 0 && (dl.IsZero() || now.Add(wt).Before(dl)) {
		dl = now.Add(wt)
	}
	if !dl.Equal(ss.writeDeadline) {
		if err := ss.nc.SetWriteDeadline(dl); err != nil {
			return fmt.Errorf("set write deadline: %w", err)
		}
		ss.writeDeadline = dl
	}
	return ss.bw.Flush()
}

// writeFailed ends the session after a failed write: the client is gone,
// or stopped reading past the write deadline.
func (ss *session) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		ss.log.Warn("client stopped reading; closing connection", "written_bytes", ss.bw.Written(), "query_timeout", ss.srv.opts.QueryTimeout, "write_timeout", ss.srv.opts.WriteTimeout)
		ss.cancel(errClientStalled)
		return
	}
	ss.log.Debug("write failed", "err", err)
	ss.cancel(errClientGone)
}

// serve answers one request and reports whether the session goes on.
func (ss *session) serve(p parsed) bool {
	obs := ss.srv.opts.Observer
	start := time.Now()
	m := ss.mark(start)
	ss.types = ss.types[:0]
	recovery.Inject("session", p.req.Text)
	if p.err != nil {
		var fe *wire.FramingError
		errors.As(p.err, &fe)
		ss.log.Warn("malformed request; closing connection", "err", fe.Msg)
		ss.status(fe.Seen, fe.Error())
		ss.flush()
		ss.finished("malformed", "error", m, p.err, "")
		return false
	}
	req := p.req
	if req.Kind == wire.Auth {
		ok, res := ss.authenticate(req.Text)
		if ok {
			ss.live.setState(stateIdle)
		}
		ss.finished("auth", res, m, nil, "")
		return ok
	}
	if !ss.authed {
		// No password is checked, so nothing to rate-limit.
		ss.log.Warn("request before AUTH denied", "kind", req.Kind)
		obs.AuthFailed()
		ss.status(wire.AuthInput, wire.Denied)
		ss.flush()
		ss.finished(req.Kind.String(), "denied", m, nil, req.Text)
		return false
	}

	ctx, cancel := ss.ctx, context.CancelFunc(func() {})
	ss.timeout = nil
	if t := ss.srv.opts.QueryTimeout; t > 0 {
		// The same deadline bounds writes (flush), so a client that stops
		// reading cannot hold the request past it.
		ss.reqDeadline = start.Add(t)
		ss.timeout = &queryTimeout{limit: t}
		ctx, cancel = context.WithDeadlineCause(ctx, ss.reqDeadline, ss.timeout)
	}
	defer cancel()
	ctx, idle := ss.live.begin(ctx, req.Text, start)
	defer idle()

	var err error
	switch req.Kind {
	case wire.Exec, wire.Query:
		err = ss.run(ctx, req)
	default:
		err = errUnknownPrefix
		ss.status(req.Text, fmt.Sprintf("unknown request prefix %q: expected x: (execute) or q: (query)", req.Prefix()))
	}
	d := time.Since(start)
	ss.log.Debug("request", "kind", req.Kind, "bytes", len(req.Text), "duration", d, "ok", err == nil)
	res := outcome(err == nil, "error")
	if errors.Is(err, errBroken) {
		res = "aborted"
	}
	ss.finished(req.Kind.String(), res, m, err, req.Text)
	return !errors.Is(err, errBroken)
}

var errUnknownPrefix = errors.New("unknown prefix")

// queryTimeout is a request's deadline cause. Once the request waited for
// a query slot it says how long: time spent queued counts against
// --query-timeout, and the answer should not blame the statement alone.
type queryTimeout struct {
	limit  time.Duration
	waited atomic.Int64 // nanoseconds; read when a watcher words the error
	slots  atomic.Int64
}

func (e *queryTimeout) Error() string {
	msg := fmt.Sprintf("query timeout: the request ran longer than %v (--query-timeout)", e.limit)
	if w := time.Duration(e.waited.Load()).Round(time.Millisecond); w > 0 {
		msg += fmt.Sprintf(", %v of it waiting for a query slot (--max-concurrent-queries %d)", w, e.slots.Load())
	}
	return msg
}

func outcome(ok bool, otherwise string) string {
	if ok {
		return "ok"
	}
	return otherwise
}

// engineConn is the session's DuckDB connection, opened on first use so
// that connections which never run SQL (health probes, refused AUTH) cost
// nothing in the engine.
func (ss *session) engineConn() (*engine.Conn, error) {
	if ss.conn == nil {
		c, err := ss.srv.db.Connect()
		if err != nil {
			ss.log.Error("open database connection", "err", err)
			return nil, fmt.Errorf("cannot open a database connection: %w", err)
		}
		ss.conn = c
	}
	return ss.conn, nil
}

// errBroken marks a failure after which the connection cannot go on.
var errBroken = errors.New("connection broken")

// authenticate checks an AUTH line and answers it; it reports whether the
// session goes on, and the outcome for metrics. A later AUTH on an
// authenticated session switches it to the identity it names, as in Redis.
func (ss *session) authenticate(text string) (bool, string) {
	if !ss.needAuth {
		ss.status(wire.AuthInput, wire.OK)
		return true, "ok"
	}
	var user string
	var role access.Role
	good, err := ss.srv.auth.check(ss.ctx, ss.remote, func() bool {
		var ok bool
		user, role, ok = ss.srv.credentials(text)
		return ok
	})
	if err != nil {
		// Gone, timed out or dropped while waiting for the source's turn.
		ss.log.Debug("AUTH abandoned before its check", "cause", err)
		return false, "aborted"
	}
	if !good {
		ss.log.Warn("authentication failed")
		ss.srv.opts.Observer.AuthFailed()
		ss.status(wire.AuthInput, wire.Denied)
		ss.flush()
		return false, "denied"
	}
	if !ss.authed {
		if ss.authTimer != nil && !ss.authTimer.Stop() {
			return false, "aborted" // --auth-timeout struck first
		}
		if !ss.srv.authenticated(ss, user, role) {
			return false, "aborted"
		}
		ss.authed = true
		close(ss.authOK)
	} else {
		changed := user != ss.user || role != ss.role
		if !ss.srv.authenticated(ss, user, role) {
			return false, "aborted"
		}
		if changed && ss.conn != nil {
			// A new identity starts afresh: settings, temporary objects
			// and statements PREPAREd under the previous one (checked
			// against its role) must not carry over.
			ss.conn.Close()
			ss.conn = nil
		}
	}
	ss.log.Debug("authenticated", "user", user, "role", role.String())
	ss.status(wire.AuthInput, wire.OK)
	return true, "ok"
}

// credentials checks an AUTH line's text: the --passwd password (user "",
// role admin), or with users "<user> <password>", split at the first
// space as Redis 6 does. With both a password and users, a text holding
// a space may be either, since a password may hold spaces: both checks
// run every time, so the answer's time does not tell which one matched
// or whether the user exists, and the password wins when both match.
func (s *Server) credentials(text string) (string, access.Role, bool) {
	pwOK := s.opts.Password != "" && passwordMatches(text, s.want)
	if name, pw, named := strings.Cut(text, " "); named && s.opts.Users != nil {
		if role, ok := s.opts.Users.Authenticate(name, pw); ok && !pwOK {
			return name, role, true
		}
	}
	if pwOK {
		return "", access.Admin, true
	}
	return "", 0, false
}

// run answers an exec or query request. A panic in it fails this request
// alone, and the session goes on when that is safe, which it is unless
// part of the answer was already written:
//   - the deferred cleanups of query and the statement helpers ran while
//     the panic unwound: the result is closed, the statement's cached
//     files and views released;
//   - Luna registers no Go callbacks in DuckDB, so a Go panic never unwinds
//     through DuckDB's frames: its connection is between two calls, as
//     after a failed statement. An open transaction, settings and
//     temporary objects stay, for the client to go on with or roll back
//     as after any error; reconnecting instead would silently end the
//     transaction and run the client's next statements outside it.
//
// When part of a result is out, the stream is marked broken and the
// connection closed, as for any failure mid-result.
func (ss *session) run(ctx context.Context, req wire.Request) (err error) {
	mark := ss.bw.Written() + int64(ss.bw.Buffered())
	defer recovery.Recover(ss.log, recovery.Statement, "running the statement", func(pe *recovery.Error) {
		err = ss.statementPanicked(req.Text, pe, mark)
	}, "kind", req.Kind.String(), "bytes", len(req.Text))
	if calls, ok, err := controlRequest(req.Text); ok {
		// luna_cancel and luna_kill take no query slot and check their
		// own permissions (sessions.go).
		if err != nil {
			ss.status(req.Text, err.Error())
			return err
		}
		return ss.runControl(req, calls)
	}
	if lim := ss.srv.opts.Admission; lim != nil && !admission.Exempt(req.Text) {
		// The slot is held until the result is produced and all but its
		// last flush is written, since DuckDB's pipeline runs while a
		// result streams: a slow reader keeps it while it takes 1 MiB per
		// --write-timeout, never past --query-timeout. A panic releases it
		// too, as deferred calls run while the panic unwinds.
		waited, err := lim.Acquire(ctx, ss.log)
		if err != nil {
			ss.status(req.Text, err.Error())
			return err
		}
		defer lim.Release()
		if waited > 0 && ss.timeout != nil {
			ss.timeout.slots.Store(int64(lim.Limit()))
			ss.timeout.waited.Store(int64(waited))
		}
	}
	if ss.role != access.Admin {
		// Every statement is checked before any runs; admin's requests
		// are not classified at all, so they cost nothing more.
		if err := ss.permitted(ctx, req.Text); err != nil {
			ss.status(req.Text, err.Error())
			return err
		}
	}
	recovery.Inject("statement", req.Text)
	if req.Kind == wire.Exec {
		return ss.exec(ctx, req.Text)
	}
	return ss.query(ctx, req.Text)
}

// statementPanicked answers a request whose run panicked; mark is where
// its answer began in the response stream.
func (ss *session) statementPanicked(sql string, pe *recovery.Error, mark int64) error {
	if ss.bw.Written()+int64(ss.bw.Buffered()) == mark {
		ss.status(sql, pe.Error())
		return pe
	}
	wire.WriteAbort(ss.bw, pe.Error())
	ss.flush()
	return errBroken
}

// answerPanic tells the client of a panic in the session's machinery,
// best effort and briefly: the connection closes next whatever happens.
func (ss *session) answerPanic(pe *recovery.Error) {
	ss.writeDeadline = time.Now().Add(5 * time.Second)
	ss.nc.SetWriteDeadline(ss.writeDeadline)
	if wire.WriteStatus(ss.bw, "", pe.Error()) == nil {
		ss.bw.Flush()
	}
}

func (ss *session) exec(ctx context.Context, sql string) error {
	conn, err := ss.engineConn()
	if err == nil {
		err = ss.execSQL(ctx, conn, sql)
	}
	if err != nil {
		ss.status(sql, err.Error())
		return err
	}
	ss.status(sql, wire.OK)
	return nil
}

func (ss *session) query(ctx context.Context, sql string) error {
	conn, err := ss.engineConn()
	if err != nil {
		ss.status(sql, err.Error())
		return err
	}
	rows, finish, err := ss.openQuery(ctx, conn, sql)
	if err != nil {
		ss.status(sql, err.Error())
		return err
	}
	ok := false
	defer func() {
		if rows != nil {
			rows.Close()
		}
		if ferr := finish(ok); ferr != nil {
			ss.log.Warn("finishing statement", "err", ferr)
		}
	}()
	if rows == nil || rows.Schema().NumFields() == 0 {
		// A secret, or CREATE and the like that return no columns:
		// answer as x: would, once the statement is wholly done.
		err, finish = finish(true), func(bool) error { return nil }
		if err != nil {
			ss.status(sql, err.Error())
			return err
		}
		ss.status(sql, wire.OK)
		return nil
	}
	st := wire.NewStream(ss.bw, rows.Schema())
	rowsBefore := ss.live.rows.Load()
	written := ss.bw.Written() + int64(ss.bw.Buffered())
	defer func() {
		ss.srv.opts.Observer.Streamed(st.Rows(), ss.bw.Written()+int64(ss.bw.Buffered())-written)
	}()
	sent := false
	for {
		rec, err := rows.Next()
		if err != nil {
			if !sent {
				ss.status(sql, err.Error())
				return err
			}
			// Part of the result is out: mark the stream broken so no
			// client takes it for complete, then drop the connection.
			ss.log.Warn("query failed mid-result; closing connection", "rows_sent", st.Rows(), "err", err)
			wire.WriteAbort(ss.bw, err.Error())
			ss.flush()
			return fmt.Errorf("%w: %w", errBroken, err)
		}
		if rec == nil {
			break
		}
		err = st.Write(rec)
		rec.Release()
		if err == nil && ss.bw.Buffered() >= wire.FlushSize {
			if err = ss.flush(); err != nil {
				ss.writeFailed(err)
				return errBroken
			}
		}
		if err != nil {
			ss.cancel(errClientGone)
			return errBroken
		}
		if !sent {
			ss.live.setState(stateStreaming)
		}
		sent = true
		ss.live.rows.Store(rowsBefore + st.Rows())
		ss.live.bytes.Store(ss.sent())
	}
	if err := st.Close(); err != nil {
		ss.cancel(errClientGone)
		return errBroken
	}
	ok = true
	return nil
}

// status writes a status table. A write error means the client is gone;
// the reader notices too and the session ends.
func (ss *session) status(input, msg string) {
	if err := wire.WriteStatus(ss.bw, input, msg); err != nil {
		ss.cancel(errClientGone)
	}
}

func (ss *session) close() {
	ss.closeOnce.Do(func() {
		ss.cancel(errClientGone)
		ss.nc.Close()
	})
}
