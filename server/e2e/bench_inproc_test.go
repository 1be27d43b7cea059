//go:build duckdb_arrow

package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/engine"
)

// benchConn is one connection of a benchmarked side: Luna over TCP, or
// DuckDB in the benchmark's own process. query hands every record batch of
// the result to visit, which must not keep it.
type benchConn interface {
	query(ctx context.Context, sql string, visit func(arrow.RecordBatch)) error
	exec(ctx context.Context, sql string) error
	close()
}

// benchSide opens connections to one side, one per client goroutine.
type benchSide struct {
	name string
	dial func(tb testing.TB) benchConn
}

// engineSide is the fastest in-process path: Luna's own engine package,
// which streams results with DuckDB's pending streaming execution and
// converts its chunks with DuckDB's Arrow export, exactly as the server
// does, but without the socket and the IPC encoding.
func engineSide(tb testing.TB, threads int) (benchSide, *engine.DB) {
	db, err := engine.Open(engine.Options{Threads: threads, Compress: true})
	if err != nil {
		tb.Fatalf("open the in-process engine: %v", err)
	}
	var mu sync.Mutex
	var conns []*engine.Conn
	tb.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		db.Close()
	})
	return benchSide{name: "in-process, Luna's engine (streaming)", dial: func(tb testing.TB) benchConn {
		c, err := db.Connect()
		if err != nil {
			tb.Fatalf("connect to the in-process engine: %v", err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return engineConn{c}
	}}, db
}

type engineConn struct{ c *engine.Conn }

// batchRows is the server's default --batch-rows.
const batchRows = 2048

func (e engineConn) query(ctx context.Context, sql string, visit func(arrow.RecordBatch)) error {
	rows, err := e.c.Query(ctx, sql, batchRows)
	if err != nil {
		return err
	}
	defer rows.Close()
	for {
		rec, err := rows.Next()
		if err != nil {
			return err
		}
		if rec == nil {
			return nil
		}
		visit(rec)
		rec.Release()
	}
}

func (e engineConn) exec(ctx context.Context, sql string) error { return e.c.Exec(ctx, sql) }

// close leaves the connection to the side's cleanup, which closes it
// before the database.
func (e engineConn) close() {}

// duckdbGoSide is duckdb-go's Arrow API (duckdb.Arrow.QueryContext), which
// materialises a result inside DuckDB before handing out its chunks. With
// compress, the connection's tables go to a compressed in-memory database
// checkpointed as Luna's are; without, to DuckDB's default uncompressed one.
func duckdbGoSide(tb testing.TB, threads int, compress bool) (benchSide, *sql.DB) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		tb.Fatalf("open duckdb-go: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	// Settings and ATTACH are per database, so one connection suffices;
	// USE is per connection, so each connection repeats it.
	if threads > 0 {
		if _, err := db.Exec(fmt.Sprintf("SET threads = %d", threads)); err != nil {
			tb.Fatalf("set threads: %v", err)
		}
	}
	if compress {
		if _, err := db.Exec("ATTACH ':memory:' AS packed (COMPRESS)"); err != nil {
			tb.Fatalf("attach the compressed database: %v", err)
		}
	}
	return benchSide{name: "in-process, duckdb-go Arrow API", dial: func(tb testing.TB) benchConn {
		conn, err := db.Conn(context.Background())
		if err != nil {
			tb.Fatalf("duckdb-go connection: %v", err)
		}
		if compress {
			if _, err := conn.ExecContext(context.Background(), "USE packed"); err != nil {
				tb.Fatalf("use the compressed database: %v", err)
			}
		}
		a := &arrowConn{conn: conn}
		err = conn.Raw(func(dc any) error {
			a.arrow, err = duckdb.NewArrowFromConn(dc.(driver.Conn))
			return err
		})
		if err != nil {
			tb.Fatalf("duckdb-go Arrow: %v", err)
		}
		tb.Cleanup(a.close)
		return a
	}}, db
}

type arrowConn struct {
	conn  *sql.Conn
	arrow *duckdb.Arrow
	once  sync.Once
}

func (a *arrowConn) query(ctx context.Context, sql string, visit func(arrow.RecordBatch)) error {
	r, err := a.arrow.QueryContext(ctx, sql)
	if err != nil {
		return err
	}
	defer r.Release()
	for r.Next() {
		visit(r.RecordBatch())
	}
	return r.Err()
}

func (a *arrowConn) exec(ctx context.Context, sql string) error {
	_, err := a.conn.ExecContext(ctx, sql)
	return err
}

func (a *arrowConn) close() { a.once.Do(func() { a.conn.Close() }) }

// lunaSide is the server over loopback TCP through the Go client.
func lunaSide(p *proc) benchSide {
	return benchSide{name: "through luna over TCP", dial: func(tb testing.TB) benchConn {
		return lunaConn{p.dial(tb, client.Options{})}
	}}
}

type lunaConn struct{ c *client.Conn }

func (l lunaConn) query(ctx context.Context, sql string, visit func(arrow.RecordBatch)) error {
	rows, err := l.c.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		visit(rows.RecordBatch())
	}
	return rows.Err()
}

func (l lunaConn) exec(ctx context.Context, sql string) error { return l.c.Exec(ctx, sql) }

func (l lunaConn) close() { l.c.Close() }

// checksum is what decoding a result saw: every value of every column is
// read, as a client that uses the result would. Integer and string sums
// must agree exactly between sides; float sums, whose order of addition
// DuckDB's parallel aggregation varies, to a relative 1e-9.
type checksum struct {
	rows, ints, strBytes, nulls int64
	floats                      float64
}

func (s checksum) matches(o checksum) bool {
	if s.rows != o.rows || s.ints != o.ints || s.strBytes != o.strBytes || s.nulls != o.nulls {
		return false
	}
	d := s.floats - o.floats
	return d == 0 || d*d <= 1e-18*s.floats*s.floats
}

// add reads every value of rec.
func (s *checksum) add(rec arrow.RecordBatch) error {
	s.rows += rec.NumRows()
	for _, col := range rec.Columns() {
		s.nulls += int64(col.NullN())
		switch a := col.(type) {
		case *array.Int64:
			s.ints += sumValues(a, a.Int64Values())
		case *array.Int32:
			s.ints += sumValues(a, a.Int32Values())
		case *array.Timestamp:
			s.ints += sumValues(a, a.TimestampValues())
		case *array.Decimal128:
			for i := range a.Len() {
				if a.IsValid(i) {
					s.ints += int64(a.Value(i).LowBits())
				}
			}
		case *array.Float64:
			vals := a.Float64Values()
			for i, v := range vals {
				if a.NullN() == 0 || a.IsValid(i) {
					s.floats += v
				}
			}
		case *array.String:
			for i := range a.Len() {
				if a.IsValid(i) {
					s.strBytes += int64(len(a.Value(i)))
				}
			}
		case *array.LargeString:
			for i := range a.Len() {
				if a.IsValid(i) {
					s.strBytes += int64(len(a.Value(i)))
				}
			}
		default:
			return fmt.Errorf("decode column of type %s: not handled", col.DataType())
		}
	}
	return nil
}

func sumValues[T ~int32 | ~int64](a arrow.Array, vals []T) (n int64) {
	if a.NullN() == 0 {
		for _, v := range vals {
			n += int64(v)
		}
		return n
	}
	for i, v := range vals {
		if a.IsValid(i) {
			n += int64(v)
		}
	}
	return n
}

// inProcess is DuckDB's Arrow interface on one in-process connection, for
// the benchmarks that compare single results.
type inProcess struct {
	mu    sync.Mutex
	arrow *duckdb.Arrow
}

// openInProcess opens an in-memory database in the benchmark's process;
// threads > 0 sets DuckDB's thread count.
func openInProcess(b *testing.B, threads int) *inProcess {
	side, _ := duckdbGoSide(b, threads, false)
	return &inProcess{arrow: side.dial(b).(*arrowConn).arrow}
}

func (ip *inProcess) QueryContext(ctx context.Context, q string) (array.RecordReader, error) {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	return ip.arrow.QueryContext(ctx, q)
}
