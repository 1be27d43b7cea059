package client

import (
	"bytes"
	"testing"
)

func TestRecyclerReusesReleasedBuffers(t *testing.T) {
	r := &recycler{}
	a := r.Allocate(5000)
	if len(a) != 5000 || cap(a) != 8192 {
		t.Fatalf("len %d cap %d", len(a), cap(a))
	}
	// sync.Pool may drop an item (always possible, and on purpose a
	// quarter of the time under the race detector): reuse must happen, not
	// every time.
	var b []byte
	reused := false
	for range 50 {
		r.Free(a)
		b = r.Allocate(6000)
		if len(b) != 6000 {
			t.Fatalf("len %d", len(b))
		}
		if &b[0] == &a[0] {
			reused = true
			break
		}
		a = b
	}
	if !reused {
		t.Fatal("released buffer never reused for the same size class")
	}
	// Small buffers are ordinary, zeroed allocations.
	s := r.Allocate(100)
	if len(s) != 100 || s[0] != 0 {
		t.Fatal("small allocation")
	}
	r.Free(s)
	// Reallocate keeps the content.
	copy(b, bytes.Repeat([]byte{1}, 6000))
	c := r.Reallocate(20000, b)
	if len(c) != 20000 || !bytes.Equal(c[:6000], bytes.Repeat([]byte{1}, 6000)) {
		t.Fatal("reallocate lost content")
	}
	if d := r.Reallocate(100, c); len(d) != 100 || &d[0] != &c[0] {
		t.Fatal("shrinking reallocated")
	}
}
