//go:build duckdb_arrow

package server

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAuthSourceIsIPv4AddressOrIPv6Slash64(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.7:1000", "192.0.2.7:2000"},
		{"[::ffff:192.0.2.7]:1000", "192.0.2.7:3"},
		{"[2001:db8:1:2:3:4:5:6]:7", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:9"},
		{"[fe80::1%eth0]:7", "[fe80::2%eth1]:7"},
	} {
		if a, b := sourceOf(tc.a), sourceOf(tc.b); a != b || !a.IsValid() {
			t.Errorf("%s and %s: sources %v and %v, want one", tc.a, tc.b, a, b)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.7:1", "192.0.2.8:1"},
		{"[2001:db8:1:2::1]:7", "[2001:db8:1:3::1]:7"},
	} {
		if sourceOf(tc.a) == sourceOf(tc.b) {
			t.Errorf("%s and %s share a source", tc.a, tc.b)
		}
	}
}

func TestPasswordDigestCompare(t *testing.T) {
	want := passwordDigest("s3cr3t")
	for pw, ok := range map[string]bool{"s3cr3t": true, "s3cr3": false, "s3cr3t ": false, "": false, "x": false} {
		if passwordMatches(pw, want) != ok {
			t.Errorf("passwordMatches(%q) = %v", pw, !ok)
		}
	}
}

// TestAuthLimiterSerialisesAndSlowsASource: attempts from many
// connections of one source are checked one at a time, a handful in the
// first second, and the penalty applies to the right password too.
func TestAuthLimiterSerialisesAndSlowsASource(t *testing.T) {
	l := newAuthLimiter()
	var running, most, checks atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			for ctx.Err() == nil {
				l.check(ctx, fmt.Sprintf("127.0.0.1:%d", 1000+i), func() bool {
					n := running.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					checks.Add(1)
					time.Sleep(time.Millisecond)
					running.Add(-1)
					return false
				})
			}
		})
	}
	wg.Wait()
	t.Logf("30 connections for 1s: %d checks, at most %d at once", checks.Load(), most.Load())
	if most.Load() != 1 {
		t.Errorf("%d checks ran at once for one source", most.Load())
	}
	if n := checks.Load(); n < 2 || n > 5 {
		t.Errorf("%d checks in a second, want a handful", n)
	}

	// Another source is not slowed.
	t0 := time.Now()
	if ok, err := l.check(context.Background(), "198.51.100.1:1", func() bool { return true }); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if d := time.Since(t0); d > 50*time.Millisecond {
		t.Errorf("unrelated source waited %v", d)
	}

	// The right password waits out the penalty too, and clears it.
	t0 = time.Now()
	ok, err := l.check(context.Background(), "127.0.0.1:1", func() bool { return true })
	d := time.Since(t0)
	if !ok || err != nil || d < 300*time.Millisecond {
		t.Fatalf("right password: %v %v after %v, want it to wait the penalty", ok, err, d)
	}
	t0 = time.Now()
	l.check(context.Background(), "127.0.0.1:1", func() bool { return true })
	if d := time.Since(t0); d > 50*time.Millisecond {
		t.Errorf("after a success the next check waited %v", d)
	}
}

// TestAuthPenaltyOutlivesDisconnect: a connection that gives up while
// waiting (the client closed it) leaves the source's penalty whole.
func TestAuthPenaltyOutlivesDisconnect(t *testing.T) {
	l := newAuthLimiter()
	src := "203.0.113.9:1"
	for range 5 {
		l.check(context.Background(), src, func() bool { return false })
	}
	// The next check is due about 1.6 s after the last failure.
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		if _, err := l.check(ctx, src, func() bool { t.Error("checked during the penalty"); return false }); err == nil {
			t.Fatal("gave-up attempt reported no error")
		}
		cancel()
	}
	t0 := time.Now()
	l.check(context.Background(), src, func() bool { return true })
	if d := time.Since(t0); d < time.Second {
		t.Errorf("penalty shortened by disconnects: next check after %v", d)
	}
}

// TestAuthLimiterTracksBoundedSourcesInConstantTime: sources beyond the cap
// are forgotten from the cold end, so memory and each attempt's cost stay
// flat however many addresses try.
func TestAuthLimiterTracksBoundedSourcesInConstantTime(t *testing.T) {
	l := newAuthLimiter()
	l.max = 1000
	ok := func() bool { return true }
	per := func(from, n int) time.Duration {
		t0 := time.Now()
		for i := from; i < from+n; i++ {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			l.check(context.Background(), netip.AddrPortFrom(a, 1).String(), ok)
		}
		return time.Since(t0) / time.Duration(n)
	}
	small := per(0, 1000)
	large := per(1000, 100000)
	if n := l.tracked(); n > 1000 {
		t.Fatalf("%d sources tracked, cap 1000", n)
	}
	t.Logf("per attempt: %v with up to 1000 sources, %v with 100k more (cap 1000)", small, large)
	if large > 10*small+time.Millisecond {
		t.Errorf("attempts slowed from %v to %v as sources grew", small, large)
	}
	// A stale source is forgotten: its penalty does not last forever.
	now := time.Now()
	l.now = func() time.Time { return now }
	l.check(context.Background(), "192.0.2.1:1", func() bool { return false })
	l.check(context.Background(), "192.0.2.1:1", func() bool { return false })
	now = now.Add(authForget + time.Second)
	t0 := time.Now()
	l.check(context.Background(), "192.0.2.1:1", ok)
	if d := time.Since(t0); d > 50*time.Millisecond {
		t.Errorf("stale penalty still applied: waited %v", d)
	}
}
