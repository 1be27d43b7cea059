package admission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lunadb/luna/server/recovery"
)

// record is an Observer that keeps what it was told.
type record struct {
	mu        sync.Mutex
	admitted  []time.Duration
	abandoned map[string]int
}

func (r *record) Admitted(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.admitted = append(r.admitted, d)
}

func (r *record) Abandoned(reason string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.abandoned == nil {
		r.abandoned = map[string]int{}
	}
	r.abandoned[reason]++
}

var quiet = slog.New(slog.DiscardHandler)

// session stands for one client: it acquires when told, reports the
// outcome, and releases when told.
type session struct {
	name    string
	l       *Limiter
	ctx     context.Context
	cancel  context.CancelCauseFunc
	result  chan error
	release chan struct{}
}

func newSession(l *Limiter, name string) *session {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &session{name: name, l: l, ctx: ctx, cancel: cancel}
}

// request starts one request; admitted, when set, is sent the session's
// name once it holds a slot.
func (s *session) request(admitted chan<- string) {
	result, release := make(chan error, 1), make(chan struct{})
	s.result, s.release = result, release
	go func() {
		_, err := s.l.Acquire(s.ctx, quiet)
		result <- err
		if err != nil {
			return
		}
		if admitted != nil {
			admitted <- s.name
		}
		<-release
		s.l.Release()
	}()
}

func (s *session) done() { close(s.release) }

func TestFIFOAcrossSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(1, nil)
		admitted := make(chan string, 10)
		var ss []*session
		for i := range 5 {
			s := newSession(l, fmt.Sprint(i))
			s.request(admitted)
			synctest.Wait() // each joins the queue before the next
			ss = append(ss, s)
		}
		if l.Running() != 1 || l.Waiting() != 4 {
			t.Fatalf("running %d, waiting %d; want 1, 4", l.Running(), l.Waiting())
		}
		for i, s := range ss {
			if got := <-admitted; got != s.name {
				t.Fatalf("admission %d went to session %s, want %s", i, got, s.name)
			}
			s.done()
			synctest.Wait()
		}
		if l.Running() != 0 || l.Waiting() != 0 {
			t.Fatalf("running %d, waiting %d after all released", l.Running(), l.Waiting())
		}
	})
}

// A session that releases and asks again at once goes behind those
// already waiting: the slot is handed over, not freed for the taking.
func TestBusySessionCannotStarveOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(2, nil)
		admitted := make(chan string, 100)
		greedy := []*session{newSession(l, "g1"), newSession(l, "g2")}
		for _, g := range greedy {
			g.request(admitted)
		}
		synctest.Wait()
		polite := newSession(l, "p")
		polite.request(admitted)
		synctest.Wait()
		<-admitted
		<-admitted
		// Each greedy session finishes and sends its next request
		// straight away, as a pipelining client does.
		for round := range 3 {
			for _, g := range greedy {
				g.done()
				synctest.Wait()
				g.request(admitted)
				synctest.Wait()
			}
			if round == 0 {
				if got := <-admitted; got != "p" {
					t.Fatalf("the first freed slot went to %s, want the waiting session p", got)
				}
				polite.done()
				synctest.Wait()
			}
			for range 2 {
				<-admitted
			}
		}
		for _, g := range greedy {
			g.done()
		}
		synctest.Wait()
		if l.Running() != 0 || l.Waiting() != 0 {
			t.Fatalf("running %d, waiting %d", l.Running(), l.Waiting())
		}
	})
}

func TestCanceledWaiterLeavesTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &record{}
		l := New(1, obs)
		admitted := make(chan string, 10)
		holder := newSession(l, "holder")
		holder.request(admitted)
		synctest.Wait()
		gone := newSession(l, "gone")
		gone.request(admitted)
		synctest.Wait()
		next := newSession(l, "next")
		next.request(admitted)
		synctest.Wait()
		if l.Waiting() != 2 {
			t.Fatalf("waiting %d, want 2", l.Waiting())
		}
		cause := errors.New("connection closed by client")
		gone.cancel(cause)
		if err := <-gone.result; err != cause {
			t.Fatalf("canceled waiter got %v, want its context's cause", err)
		}
		if l.Waiting() != 1 {
			t.Fatalf("waiting %d after the cancel, want 1", l.Waiting())
		}
		<-admitted // holder
		holder.done()
		if got := <-admitted; got != "next" {
			t.Fatalf("slot went to %s, want next", got)
		}
		next.done()
		synctest.Wait()
		if l.Running() != 0 || l.Waiting() != 0 || obs.abandoned[ReasonCanceled] != 1 {
			t.Fatalf("running %d, waiting %d, abandoned %v", l.Running(), l.Waiting(), obs.abandoned)
		}
	})
}

func TestDeadlineWhileWaiting(t *testing.T) {
	for _, tc := range []struct {
		slots int
		want  string
	}{
		{1, "query timeout: waited 5s for the only query slot (--max-concurrent-queries)"},
		{4, "query timeout: waited 5s for one of 4 query slots (--max-concurrent-queries)"},
	} {
		t.Run(fmt.Sprint(tc.slots), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				obs := &record{}
				l := New(tc.slots, obs)
				for range tc.slots {
					if _, err := l.Acquire(context.Background(), quiet); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeoutCause(context.Background(), 5*time.Second, errors.New("the request ran too long"))
				defer cancel()
				start := time.Now()
				waited, err := l.Acquire(ctx, quiet)
				if err == nil || err.Error() != tc.want {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				var te *TimeoutError
				if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err %T does not match *TimeoutError and context.DeadlineExceeded", err)
				}
				if waited != 5*time.Second || time.Since(start) != 5*time.Second {
					t.Fatalf("waited %v (%v), want 5s", waited, time.Since(start))
				}
				if l.Waiting() != 0 || l.Running() != tc.slots || obs.abandoned[ReasonTimeout] != 1 {
					t.Fatalf("waiting %d, running %d, abandoned %v", l.Waiting(), l.Running(), obs.abandoned)
				}
				for range tc.slots {
					l.Release()
				}
			})
		})
	}
}

func TestEndedContextIsNotQueued(t *testing.T) {
	l := New(1, nil)
	if _, err := l.Acquire(context.Background(), quiet); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("server is shutting down")
	cancel(cause)
	if _, err := l.Acquire(ctx, quiet); err != cause {
		t.Fatalf("err = %v, want %v", err, cause)
	}
	if l.Waiting() != 0 {
		t.Fatalf("waiting %d", l.Waiting())
	}
	// With a slot free, an ended context is the statement's business.
	l.Release()
	if _, err := l.Acquire(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// A slot handed to a waiter whose context ends at the same moment goes
// on to the next waiter; it is never lost.
func TestSlotHandedAsWaiterGivesUp(t *testing.T) {
	for i := range 200 {
		synctest.Test(t, func(t *testing.T) {
			l := New(1, nil)
			admitted := make(chan string, 10)
			if _, err := l.Acquire(context.Background(), quiet); err != nil {
				t.Fatal(err)
			}
			first := newSession(l, "first")
			first.request(admitted)
			synctest.Wait()
			second := newSession(l, "second")
			second.request(admitted)
			synctest.Wait()
			// Both before first runs again: woken by its context, it then
			// finds it was handed the slot too.
			first.cancel(errors.New("gone"))
			l.Release()
			synctest.Wait()
			// first either took the slot or passed it to second.
			var got string
			select {
			case got = <-admitted:
			default:
				t.Fatalf("iteration %d: nobody holds the slot", i)
			}
			if l.Running() != 1 {
				t.Fatalf("iteration %d: running %d, want 1", i, l.Running())
			}
			if got == "first" {
				first.done()
				if <-admitted != "second" {
					t.Fatal("second not admitted")
				}
			}
			second.done()
			synctest.Wait()
			if l.Running() != 0 || l.Waiting() != 0 {
				t.Fatalf("iteration %d: running %d, waiting %d", i, l.Running(), l.Waiting())
			}
		})
	}
}

// Under a churn of requests, some giving up, no more than the limit hold
// a slot at once, every slot comes back, and no goroutine is left blocked
// (synctest fails the test if one is).
func TestChurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 3
		obs := &record{}
		l := New(limit, obs)
		var inside, most atomic.Int64
		var wg sync.WaitGroup
		var ok, gaveUp atomic.Int64
		for i := range 64 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(i), 1))
				for range 50 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(30))*time.Millisecond)
					_, err := l.Acquire(ctx, quiet)
					if err != nil {
						cancel()
						gaveUp.Add(1)
						continue
					}
					n := inside.Add(1)
					for {
						m := most.Load()
						if n <= m || most.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(time.Duration(r.IntN(5)) * time.Millisecond)
					inside.Add(-1)
					l.Release()
					cancel()
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if most.Load() > limit {
			t.Fatalf("%d held a slot at once, limit %d", most.Load(), limit)
		}
		if l.Running() != 0 || l.Waiting() != 0 {
			t.Fatalf("running %d, waiting %d", l.Running(), l.Waiting())
		}
		if ok.Load() == 0 || gaveUp.Load() == 0 {
			t.Fatalf("admitted %d, gave up %d: the test should see both", ok.Load(), gaveUp.Load())
		}
		if int64(len(obs.admitted)) != ok.Load() || int64(obs.abandoned[ReasonTimeout]) != gaveUp.Load() {
			t.Fatalf("observer saw %d admitted, %v abandoned; want %d, %d", len(obs.admitted), obs.abandoned, ok.Load(), gaveUp.Load())
		}
	})
}

// The same churn on real time and real scheduling, for the race detector.
func TestChurnRealTime(t *testing.T) {
	l := New(2, nil)
	var inside atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 200 {
				ctx, cancel := context.WithCancel(context.Background())
				if (i+j)%7 == 0 {
					go cancel()
				}
				if _, err := l.Acquire(ctx, quiet); err == nil {
					if n := inside.Add(1); n > 2 {
						t.Errorf("%d inside at once", n)
					}
					inside.Add(-1)
					l.Release()
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if l.Running() != 0 || l.Waiting() != 0 {
		t.Fatalf("running %d, waiting %d", l.Running(), l.Waiting())
	}
}

// A statement that panics after taking its slot gives it back: the
// session defers Release, and the deferred call runs as the panic unwinds
// to the server's recovery.
func TestSlotReleasedOnPanic(t *testing.T) {
	l := New(1, nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := recovery.Do(log, recovery.Statement, "running the statement", func() error {
		if _, err := l.Acquire(context.Background(), quiet); err != nil {
			return err
		}
		defer l.Release()
		var v any
		_ = v.(string) // the kind of bug recovery exists for
		return nil
	})
	if !recovery.Is(err) {
		t.Fatalf("err = %v, want a recovered panic", err)
	}
	if l.Running() != 0 {
		t.Fatalf("running %d after the panic, want 0", l.Running())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.Acquire(ctx, quiet); err != nil {
		t.Fatalf("the slot was not given back: %v", err)
	}
	l.Release()
}

func TestUnlimitedCountsButNeverWaits(t *testing.T) {
	obs := &record{}
	l := New(0, obs)
	for range 100 {
		if d, err := l.Acquire(context.Background(), quiet); err != nil || d != 0 {
			t.Fatal(d, err)
		}
	}
	if l.Running() != 100 || l.Waiting() != 0 || len(obs.admitted) != 100 {
		t.Fatalf("running %d, waiting %d, observed %d", l.Running(), l.Waiting(), len(obs.admitted))
	}
	for range 100 {
		l.Release()
	}
	if New(-1, nil).Limit() != 0 {
		t.Fatal("a negative limit is no limit")
	}
}

func TestNilLimiterAdmitsEverything(t *testing.T) {
	var l *Limiter
	if _, err := l.Acquire(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	l.Release()
	if l.Running() != 0 || l.Waiting() != 0 || l.Limit() != 0 {
		t.Fatal("a nil limiter counts nothing")
	}
}

func TestReleaseWithoutSlotPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(1, nil).Release()
}
