package wire

import (
	"io"
	"net"

	"github.com/apache/arrow-go/v18/arrow"
)

// Writer gathers a connection's responses and sends them with vectored
// writes (writev). Small pieces, such as IPC message headers and status
// tables, are copied into a scratch buffer; large ones, the column buffers
// of record batches, are sent from where they lie, so result data is never
// copied in user space on its way to the socket. Record batches whose
// buffers are referenced are held until the next Flush.
type Writer struct {
	w       io.Writer
	bufs    net.Buffers
	scratch []byte
	open    bool // the last piece of bufs is in scratch and may grow
	from    int  // where that piece starts in scratch
	held    []arrow.RecordBatch
	size    int
	written int64
}

// smallWrite is the size under which a piece is copied, not referenced.
const smallWrite = 2048

// scratchSize is the size of each scratch chunk.
const scratchSize = 64 << 10

// FlushSize is the amount of buffered data past which writers of long
// results should Flush.
const FlushSize = 1 << 20

// NewWriter returns a Writer sending to w, normally a *net.TCPConn.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write queues p. Pieces of smallWrite bytes or more are referenced, so
// the caller must keep them unchanged until Flush (Hold does that for
// record batches).
func (w *Writer) Write(p []byte) (int, error) {
	w.size += len(p)
	if len(p) >= smallWrite {
		w.bufs = append(w.bufs, p)
		w.open = false
		return len(p), nil
	}
	if cap(w.scratch)-len(w.scratch) < len(p) {
		// Earlier chunks stay referenced by bufs until Flush.
		w.scratch = make([]byte, 0, scratchSize)
		w.open = false
	}
	if !w.open {
		w.bufs = append(w.bufs, nil)
		w.from = len(w.scratch)
		w.open = true
	}
	w.scratch = append(w.scratch, p...)
	w.bufs[len(w.bufs)-1] = w.scratch[w.from:len(w.scratch):len(w.scratch)]
	return len(p), nil
}

// Hold keeps rec alive until the next Flush, since Write may reference its
// buffers.
func (w *Writer) Hold(rec arrow.RecordBatch) {
	rec.Retain()
	w.held = append(w.held, rec)
}

// Written is the number of bytes sent so far.
func (w *Writer) Written() int64 { return w.written }

// Buffered is the number of bytes queued.
func (w *Writer) Buffered() int { return w.size }

// Flush sends everything queued and releases held record batches.
func (w *Writer) Flush() error {
	var err error
	if w.size > 0 {
		bufs := w.bufs
		var n int64
		n, err = bufs.WriteTo(w.w)
		w.written += n
	}
	for i, rec := range w.held {
		rec.Release()
		w.held[i] = nil
	}
	w.held = w.held[:0]
	clear(w.bufs)
	w.bufs = w.bufs[:0]
	w.size = 0
	// The kernel has copied everything sent: scratch can be reused.
	w.scratch = w.scratch[:0]
	w.open = false
	return err
}
