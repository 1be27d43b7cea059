package wire

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// OK is the error column of a successful status table.
const OK = "OK"

// Denied is the error column of a failed AUTH.
const Denied = "DENIED"

// StatusMetadataKey marks status tables in their schema metadata, so a
// client can tell them from a query that returns columns named input and
// error. Older clients ignore it.
const StatusMetadataKey = "luna.status"

// AuthInput is the input column of an AUTH answer: never the password.
const AuthInput = "AUTH"

// StatusSchema is the schema of every status table.
var StatusSchema = arrow.NewSchema([]arrow.Field{
	{Name: "input", Type: arrow.BinaryTypes.String},
	{Name: "error", Type: arrow.BinaryTypes.String},
}, func() *arrow.Metadata {
	m := arrow.NewMetadata([]string{StatusMetadataKey}, []string{"1"})
	return &m
}())

// WriteStatus writes a complete status-table stream: one row of input and
// msg (OK, DENIED or an error message).
func WriteStatus(w io.Writer, input, msg string) error {
	b := array.NewRecordBuilder(memory.DefaultAllocator, StatusSchema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(input)
	b.Field(1).(*array.StringBuilder).Append(msg)
	rec := b.NewRecordBatch()
	defer rec.Release()
	iw := ipc.NewWriter(w, ipc.WithSchema(StatusSchema))
	if err := iw.Write(rec); err != nil {
		return fmt.Errorf("write status table: %w", err)
	}
	if err := iw.Close(); err != nil {
		return fmt.Errorf("write status table: %w", err)
	}
	return nil
}

// Stream writes one query result as an Arrow IPC stream.
type Stream struct {
	w    *Writer
	iw   *ipc.Writer
	rows int64
}

// NewStream starts a result stream with the given schema. Nothing is
// written until the first Write or Close.
func NewStream(w *Writer, schema *arrow.Schema) *Stream {
	return &Stream{w: w, iw: ipc.NewWriter(w, ipc.WithSchema(schema))}
}

// Write queues one record batch on the Writer, which keeps it until its
// next Flush.
func (s *Stream) Write(rec arrow.RecordBatch) error {
	s.w.Hold(rec)
	if err := s.iw.Write(rec); err != nil {
		return fmt.Errorf("write record batch: %w", err)
	}
	s.rows += rec.NumRows()
	return nil
}

// Rows is the number of rows written so far.
func (s *Stream) Rows() int64 { return s.rows }

// Close ends the stream: the schema if nothing was written yet, then the
// end-of-stream marker.
func (s *Stream) Close() error {
	if err := s.iw.Close(); err != nil {
		return fmt.Errorf("end result stream: %w", err)
	}
	return nil
}

// AbortMagic starts the body of an abort marker.
const AbortMagic = "LUNA\x00ERR"

// WriteAbort writes the abort marker that ends a result stream which failed
// after some of it was sent: an Arrow continuation token and a message
// length that claims 8 more bytes than follow, then AbortMagic and the
// error text. The connection must be closed right after, so a generic Arrow
// reader fails on the truncated message instead of taking the partial
// result for a complete one, and Luna's client reads the error text.
func WriteAbort(w io.Writer, msg string) error {
	body := len(AbortMagic) + len(msg)
	buf := make([]byte, 8, 8+body)
	binary.LittleEndian.PutUint32(buf[0:], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(buf[4:], uint32(body+8))
	buf = append(buf, AbortMagic...)
	buf = append(buf, msg...)
	_, err := w.Write(buf)
	return err
}
