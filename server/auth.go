//go:build duckdb_arrow

package server

import (
	"context"
	"net"
	"sync"
	"time"
)

// authLimiter slows down repeated authentication failures from one
// address: each failure waits twice as long as the one before, from
// authBaseDelay up to authMaxDelay. A success, or authForget without
// failures, clears the address.
type authLimiter struct {
	mu    sync.Mutex
	hosts map[string]*authFailures
}

type authFailures struct {
	count int
	last  time.Time
}

const (
	authBaseDelay = 100 * time.Millisecond
	authMaxDelay  = 5 * time.Second
	authForget    = 10 * time.Minute
)

func newAuthLimiter() *authLimiter {
	return &authLimiter{hosts: map[string]*authFailures{}}
}

func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// failed records a failure from remote and waits the penalty, or until
// ctx ends.
func (l *authLimiter) failed(ctx context.Context, remote string) {
	host := hostOf(remote)
	now := time.Now()
	l.mu.Lock()
	f := l.hosts[host]
	if f == nil || now.Sub(f.last) > authForget {
		f = &authFailures{}
		l.hosts[host] = f
	}
	f.count++
	f.last = now
	delay := authBaseDelay << min(f.count-1, 10)
	if len(l.hosts) > 4096 {
		for h, o := range l.hosts {
			if now.Sub(o.last) > authForget {
				delete(l.hosts, h)
			}
		}
	}
	l.mu.Unlock()

	t := time.NewTimer(min(delay, authMaxDelay))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (l *authLimiter) succeeded(remote string) {
	l.mu.Lock()
	delete(l.hosts, hostOf(remote))
	l.mu.Unlock()
}
