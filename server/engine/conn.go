//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	bindings "github.com/duckdb/duckdb-go-bindings"

	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/server/sqltext"
)

// Conn is one DuckDB connection: its own settings, temporary objects,
// transaction and prepared statements, on the shared database.
// A Conn runs one statement at a time and is not safe for concurrent use,
// except Interrupt.
type Conn struct {
	c    bindings.Connection
	db   *DB
	rows *Rows // open streaming result, if any
	// internal marks the engine's own connections, whose statements
	// trigger no checkpoint.
	internal bool
	// changed: a statement of the running request may have changed data.
	changed bool

	// mu orders Interrupt, which may come from any goroutine, against
	// Close, so an interrupt never reaches a freed connection.
	mu     sync.Mutex
	closed bool
}

// Connect opens a new connection to the database.
func (d *DB) Connect() (*Conn, error) {
	c := &Conn{db: d}
	if bindings.Connect(d.db, &c.c) == bindings.StateError {
		return nil, errors.New("engine: connect to database")
	}
	return c, nil
}

// Close closes any open result and the connection.
func (c *Conn) Close() {
	c.closeRows()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		bindings.Disconnect(&c.c)
	}
}

// Interrupt stops the statement running on c, if any. Safe to call from
// any goroutine.
func (c *Conn) Interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		bindings.Interrupt(c.c)
	}
}

// Progress reports the rows processed so far by the statement running on c,
// when DuckDB tracks it (SET enable_progress_bar = true). Safe to call from
// any goroutine.
func (c *Conn) Progress() (rows uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, false
	}
	p := bindings.QueryProgress(c.c)
	pct, rows, _ := bindings.QueryProgressTypeMembers(&p)
	return rows, pct >= 0
}

// watch interrupts c when ctx ends. The returned stop must be called once
// the statement is over.
func (c *Conn) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, c.Interrupt)
}

// failure turns a DuckDB error into the error to report: when ctx ended,
// the cause (client gone, timeout, shutdown) says more than DuckDB's
// "Interrupted!".
func failure(ctx context.Context, msg string) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return &Error{Message: msg}
}

// statements splits sql into DuckDB's prepared statements, calling fn for
// each in order until fn returns an error.
func (c *Conn) statements(ctx context.Context, sql string, fn func(i, n int, st bindings.PreparedStatement) error) error {
	var ext bindings.ExtractedStatements
	n := int(bindings.ExtractStatements(c.c, sql, &ext))
	defer bindings.DestroyExtracted(&ext)
	if n == 0 {
		msg := bindings.ExtractStatementsError(ext)
		if msg == "" {
			msg = "no statement to execute"
		}
		return failure(ctx, msg)
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		var st bindings.PreparedStatement
		if bindings.PrepareExtractedStatement(c.c, ext, bindings.IdxT(i), &st) == bindings.StateError {
			msg := bindings.PrepareError(st)
			bindings.DestroyPrepare(&st)
			return failure(ctx, msg)
		}
		if changesData(bindings.PreparedStatementType(st)) {
			c.changed = true
		}
		err := fn(i, n, st)
		bindings.DestroyPrepare(&st)
		if err != nil {
			return err
		}
	}
	return nil
}

// execute runs a prepared statement to completion and discards its result.
func execute(ctx context.Context, st bindings.PreparedStatement) error {
	var pending bindings.PendingResult
	if bindings.PendingPrepared(st, &pending) == bindings.StateError {
		msg := bindings.PendingError(pending)
		bindings.DestroyPending(&pending)
		return failure(ctx, msg)
	}
	defer bindings.DestroyPending(&pending)
	var res bindings.Result
	state := bindings.ExecutePending(pending, &res)
	defer bindings.DestroyResult(&res)
	if state == bindings.StateError {
		return failure(ctx, bindings.ResultError(&res))
	}
	return nil
}

// Exec runs the statements in sql in order and stops at the first error.
// Results are discarded. Ending ctx interrupts the running statement.
func (c *Conn) Exec(ctx context.Context, sql string) error {
	c.closeRows()
	stop := c.watch(ctx)
	err := c.statements(ctx, sql, func(_, _ int, st bindings.PreparedStatement) error {
		return execute(ctx, st)
	})
	stop()
	c.afterStatements(ctx)
	return redacted(sql, err)
}

// afterStatements checkpoints when the request's statements may have
// changed data, before the caller answers: the next query then finds the
// table compressed. Failed statements count too, since earlier ones of the
// same request may have committed.
func (c *Conn) afterStatements(ctx context.Context) {
	if !c.changed {
		return
	}
	c.changed = false
	if !c.internal {
		c.db.changedData(ctx)
	}
}

// redacted removes the secret values of sql from a DuckDB error about it:
// DuckDB quotes the statement in parser and binder errors, and the error
// goes on to clients and logs.
func redacted(sql string, err error) error {
	if e, ok := err.(*Error); ok {
		e.Message = sqltext.RedactMessage(e.Message, sql)
	}
	return err
}

// Query runs the statements in sql in order and returns the last one's
// result as a stream of Arrow record batches of about batchRows rows each.
// Earlier statements run to completion first, as with Exec.
//
// The result is produced while it is read: it holds the connection until
// Rows.Close, and ending ctx interrupts it at any point.
func (c *Conn) Query(ctx context.Context, sql string, batchRows int) (*Rows, error) {
	c.closeRows()
	stop := c.watch(ctx)
	var rows *Rows
	err := c.statements(ctx, sql, func(i, n int, st bindings.PreparedStatement) error {
		if i < n-1 {
			return execute(ctx, st)
		}
		var err error
		rows, err = stream(ctx, st, batchRows)
		return err
	})
	if err != nil {
		stop()
		c.afterStatements(ctx)
		return nil, redacted(sql, err)
	}
	rows.stop = stop
	if c.changed {
		// The last statement finishes when its result is closed.
		rows.after = func() { c.afterStatements(ctx) }
	}
	c.rows = rows
	return rows, nil
}

func (c *Conn) closeRows() {
	if c.rows != nil {
		c.rows.Close()
		c.rows = nil
	}
}

// stream starts a streaming execution of st.
func stream(ctx context.Context, st bindings.PreparedStatement, batchRows int) (*Rows, error) {
	var pending bindings.PendingResult
	if bindings.PendingPreparedStreaming(st, &pending) == bindings.StateError {
		msg := bindings.PendingError(pending)
		bindings.DestroyPending(&pending)
		return nil, failure(ctx, msg)
	}
	defer bindings.DestroyPending(&pending)
	r := &Rows{ctx: ctx, batchRows: max(batchRows, 1)}
	if bindings.ExecutePending(pending, &r.res) == bindings.StateError {
		msg := bindings.ResultError(&r.res)
		bindings.DestroyResult(&r.res)
		return nil, failure(ctx, msg)
	}
	r.open = true

	n := bindings.ColumnCount(&r.res)
	names := make([]string, n)
	types := make([]bindings.LogicalType, n)
	for i := range n {
		names[i] = bindings.ColumnName(&r.res, i)
		types[i] = bindings.ColumnLogicalType(&r.res, i)
	}
	defer func() {
		for i := range types {
			bindings.DestroyLogicalType(&types[i])
		}
	}()
	r.opts = bindings.ResultGetArrowOptions(&r.res)
	schema, ed := bindings.NewArrowSchema(r.opts, types, names)
	defer bindings.DestroyErrorData(&ed)
	if bindings.ErrorDataHasError(ed) {
		err := fmt.Errorf("convert result schema to Arrow: %s", bindings.ErrorDataMessage(ed))
		r.Close()
		return nil, err
	}
	r.schema = schema
	return r, nil
}

// Rows is a streaming query result.
type Rows struct {
	ctx       context.Context
	res       bindings.Result
	opts      bindings.ArrowOptions
	schema    *arrow.Schema
	batchRows int
	stop      func() bool
	after     func() // run once the result is closed
	open      bool
	done      bool
	pending   []arrow.RecordBatch // chunks waiting to be coalesced

	// DuckDB fills batches on a goroutine of its own, a few batches ahead
	// of the reader, so producing the next batch overlaps with sending the
	// last one.
	ahead    chan fetched
	quit     chan struct{}
	finished chan struct{}
}

type fetched struct {
	rec arrow.RecordBatch
	err error
}

// readAhead is how many batches DuckDB may produce before they are read.
const readAhead = 16

// Schema is the result's Arrow schema.
func (r *Rows) Schema() *arrow.Schema { return r.schema }

// Next returns the next record batch, or (nil, nil) at the end of the
// result. The caller owns the batch and must Release it. An error after
// some batches were returned means the result is incomplete.
//
// DuckDB produces chunks of 2,048 rows; Next joins consecutive chunks into
// batches of about batchRows rows, since every Arrow IPC message costs a
// fixed overhead to write and to read.
func (r *Rows) Next() (arrow.RecordBatch, error) {
	if !r.open {
		return nil, nil
	}
	if r.ahead == nil {
		r.ahead = make(chan fetched, readAhead)
		r.quit = make(chan struct{})
		r.finished = make(chan struct{})
		go r.produce()
	}
	f, ok := <-r.ahead
	if !ok {
		return nil, nil
	}
	return f.rec, f.err
}

func (r *Rows) produce() {
	defer close(r.finished)
	defer close(r.ahead)
	for {
		var rec arrow.RecordBatch
		// This goroutine is the statement's too: a panic here fails the
		// result, not the server.
		err := recovery.Do(nil, recovery.Statement, "reading the result", func() (err error) {
			if r.schema.NumFields() > 0 {
				recovery.Inject("result", r.schema.Field(0).Name)
			}
			rec, err = r.fetch()
			return err
		})
		if rec == nil && err == nil {
			return
		}
		select {
		case r.ahead <- fetched{rec, err}:
		case <-r.quit:
			if rec != nil {
				rec.Release()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// fetch builds the next batch from DuckDB's chunks.
func (r *Rows) fetch() (arrow.RecordBatch, error) {
	if r.done {
		return nil, nil
	}
	rows := 0
	for rows < r.batchRows {
		chunk := bindings.FetchChunk(r.res)
		if chunk.Ptr == nil {
			r.done = true
			if msg := bindings.ResultError(&r.res); msg != "" || r.ctx.Err() != nil {
				r.releasePending()
				return nil, failure(r.ctx, msg)
			}
			break
		}
		rec, ed := bindings.DataChunkToArrowArray(r.opts, r.schema, chunk)
		bindings.DestroyDataChunk(&chunk)
		if bindings.ErrorDataHasError(ed) {
			msg := bindings.ErrorDataMessage(ed)
			bindings.DestroyErrorData(&ed)
			r.done = true
			r.releasePending()
			return nil, fmt.Errorf("convert result chunk to Arrow: %s", msg)
		}
		bindings.DestroyErrorData(&ed)
		r.pending = append(r.pending, rec)
		rows += int(rec.NumRows())
	}
	return r.coalesce()
}

func (r *Rows) coalesce() (arrow.RecordBatch, error) {
	switch len(r.pending) {
	case 0:
		return nil, nil
	case 1:
		rec := r.pending[0]
		r.pending = r.pending[:0]
		return rec, nil
	}
	defer r.releasePending()
	cols := make([]arrow.Array, r.schema.NumFields())
	parts := make([]arrow.Array, len(r.pending))
	var rows int64
	for _, p := range r.pending {
		rows += p.NumRows()
	}
	for i := range cols {
		for j, p := range r.pending {
			parts[j] = p.Column(i)
		}
		col, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			for _, c := range cols[:i] {
				c.Release()
			}
			return nil, fmt.Errorf("join result chunks: %w", err)
		}
		cols[i] = col
	}
	rec := array.NewRecordBatch(r.schema, cols, rows)
	for _, c := range cols {
		c.Release()
	}
	return rec, nil
}

func (r *Rows) releasePending() {
	for _, p := range r.pending {
		p.Release()
	}
	r.pending = r.pending[:0]
}

// Close ends the result, stopping DuckDB's work on it.
func (r *Rows) Close() {
	if !r.open {
		return
	}
	r.open = false
	if r.ahead != nil {
		close(r.quit)
		<-r.finished
		for f := range r.ahead {
			if f.rec != nil {
				f.rec.Release()
			}
		}
	}
	r.releasePending()
	bindings.DestroyArrowOptions(&r.opts)
	bindings.DestroyResult(&r.res)
	if r.stop != nil {
		r.stop()
	}
	if r.after != nil {
		r.after()
	}
}
