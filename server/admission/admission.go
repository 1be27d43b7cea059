// Package admission caps how many statements run in DuckDB at once
// (--max-concurrent-queries). DuckDB's worker threads are shared by every
// running query, so past a few of them each one only gets slower while
// all of them hold their memory; admitting a few at a time and queueing
// the rest keeps a burst from thrashing.
//
// Requests past the cap wait in one FIFO queue shared by all sessions. A
// session answers one request at a time, so it holds at most one place in
// the queue: a client that sends many requests, pipelined or not, joins
// the back of the queue with each of them and cannot starve the others.
// A freed slot is handed straight to the oldest waiter, so a session that
// has just released one cannot take it back ahead of those waiting.
//
// A wait ends when a slot is free, or when the request's context ends: its
// deadline (--query-timeout) or its client going away, which removes it
// from the queue at once.
package admission

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Observer is told how long requests waited; implementations must be safe
// for concurrent use and fast, as they run on the request path.
type Observer interface {
	// Admitted reports a request that got a slot after waiting d (0 when
	// one was free).
	Admitted(d time.Duration)
	// Abandoned reports a request that stopped waiting after d without a
	// slot: reason is "timeout" (its deadline passed) or "canceled" (its
	// client went away, or the server is shutting down).
	Abandoned(reason string, d time.Duration)
}

// Reasons passed to Observer.Abandoned.
const (
	ReasonTimeout  = "timeout"
	ReasonCanceled = "canceled"
)

// Limiter admits at most its limit of requests at once. A nil *Limiter
// admits everything and counts nothing.
type Limiter struct {
	limit int
	obs   Observer

	mu      sync.Mutex
	running int
	// queue holds *waiter, oldest first. It is empty unless running is at
	// the limit: Release hands a slot to a waiter rather than freeing it.
	queue list.List
}

type waiter struct {
	ready chan struct{} // closed when a slot is handed over
	el    *list.Element // nil once handed a slot or removed; under mu
}

// New returns a limiter admitting limit requests at once (0 or less: no
// limit, but running requests are still counted). obs may be nil.
func New(limit int, obs Observer) *Limiter {
	return &Limiter{limit: max(limit, 0), obs: obs}
}

// Limit is the number of slots (0: no limit).
func (l *Limiter) Limit() int {
	if l == nil {
		return 0
	}
	return l.limit
}

// Running is the number of requests holding a slot.
func (l *Limiter) Running() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

// Waiting is the number of requests waiting for a slot.
func (l *Limiter) Waiting() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queue.Len()
}

// Acquire takes a slot, waiting for one in turn if none is free; it
// returns how long it waited. Every nil return must be followed by one
// Release. When ctx ends first it returns a *TimeoutError if ctx's
// deadline passed, else context.Cause(ctx), and the request holds no slot.
// log, if set, gets Debug lines when the request has to wait.
func (l *Limiter) Acquire(ctx context.Context, log *slog.Logger) (time.Duration, error) {
	if l == nil {
		return 0, nil
	}
	l.mu.Lock()
	if l.limit == 0 || l.running < l.limit {
		l.running++
		l.mu.Unlock()
		if l.obs != nil {
			l.obs.Admitted(0)
		}
		return 0, nil
	}
	if ctx.Err() != nil {
		l.mu.Unlock()
		return 0, l.gaveUp(ctx, 0)
	}
	w := &waiter{ready: make(chan struct{})}
	w.el = l.queue.PushBack(w)
	ahead := l.queue.Len() - 1
	l.mu.Unlock()

	start := time.Now()
	if log != nil {
		log.Debug("query waits for a slot", "ahead", ahead, "max_concurrent_queries", l.limit)
	}
	select {
	case <-w.ready:
		d := time.Since(start)
		if l.obs != nil {
			l.obs.Admitted(d)
		}
		if log != nil {
			log.Debug("query admitted", "waited", d)
		}
		return d, nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	handed := w.el == nil
	if !handed {
		l.queue.Remove(w.el)
		w.el = nil
	}
	l.mu.Unlock()
	if handed {
		// A slot came as ctx ended: the request will not run, so the slot
		// goes on to the next waiter.
		l.Release()
	}
	d := time.Since(start)
	err := l.gaveUp(ctx, d)
	if log != nil {
		log.Debug("query stopped waiting for a slot", "waited", d, "cause", err)
	}
	return d, err
}

// gaveUp counts a request that will not get a slot and says why.
func (l *Limiter) gaveUp(ctx context.Context, d time.Duration) error {
	var err error
	reason := ReasonCanceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		reason = ReasonTimeout
		err = &TimeoutError{Waited: d, Slots: l.limit}
	} else {
		err = context.Cause(ctx)
	}
	if l.obs != nil {
		l.obs.Abandoned(reason, d)
	}
	return err
}

// Release gives back the slot of a successful Acquire, to the oldest
// waiter if there is one.
func (l *Limiter) Release() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running <= 0 {
		panic("admission: Release without a slot held")
	}
	if front := l.queue.Front(); front != nil {
		w := l.queue.Remove(front).(*waiter)
		w.el = nil
		close(w.ready)
		return
	}
	l.running--
}

// TimeoutError is a request whose deadline passed while it waited for a
// slot.
type TimeoutError struct {
	Waited time.Duration
	Slots  int
}

func (e *TimeoutError) Error() string {
	slots := fmt.Sprintf("one of %d query slots", e.Slots)
	if e.Slots == 1 {
		slots = "the only query slot"
	}
	return fmt.Sprintf("query timeout: waited %v for %s (--max-concurrent-queries)", e.Waited.Round(time.Millisecond), slots)
}

// Unwrap makes a TimeoutError match context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }
