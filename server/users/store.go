package users

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/filestamp"
	"golang.org/x/crypto/bcrypt"
)

// checks bounds the bcrypt comparisons running at once, across every
// store: each takes a core for tens of milliseconds, so a flood of AUTH
// lines from many sources queues here instead of starving the queries.
var checks = make(chan struct{}, runtime.NumCPU())

// Loader returns the current text of a users file.
type Loader func(ctx context.Context) (string, error)

// Store holds the current users. Authenticate may run concurrently with
// Reload: each sees one whole version of the users.
type Store struct {
	what string // names the source in errors: "users file /etc/luna/users"
	load Loader
	log  *slog.Logger

	cur atomic.Pointer[table]

	mu      sync.Mutex     // serializes reloads
	dummies map[int][]byte // by cost; for unknown users
	// path and seen are for Watch: the file and its state when last read.
	path string
	seen filestamp.Stamps
}

type table struct {
	byName map[string]entry
	// dummy is compared against for unknown names, so they cost what a
	// wrong password costs: a hash of the cost most users have.
	dummy []byte
}

type entry struct {
	hash []byte
	role access.Role
}

// New loads the users with load and returns a store that reloads them
// with it. what names the source in errors and logs.
func New(ctx context.Context, what string, load Loader, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{what: what, load: load, log: log, dummies: map[int][]byte{}}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenFile loads the users file at path; Watch then follows its changes.
func OpenFile(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	var s *Store
	load := func(context.Context) (string, error) {
		// Stamped before reading: a change between the two shows as a
		// change at the next poll and is read again, never missed.
		seen := filestamp.Of(path)
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		if s != nil {
			s.seen = seen
		}
		return string(b), nil
	}
	s = &Store{what: "users file " + path, load: load, dummies: map[int][]byte{}, path: path, log: log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the users again. When they cannot be read or are
// malformed, the store keeps the users it had and returns the error.
func (s *Store) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(ctx)
}

func (s *Store) reloadLocked(ctx context.Context) error {
	text, err := s.load(ctx)
	if err != nil {
		return fmt.Errorf("reading the %s: %w", s.what, err)
	}
	list, err := Parse(text)
	if err != nil {
		return fmt.Errorf("%s: %w", s.what, err)
	}
	t := &table{byName: make(map[string]entry, len(list))}
	costs := map[int]int{}
	for _, u := range list {
		t.byName[u.Name] = entry{hash: []byte(u.Hash), role: u.Role}
		c, _ := bcrypt.Cost([]byte(u.Hash)) // checked by Parse
		costs[c]++
	}
	common := bcrypt.DefaultCost
	for c, n := range costs {
		if n > costs[common] || n == costs[common] && c > common {
			common = c
		}
	}
	if t.dummy, err = s.dummy(common); err != nil {
		return fmt.Errorf("%s: %w", s.what, err)
	}
	s.cur.Store(t)
	return nil
}

// dummy returns a hash of a random password at cost, made once per cost.
// Called with s.mu held.
func (s *Store) dummy(cost int) ([]byte, error) {
	if h, ok := s.dummies[cost]; ok {
		return h, nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		return nil, fmt.Errorf("making the hash unknown users are checked against: %w", err)
	}
	s.dummies[cost] = h
	return h, nil
}

// Len is the number of users.
func (s *Store) Len() int { return len(s.cur.Load().byName) }

// Authenticate checks name's password and returns its role. An unknown
// name takes a bcrypt comparison like a known one, and gets the same
// false: the answer and its time do not tell whether a user exists.
func (s *Store) Authenticate(name, password string) (access.Role, bool) {
	t := s.cur.Load()
	e, known := t.byName[name]
	hash := e.hash
	if !known {
		hash = t.dummy
	}
	checks <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	<-checks
	if err != nil || !known {
		return 0, false
	}
	return e.role, true
}

// Lookup returns name's role without a password, for a client that a
// verified certificate names (--tls-client-cert-user).
func (s *Store) Lookup(name string) (access.Role, bool) {
	e, ok := s.cur.Load().byName[name]
	return e.role, ok
}

// Watch re-reads the users file whenever its size, modification time or
// inode changes (an editor's save or an atomic rename), checking every
// interval until ctx ends. A bad version is logged once and kept out; the
// previous users stay. Only stores from OpenFile watch anything.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if s.path == "" {
		return
	}
	filestamp.Every(ctx, interval, func() { s.poll(ctx) })
}

// poll reloads the file when it changed since last read.
func (s *Store) poll(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := filestamp.Of(s.path)
	if now.Equal(s.seen) {
		return
	}
	// Remembered whether or not the new version is good, so a bad one
	// is reported once, not at every poll.
	s.seen = now
	if now.Unreadable() {
		_, err := os.Stat(s.path)
		s.log.Error("users file unreadable; keeping the previous users", "path", s.path, "err", err)
		return
	}
	if err := s.reloadLocked(ctx); err != nil {
		s.log.Error("reload failed; keeping the previous version", "what", "users file", "err", err)
		return
	}
	s.log.Info("reloaded", "what", "users file", "users", s.Len())
}
