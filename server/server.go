//go:build duckdb_arrow

// Package server is the Luna server: it accepts TCP connections, gives each
// one a session with its own DuckDB connection, and answers every request
// with an Arrow IPC stream. The lifecycle follows net/http's Server: Serve
// a listener, then Shutdown with a deadline.
//
// Sessions join the wire protocol (package wire) to the engine (package
// engine); neither of those knows of the other.
package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/admission"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/remote"
	"github.com/lunadb/luna/wire"
)

// Options are the server's tunables. Zero values mean "no limit" or the
// documented default.
type Options struct {
	// Password, when set, must be sent with AUTH first on every connection.
	Password string
	// Users, when set, are the named users AUTH <user> <password>
	// authenticates; with them AUTH is needed even without Password.
	Users Users
	// MaxRequestBytes caps one request (default wire.DefaultMaxRequestBytes).
	MaxRequestBytes int
	// MaxConnections caps concurrent connections (0: no cap).
	MaxConnections int
	// QueryTimeout caps one request's run time, streaming and blocked
	// writes to the client included (0: none).
	QueryTimeout time.Duration
	// AuthTimeout closes a connection that has not completed AUTH within
	// it (0: none). Only applies when Password or Users is set.
	AuthTimeout time.Duration
	// IdleTimeout closes an authenticated connection that sends no request
	// within it after the last one was answered (0: none).
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose client has not taken one
	// flushed part of a response (at most about wire.FlushSize) within
	// it (0: none).
	WriteTimeout time.Duration
	// MaxUnauthenticated caps connections that have not completed AUTH
	// yet; when full, the oldest of them is dropped for a new one (0: half
	// of MaxConnections, at most 64; 64 without MaxConnections).
	MaxUnauthenticated int
	// Resolver, when set, resolves object-store URLs and secrets in
	// statements; without it statements go to DuckDB unchanged.
	Resolver *remote.Resolver
	// Observer, when set, is told of every request (for metrics).
	Observer Observer
	// QueryLog, when set, gets one line per request (--query-log).
	QueryLog *QueryLog
	// BatchRows is the smallest result record batch: smaller DuckDB chunks
	// are joined up to it (default 2048, DuckDB's own chunk size).
	BatchRows int
	// Admission, when set, caps the statements running at once
	// (--max-concurrent-queries): a request holds a slot while its
	// statements run and their result streams, and waits its turn for one
	// within QueryTimeout. AUTH, unknown requests and admission.Exempt
	// statements take none.
	Admission *admission.Limiter
	// TLS, when set, is served on the same port as the plain protocol: a
	// connection whose first byte starts a TLS handshake gets one. Nil:
	// plain only, and the first byte is not even looked at.
	TLS *tls.Config
	// RequireTLS, with TLS, answers a plain connection with an error
	// (RequireTLSMessage) and closes it.
	RequireTLS bool
	// TLSClientCertUser authenticates a client whose verified certificate
	// names a user (its subject common name, else a DNS or email SAN) as
	// that user during the handshake: it needs no AUTH (mutual TLS only).
	TLSClientCertUser bool
}

// Users checks a named user's password (package users' Store). It must be
// safe for concurrent use, and take as long for an unknown name as for a
// wrong password.
type Users interface {
	Authenticate(name, password string) (access.Role, bool)
	// Lookup returns a user's role without a password check, for a
	// client a verified certificate names (Options.TLSClientCertUser).
	Lookup(name string) (access.Role, bool)
}

// Observer receives the server's events; implementations must be safe for
// concurrent use and fast, as they run on the request path.
type Observer interface {
	// Request reports a finished request: its kind (exec, query, auth,
	// unknown, malformed), outcome (ok, error, denied, aborted) and time.
	Request(kind, outcome string, d time.Duration)
	// Streamed reports rows and bytes sent for one response.
	Streamed(rows, bytes int64)
	// AuthFailed reports a refused authentication.
	AuthFailed()
}

type nopObserver struct{}

func (nopObserver) Request(string, string, time.Duration) {}
func (nopObserver) Streamed(int64, int64)                 {}
func (nopObserver) AuthFailed()                           {}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("luna: server closed")

// Causes of a request's interruption; they become the error text the
// client sees.
var (
	errClientGone    = errors.New("connection closed by client")
	errShuttingDown  = errors.New("server is shutting down")
	errClientStalled = errors.New("client stopped reading the response")
	errAuthTimeout   = errors.New("AUTH not completed in time (--auth-timeout)")
	errIdle          = errors.New("connection idle (--idle-timeout)")
	errEvicted       = errors.New("unauthenticated connection dropped for a newer one (--max-unauthenticated-connections)")
)

// Server serves the Luna protocol on one shared database.
type Server struct {
	db   *engine.DB
	opts Options
	log  *slog.Logger
	auth *authLimiter
	// want is the password's digest: compared as digests, passwords of
	// any length take the same time.
	want [sha256.Size]byte

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*sqlSession]struct{}
	counted   int           // sessions held against MaxConnections: evicted ones leave at once
	unauth    list.List     // of *session not yet authenticated, oldest first
	draining  chan struct{} // closed when Shutdown starts
	idle      chan struct{} // signalled when a session ends
	closed    bool

	nextID   atomic.Uint64 // the last session id given out
	open     atomic.Int64  // connections being served, refused ones excluded
	accepted atomic.Uint64 // connections accepted, refused ones included
}

// Accepted counts the connections accepted so far; a health probe uses it
// to see that the accept loop is alive.
func (s *Server) Accepted() uint64 { return s.accepted.Load() }

// New returns a server for db.
func New(db *engine.DB, opts Options, log *slog.Logger) *Server {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = wire.DefaultMaxRequestBytes
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = wire.DefaultBatchRows
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.MaxUnauthenticated <= 0 {
		opts.MaxUnauthenticated = 64
		if opts.MaxConnections > 0 {
			opts.MaxUnauthenticated = max(1, min(opts.MaxConnections/2, 64))
		}
	}
	return &Server{
		db:        db,
		opts:      opts,
		log:       log,
		auth:      newAuthLimiter(),
		want:      passwordDigest(opts.Password),
		listeners: map[net.Listener]struct{}{},
		sessions:  map[*sqlSession]struct{}{},
		draining:  make(chan struct{}),
		idle:      make(chan struct{}, 1),
	}
}

// OpenConnections is the number of connections being served.
func (s *Server) OpenConnections() int64 { return s.open.Load() }

// Serve accepts connections on ln until Shutdown, serving each in its own
// goroutine. It always closes ln and returns a non-nil error:
// ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				// Out of file descriptors, say: wait rather than spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		s.accepted.Add(1)
		go s.serveConn(nc)
	}
}

func (s *Server) shuttingDown() bool {
	select {
	case <-s.draining:
		return true
	default:
		return false
	}
}

// track registers a new session, or reports why it must be refused.
//
// Connections still to authenticate are capped at MaxUnauthenticated, so
// they can never take all of MaxConnections from authenticated clients.
// When that cap or MaxConnections is reached and an unauthenticated
// connection is open, the oldest of them is dropped instead of refusing
// the new one: a flood of idle connections then only shortens each one's
// life, and a client that authenticates at once still gets in.
func (s *Server) track(ss *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errShuttingDown
	}
	limit := s.opts.MaxConnections
	full := limit > 0 && s.counted >= limit
	if ss.needAuth && s.unauth.Len() >= s.opts.MaxUnauthenticated || full && s.unauth.Len() > 0 {
		old := s.unauth.Remove(s.unauth.Front()).(*session)
		old.unauthEl = nil
		old.evicted = true
		s.counted--
		old.log.Debug("dropping unauthenticated connection for a newer one")
		old.cancel(errEvicted)
		old.nc.Close()
		full = false
	}
	if full {
		return fmt.Errorf("too many connections: the server allows %d (--max-connections)", limit)
	}
	s.sessions[&ss.sqlSession] = struct{}{}
	s.counted++
	if ss.needAuth {
		ss.unauthEl = s.unauth.PushBack(ss)
	}
	s.open.Add(1)
	return nil
}

// needAuth reports whether connections must AUTH first: a password or
// named users are configured.
func (s *Server) needAuth() bool { return s.opts.Password != "" || s.opts.Users != nil }

// authenticated records who ss authenticated as and moves it out of the
// unauthenticated connections; false means it was dropped meanwhile.
func (s *Server) authenticated(ss *session, user string, role access.Role) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.evicted {
		return false
	}
	ss.user, ss.role = user, role
	if ss.unauthEl != nil {
		s.unauth.Remove(ss.unauthEl)
		ss.unauthEl = nil
	}
	return true
}

func (s *Server) untrack(ss *session) {
	s.mu.Lock()
	delete(s.sessions, &ss.sqlSession)
	if ss.unauthEl != nil {
		s.unauth.Remove(ss.unauthEl)
		ss.unauthEl = nil
	}
	if !ss.evicted {
		s.counted--
	}
	s.mu.Unlock()
	s.open.Add(-1)
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

// Shutdown stops the server gracefully: it closes the listeners, lets
// requests that are running finish, and closes connections as they go
// idle. When ctx ends first, running requests are interrupted and their
// connections closed; Shutdown then returns ctx's error once every session
// has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.draining)
		for ln := range s.listeners {
			ln.Close()
		}
		// Sessions waiting for a request end now; those answering one
		// find the server draining when it is done.
		for ss := range s.sessions {
			ss.wake()
		}
	}
	s.mu.Unlock()

	var forced error
	var hardStop <-chan time.Time
	for {
		s.mu.Lock()
		n := len(s.sessions)
		s.mu.Unlock()
		if n == 0 {
			return forced
		}
		select {
		case <-s.idle:
		case <-ctx.Done():
			if forced == nil {
				// Interrupt what runs; each session then answers its
				// client with the reason and ends.
				forced = ctx.Err()
				s.each(func(ss *sqlSession) { ss.cancel(errShuttingDown) })
				s.log.Warn("shutdown deadline reached; interrupting running requests", "sessions", n)
				hardStop = time.After(time.Second)
			}
			select {
			case <-s.idle:
			case <-hardStop:
				// A session stuck writing to a client that does not read.
				s.each(func(ss *sqlSession) { ss.hangUp() })
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func (s *Server) each(fn func(*sqlSession)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		fn(ss)
	}
}
