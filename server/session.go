//go:build duckdb_arrow

package server

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/wire"
)

var errTooManyFiles = syscall.EMFILE

// session is one client connection of the native protocol, served by one
// goroutine that reads each request and answers it; while a request runs
// longer than watchDelay, a second one watches for a client that leaves.
// What it is to SQL, whatever the transport, is its sqlSession.
type session struct {
	sqlSession
	nc net.Conn
	bw *wire.Writer
	rd *wire.Reader

	// needAuth: the server has a password or users; authed becomes true
	// once an AUTH succeeds (at once without them).
	needAuth  bool
	authed    bool
	authTimer *time.Timer
	// unauthEl and evicted belong to the server's mutex.
	unauthEl *list.Element
	evicted  bool

	// writeDeadline and readDeadline are the ones last set on nc by the
	// serving goroutine, to skip setting them again.
	writeDeadline time.Time
	readDeadline  time.Time

	closeOnce sync.Once
}

func (s *Server) serveConn(nc net.Conn) {
	remote := nc.RemoteAddr().String()
	ss := &session{
		nc:       nc,
		bw:       wire.NewWriter(nc),
		needAuth: s.needAuth(),
	}
	ss.init(s, transportNative, remote)
	ss.authed = !ss.needAuth
	if ss.needAuth {
		ss.live.state = stateAuthenticating
	}
	ss.hangUp = func() { nc.Close() }
	ss.wake = ss.wakeReader
	ss.sentBytes = ss.sent
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

	defer ss.closeConn()

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
		if t := s.opts.AuthTimeout; t > 0 {
			ss.authTimer = time.AfterFunc(t, func() {
				ss.log.Debug("AUTH not completed in time; closing connection", "auth_timeout", t)
				ss.cancel(errAuthTimeout)
				nc.Close()
			})
			defer ss.authTimer.Stop()
		}
	}
	// Requests are read and answered on this one goroutine: a small
	// request costs no hand-off between threads. Whatever ends the session
	// (luna_kill, eviction, a forced shutdown) also ends a read in
	// progress, through the read deadline.
	stopWake := context.AfterFunc(ss.ctx, ss.wakeReader)
	defer stopWake()
	for {
		req, fe, ok := ss.next()
		if !ok {
			return
		}
		if s.shuttingDown() {
			// A request that arrives while draining is not started.
			return
		}
		if !ss.serve(req, fe) {
			return
		}
		// Flush when no further pipelined request is waiting, so a burst of
		// requests is answered with few writes, and whenever FlushSize is
		// buffered: a client that sends without reading then meets TCP's
		// push-back (and the write deadline) instead of growing the buffer.
		if ss.bw.Buffered() >= wire.FlushSize || !ss.rd.Buffered() {
			if err := ss.flush(); err != nil {
				ss.writeFailed(err)
				return
			}
		}
		ss.reqDeadline = time.Time{}
	}
}

// aLongTimeAgo is a read deadline that ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// wakeReader ends a read the session is blocked in: the reader then finds
// out why (the session's context, or the server draining).
func (ss *session) wakeReader() { ss.nc.SetReadDeadline(aLongTimeAgo) }

// next waits for the next request under --idle-timeout. A framing error is
// returned with ok set, to be answered; ok false ends the session (the
// client left, went idle too long, or the session or server is ending).
func (ss *session) next() (req wire.Request, fe *wire.FramingError, ok bool) {
	defer recovery.Recover(ss.log, recovery.Session, "reading requests", func(e *recovery.Error) {
		ss.answerPanic(e)
		ok = false
	})
	// The deadline is set before the checks below, so that a wake-up
	// (Shutdown, luna_kill) that comes after them is never overwritten.
	var dl time.Time
	if t := ss.srv.opts.IdleTimeout; t > 0 {
		dl = time.Now().Add(t)
	}
	if !dl.Equal(ss.readDeadline) {
		if err := ss.nc.SetReadDeadline(dl); err != nil {
			ss.readFailed(err)
			return req, nil, false
		}
		ss.readDeadline = dl
	}
	if ss.ctx.Err() != nil || ss.srv.shuttingDown() {
		return req, nil, false
	}
	req, err := ss.rd.Next()
	recovery.Inject("reader", req.Text)
	switch {
	case err == nil || errors.As(err, &fe):
		return req, fe, true
	case ss.ctx.Err() != nil || ss.srv.shuttingDown():
	case errors.Is(err, os.ErrDeadlineExceeded) && !dl.IsZero() && !time.Now().Before(dl):
		ss.log.Debug("connection idle; closing it", "idle_timeout", ss.srv.opts.IdleTimeout)
		ss.cancel(errIdle)
	default:
		ss.readFailed(err)
	}
	return req, nil, false
}

// watchDelay is how long a request runs before the session starts
// watching its connection for a client that leaves: shorter requests,
// the common case, never pay for the watch.
const watchDelay = time.Millisecond

// watchClient notices, while a request runs, a client that closes its
// connection, and interrupts the request with errClientGone; the returned
// function stops the watch. Bytes of a pipelined request that arrive
// meanwhile stay buffered for next. With such bytes already buffered the
// client has said what comes next: its departure shows when that is read.
func (ss *session) watchClient() (stop func()) {
	if ss.rd.Buffered() {
		return func() {}
	}
	done := make(chan struct{})
	var stopping atomic.Bool
	t := time.AfterFunc(watchDelay, func() {
		defer close(done)
		defer recovery.Recover(ss.log, recovery.Session, "watching the connection", func(e *recovery.Error) { ss.cancel(e) })
		// No idle deadline while a request runs, however long. Each wake-up
		// (stop, below, or the session or server ending) sets its own
		// deadline after what it checks here is set, so none is lost.
		if ss.nc.SetReadDeadline(time.Time{}) != nil || stopping.Load() || ss.ctx.Err() != nil || ss.srv.shuttingDown() {
			return
		}
		err := ss.rd.Wait()
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			ss.readFailed(err)
		}
	})
	return func() {
		if t.Stop() {
			return // it never started
		}
		stopping.Store(true)
		ss.wakeReader()
		ss.readDeadline = aLongTimeAgo
		<-done
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
func (ss *session) serve(req wire.Request, fe *wire.FramingError) bool {
	obs := ss.srv.opts.Observer
	start := time.Now()
	m := ss.mark(start)
	ss.types = ss.types[:0]
	recovery.Inject("session", req.Text)
	if fe != nil {
		ss.log.Warn("malformed request; closing connection", "err", fe.Msg)
		ss.status(fe.Seen, fe.Error())
		ss.flush()
		ss.finished("malformed", "error", m, fe, "")
		return false
	}
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

	ctx, end := ss.beginRequest(ss.ctx, req.Text, start)
	defer end()

	var err error
	switch req.Kind {
	case wire.Exec, wire.Query:
		stop := ss.watchClient()
		err = ss.run(ctx, req)
		stop()
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
		ss.rd.SetLimit(ss.srv.opts.MaxRequestBytes, "(--max-request-bytes)")
	} else {
		changed := user != ss.user || role != ss.role
		if !ss.srv.authenticated(ss, user, role) {
			return false, "aborted"
		}
		if changed {
			// A new identity starts afresh: settings, temporary objects
			// and statements PREPAREd under the previous one (checked
			// against its role) must not carry over.
			ss.closeConn()
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
	release, err := ss.admit(ctx, req.Text)
	defer release()
	if err != nil {
		ss.status(req.Text, err.Error())
		return err
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
