//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

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
	// types are the statement types the running request prepared.
	types []string

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
	if err := c.Exec(context.Background(), streamingBufferSQL); err != nil && !c.configLocked() {
		c.Close()
		return nil, fmt.Errorf("engine: set the connection's streaming buffer: %w", err)
	}
	return c, nil
}

// configLocked reports whether lock_configuration forbids every SET. The
// streaming buffer is a session setting DuckDB cannot set globally, so
// connections opened after the lock keep DuckDB's default.
func (c *Conn) configLocked() bool {
	r, err := c.Query(context.Background(), "SELECT current_setting('lock_configuration')", 1)
	if err != nil {
		return false
	}
	defer r.Close()
	rec, err := r.Next()
	if err != nil || rec == nil {
		return false
	}
	defer rec.Release()
	b, ok := rec.Column(0).(*array.Boolean)
	return ok && b.Len() == 1 && b.Value(0)
}

// streamingBufferSQL sizes the buffer in which DuckDB's threads leave a
// streaming result's chunks for the reader, as a session setting a client
// may still change. DuckDB's default of about 1 MB made a selective scan
// on 2 cores (500k of 10M rows, in chunks of ~100 rows) stream at half the
// speed of a 128-256 KB buffer, with results of full chunks no faster
// either way; 64 MB was 3x slower still. It grows with the cores so that
// more threads each keep a chunk or two in flight.
var streamingBufferSQL = fmt.Sprintf("SET streaming_buffer_size = '%dKB'", max(256, 128*runtime.NumCPU()))

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

// Progress reports how far the statement running on c has got: its
// percentage done and the rows processed so far, when DuckDB tracks it
// (SET enable_progress_bar = true). Safe to call from any goroutine.
func (c *Conn) Progress() (percent float64, rows uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, 0, false
	}
	p := bindings.QueryProgress(c.c)
	pct, rows, _ := bindings.QueryProgressTypeMembers(&p)
	return pct, rows, pct >= 0
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
	c.types = c.types[:0]
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
		t := bindings.PreparedStatementType(st)
		c.types = append(c.types, statementTypeName(t))
		if changesData(t) {
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
	r.types = types // freed by Close
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
	pending   []arrow.RecordBatch // batches waiting to be coalesced
	ended     bool                // DuckDB has no more chunks

	// Small chunks are gathered in acc, a chunk of DuckDB's own, before
	// conversion; src is the chunk being copied from, from row srcOff.
	types   []bindings.LogicalType
	acc     bindings.DataChunk
	accRows int
	src     bindings.DataChunk
	srcOff  int
	srcRows int

	// DuckDB fills batches on a goroutine of its own, a few batches ahead
	// of the reader, so producing the next batch overlaps with sending the
	// last one.
	ahead    chan fetched
	quit     chan struct{}
	finished chan struct{}
	started  bool // the first batch was read, without a goroutine
	last     bool // and it was the last
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
		if r.last {
			return nil, nil
		}
		if !r.started {
			// The first batch is read here: a small result (most of
			// them) is then answered without a goroutine of its own and
			// the hand-offs between threads it costs.
			r.started = true
			rec, err := r.fetchGuarded()
			if err != nil || rec == nil || r.done {
				r.last = true
				return rec, err
			}
			r.readAhead()
			return rec, nil
		}
		r.readAhead()
	}
	f, ok := <-r.ahead
	if !ok {
		return nil, nil
	}
	return f.rec, f.err
}

// readAhead starts the goroutine that produces the rest of the result.
func (r *Rows) readAhead() {
	r.ahead = make(chan fetched, readAhead)
	r.quit = make(chan struct{})
	r.finished = make(chan struct{})
	go r.produce()
}

// fetchGuarded is fetch with a panic turned into the result's error: the
// reading goroutine is the statement's too, and a panic there fails the
// result, not the server.
func (r *Rows) fetchGuarded() (rec arrow.RecordBatch, err error) {
	err = recovery.Do(nil, recovery.Statement, "reading the result", func() (err error) {
		if r.schema.NumFields() > 0 {
			recovery.Inject("result", r.schema.Field(0).Name)
		}
		rec, err = r.fetch()
		return err
	})
	return rec, err
}

func (r *Rows) produce() {
	defer close(r.finished)
	defer close(r.ahead)
	for {
		rec, err := r.fetchGuarded()
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
		rec, err := r.compacted()
		if err != nil {
			r.done = true
			r.releasePending()
			return nil, err
		}
		if rec == nil {
			r.done = true
			break
		}
		r.pending = append(r.pending, rec)
		rows += int(rec.NumRows())
	}
	return r.coalesce()
}

// compacted returns the next Arrow batch of at least min(batchRows, 2048)
// rows, or fewer at the end, or (nil, nil) after the end.
//
// A selective filter makes DuckDB emit chunks of a few rows each. They are
// copied into one DuckDB chunk of 2,048 rows, which is then converted to
// Arrow once: converting every small chunk and joining the Arrow arrays
// costs several times more. A chunk that is large enough on its own is
// converted as it is, with no copy.
func (r *Rows) compacted() (arrow.RecordBatch, error) {
	target := min(r.batchRows, vectorSize)
	for {
		if r.src.Ptr == nil {
			if r.ended {
				return nil, nil
			}
			chunk := bindings.FetchChunk(r.res)
			if chunk.Ptr == nil {
				r.ended = true
				if msg := bindings.ResultError(&r.res); msg != "" || r.ctx.Err() != nil {
					return nil, failure(r.ctx, msg)
				}
				if r.accRows > 0 {
					return r.flushAcc()
				}
				return nil, nil
			}
			n := int(bindings.DataChunkGetSize(chunk))
			if r.accRows == 0 && n >= target {
				rec, err := r.toArrow(chunk)
				bindings.DestroyDataChunk(&chunk)
				return rec, err
			}
			r.src, r.srcOff, r.srcRows = chunk, 0, n
		}
		if r.acc.Ptr == nil {
			r.acc = bindings.CreateDataChunk(r.types)
		}
		k := min(r.srcRows-r.srcOff, vectorSize-r.accRows)
		sel := identitySel()
		for i := range r.types {
			col := bindings.IdxT(i)
			bindings.VectorCopySel(bindings.DataChunkGetVector(r.src, col), bindings.DataChunkGetVector(r.acc, col),
				sel, bindings.IdxT(r.srcOff+k), bindings.IdxT(r.srcOff), bindings.IdxT(r.accRows))
		}
		r.srcOff += k
		r.accRows += k
		if r.srcOff == r.srcRows {
			bindings.DestroyDataChunk(&r.src)
		}
		if r.accRows >= target {
			return r.flushAcc()
		}
	}
}

// flushAcc converts the rows gathered in r.acc and empties it for reuse.
func (r *Rows) flushAcc() (arrow.RecordBatch, error) {
	bindings.DataChunkSetSize(r.acc, bindings.IdxT(r.accRows))
	rec, err := r.toArrow(r.acc)
	bindings.DataChunkReset(r.acc)
	r.accRows = 0
	return rec, err
}

func (r *Rows) toArrow(chunk bindings.DataChunk) (arrow.RecordBatch, error) {
	rec, ed := bindings.DataChunkToArrowArray(r.opts, r.schema, chunk)
	defer bindings.DestroyErrorData(&ed)
	if bindings.ErrorDataHasError(ed) {
		return nil, fmt.Errorf("convert result chunk to Arrow: %s", bindings.ErrorDataMessage(ed))
	}
	return rec, nil
}

// vectorSize is the rows of a DuckDB chunk, STANDARD_VECTOR_SIZE.
var vectorSize = int(bindings.VectorSize())

var (
	selOnce sync.Once
	sel     bindings.SelectionVector
)

// identitySel is a selection vector of 0 .. vectorSize-1, shared by all
// results and never freed: DuckDB only reads it.
func identitySel() bindings.SelectionVector {
	selOnce.Do(func() {
		sel = bindings.CreateSelectionVector(bindings.IdxT(vectorSize))
		idx := unsafe.Slice((*uint32)(unsafe.Pointer(bindings.SelectionVectorGetDataPtr(sel))), vectorSize)
		for i := range idx {
			idx[i] = uint32(i)
		}
	})
	return sel
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
	bindings.DestroyDataChunk(&r.src)
	bindings.DestroyDataChunk(&r.acc)
	for i := range r.types {
		bindings.DestroyLogicalType(&r.types[i])
	}
	bindings.DestroyArrowOptions(&r.opts)
	bindings.DestroyResult(&r.res)
	if r.stop != nil {
		r.stop()
	}
	if r.after != nil {
		r.after()
	}
}
