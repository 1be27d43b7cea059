//go:build duckdb_arrow

package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/lunadb/luna/server/engine"
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

	ctx    context.Context
	cancel context.CancelCauseFunc
	authed bool
	conn   *engine.Conn // opened on first use

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
		srv:    s,
		nc:     nc,
		bw:     wire.NewWriter(nc),
		remote: remote,
		log:    s.log.With("remote", remote),
	}
	ss.ctx, ss.cancel = context.WithCancelCause(context.Background())
	defer ss.close()

	if err := s.track(ss); err != nil {
		ss.log.Warn("connection refused", "err", err)
		ss.status("", err.Error())
		ss.bw.Flush()
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
	defer func() { ss.log.Debug("connection closed", "duration", time.Since(start)) }()

	ss.rd = wire.NewReader(nc, s.opts.MaxRequestBytes)
	// One request is read ahead: enough to notice EOF during a query and to
	// keep pipelined requests flowing, while a connection never buffers
	// more than two requests' worth of memory.
	reqs := make(chan parsed, 1)
	go ss.read(reqs)

	for {
		var p parsed
		select {
		case p = <-reqs:
		case <-s.draining:
			return
		case <-ss.ctx.Done():
			return
		}
		if s.shuttingDown() {
			// A request that arrives while draining is not started.
			return
		}
		if !ss.serve(p) {
			return
		}
		// Flush only when no further pipelined request is waiting, so a
		// burst of requests is answered with few writes.
		if len(reqs) == 0 && !p.more {
			if err := ss.bw.Flush(); err != nil {
				ss.cancel(errClientGone)
				return
			}
		}
	}
}

// read parses requests until an error, which ends the session: after a
// framing error the stream cannot be resynchronized, and EOF means the
// client is gone, so whatever it is running is interrupted.
func (ss *session) read(out chan<- parsed) {
	for {
		req, err := ss.rd.Next()
		var fe *wire.FramingError
		if err != nil && !errors.As(err, &fe) {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
				ss.log.Debug("read failed", "err", err)
			}
			ss.cancel(errClientGone)
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
	}
}

// serve answers one request and reports whether the session goes on.
func (ss *session) serve(p parsed) bool {
	obs := ss.srv.opts.Observer
	start := time.Now()
	if p.err != nil {
		var fe *wire.FramingError
		errors.As(p.err, &fe)
		ss.log.Warn("malformed request; closing connection", "err", fe.Msg)
		ss.status(fe.Seen, fe.Error())
		ss.bw.Flush()
		obs.Request("malformed", "error", time.Since(start))
		return false
	}
	req := p.req
	if req.Kind == wire.Auth {
		ok := ss.authenticate(req.Text)
		obs.Request("auth", outcome(ok, "denied"), time.Since(start))
		return ok
	}
	if ss.srv.opts.Password != "" && !ss.authed {
		ss.log.Warn("request before AUTH denied", "kind", req.Kind)
		obs.AuthFailed()
		ss.srv.auth.failed(ss.ctx, ss.remote)
		ss.status(wire.AuthInput, wire.Denied)
		ss.bw.Flush()
		obs.Request(req.Kind.String(), "denied", time.Since(start))
		return false
	}

	ctx, cancel := ss.ctx, context.CancelFunc(func() {})
	if t := ss.srv.opts.QueryTimeout; t > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, t, fmt.Errorf("query timeout: the request ran longer than %v (--query-timeout)", t))
	}
	defer cancel()

	var err error
	switch req.Kind {
	case wire.Exec:
		err = ss.exec(ctx, req.Text)
	case wire.Query:
		err = ss.query(ctx, req.Text)
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
	obs.Request(req.Kind.String(), res, d)
	return !errors.Is(err, errBroken)
}

var errUnknownPrefix = errors.New("unknown prefix")

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

func (ss *session) authenticate(password string) bool {
	want := ss.srv.opts.Password
	if want == "" || subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1 {
		ss.authed = true
		ss.srv.auth.succeeded(ss.remote)
		ss.status(wire.AuthInput, wire.OK)
		return true
	}
	ss.log.Warn("authentication failed")
	ss.srv.opts.Observer.AuthFailed()
	ss.srv.auth.failed(ss.ctx, ss.remote)
	ss.status(wire.AuthInput, wire.Denied)
	ss.bw.Flush()
	return false
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
			ss.bw.Flush()
			return errBroken
		}
		if rec == nil {
			break
		}
		err = st.Write(rec)
		rec.Release()
		if err == nil && ss.bw.Buffered() >= wire.FlushSize {
			err = ss.bw.Flush()
		}
		if err != nil {
			ss.cancel(errClientGone)
			return errBroken
		}
		sent = true
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
