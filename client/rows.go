package client

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

var _ array.RecordReader = (*Rows)(nil)

// Rows streams the result of a query one record batch at a time:
//
//	rows, err := conn.Query(ctx, "SELECT 1")
//	if err != nil { ... }
//	defer rows.Close()
//	for rows.Next() {
//		rec := rows.RecordBatch() // valid until the next call to Next
//		...
//	}
//	if err := rows.Err(); err != nil { ... }
//
// Rows implements array.RecordReader; Release closes it when the last
// reference is dropped. Rows is not safe for concurrent use.
type Rows struct {
	c      *Conn
	w      *watch
	rdr    *ipc.Reader // nil when the statement produced no result set
	sr     *streamReader
	schema *arrow.Schema
	refs   atomic.Int64

	done   bool // the response has been read to its end or failed
	closed bool
	err    error
}

// Schema returns the result's schema. It has no fields when the statement
// produced no result set.
func (r *Rows) Schema() *arrow.Schema { return r.schema }

// Next advances to the next record batch and reports whether there is one.
// When it returns false, check Err: a result cut short by the server, the
// network or the context is never reported as complete.
func (r *Rows) Next() bool {
	if r.done || r.closed {
		return false
	}
	if r.rdr.Next() {
		return true
	}
	r.finish()
	return false
}

// RecordBatch returns the current record batch. It is valid until the next
// call to Next or Close; Retain it to keep it longer.
func (r *Rows) RecordBatch() arrow.RecordBatch {
	if r.done || r.closed {
		return nil
	}
	return r.rdr.RecordBatch()
}

// Record returns the current record batch.
//
// Deprecated: Use RecordBatch; Record exists for array.RecordReader.
func (r *Rows) Record() arrow.RecordBatch { return r.RecordBatch() }

// Err returns the error that ended the result, if any. An *Error with
// Aborted set means the server failed part-way through the result.
func (r *Rows) Err() error { return r.err }

// Close releases the result. If it was not read to its end, Close reads and
// discards the rest so the connection can serve the next request; if that
// fails, the error is returned and the connection is broken.
func (r *Rows) Close() error {
	if r.closed {
		return nil
	}
	var err error
	if !r.done {
		for r.rdr.Next() {
		}
		err = r.finish()
	}
	r.closed = true
	if r.rdr != nil {
		r.rdr.Release()
	}
	return err
}

// Retain adds a reference, for array.RecordReader.
func (r *Rows) Retain() { r.refs.Add(1) }

// Release drops a reference and closes r when none are left.
func (r *Rows) Release() {
	if r.refs.Add(-1) == 0 {
		r.Close()
	}
}

// finish records how the response ended and hands the connection back.
func (r *Rows) finish() error {
	r.done = true
	r.err = r.c.end(r.w, endError(r.rdr, r.sr))
	return r.err
}
