//go:build duckdb_arrow

package engine

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// sparseSQL is a result of many types whose chunks a selective filter
// leaves with about a hundred rows each: NULLs, inlined and heap strings,
// nested types, constants, ENUM, DECIMAL, BLOB and fixed-size arrays.
const sparseSQL = `SELECT i,
  i::VARCHAR || repeat('x', (i % 40)::INTEGER) AS s,
  CASE WHEN i % 3 = 0 THEN NULL ELSE i END AS n,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 'nullable string ' || i END AS ns,
  [i, i + 1, NULL] AS l,
  {'a': i, 'b': 'v' || i} AS st,
  map([i], ['m' || i]) AS m,
  [['deep' || i], []] AS ll,
  (i / 7)::DECIMAL(18, 3) AS d,
  TIMESTAMP '2024-01-01' + to_seconds(i) AS ts,
  'constant' AS c,
  (['a', 'b', 'c'][(i % 3 + 1)::INTEGER])::mood AS e,
  ('blob' || i)::BLOB AS bl,
  [i, i * 2]::BIGINT[2] AS arr,
  i % 2 = 0 AS b,
  (i / 3.0)::DOUBLE AS f
FROM range(300000) t(i) WHERE hash(i) % 20 = 0`

// readAll returns every batch of the result.
func readAll(t *testing.T, r *Rows) []arrow.RecordBatch {
	t.Helper()
	defer r.Close()
	var recs []arrow.RecordBatch
	for {
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if rec == nil {
			return recs
		}
		recs = append(recs, rec)
	}
}

func joined(t *testing.T, schema *arrow.Schema, recs []arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	cols := make([]arrow.Array, schema.NumFields())
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	for i := range cols {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		col, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		cols[i] = col
	}
	return array.NewRecordBatch(schema, cols, rows)
}

// TestCompactedSmallChunks checks that small chunks gathered into full
// batches hold exactly the values of the chunks converted one by one
// (batchRows 1 converts every chunk as it is), whatever the types.
func TestCompactedSmallChunks(t *testing.T) {
	_, c := open(t)
	if err := c.Exec(context.Background(), "CREATE TYPE mood AS ENUM ('a', 'b', 'c')"); err != nil {
		t.Fatal(err)
	}
	query := func(batchRows int) (*arrow.Schema, []arrow.RecordBatch) {
		r, err := c.Query(context.Background(), sparseSQL, batchRows)
		if err != nil {
			t.Fatal(err)
		}
		return r.Schema(), readAll(t, r)
	}
	schema, plain := query(1)
	if len(plain) < 100 {
		t.Fatalf("%d chunks: the filter should leave many small ones", len(plain))
	}
	want := joined(t, schema, plain)
	for _, batchRows := range []int{100, 2048, 5000} {
		s, recs := query(batchRows)
		for i, r := range recs {
			n := int(r.NumRows())
			last := i == len(recs)-1
			if !last && n < batchRows {
				t.Errorf("batchRows %d: batch %d has %d rows", batchRows, i, n)
			}
			if batchRows == 2048 && !last && n != 2048 {
				t.Errorf("batchRows 2048: batch %d has %d rows, want full batches", i, n)
			}
		}
		got := joined(t, s, recs)
		if !array.RecordEqual(got, want) {
			t.Errorf("batchRows %d: values differ from the chunks converted one by one", batchRows)
		}
		got.Release()
		for _, r := range recs {
			r.Release()
		}
	}
	want.Release()
	for _, r := range plain {
		r.Release()
	}
}

// TestCloseMidCompaction closes results whose chunk is half copied, and
// reuses the connection after.
func TestCloseMidCompaction(t *testing.T) {
	_, c := open(t)
	for range 20 {
		r, err := c.Query(context.Background(), "SELECT i, 'some longer string ' || i AS s FROM range(1000000) t(i) WHERE hash(i) % 10 = 0", 2048)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := r.Next()
		if err != nil || rec == nil {
			t.Fatalf("first batch: %v, %v", rec, err)
		}
		rec.Release()
		r.Close()
	}
	if got := scalar(t, c, "SELECT count(*)::VARCHAR FROM range(10)"); got != "10" {
		t.Fatalf("count = %s", got)
	}
}

// TestConnectAfterLock opens connections once lock_configuration forbids
// the streaming buffer's SET.
func TestConnectAfterLock(t *testing.T) {
	db, c := open(t)
	if got := scalar(t, c, "SELECT current_setting('streaming_buffer_size')::VARCHAR"); got == "976.5 KiB" {
		t.Fatalf("streaming_buffer_size = %s, DuckDB's default", got)
	}
	if err := db.LockConfiguration(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2, err := db.Connect()
	if err != nil {
		t.Fatalf("connect after the lock: %v", err)
	}
	defer c2.Close()
	if got := scalar(t, c2, "SELECT count(*)::VARCHAR FROM range(3)"); got != "3" {
		t.Fatalf("count = %s", got)
	}
}
