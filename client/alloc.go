package client

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// recycler is the allocator for the buffers of received record batches.
// Every buffer it hands out while reading an IPC stream is overwritten in
// full by the bytes read from the socket, so it skips the zeroing of a
// fresh allocation, and it reuses the buffers of released batches instead
// of leaving them to the garbage collector. Buffers of batches that are
// never released are collected as usual.
type recycler struct {
	classes [48]sync.Pool // by power-of-two capacity
}

var _ memory.Allocator = (*recycler)(nil)

var bodyAllocator = &recycler{}

// minRecycled keeps small allocations on the ordinary path.
const minRecycled = 4096

func (r *recycler) Allocate(size int) []byte {
	if size < minRecycled {
		return make([]byte, size)
	}
	class := bits.Len(uint(size - 1))
	if v := r.classes[class].Get(); v != nil {
		return (*v.(*[]byte))[:size]
	}
	return make([]byte, size, 1<<class)
}

func (r *recycler) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	nb := r.Allocate(size)
	copy(nb, b)
	r.Free(b)
	return nb
}

func (r *recycler) Free(b []byte) {
	c := cap(b)
	if c < minRecycled || c&(c-1) != 0 {
		return
	}
	b = b[:c]
	r.classes[bits.Len(uint(c-1))].Put(&b)
}
