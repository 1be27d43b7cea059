package iceberg

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	_ "github.com/duckdb/duckdb-go/v2"
)

func TestDuckType(t *testing.T) {
	for typ, want := range map[iceberg.Type]string{
		iceberg.PrimitiveTypes.Int32: "INTEGER", iceberg.PrimitiveTypes.Int64: "BIGINT",
		iceberg.PrimitiveTypes.String: "VARCHAR", iceberg.DecimalTypeOf(10, 2): "DECIMAL(10, 2)",
		iceberg.PrimitiveTypes.TimestampTz: "TIMESTAMP WITH TIME ZONE", iceberg.PrimitiveTypes.Date: "DATE",
	} {
		if got, err := duckType(typ); err != nil || got != want {
			t.Errorf("duckType(%s) = %q, %v; want %q", typ, got, err, want)
		}
	}
	list := &iceberg.ListType{ElementID: 9, Element: iceberg.PrimitiveTypes.Int32}
	if _, err := duckType(list); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("list type: %v", err)
	}
}

func TestPruningBounds(t *testing.T) {
	long := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
	lo, _ := decodeBound(long(10), iceberg.PrimitiveTypes.Int64)
	hi, _ := decodeBound(long(20), iceberg.PrimitiveTypes.Int64)
	for _, c := range []struct {
		op   string
		v    string
		want bool
	}{
		{"=", "15", true}, {"=", "9", false}, {"=", "21", false}, {"<", "10", false}, {"<=", "10", true},
		{">", "20", false}, {">=", "20", true}, {">", "19.5", true},
	} {
		lit, ok := literal(Filter{Column: "x", Op: c.op, Value: c.v}, iceberg.PrimitiveTypes.Int64)
		if !ok {
			t.Fatalf("literal %s", c.v)
		}
		if got := mayMatch(c.op, lit, lo, hi); got != c.want {
			t.Errorf("x %s %s in [10, 20]: %v, want %v", c.op, c.v, got, c.want)
		}
	}
	// A string literal against a number column is never used to prune.
	if _, ok := literal(Filter{Op: "=", Value: "15", String: true}, iceberg.PrimitiveTypes.Int64); ok {
		t.Error("string literal compared with a long")
	}
}

func TestParseMetadata(t *testing.T) {
	for _, c := range []struct{ json, err string }{
		{`{"format-version": 4}`, "format-version 4"},
		{`{"format-version": 2, "current-schema-id": 3, "schemas": [{"type": "struct", "schema-id": 0, "fields": []}]}`, "current-schema-id 3"},
		{`{`, "unexpected end"},
	} {
		if _, err := parseMetadata([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.json, err, c.err)
		}
	}
	m, err := parseMetadata([]byte(`{"format-version": 1, "location": "s3://b/t", "schema": {"type": "struct", "schema-id": 0,
		"fields": [{"id": 1, "name": "a", "required": true, "type": "long"}]}, "current-snapshot-id": -1}`))
	if err != nil || m.CurrentSchema() == nil || m.CurrentSnapshot() != nil {
		t.Fatalf("v1 metadata: %+v, %v", m, err)
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{"file:///a/b": "/a/b", "file:/a/b": "/a/b", "/a/b": "/a/b", "s3://x/y": "s3://x/y"} {
		if got := LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// localFiles serves a table's files from local disk.
type localFiles struct{}

func (localFiles) Local(_ context.Context, uri string) (string, error) {
	p := LocalPath(uri)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w", uri, ErrNotFound)
	}
	return p, nil
}

func (f localFiles) LocalAll(ctx context.Context, uris []string) ([]string, error) {
	out := make([]string, len(uris))
	for i, u := range uris {
		var err error
		if out[i], err = f.Local(ctx, u); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (localFiles) Scratch() (string, error) { return os.MkdirTemp("", "iceberg-scratch-") }

// writeParquet writes int64 and string columns; ids[i] < 0 leaves
// column i without a Parquet field id.
func writeParquet(t *testing.T, path string, names []string, ids []int, cols ...any) int64 {
	t.Helper()
	fields := make([]arrow.Field, len(names))
	arrays := make([]arrow.Array, len(names))
	for i, name := range names {
		var md arrow.Metadata
		if ids[i] >= 0 {
			md = arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{fmt.Sprint(ids[i])})
		}
		switch v := cols[i].(type) {
		case []int64:
			b := array.NewInt64Builder(memory.DefaultAllocator)
			b.AppendValues(v, nil)
			arrays[i] = b.NewArray()
			fields[i] = arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64, Nullable: true, Metadata: md}
		case []string:
			b := array.NewStringBuilder(memory.DefaultAllocator)
			b.AppendValues(v, nil)
			arrays[i] = b.NewArray()
			fields[i] = arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true, Metadata: md}
		}
	}
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, arrays, int64(arrays[0].Len()))
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return rec.NumRows()
}

// migratedTable writes a one-snapshot table over the given data files
// (path → row count) with the given table properties.
func migratedTable(t *testing.T, dir string, schema *iceberg.Schema, files map[string]int64, props map[string]string) {
	t.Helper()
	spec := iceberg.NewPartitionSpecID(0)
	snap := int64(7)
	var entries []iceberg.ManifestEntry
	for _, p := range slices.Sorted(maps.Keys(files)) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, p, iceberg.ParquetFile, nil, nil, nil, files[p], st.Size())
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, iceberg.NewManifestEntry(iceberg.EntryStatusADDED, &snap, nil, nil, b.Build()))
	}
	var buf bytes.Buffer
	mpath := filepath.Join(dir, "metadata", "m0.avro")
	mf, err := iceberg.WriteManifest(mpath, &buf, 2, spec, schema, snap, entries)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(mpath, buf.Bytes())
	buf.Reset()
	seq := int64(1)
	if err := iceberg.WriteManifestList(2, &buf, snap, nil, &seq, 0, []iceberg.ManifestFile{mf}); err != nil {
		t.Fatal(err)
	}
	lpath := filepath.Join(dir, "metadata", "snap-7.avro")
	write(lpath, buf.Bytes())
	md, err := json.Marshal(map[string]any{
		"format-version": 2, "location": dir, "current-schema-id": schema.ID, "schemas": []*iceberg.Schema{schema},
		"partition-specs": []iceberg.PartitionSpec{spec}, "current-snapshot-id": snap, "properties": props,
		"snapshots": []map[string]any{{"snapshot-id": snap, "sequence-number": 1, "timestamp-ms": 1700000000000, "manifest-list": lpath}},
	})
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "metadata", "v1.metadata.json"), md)
	write(filepath.Join(dir, "metadata", "version-hint.text"), []byte("1"))
}

func queryAll(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		s := make([]string, len(vals))
		for i, v := range vals {
			s[i] = "NULL"
			if v.Valid {
				s[i] = v.String
			}
		}
		out = append(out, strings.Join(s, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// TestScanWithoutFieldIDs covers files written without Parquet field ids:
// read by name through schema.name-mapping.default (including a column
// renamed since, whose old name the mapping lists, and a column added
// since, which reads NULL), next to a file with field ids; without a
// mapping the scan fails naming the file.
func TestScanWithoutFieldIDs(t *testing.T) {
	dir := t.TempDir()
	schema := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64},
		iceberg.NestedField{ID: 2, Name: "full_name", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 3, Name: "city", Type: iceberg.PrimitiveTypes.String})
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "data", "old.parquet")
	oldOther := filepath.Join(dir, "data", "old2.parquet")
	withIDs := filepath.Join(dir, "data", "new.parquet")
	files := map[string]int64{
		// Hive-era files: the column was "name" then, and "extra" is not
		// part of the table; no city yet.
		old:      writeParquet(t, old, []string{"id", "name", "extra"}, []int{-1, -1, -1}, []int64{1, 2}, []string{"a", "b"}, []string{"x", "y"}),
		oldOther: writeParquet(t, oldOther, []string{"name", "id"}, []int{-1, -1}, []string{"c"}, []int64{3}),
		withIDs:  writeParquet(t, withIDs, []string{"id", "full_name", "city"}, []int{1, 2, 3}, []int64{4}, []string{"d"}, []string{"Oslo"}),
	}
	mapping := `[{"field-id": 1, "names": ["id"]}, {"field-id": 2, "names": ["full_name", "name"]}, {"field-id": 3, "names": ["city"]}]`
	ctx := context.Background()

	mapped := filepath.Join(dir, "mapped")
	migratedTable(t, mapped, schema, files, map[string]string{nameMappingProperty: mapping})
	tb, err := Open(ctx, "iceberg_scan", localFiles{}, mapped, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, plan, err := tb.Scan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.DataFiles != 3 || plan.NameMapped != 2 {
		t.Fatalf("plan %+v, want 3 data files, 2 read by name", plan)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := []string{"1|a|NULL", "2|b|NULL", "3|c|NULL", "4|d|Oslo"}
	if got := queryAll(t, db, "SELECT * FROM "+q+" ORDER BY id"); !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q\nSQL: %s", got, want, q)
	}
	if got := queryAll(t, db, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+q+")"); !slices.Equal(got,
		[]string{"id|BIGINT", "full_name|VARCHAR", "city|VARCHAR"}) {
		t.Fatalf("columns %q", got)
	}

	// Without a mapping: a clear error naming the file, never NULLs.
	bare := filepath.Join(dir, "bare")
	migratedTable(t, bare, schema, files, nil)
	tb, err = Open(ctx, "iceberg_scan", localFiles{}, bare, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tb.Scan(ctx, nil); err == nil || !strings.Contains(err.Error(), "has no Parquet field ids") ||
		!strings.Contains(err.Error(), "schema.name-mapping.default") || !strings.Contains(err.Error(), "data/old") {
		t.Fatalf("scan without a name mapping: %v", err)
	}
	// A table whose files all have field ids needs no mapping.
	ok := filepath.Join(dir, "ok")
	migratedTable(t, ok, schema, map[string]int64{withIDs: 1}, nil)
	if tb, err = Open(ctx, "iceberg_scan", localFiles{}, ok, Options{}); err != nil {
		t.Fatal(err)
	}
	if q, plan, err = tb.Scan(ctx, nil); err != nil || plan.NameMapped != 0 || strings.Contains(q, "union_by_name") {
		t.Fatalf("scan with field ids: %+v %v\n%s", plan, err, q)
	}
	// A malformed mapping, and one that maps two columns to one id.
	for m, msg := range map[string]string{
		`{"field-id": 1}`: "is not a valid name mapping",
		`[{"field-id": 1, "names": ["id"]}, {"field-id": 1, "names": ["name"]}]`: `columns "id" and "name" both map to field id 1`,
	} {
		bad := filepath.Join(dir, "bad")
		os.RemoveAll(bad)
		migratedTable(t, bad, schema, files, map[string]string{nameMappingProperty: m})
		if tb, err = Open(ctx, "iceberg_scan", localFiles{}, bad, Options{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := tb.Scan(ctx, nil); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("mapping %s: %v, want %q", m, err, msg)
		}
	}
}

func TestReadColumnsCached(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.parquet")
	writeParquet(t, p, []string{"a", "b"}, []int{5, -1}, []int64{1}, []string{"x"})
	c, err := readColumns(p)
	if err != nil || !slices.Equal(c.names, []string{"a", "b"}) || !slices.Equal(c.ids, []int{5, -1}) || c.complete() {
		t.Fatalf("readColumns: %+v %v", c, err)
	}
	// A hard link (as object-store files are laid out per statement) is
	// the same file: served from the cache, even once the footer is gone.
	link := p + ".link"
	if err := os.Link(p, link); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 16), st.Size()-16); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if c2, err := readColumns(link); err != nil || !slices.Equal(c2.ids, c.ids) {
		t.Fatalf("cached footer through a link: %+v %v", c2, err)
	}
	// A new version of the file is read again (and is no Parquet now).
	if err := os.Chtimes(p, st.ModTime(), st.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := readColumns(p); err == nil {
		t.Fatal("changed file served from the cache")
	}
	if _, err := readColumns(filepath.Join(t.TempDir(), "none.parquet")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestGunzipStopsAtTheLimit(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(`{"a": "`))
	chunk := bytes.Repeat([]byte("a"), 1<<20)
	for range MaxMetadataBytes>>20 + 1 {
		zw.Write(chunk)
	}
	zw.Close()
	if _, err := gunzip(b.Bytes()); err == nil || !strings.Contains(err.Error(), "more than 128 MiB") {
		t.Fatalf("bomb: %v", err)
	}
	b.Reset()
	zw = gzip.NewWriter(&b)
	zw.Write([]byte(`{"format-version": 2}`))
	zw.Close()
	if got, err := gunzip(b.Bytes()); err != nil || string(got) != `{"format-version": 2}` {
		t.Fatalf("real file: %q %v", got, err)
	}
}
