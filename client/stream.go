package client

import (
	"github.com/apache/arrow-go/v18/arrow/memory"

	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/lunadb/luna/wire"
)

const (
	// continuationToken starts every framed IPC message, the end-of-stream
	// marker and the server's abort marker.
	continuationToken = 0xFFFFFFFF

	// maxAbortMessage caps how much of an abort message is kept, since its
	// length comes from the wire.
	maxAbortMessage = 1 << 20
)

// abortMagic follows the 8-byte header of an abort marker.
var abortMagic = []byte(wire.AbortMagic)

// streamReader is an ipc.MessageReader for one response on a connection. It
// looks at each message boundary before arrow does, so that it can spot the
// abort marker, stop exactly at the end-of-stream marker (the next response
// shares the same bufio.Reader), and turn a connection that ends at a
// boundary into an error: arrow's reader would take that io.EOF for a
// cleanly finished stream.
type streamReader struct {
	br    *bufio.Reader
	inner ipc.MessageReader
	input string // the request's statement, for abort errors
	refs  atomic.Int64

	eos bool  // the end-of-stream marker has been consumed
	err error // first failure; sticky because the stream position is lost
}

func newStreamReader(br *bufio.Reader, mem memory.Allocator, input string) *streamReader {
	s := &streamReader{br: br, inner: ipc.NewMessageReader(br, ipc.WithAllocator(mem)), input: input}
	s.refs.Add(1)
	return s
}

func (s *streamReader) Retain() { s.refs.Add(1) }

func (s *streamReader) Release() {
	if s.refs.Add(-1) == 0 {
		s.inner.Release()
	}
}

// Message returns the next message, io.EOF once the end-of-stream marker has
// been read, or an error that never matches io.EOF.
func (s *streamReader) Message() (*ipc.Message, error) {
	switch {
	case s.err != nil:
		return nil, s.err
	case s.eos:
		return nil, io.EOF
	}
	msg, err := s.next()
	switch {
	case err == io.EOF:
		s.eos = true
	case err != nil:
		s.err = err
	}
	return msg, err
}

func (s *streamReader) next() (*ipc.Message, error) {
	// Peek no further than needed: after an end-of-stream marker the next
	// response may not have been sent yet, and Peek would block for it.
	head, err := s.br.Peek(4)
	if err != nil {
		return nil, wireError(err)
	}
	switch binary.LittleEndian.Uint32(head) {
	case 0:
		// End-of-stream marker in the pre-continuation format.
		s.br.Discard(4)
		return nil, io.EOF
	case continuationToken:
		if head, err = s.br.Peek(8); err != nil {
			return nil, wireError(err)
		}
		n := int32(binary.LittleEndian.Uint32(head[4:]))
		switch {
		case n == 0:
			s.br.Discard(8)
			return nil, io.EOF
		case n < 8:
			return nil, fmt.Errorf("luna: malformed result: message length %d", n)
		}
		// Both a real message (its flatbuffer metadata is longer than 8
		// bytes) and an abort marker (its magic) are followed by at least
		// 8 more bytes, so this Peek cannot wait on data that never comes.
		if head, err = s.br.Peek(16); err != nil {
			return nil, wireError(err)
		}
		if bytes.Equal(head[8:16], abortMagic) {
			s.br.Discard(16)
			return nil, s.readAbort(int64(n) - 16)
		}
	}
	msg, err := s.inner.Message()
	if err != nil {
		return nil, wireError(err)
	}
	return msg, nil
}

// readAbort reads the message of an abort marker. Its length field claims 8
// bytes more than are sent, so reading stops at whichever comes first: the
// remaining length or the server closing the connection.
func (s *streamReader) readAbort(n int64) error {
	msg, _ := io.ReadAll(io.LimitReader(s.br, min(max(n, 0), maxAbortMessage)))
	text := string(msg)
	if text == "" {
		text = "result aborted by server"
	}
	return &Error{Input: s.input, Message: text, Aborted: true}
}

// wireError converts a read failure into an error that cannot be mistaken
// for a clean end of stream.
func wireError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrIncompleteResult
	}
	return fmt.Errorf("luna: reading result: %w", err)
}

// openResult reads the schema of the next response.
func openResult(br *bufio.Reader, mem memory.Allocator, input string) (*ipc.Reader, *streamReader, error) {
	sr := newStreamReader(br, mem, input)
	rdr, err := ipc.NewReaderFromMessageReader(sr, ipc.WithAllocator(mem))
	if err != nil {
		sr.Release()
		if sr.err != nil {
			return nil, nil, sr.err
		}
		// %v, not %w: arrow wraps io.EOF for a stream without a schema.
		return nil, nil, fmt.Errorf("luna: malformed result: %v", err)
	}
	return rdr, sr, nil
}

// endError reports why rdr stopped: a failure on the wire, a decoding
// error, or a stream that ended without its end-of-stream marker.
func endError(rdr *ipc.Reader, sr *streamReader) error {
	switch {
	case sr.err != nil:
		return sr.err
	case rdr.Err() != nil:
		return fmt.Errorf("luna: malformed result: %w", rdr.Err())
	case !sr.eos:
		return ErrIncompleteResult
	}
	return nil
}

// isStatusTable reports whether schema is a status table: marked by
// metadata, or, for servers that predate the marker, shaped exactly like one.
func isStatusTable(schema *arrow.Schema) bool {
	if schema.Metadata().FindKey(wire.StatusMetadataKey) >= 0 {
		return true
	}
	if schema.NumFields() != 2 {
		return false
	}
	in, msg := schema.Field(0), schema.Field(1)
	return in.Name == "input" && msg.Name == "error" &&
		in.Type.ID() == arrow.STRING && msg.Type.ID() == arrow.STRING
}

// readStatus reads a status table to its end. status is the first row whose
// error is not OK; err reports a failure to read the stream itself.
func readStatus(rdr *ipc.Reader, sr *streamReader, input string) (status, err error) {
	var first *Error
	for rdr.Next() {
		rec := rdr.RecordBatch()
		inCol, errCol := column(rec, "input"), column(rec, "error")
		if errCol == nil || first != nil {
			continue
		}
		for i := range int(rec.NumRows()) {
			msg, ok := stringAt(errCol, i)
			if !ok || msg == wire.OK {
				continue
			}
			in, ok := stringAt(inCol, i)
			if !ok {
				in = input
			}
			first = &Error{Input: in, Message: msg}
			break
		}
	}
	if err := endError(rdr, sr); err != nil {
		return nil, err
	}
	if first != nil {
		return first, nil
	}
	return nil, nil
}

// column returns the first column of rec called name, or nil.
func column(rec arrow.RecordBatch, name string) arrow.Array {
	if idx := rec.Schema().FieldIndices(name); len(idx) > 0 {
		return rec.Column(idx[0])
	}
	return nil
}

// stringAt returns row i of a string column; ok is false for nulls and
// missing columns.
func stringAt(col arrow.Array, i int) (s string, ok bool) {
	if col == nil || col.IsNull(i) {
		return "", false
	}
	if sc, isString := col.(interface{ Value(int) string }); isString {
		return sc.Value(i), true
	}
	return col.ValueStr(i), true
}
