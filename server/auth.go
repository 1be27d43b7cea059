//go:build duckdb_arrow

package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// authLimiter rate-limits password checks per source: an IPv4 address or
// an IPv6 /64 (what one host or one customer network usually holds).
//
// A source checks one password at a time (attempts from many connections
// queue for its turn), and after a failure its next check waits twice as
// long as the one before, from authBaseDelay up to authMaxDelay. The wait
// comes before the check and applies whether the password is right or
// wrong, so its answer time says nothing; it is the source's, so closing
// the socket does not cut it short. A success clears the failures.
//
// Sources are kept in a list ordered by last use, so each attempt costs
// O(1) whatever the number of sources: stale ones are trimmed from the
// cold end, and at most authMaxSources are remembered.
type authLimiter struct {
	mu      sync.Mutex
	sources map[netip.Addr]*list.Element // of *authSource
	lru     list.List                    // front: most recently used
	max     int
	now     func() time.Time
}

type authSource struct {
	key      netip.Addr
	failures int
	next     time.Time // earliest time of the next check
	last     time.Time // last attempt, for forgetting

	busy    bool          // a connection holds the turn
	waiters []*authWaiter // connections waiting for the turn
}

type authWaiter struct {
	ready chan struct{} // closed when handed the turn
	idx   int           // in waiters; -1 once handed the turn
}

const (
	authBaseDelay = 100 * time.Millisecond
	// authMaxDelay caps the penalty: at most one guess per 2 s from a
	// source under attack, and a legitimate client behind the same
	// address gets in at most this long after the attack stops.
	authMaxDelay   = 2 * time.Second
	authForget     = 10 * time.Minute
	authMaxSources = 1 << 16
)

func newAuthLimiter() *authLimiter {
	return &authLimiter{sources: map[netip.Addr]*list.Element{}, max: authMaxSources, now: time.Now}
}

// sourceOf is the rate-limited source of a remote address: the IPv4
// address, or the IPv6 address's /64.
func sourceOf(remote string) netip.Addr {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{} // not IP (a test's pipe, say): one shared source
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// source returns key's entry, creating it, and marks it used. Called
// with l.mu held.
func (l *authLimiter) source(key netip.Addr, now time.Time) *authSource {
	if el, ok := l.sources[key]; ok {
		l.lru.MoveToFront(el)
		s := el.Value.(*authSource)
		if now.Sub(s.last) > authForget {
			s.failures = 0
		}
		s.last = now
		return s
	}
	s := &authSource{key: key, last: now}
	l.sources[key] = l.lru.PushFront(s)
	// Each attempt trims at most what it adds plus stale entries, so the
	// cost stays O(1) amortised. An entry evicted while in use keeps
	// serving the connections that hold it.
	for l.lru.Len() > 1 {
		back := l.lru.Back()
		old := back.Value.(*authSource)
		if l.lru.Len() <= l.max && (now.Sub(old.last) <= authForget || old.busy || len(old.waiters) > 0) {
			break
		}
		l.lru.Remove(back)
		delete(l.sources, old.key)
	}
	return s
}

// check runs one password check for remote: it waits for the source's
// turn and penalty, then runs ok. It returns ctx's error, without running
// ok, when ctx ends first; the source's penalty stays as it was.
func (l *authLimiter) check(ctx context.Context, remote string, ok func() bool) (bool, error) {
	key := sourceOf(remote)
	l.mu.Lock()
	s := l.source(key, l.now())
	w := l.enqueue(s)
	l.mu.Unlock()

	if w != nil {
		select {
		case <-w.ready:
		case <-ctx.Done():
			l.mu.Lock()
			if w.idx >= 0 {
				l.dequeue(s, w)
				l.mu.Unlock()
				return false, context.Cause(ctx)
			}
			l.mu.Unlock()
			// Handed the turn just now: pass it on.
			l.release(s)
			return false, context.Cause(ctx)
		}
	}
	defer l.release(s)

	l.mu.Lock()
	wait := s.next.Sub(l.now())
	l.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, context.Cause(ctx)
		}
	}

	if ctx.Err() != nil {
		// Gone while the turn came: no check, no answer to give.
		return false, context.Cause(ctx)
	}
	good := ok()
	l.mu.Lock()
	if good {
		s.failures = 0
	} else {
		s.failures++
		s.next = l.now().Add(min(authBaseDelay<<min(s.failures-1, 10), authMaxDelay))
	}
	l.mu.Unlock()
	return good, nil
}

// enqueue takes s's turn, or returns a waiter to wait on when it is
// taken. Called with l.mu held.
func (l *authLimiter) enqueue(s *authSource) *authWaiter {
	if !s.busy {
		s.busy = true
		return nil
	}
	w := &authWaiter{ready: make(chan struct{}), idx: len(s.waiters)}
	s.waiters = append(s.waiters, w)
	return w
}

// dequeue removes w from s's waiters in O(1). Called with l.mu held.
func (l *authLimiter) dequeue(s *authSource, w *authWaiter) {
	last := len(s.waiters) - 1
	s.waiters[w.idx] = s.waiters[last]
	s.waiters[w.idx].idx = w.idx
	s.waiters[last] = nil
	s.waiters = s.waiters[:last]
	w.idx = -1
}

// release hands s's turn to a waiter picked at random, so a legitimate
// client queued behind an attacker's many connections gets its share of
// turns instead of waiting behind all of them.
func (l *authLimiter) release(s *authSource) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(s.waiters) == 0 {
		s.busy = false
		return
	}
	w := s.waiters[rand.IntN(len(s.waiters))]
	l.dequeue(s, w)
	close(w.ready)
}

// tracked is the number of sources remembered, for tests.
func (l *authLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}

// passwordDigest is what passwords are compared as: fixed-size digests
// compare in the same time whatever the lengths.
func passwordDigest(pw string) [sha256.Size]byte { return sha256.Sum256([]byte(pw)) }

func passwordMatches(got string, want [sha256.Size]byte) bool {
	d := passwordDigest(got)
	return subtle.ConstantTimeCompare(d[:], want[:]) == 1
}
