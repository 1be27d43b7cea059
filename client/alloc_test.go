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
	a[0] = 7
	r.Free(a)
	b := r.Allocate(6000)
	if len(b) != 6000 || &b[0] != &a[0] {
		t.Fatal("released buffer not reused for the same size class")
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
