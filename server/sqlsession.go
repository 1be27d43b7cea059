//go:build duckdb_arrow

package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/admission"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/remote"
)

// Transports as luna_sessions() names them.
const (
	transportNative    = "native"
	transportFlightSQL = "flightsql"
)

// sqlSession is what a client's session is to SQL, whatever its transport
// (the native protocol, session; Flight SQL, flightSession): who it is,
// its DuckDB connection, what other sessions see of it, and the running
// of its requests: timeout, query slot, role check, object-store URLs.
// Transports add how requests arrive and answers leave.
type sqlSession struct {
	srv       *Server
	log       *slog.Logger
	transport string
	remote    string

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

	// hangUp closes the transport's connection (luna_kill once its grace
	// is over, a shutdown past its deadline); wake ends a wait for the
	// next request (Shutdown); sentBytes is what the connection sent in
	// all, for the query log.
	hangUp    func()
	wake      func()
	sentBytes func() int64

	// reqDeadline is when the request being answered must be done
	// (--query-timeout), writes to the client included; zero: never.
	reqDeadline time.Time
	// timeout is the cause reqDeadline carries; nil without one.
	timeout *queryTimeout

	// live is what luna_sessions() and luna_cancel see of the session;
	// types are the statement types of the request being answered, for
	// the query log.
	live  liveState
	types []string
}

func (ss *sqlSession) init(s *Server, transport, remote string) {
	ss.srv, ss.transport, ss.remote = s, transport, remote
	ss.id = s.nextID.Add(1)
	ss.role = access.Admin
	ss.since = time.Now()
	ss.log = s.log.With("session", ss.id, "remote", remote)
	ss.live.state = stateIdle
	ss.ctx, ss.cancel = context.WithCancelCause(context.Background())
}

// engineConn is the session's DuckDB connection, opened on first use so
// that connections which never run SQL (health probes, refused AUTH) cost
// nothing in the engine.
func (ss *sqlSession) engineConn() (*engine.Conn, error) {
	if ss.conn == nil {
		c, err := ss.srv.db.Connect()
		if err != nil {
			ss.log.Error("open database connection", "err", err)
			return nil, fmt.Errorf("cannot open a database connection: %w", err)
		}
		ss.conn = c
		ss.live.conn.Store(c)
	}
	return ss.conn, nil
}

// closeConn closes the session's DuckDB connection, if open: its
// settings, temporary objects and transaction end with it.
func (ss *sqlSession) closeConn() {
	if ss.conn != nil {
		ss.conn.Close()
		ss.conn = nil
		ss.live.conn.Store(nil)
	}
}

// beginRequest starts a request at start: its context carries
// --query-timeout and ends with luna_cancel, it shows as running in
// luna_sessions(), and its object-store downloads are counted. end marks
// the session idle again.
func (ss *sqlSession) beginRequest(ctx context.Context, text string, start time.Time) (context.Context, func()) {
	cancel := context.CancelFunc(func() {})
	ss.timeout = nil
	if t := ss.srv.opts.QueryTimeout; t > 0 {
		// The same deadline bounds writes to the client, so one that stops
		// reading cannot hold the request past it.
		ss.reqDeadline = start.Add(t)
		ss.timeout = &queryTimeout{limit: t}
		ctx, cancel = context.WithDeadlineCause(ctx, ss.reqDeadline, ss.timeout)
	}
	ctx, idle := ss.live.begin(ctx, text, start)
	ctx = remote.CountDownloads(ctx, &ss.live.downloaded)
	return ctx, func() {
		idle()
		cancel()
	}
}

// admit readies a request's statements to run: it takes a query slot
// (--max-concurrent-queries) and checks every statement against the
// session's role, running none. release gives the slot back once the
// statements ran and their result was sent; it is never nil.
func (ss *sqlSession) admit(ctx context.Context, text string) (release func(), err error) {
	release = func() {}
	if lim := ss.srv.opts.Admission; lim != nil && !admission.Exempt(text) {
		// The slot is held until the result is produced and all but its
		// last flush is written, since DuckDB's pipeline runs while a
		// result streams: a slow reader keeps it while it takes 1 MiB per
		// --write-timeout, never past --query-timeout. A panic releases it
		// too, as deferred calls run while the panic unwinds.
		waited, err := lim.Acquire(ctx, ss.log)
		if err != nil {
			return release, err
		}
		release = lim.Release
		if waited > 0 && ss.timeout != nil {
			ss.timeout.slots.Store(int64(lim.Limit()))
			ss.timeout.waited.Store(int64(waited))
		}
	}
	if ss.role != access.Admin {
		// Every statement is checked before any runs; admin's requests
		// are not classified at all, so they cost nothing more.
		if err := ss.permitted(ctx, text); err != nil {
			release()
			return func() {}, err
		}
	}
	return release, nil
}
