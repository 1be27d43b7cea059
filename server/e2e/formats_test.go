//go:build duckdb_arrow

package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	le "encoding/binary"
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
	"github.com/xuri/excelize/v2"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// queryRows runs sql and returns each row as its values joined by '|',
// NULL for nulls.
func queryRows(t testing.TB, c *client.Conn, sql string) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		rec := rows.RecordBatch()
		for r := 0; r < int(rec.NumRows()); r++ {
			vals := make([]string, rec.NumCols())
			for k, col := range rec.Columns() {
				if col.IsNull(r) {
					vals[k] = "NULL"
				} else {
					vals[k] = col.ValueStr(r)
				}
			}
			out = append(out, strings.Join(vals, "|"))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func wantRows(t testing.TB, c *client.Conn, sql string, want ...string) {
	t.Helper()
	got := queryRows(t, c, sql)
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\ngot  %q\nwant %q", sql, got, want)
	}
}

func wantError(t testing.TB, c *client.Conn, sql string, parts ...string) {
	t.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err == nil {
		t.Fatalf("%s: no error, want one with %q", sql, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: error %q does not contain %q", sql, err, p)
		}
	}
}

// --- Excel ---

// salesWorkbook writes a workbook with three sheets:
//
//	Sales: a header row; numbers, text, dates, timestamps, booleans, an
//	       empty cell, and a number that is text in one row.
//	Raw:   no header, numbers only, then an empty row and more rows.
//	Mixed: a column whose first value is a number and later one text.
func salesWorkbook(t testing.TB, path string) {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.SetSheetName("Sheet1", "Sales"))
	dateStyle, err := f.NewStyle(&excelize.Style{NumFmt: 14})
	must(err)
	tsFmt := "yyyy-mm-dd hh:mm:ss"
	tsStyle, err := f.NewStyle(&excelize.Style{CustomNumFmt: &tsFmt})
	must(err)
	must(f.SetSheetRow("Sales", "A1", &[]any{"id", "name", "amount", "day", "stamp", "paid"}))
	day := func(s string) time.Time {
		d, err := time.Parse("2006-01-02 15:04:05", s)
		must(err)
		return d
	}
	rows := [][]any{
		{1, "alice", 10.5, day("2025-01-31 00:00:00"), day("2025-01-31 10:30:00"), true},
		{2, "bob", 20, day("2025-02-01 00:00:00"), day("2025-02-01 08:00:15"), false},
		{3, "carol", nil, day("2025-02-02 00:00:00"), day("2025-02-02 23:59:59"), true},
		{4, "dave", 40.25, day("2025-02-03 00:00:00"), day("2025-02-03 12:00:00"), false},
	}
	for i, r := range rows {
		cell := fmt.Sprintf("A%d", i+2)
		must(f.SetSheetRow("Sales", cell, &r))
		must(f.SetCellStyle("Sales", fmt.Sprintf("D%d", i+2), fmt.Sprintf("D%d", i+2), dateStyle))
		must(f.SetCellStyle("Sales", fmt.Sprintf("E%d", i+2), fmt.Sprintf("E%d", i+2), tsStyle))
	}

	_, err = f.NewSheet("Raw")
	must(err)
	must(f.SetSheetRow("Raw", "A1", &[]any{1, 2}))
	must(f.SetSheetRow("Raw", "A2", &[]any{3, 4}))
	// Row 3 is empty.
	must(f.SetSheetRow("Raw", "A4", &[]any{5, 6}))

	_, err = f.NewSheet("Mixed")
	must(err)
	must(f.SetSheetRow("Mixed", "A1", &[]any{"n", "note"}))
	must(f.SetSheetRow("Mixed", "A2", &[]any{1, nil}))
	must(f.SetSheetRow("Mixed", "A3", &[]any{2, "x"}))
	must(f.SetSheetRow("Mixed", "A4", &[]any{"three", "y"}))
	must(f.SetSheetRow("Mixed", "A5", &[]any{4, nil}))
	must(f.SaveAs(path))
}

func TestExcelRead(t *testing.T) {
	dir := t.TempDir()
	book := filepath.Join(dir, "sales.xlsx")
	salesWorkbook(t, book)
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	q := func(s string) string { return strings.ReplaceAll(s, "BOOK", book) }

	// Types come from the first data row and the cells' number formats.
	wantRows(t, c, q("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_xlsx('BOOK'))"),
		"id|DOUBLE", "name|VARCHAR", "amount|DOUBLE", "day|DATE", "stamp|TIMESTAMP", "paid|BOOLEAN")
	wantRows(t, c, q("SELECT id, name, amount, day::VARCHAR, stamp::VARCHAR, paid FROM read_xlsx('BOOK') ORDER BY id"),
		"1|alice|10.5|2025-01-31|2025-01-31 10:30:00|true",
		"2|bob|20|2025-02-01|2025-02-01 08:00:15|false",
		"3|carol|NULL|2025-02-02|2025-02-02 23:59:59|true",
		"4|dave|40.25|2025-02-03|2025-02-03 12:00:00|false")

	// A bare path in FROM, and CREATE TABLE … AS.
	wantRows(t, c, q("SELECT count(*), sum(amount) FROM 'BOOK'"), "4|70.75")
	if err := c.Exec(ctx, q("CREATE TABLE sales AS FROM 'BOOK'")); err != nil {
		t.Fatal(err)
	}
	wantRows(t, c, "SELECT name FROM sales WHERE paid ORDER BY id", "alice", "carol")

	// Another sheet, without a header: cells name the columns; the
	// empty row ends the read unless stop_at_empty = false.
	wantRows(t, c, q("SELECT * FROM read_xlsx('BOOK', sheet = 'Raw')"), "1|2", "3|4")
	wantRows(t, c, q("SELECT column_name FROM (DESCRIBE SELECT * FROM read_xlsx('BOOK', sheet = 'Raw'))"), "A1", "B1")
	wantRows(t, c, q("SELECT * FROM read_xlsx('BOOK', sheet = 'Raw', stop_at_empty = false)"), "1|2", "3|4", "NULL|NULL", "5|6")
	// header = true makes the first row names even when it holds numbers.
	wantRows(t, c, q("SELECT column_name FROM (DESCRIBE SELECT * FROM read_xlsx('BOOK', sheet = 'Raw', header = true))"), "1", "2")
	// header = false reads the header row of Sales as data, all text.
	wantRows(t, c, q("SELECT A1, B1 FROM read_xlsx('BOOK', header = false) LIMIT 2"), "id|name", "1|alice")

	// A range: no header (the first row in it holds a number), columns
	// named by letter, padding rows past the sheet's end.
	wantRows(t, c, q("SELECT * FROM read_xlsx('BOOK', range = 'B2:C3')"), "alice|10.5", "bob|20")
	wantRows(t, c, q("SELECT column_name FROM (DESCRIBE SELECT * FROM read_xlsx('BOOK', range = 'B2:C3'))"), "B", "C")
	wantRows(t, c, q("SELECT count(*), count(B) FROM read_xlsx('BOOK', range = 'B4:C8')"), "5|2")

	// Mixed types: the first value decides; a later cell that does not
	// fit is an error naming sheet and cell, NULL with ignore_errors,
	// and text with all_varchar.
	wantError(t, c, q("SELECT * FROM read_xlsx('BOOK', sheet = 'Mixed', range = 'A1:A5')"), `read_xlsx: sheet "Mixed" cell A4`, "'three'", "DOUBLE")
	wantError(t, c, q("SELECT * FROM read_xlsx('BOOK', sheet = 'Mixed')"), `read_xlsx: sheet "Mixed" cell B3`, "'x'", "DOUBLE")
	wantRows(t, c, q("SELECT n FROM read_xlsx('BOOK', sheet = 'Mixed', ignore_errors = true)"), "1", "2", "NULL", "4")
	wantRows(t, c, q("SELECT n, note FROM read_xlsx('BOOK', sheet = 'Mixed', all_varchar = true)"), "1|NULL", "2|x", "three|y", "4|NULL")
	// An empty first cell makes a DOUBLE column, or VARCHAR with
	// empty_as_varchar.
	wantRows(t, c, q("SELECT column_type FROM (DESCRIBE SELECT note FROM read_xlsx('BOOK', sheet = 'Mixed', ignore_errors = true))"), "DOUBLE")
	wantRows(t, c, q("SELECT column_type FROM (DESCRIBE SELECT note FROM read_xlsx('BOOK', sheet = 'Mixed', ignore_errors = true, empty_as_varchar = true))"), "VARCHAR")
	wantRows(t, c, q("SELECT note FROM read_xlsx('BOOK', sheet = 'Mixed', ignore_errors = true, empty_as_varchar = true)"), "NULL", "x", "y", "NULL")

	// Globs read the first file they match, as DuckDB's reader does.
	sub := filepath.Join(dir, "many")
	os.MkdirAll(sub, 0o755)
	salesWorkbook(t, filepath.Join(sub, "a.xlsx"))
	writeFile(t, sub, "b.xlsx", "not a workbook")
	wantRows(t, c, "SELECT count(*) FROM read_xlsx('"+sub+"/*.xlsx')", "4")

	// Bad input: clear errors.
	bad := writeFile(t, dir, "corrupt.xlsx", "PK\x03\x04 this is not a zip file")
	wantError(t, c, "SELECT * FROM read_xlsx('"+bad+"')", "read_xlsx", "corrupt.xlsx", "xlsx workbook")
	wantError(t, c, q("SELECT * FROM read_xlsx('BOOK', sheet = 'Nope')"), `sheet "Nope" not found`, "Sales, Raw, Mixed")
	wantError(t, c, q("SELECT * FROM read_xlsx('BOOK', range = 'B9:A1')"), "invalid range 'B9:A1'")
	wantError(t, c, q("SELECT * FROM read_xlsx('BOOK', colour = 'red')"), "unknown parameter colour")
	wantError(t, c, q("SELECT * FROM read_xlsx('BOOK', header = 'maybe')"), "header must be a BOOLEAN")
	wantError(t, c, "SELECT * FROM read_xlsx('"+dir+"/missing.xlsx')", "cannot open file", "missing.xlsx")
	wantError(t, c, "SELECT * FROM read_xlsx(42)", "path as a string literal")
	wantError(t, c, q("CREATE VIEW v AS FROM read_xlsx('BOOK')"), "VIEW", "CREATE TABLE")

	// COPY … TO xlsx writes a workbook DuckDB's reader reads back.
	out := filepath.Join(dir, "out.xlsx")
	if err := c.Exec(ctx, "COPY (SELECT id::INTEGER AS id, name, day, paid FROM sales ORDER BY id) TO '"+out+"' (FORMAT xlsx, HEADER true, SHEET 'Export')"); err != nil {
		t.Fatal(err)
	}
	wantRows(t, c, "SELECT id, name, day::VARCHAR, paid FROM read_xlsx('"+out+"', sheet = 'Export')",
		"1|alice|2025-01-31|true", "2|bob|2025-02-01|false", "3|carol|2025-02-02|true", "4|dave|2025-02-03|false")
	if err := c.Exec(ctx, "COPY (SELECT 1 AS x) TO '"+filepath.Join(dir, "plain.xlsx")+"'"); err != nil {
		t.Fatal(err)
	}
	wantRows(t, c, "SELECT * FROM read_xlsx('"+filepath.Join(dir, "plain.xlsx")+"')", "1")
	wantError(t, c, "COPY (SELECT 1) TO '"+filepath.Join(dir, "x.xlsx")+"' (FORMAT xlsx, SHEET_COLOUR 'red')", "SHEET_COLOUR is not supported")
}

func TestExcelInObjectStore(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "books")
	local := filepath.Join(t.TempDir(), "sales.xlsx")
	salesWorkbook(t, local)
	data, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "reports/2025/sales.xlsx", string(data))
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	wantRows(t, c, "SELECT name, day::VARCHAR FROM read_xlsx('s3://books/reports/2025/sales.xlsx') WHERE paid ORDER BY id",
		"alice|2025-01-31", "carol|2025-02-02")
	wantRows(t, c, "SELECT count(*) FROM 's3://books/reports/*/sales.xlsx'", "4")
	wantRows(t, c, "SELECT * FROM read_xlsx('s3://books/reports/2025/sales.xlsx', sheet = 'Raw')", "1|2", "3|4")
	// Unchanged, the workbook is not downloaded again.
	srv.Reset()
	wantRows(t, c, "SELECT count(*) FROM read_xlsx('s3://books/reports/2025/sales.xlsx')", "4")
	if n := srv.Counts()["get"]; n != 0 {
		t.Fatalf("warm read downloaded %d objects", n)
	}
	// COPY TO a bucket uploads the workbook.
	if err := c.Exec(ctx, "COPY (SELECT range AS n FROM range(3)) TO 's3://books/out/n.xlsx' (FORMAT xlsx, HEADER true)"); err != nil {
		t.Fatal(err)
	}
	objs, err := b.List(ctx, "out/")
	if err != nil || len(objs) != 1 || objs[0].Key != "out/n.xlsx" {
		t.Fatalf("uploaded %v, %v", objs, err)
	}
	wantRows(t, c, "SELECT n FROM 's3://books/out/n.xlsx'", "0", "1", "2")
	wantError(t, c, "SELECT * FROM read_xlsx('s3://books/missing.xlsx')", "No files found")
}

// --- Iceberg ---

// iceTable writes an Iceberg v2 table the way a writer does: Parquet
// data and delete files with field ids, Avro manifests and manifest lists
// through iceberg-go, and versioned metadata files with a version hint.
type iceTable struct {
	t        testing.TB
	dir      string // where files are written
	loc      string // the table location recorded in metadata
	upload   func(rel string)
	schemas  []*iceberg.Schema
	schemaID int
	spec     iceberg.PartitionSpec
	snaps    []map[string]any
	current  int64
	seq      int64
	version  int
	files    int
	now      time.Time
	manifest []iceberg.ManifestFile
	lastCol  int
	// noFieldIDs writes the next Parquet files without field ids, as
	// Hive and Spark's add_files leave them.
	noFieldIDs bool
	props      map[string]string // table properties
}

func newIceTable(t testing.TB, dir, loc string, schema *iceberg.Schema, spec iceberg.PartitionSpec) *iceTable {
	tb := &iceTable{t: t, dir: dir, loc: loc, schemas: []*iceberg.Schema{schema}, spec: spec, current: -1,
		now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), upload: func(string) {}, props: map[string]string{}}
	tb.lastCol = schema.HighestFieldID()
	tb.writeMetadata()
	return tb
}

func (tb *iceTable) schema() *iceberg.Schema {
	for _, s := range tb.schemas {
		if s.ID == tb.schemaID {
			return s
		}
	}
	tb.t.Fatal("no current schema")
	return nil
}

// evolve makes s (with a new id) the current schema.
func (tb *iceTable) evolve(s *iceberg.Schema) {
	tb.schemas = append(tb.schemas, s)
	tb.schemaID = s.ID
	tb.lastCol = max(tb.lastCol, s.HighestFieldID())
	tb.writeMetadata()
}

func (tb *iceTable) path(rel string) string { return tb.loc + "/" + rel }

func (tb *iceTable) write(rel string, data []byte) {
	tb.t.Helper()
	p := filepath.Join(tb.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.upload(rel)
}

// parquetFile writes columns (named by field id) as a Parquet file.
func (tb *iceTable) parquetFile(rel string, fields []iceberg.NestedField, cols ...any) int64 {
	tb.t.Helper()
	afields := make([]arrow.Field, len(fields))
	arrays := make([]arrow.Array, len(fields))
	for i, f := range fields {
		md := arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{fmt.Sprint(f.ID)})
		if tb.noFieldIDs {
			md = arrow.Metadata{}
		}
		switch v := cols[i].(type) {
		case []int64:
			b := array.NewInt64Builder(memory.DefaultAllocator)
			b.AppendValues(v, nil)
			arrays[i] = b.NewArray()
			afields[i] = arrow.Field{Name: f.Name, Type: arrow.PrimitiveTypes.Int64, Nullable: !f.Required, Metadata: md}
		case []string:
			b := array.NewStringBuilder(memory.DefaultAllocator)
			b.AppendValues(v, nil)
			arrays[i] = b.NewArray()
			afields[i] = arrow.Field{Name: f.Name, Type: arrow.BinaryTypes.String, Nullable: !f.Required, Metadata: md}
		case []float64:
			b := array.NewFloat64Builder(memory.DefaultAllocator)
			b.AppendValues(v, nil)
			arrays[i] = b.NewArray()
			afields[i] = arrow.Field{Name: f.Name, Type: arrow.PrimitiveTypes.Float64, Nullable: !f.Required, Metadata: md}
		default:
			tb.t.Fatalf("column type %T", v)
		}
	}
	schema := arrow.NewSchema(afields, nil)
	rec := array.NewRecordBatch(schema, arrays, int64(arrays[0].Len()))
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		tb.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.t.Fatal(err)
	}
	tb.write(rel, buf.Bytes())
	return int64(rec.NumRows())
}

func (tb *iceTable) newFile(ext string) string {
	tb.files++
	return fmt.Sprintf("data/%05d.%s", tb.files, ext)
}

// data writes a data file with the current schema's columns.
func (tb *iceTable) data(part map[int]any, cols ...any) iceberg.DataFile {
	rel := tb.newFile("parquet")
	n := tb.parquetFile(rel, tb.schema().Fields(), cols...)
	st, _ := os.Stat(filepath.Join(tb.dir, rel))
	b, err := iceberg.NewDataFileBuilder(tb.spec, iceberg.EntryContentData, tb.path(rel), iceberg.ParquetFile, part, nil, nil, n, st.Size())
	if err != nil {
		tb.t.Fatal(err)
	}
	// Column bounds for BIGINT columns, as writers record them.
	lo, hi := map[int][]byte{}, map[int][]byte{}
	for i, f := range tb.schema().Fields() {
		if v, ok := cols[i].([]int64); ok && len(v) > 0 {
			lo[f.ID] = le.LittleEndian.AppendUint64(nil, uint64(slices.Min(v)))
			hi[f.ID] = le.LittleEndian.AppendUint64(nil, uint64(slices.Max(v)))
		}
	}
	return b.LowerBoundValues(lo).UpperBoundValues(hi).Build()
}

// posDeletes writes a position delete file.
func (tb *iceTable) posDeletes(paths []string, pos []int64) iceberg.DataFile {
	rel := tb.newFile("parquet")
	f := iceberg.PositionalDeleteSchema.Fields()
	n := tb.parquetFile(rel, []iceberg.NestedField{f[0], {ID: f[1].ID, Name: "pos", Type: iceberg.PrimitiveTypes.Int64, Required: true}}, paths, pos)
	st, _ := os.Stat(filepath.Join(tb.dir, rel))
	b, err := iceberg.NewDataFileBuilder(tb.spec, iceberg.EntryContentPosDeletes, tb.path(rel), iceberg.ParquetFile, nil, nil, nil, n, st.Size())
	if err != nil {
		tb.t.Fatal(err)
	}
	return b.Build()
}

// eqDeletes writes an equality delete file on the given fields.
func (tb *iceTable) eqDeletes(fields []iceberg.NestedField, cols ...any) iceberg.DataFile {
	rel := tb.newFile("parquet")
	n := tb.parquetFile(rel, fields, cols...)
	st, _ := os.Stat(filepath.Join(tb.dir, rel))
	var ids []int
	for _, f := range fields {
		ids = append(ids, f.ID)
	}
	b, err := iceberg.NewDataFileBuilder(tb.spec, iceberg.EntryContentEqDeletes, tb.path(rel), iceberg.ParquetFile, nil, nil, nil, n, st.Size())
	if err != nil {
		tb.t.Fatal(err)
	}
	return b.EqualityFieldIDs(ids).Build()
}

// commit adds a snapshot with the given data and delete files and makes
// it current. It returns the snapshot's id and time.
func (tb *iceTable) commit(data, deletes []iceberg.DataFile) (int64, time.Time) {
	tb.t.Helper()
	tb.seq++
	tb.now = tb.now.Add(time.Hour)
	id := 1000 + tb.seq
	snapID := id
	var added []iceberg.ManifestFile
	manifest := func(files []iceberg.DataFile, content iceberg.ManifestContent) {
		var entries []iceberg.ManifestEntry
		var rows int64
		for _, f := range files {
			entries = append(entries, iceberg.NewManifestEntry(iceberg.EntryStatusADDED, &snapID, nil, nil, f))
			rows += f.Count()
		}
		rel := fmt.Sprintf("metadata/manifest-%d-%d.avro", id, content)
		var buf bytes.Buffer
		mf, err := iceberg.WriteManifest(tb.path(rel), &buf, 2, tb.spec, tb.schema(), snapID, entries)
		if err != nil {
			tb.t.Fatal(err)
		}
		data := buf.Bytes()
		if content == iceberg.ManifestContentDeletes {
			// iceberg-go writes data manifests only: mark this one as
			// holding deletes, in its header and in the manifest list.
			data = setAvroMeta(tb.t, data, "content", "deletes")
			mf = iceberg.NewManifestFile(2, tb.path(rel), int64(len(data)), int32(tb.spec.ID()), snapID).
				Content(iceberg.ManifestContentDeletes).AddedFiles(int32(len(files))).AddedRows(rows).Build()
		}
		tb.write(rel, data)
		added = append(added, mf)
	}
	if len(data) > 0 {
		manifest(data, iceberg.ManifestContentData)
	}
	if len(deletes) > 0 {
		manifest(deletes, iceberg.ManifestContentDeletes)
	}
	all := append(added, tb.manifest...)
	listRel := fmt.Sprintf("metadata/snap-%d.avro", id)
	var buf bytes.Buffer
	var parent *int64
	if tb.current >= 0 {
		p := tb.current
		parent = &p
	}
	seq := tb.seq
	if err := iceberg.WriteManifestList(2, &buf, snapID, parent, &seq, 0, all); err != nil {
		tb.t.Fatal(err)
	}
	tb.write(listRel, buf.Bytes())
	// Re-read so later lists carry the assigned sequence numbers.
	list, err := iceberg.ReadManifestList(bytes.NewReader(buf.Bytes()))
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.manifest = list
	op := "append"
	if len(deletes) > 0 {
		op = "delete"
	}
	snap := map[string]any{"snapshot-id": snapID, "sequence-number": seq, "timestamp-ms": tb.now.UnixMilli(),
		"manifest-list": tb.path(listRel), "summary": map[string]string{"operation": op}, "schema-id": tb.schemaID}
	if parent != nil {
		snap["parent-snapshot-id"] = *parent
	}
	tb.snaps = append(tb.snaps, snap)
	tb.current = snapID
	tb.writeMetadata()
	return snapID, tb.now
}

// setAvroMeta rewrites one metadata entry in an Avro object container
// file's header; the blocks after it stay as they are.
func setAvroMeta(t testing.TB, data []byte, key, value string) []byte {
	t.Helper()
	pos := 4 // "Obj\x01"
	readLong := func() int64 {
		var u uint64
		for shift := 0; ; shift += 7 {
			b := data[pos]
			pos++
			u |= uint64(b&0x7f) << shift
			if b < 0x80 {
				break
			}
		}
		return int64(u>>1) ^ -int64(u&1)
	}
	readBytes := func() []byte {
		n := int(readLong())
		b := data[pos : pos+n]
		pos += n
		return b
	}
	if string(data[:4]) != "Obj\x01" {
		t.Fatal("not an Avro object container file")
	}
	var keys, vals [][]byte
	for {
		n := readLong()
		if n == 0 {
			break
		}
		if n < 0 {
			n = -n
			readLong() // block size
		}
		for range n {
			keys = append(keys, readBytes())
			vals = append(vals, readBytes())
		}
	}
	writeLong := func(out []byte, v int64) []byte {
		u := uint64(v<<1) ^ uint64(v>>63)
		for u >= 0x80 {
			out = append(out, byte(u)|0x80)
			u >>= 7
		}
		return append(out, byte(u))
	}
	out := append([]byte(nil), data[:4]...)
	out = writeLong(out, int64(len(keys)))
	for i, k := range keys {
		v := vals[i]
		if string(k) == key {
			v = []byte(value)
		}
		out = writeLong(out, int64(len(k)))
		out = append(out, k...)
		out = writeLong(out, int64(len(v)))
		out = append(out, v...)
	}
	out = writeLong(out, 0)
	return append(out, data[pos:]...)
}

func (tb *iceTable) writeMetadata() {
	tb.t.Helper()
	tb.version++
	var log []map[string]any
	for _, s := range tb.snaps {
		log = append(log, map[string]any{"snapshot-id": s["snapshot-id"], "timestamp-ms": s["timestamp-ms"]})
	}
	md := map[string]any{
		"format-version": 2, "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1", "location": tb.loc,
		"last-sequence-number": tb.seq, "last-updated-ms": tb.now.UnixMilli(), "last-column-id": tb.lastCol,
		"current-schema-id": tb.schemaID, "schemas": tb.schemas, "default-spec-id": tb.spec.ID(),
		"partition-specs": []iceberg.PartitionSpec{tb.spec}, "last-partition-id": 1000 + tb.spec.NumFields(),
		"default-sort-order-id": 0, "sort-orders": []map[string]any{{"order-id": 0, "fields": []any{}}},
		"properties": tb.props, "snapshots": tb.snaps, "snapshot-log": log,
		"current-snapshot-id": tb.current,
	}
	if tb.current >= 0 {
		md["refs"] = map[string]any{"main": map[string]any{"snapshot-id": tb.current, "type": "branch"}}
	}
	data, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.write(fmt.Sprintf("metadata/v%d.metadata.json", tb.version), data)
	tb.write("metadata/version-hint.text", []byte(fmt.Sprint(tb.version)))
}

var (
	fID     = iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true}
	fName   = iceberg.NestedField{ID: 2, Name: "name", Type: iceberg.PrimitiveTypes.String}
	fRegion = iceberg.NestedField{ID: 3, Name: "region", Type: iceberg.PrimitiveTypes.String}
	fLegacy = iceberg.NestedField{ID: 4, Name: "legacy", Type: iceberg.PrimitiveTypes.String}
	fScore  = iceberg.NestedField{ID: 5, Name: "score", Type: iceberg.PrimitiveTypes.Float64}
)

var unpartitioned = iceberg.NewPartitionSpecID(0)

// snapshotsTable has two appends (time travel), a schema change that
// renames name to full_name, drops legacy and adds score, and a third
// append in the new schema.
func snapshotsTable(t testing.TB, dir, loc string, upload func(string)) (tb *iceTable, s1, s2, s3 int64, t1, t2 time.Time) {
	tb = newIceTable(t, dir, loc, iceberg.NewSchema(0, fID, fName, fLegacy), unpartitioned)
	if upload != nil {
		tb.upload = upload
		tb.upload("metadata/v1.metadata.json")
		tb.upload("metadata/version-hint.text")
	}
	s1, t1 = tb.commit([]iceberg.DataFile{tb.data(nil, []int64{1, 2, 3}, []string{"a", "b", "c"}, []string{"x", "y", "z"})}, nil)
	s2, t2 = tb.commit([]iceberg.DataFile{tb.data(nil, []int64{4, 5}, []string{"d", "e"}, []string{"u", "v"})}, nil)
	tb.evolve(iceberg.NewSchema(1, fID, iceberg.NestedField{ID: 2, Name: "full_name", Type: iceberg.PrimitiveTypes.String}, fScore))
	s3, _ = tb.commit([]iceberg.DataFile{tb.data(nil, []int64{6}, []string{"f"}, []float64{6.5})}, nil)
	return
}

func TestIcebergLocal(t *testing.T) {
	dir := t.TempDir()
	tdir := filepath.Join(dir, "db", "events")
	tb, s1, s2, s3, t1, _ := snapshotsTable(t, tdir, "file://"+tdir, nil)
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	q := func(s string) string { return strings.ReplaceAll(s, "TBL", tdir) }

	// The current snapshot reads as its schema: renamed, added and
	// dropped columns included.
	wantRows(t, c, q("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM iceberg_scan('TBL'))"),
		"id|BIGINT", "full_name|VARCHAR", "score|DOUBLE")
	wantRows(t, c, q("SELECT * FROM iceberg_scan('TBL') ORDER BY id"),
		"1|a|NULL", "2|b|NULL", "3|c|NULL", "4|d|NULL", "5|e|NULL", "6|f|6.5")
	// Time travel by id and by timestamp reads the older schema too.
	wantRows(t, c, q(fmt.Sprintf("SELECT * FROM iceberg_scan('TBL', snapshot_from_id = %d) ORDER BY id", s1)), "1|a|x", "2|b|y", "3|c|z")
	wantRows(t, c, q(fmt.Sprintf("SELECT count(*) FROM iceberg_scan('TBL', snapshot_from_id = %d)", s2)), "5")
	wantRows(t, c, q(fmt.Sprintf("SELECT max(id) FROM iceberg_scan('TBL', snapshot_from_timestamp = TIMESTAMP '%s')", t1.Add(30*time.Minute).Format("2006-01-02 15:04:05"))), "3")
	wantRows(t, c, q(fmt.Sprintf("SELECT max(id) FROM iceberg_scan('TBL', snapshot_from_timestamp = '%s'::TIMESTAMP)", t1.Format("2006-01-02 15:04:05"))), "3")
	// An explicit version and the metadata file's own path.
	wantRows(t, c, q("SELECT count(*) FROM iceberg_scan('TBL', version = '2')"), "3")
	wantRows(t, c, q("SELECT count(*) FROM iceberg_scan('TBL/metadata/v3.metadata.json')"), "5")
	wantRows(t, c, q("SELECT count(*) FROM iceberg_scan('TBL', version = '3', version_name_format = 'v%s%s.metadata.json')"), "5")

	// Gzip-compressed metadata, named as DuckDB names it.
	plain, err := os.ReadFile(filepath.Join(tdir, "metadata", "v5.metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	writeFile(t, filepath.Join(tdir, "metadata"), "v6.gz.metadata.json", gz.String())
	wantRows(t, c, q("SELECT count(*) FROM iceberg_scan('TBL', version = '6', metadata_compression_codec = 'gzip')"), "6")

	// iceberg_snapshots and iceberg_metadata, row by row.
	ts := func(id int64) string {
		for _, s := range tb.snaps {
			if s["snapshot-id"] == id {
				return time.UnixMilli(s["timestamp-ms"].(int64)).UTC().Format("2006-01-02 15:04:05")
			}
		}
		return ""
	}
	wantRows(t, c, q("SELECT sequence_number, snapshot_id, timestamp_ms::VARCHAR, manifest_list FROM iceberg_snapshots('TBL')"),
		fmt.Sprintf("1|%d|%s|file://%s/metadata/snap-%d.avro", s1, ts(s1), tdir, s1),
		fmt.Sprintf("2|%d|%s|file://%s/metadata/snap-%d.avro", s2, ts(s2), tdir, s2),
		fmt.Sprintf("3|%d|%s|file://%s/metadata/snap-%d.avro", s3, ts(s3), tdir, s3))
	wantRows(t, c, q("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM iceberg_snapshots('TBL'))"),
		"sequence_number|UBIGINT", "snapshot_id|UBIGINT", "timestamp_ms|TIMESTAMP", "manifest_list|VARCHAR")
	wantRows(t, c, q("SELECT * FROM iceberg_metadata('TBL') ORDER BY file_path"),
		fmt.Sprintf("file://%s/metadata/manifest-%d-0.avro|1|DATA|ADDED|EXISTING|file://%s/data/00001.parquet|PARQUET|3", tdir, s1, tdir),
		fmt.Sprintf("file://%s/metadata/manifest-%d-0.avro|2|DATA|ADDED|EXISTING|file://%s/data/00002.parquet|PARQUET|2", tdir, s2, tdir),
		fmt.Sprintf("file://%s/metadata/manifest-%d-0.avro|3|DATA|ADDED|EXISTING|file://%s/data/00003.parquet|PARQUET|1", tdir, s3, tdir))
	wantRows(t, c, q("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM iceberg_metadata('TBL'))"),
		"manifest_path|VARCHAR", "manifest_sequence_number|BIGINT", "manifest_content|VARCHAR", "status|VARCHAR",
		"content|VARCHAR", "file_path|VARCHAR", "file_format|VARCHAR", "record_count|BIGINT")
	wantRows(t, c, q(fmt.Sprintf("SELECT count(*) FROM iceberg_metadata('TBL', snapshot_from_id = %d)", s1)), "1")

	// A moved table reads with allow_moved_paths.
	moved := filepath.Join(dir, "moved")
	if err := os.CopyFS(moved, os.DirFS(tdir)); err != nil {
		t.Fatal(err)
	}
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('"+moved+"', allow_moved_paths = true)", "6")
	os.RemoveAll(tdir)
	wantError(t, c, "SELECT count(*) FROM iceberg_scan('"+moved+"')", "not found", "allow_moved_paths")
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('"+moved+"', allow_moved_paths = true)", "6")

	// Bad input: clear errors.
	wantError(t, c, "SELECT * FROM iceberg_scan('"+moved+"', snapshot_from_id = 42)", "snapshot 42 not found")
	wantError(t, c, "SELECT * FROM iceberg_scan('"+moved+"', snapshot_from_timestamp = TIMESTAMP '2000-01-01 00:00:00', allow_moved_paths = true)", "no snapshot", "2000-01-01")
	wantError(t, c, "SELECT * FROM iceberg_scan('"+moved+"', metadata_compression_codec = 'zstd')", "metadata_compression_codec 'zstd' is not supported")
	wantError(t, c, "SELECT * FROM iceberg_scan('"+moved+"', version = '9')", "no metadata file for version '9'")
	wantError(t, c, "SELECT * FROM iceberg_scan('"+dir+"/nothing')", "version-hint.text")
	wantError(t, c, "SELECT * FROM iceberg_scan('"+moved+"', snapshot_from_id = 'abc')", "snapshot_from_id must be an integer")
	wantError(t, c, "SELECT * FROM iceberg_scan('"+moved+"', mode = 'fast')", "unknown parameter mode")
}

func TestIcebergDeletes(t *testing.T) {
	dir := t.TempDir()
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})

	// Position deletes: rows 1 and 3 of the first file.
	pdir := filepath.Join(dir, "pos")
	pt := newIceTable(t, pdir, pdir, iceberg.NewSchema(0, fID, fName), unpartitioned)
	f1 := pt.data(nil, []int64{10, 11, 12, 13, 14}, []string{"a", "b", "c", "d", "e"})
	pt.commit([]iceberg.DataFile{f1}, nil)
	pt.commit([]iceberg.DataFile{pt.data(nil, []int64{15}, []string{"f"})}, nil)
	pt.commit(nil, []iceberg.DataFile{pt.posDeletes([]string{f1.FilePath(), f1.FilePath()}, []int64{1, 3})})
	wantRows(t, c, "SELECT * FROM iceberg_scan('"+pdir+"') ORDER BY id", "10|a", "12|c", "14|e", "15|f")
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('"+pdir+"', version = '3')", "6") // before the delete
	wantRows(t, c, "SELECT status, content, record_count FROM iceberg_metadata('"+pdir+"') WHERE manifest_content = 'DELETE'", "ADDED|POSITION_DELETES|2")

	// Equality deletes: ids 11 and 14 as of sequence number 2; a row
	// with id 14 appended later (sequence number 3) stays.
	edir := filepath.Join(dir, "eq")
	et := newIceTable(t, edir, "file://"+edir, iceberg.NewSchema(0, fID, fName), unpartitioned)
	et.commit([]iceberg.DataFile{et.data(nil, []int64{10, 11, 12, 13, 14}, []string{"a", "b", "c", "d", "e"})}, nil)
	et.commit(nil, []iceberg.DataFile{et.eqDeletes([]iceberg.NestedField{fID}, []int64{11, 14})})
	et.commit([]iceberg.DataFile{et.data(nil, []int64{14}, []string{"again"})}, nil)
	wantRows(t, c, "SELECT * FROM iceberg_scan('"+edir+"') ORDER BY id, name", "10|a", "12|c", "13|d", "14|again")
	// On two columns, after a rename of one of them.
	et.commit(nil, []iceberg.DataFile{et.eqDeletes([]iceberg.NestedField{fID, fName}, []int64{12, 13}, []string{"c", "not-d"})})
	et.evolve(iceberg.NewSchema(1, fID, iceberg.NestedField{ID: 2, Name: "label", Type: iceberg.PrimitiveTypes.String}))
	et.commit([]iceberg.DataFile{et.data(nil, []int64{20}, []string{"z"})}, nil)
	wantRows(t, c, "SELECT id, label FROM iceberg_scan('"+edir+"') ORDER BY id", "10|a", "13|d", "14|again", "20|z")
	wantRows(t, c, "SELECT content, count(*) FROM iceberg_metadata('"+edir+"') GROUP BY content ORDER BY content", "EQUALITY_DELETES|2", "EXISTING|3")

	// What is not supported fails, naming it.
	odir := filepath.Join(dir, "orc")
	ot := newIceTable(t, odir, odir, iceberg.NewSchema(0, fID), unpartitioned)
	b, err := iceberg.NewDataFileBuilder(unpartitioned, iceberg.EntryContentData, odir+"/data/x.orc", iceberg.OrcFile, nil, nil, nil, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	ot.commit([]iceberg.DataFile{b.Build()}, nil)
	wantError(t, c, "SELECT * FROM iceberg_scan('"+odir+"')", "x.orc", "ORC", "only PARQUET")
	// A file whose statistics show it lacks its identity partition
	// column would read NULLs there.
	mdir := filepath.Join(dir, "migrated")
	spec := iceberg.NewPartitionSpecID(0, iceberg.PartitionField{SourceID: 3, FieldID: 1000, Name: "region", Transform: iceberg.IdentityTransform{}})
	mt := newIceTable(t, mdir, mdir, iceberg.NewSchema(0, fID, fRegion), spec)
	mb, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, mdir+"/data/old.parquet", iceberg.ParquetFile, map[int]any{1000: "eu"}, nil, nil, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	mt.commit([]iceberg.DataFile{mb.ValueCounts(map[int]int64{1: 1}).Build()}, nil)
	wantError(t, c, "SELECT * FROM iceberg_scan('"+mdir+"')", "old.parquet", `partition column "region"`, "not supported")
}

// TestIcebergNameMapping reads a table whose first data file (and a
// position delete file) were written without Parquet field ids, as in a
// table migrated from Hive: columns map by name through the table's
// schema.name-mapping.default, including a column renamed since; without
// the property the scan fails naming the file instead of reading NULLs.
func TestIcebergNameMapping(t *testing.T) {
	dir := t.TempDir()
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	fFull := iceberg.NestedField{ID: 2, Name: "full_name", Type: iceberg.PrimitiveTypes.String}
	table := func(name string, props map[string]string) (string, iceberg.DataFile) {
		tdir := filepath.Join(dir, name)
		tb := newIceTable(t, tdir, "file://"+tdir, iceberg.NewSchema(0, fID, fName), unpartitioned)
		maps.Copy(tb.props, props)
		tb.noFieldIDs = true
		f1 := tb.data(nil, []int64{1, 2, 3, 4}, []string{"a", "b", "c", "e"})
		tb.commit([]iceberg.DataFile{f1}, nil)
		// Later commits: name renamed to full_name, score added, rows
		// deleted by position (a delete file without field ids too) and
		// by equality on the renamed column.
		tb.noFieldIDs = false
		tb.evolve(iceberg.NewSchema(1, fID, fFull, fScore))
		tb.commit([]iceberg.DataFile{tb.data(nil, []int64{5}, []string{"d"}, []float64{4.5})}, nil)
		tb.noFieldIDs = true
		tb.commit(nil, []iceberg.DataFile{tb.posDeletes([]string{f1.FilePath()}, []int64{1})})
		tb.noFieldIDs = false
		tb.commit(nil, []iceberg.DataFile{tb.eqDeletes([]iceberg.NestedField{fFull}, []string{"c"})})
		return tdir, f1
	}
	mapped, _ := table("mapped", map[string]string{"schema.name-mapping.default": `[{"field-id": 1, "names": ["id"]},
		{"field-id": 2, "names": ["full_name", "name"]}, {"field-id": 5, "names": ["score"]}]`})
	wantRows(t, c, "SELECT * FROM iceberg_scan('"+mapped+"') ORDER BY id", "1|a|NULL", "4|e|NULL", "5|d|4.5")
	wantRows(t, c, "SELECT id FROM iceberg_scan('"+mapped+"') WHERE full_name = 'e'", "4")
	if !p.logs.Await(`"name_mapped_files":1`) {
		t.Fatalf("no name-mapped file logged:\n%s", grepLines(p.logs.String(), "iceberg"))
	}
	bare, f1 := table("bare", nil)
	wantError(t, c, "SELECT * FROM iceberg_scan('"+bare+"')", f1.FilePath(), "has no Parquet field ids", "schema.name-mapping.default")
	wantError(t, c, "SELECT count(*) FROM iceberg_scan('"+bare+"')", "has no Parquet field ids")
}

// partitionedTable has one append per region, so one manifest each.
func partitionedTable(t testing.TB, dir, loc string, upload func(string)) *iceTable {
	spec := iceberg.NewPartitionSpecID(0, iceberg.PartitionField{SourceID: 3, FieldID: 1000, Name: "region", Transform: iceberg.IdentityTransform{}})
	tb := newIceTable(t, dir, loc, iceberg.NewSchema(0, fID, fName, fRegion), spec)
	if upload != nil {
		tb.upload = upload
		tb.upload("metadata/v1.metadata.json")
		tb.upload("metadata/version-hint.text")
	}
	for i, r := range []string{"eu", "us", "ap"} {
		base := int64(i * 10)
		tb.commit([]iceberg.DataFile{tb.data(map[int]any{1000: r}, []int64{base + 1, base + 2}, []string{"n", "m"}, []string{r, r})}, nil)
	}
	return tb
}

func TestIcebergPartitionPruning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "part")
	partitionedTable(t, dir, dir, nil)
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	wantRows(t, c, "SELECT id FROM iceberg_scan('"+dir+"') WHERE region = 'us' ORDER BY id", "11", "12")
	if !p.logs.Await(`"pruned_manifests":2`) {
		t.Fatalf("no pruning logged:\n%s", grepLines(p.logs.String(), "iceberg"))
	}
	// Pruning never changes the answer: OR, other operators, aliases.
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('"+dir+"') t WHERE t.region >= 'eu' AND id > 0", "4")
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('"+dir+"') WHERE region = 'eu' OR id = 21", "3")
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('"+dir+"') WHERE region = 'none'", "0")
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('"+dir+"') WHERE id < 5", "2")
	// Column bounds prune files within a manifest's partitions too.
	wantRows(t, c, "SELECT id FROM iceberg_scan('"+dir+"') WHERE id >= 12 AND region >= 'eu' ORDER BY id", "12")
	if !p.logs.Await(`"data_files":1,"pruned_files":1,"pruned_manifests":1`) {
		t.Fatalf("no file pruning logged:\n%s", grepLines(p.logs.String(), "iceberg"))
	}
}

func TestIcebergInObjectStore(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "lake")
	staging := t.TempDir()
	uploader := func(root, prefix string) func(string) {
		return func(rel string) {
			data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
			if err != nil {
				t.Fatal(err)
			}
			put(t, b, prefix+"/"+rel, string(data))
		}
	}
	sdir := filepath.Join(staging, "events")
	_, s1, _, _, t1, _ := snapshotsTable(t, sdir, "s3://lake/wh/events", uploader(sdir, "wh/events"))
	pdir := filepath.Join(staging, "part")
	partitionedTable(t, pdir, "s3://lake/wh/part", uploader(pdir, "wh/part"))
	ddir := filepath.Join(staging, "del")
	dt := newIceTable(t, ddir, "s3://lake/wh/del", iceberg.NewSchema(0, fID, fName), unpartitioned)
	dt.upload = uploader(ddir, "wh/del")
	f1 := dt.data(nil, []int64{1, 2, 3}, []string{"a", "b", "c"})
	dt.commit([]iceberg.DataFile{f1}, nil)
	dt.commit(nil, []iceberg.DataFile{dt.posDeletes([]string{f1.FilePath()}, []int64{0})})
	dt.commit(nil, []iceberg.DataFile{dt.eqDeletes([]iceberg.NestedField{fName}, []string{"c"})})

	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	if err := c.Exec(context.Background(), s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	wantRows(t, c, "SELECT * FROM iceberg_scan('s3://lake/wh/events') ORDER BY id",
		"1|a|NULL", "2|b|NULL", "3|c|NULL", "4|d|NULL", "5|e|NULL", "6|f|6.5")
	wantRows(t, c, fmt.Sprintf("SELECT * FROM iceberg_scan('s3://lake/wh/events', snapshot_from_id = %d) ORDER BY id", s1), "1|a|x", "2|b|y", "3|c|z")
	wantRows(t, c, fmt.Sprintf("SELECT count(*) FROM iceberg_scan('s3://lake/wh/events', snapshot_from_timestamp = TIMESTAMP '%s')", t1.Add(time.Minute).Format("2006-01-02 15:04:05")), "3")
	wantRows(t, c, "SELECT count(*) FROM iceberg_snapshots('s3://lake/wh/events')", "3")
	wantRows(t, c, "SELECT * FROM iceberg_scan('s3://lake/wh/del')", "2|b")

	// Pruning shows in the objects downloaded: version hint, metadata,
	// manifest list, one manifest and one data file; the rest later.
	srv.Reset()
	wantRows(t, c, "SELECT id FROM iceberg_scan('s3://lake/wh/part') WHERE region = 'ap' ORDER BY id", "21", "22")
	if n := srv.Counts()["get"]; n != 5 {
		t.Fatalf("pruned scan downloaded %d objects, want 5 (counts %v)", n, srv.Counts())
	}
	srv.Reset()
	wantRows(t, c, "SELECT count(*) FROM iceberg_scan('s3://lake/wh/part')", "6")
	if n := srv.Counts()["get"]; n != 4 {
		t.Fatalf("full scan after the pruned one downloaded %d objects, want 4 (counts %v)", n, srv.Counts())
	}
	// CREATE TABLE … AS from a bucket table.
	if err := c.Exec(context.Background(), "CREATE TABLE ev AS FROM iceberg_scan('s3://lake/wh/events')"); err != nil {
		t.Fatal(err)
	}
	wantRows(t, c, "SELECT sum(id) FROM ev", "21")
	wantError(t, c, "SELECT * FROM iceberg_scan('s3://lake/wh/nothing')", "version-hint.text")
}

// BenchmarkIcebergScan compares iceberg_scan with read_parquet over the
// same data files in one run, both through Luna: the cost of reading the
// table's metadata and mapping columns by field id, with and without a
// position delete file. Run with -benchtime 1x (make bench).
func BenchmarkIcebergScan(b *testing.B) {
	const files, perFile = 8, 500_000
	dir := filepath.Join(b.TempDir(), "bench")
	tb := newIceTable(b, dir, dir, iceberg.NewSchema(0, fID, fName, fScore), unpartitioned)
	var data []iceberg.DataFile
	for f := range files {
		ids := make([]int64, perFile)
		names := make([]string, perFile)
		scores := make([]float64, perFile)
		for i := range perFile {
			ids[i] = int64(f*perFile + i)
			names[i] = fmt.Sprintf("name-%d", i%1000)
			scores[i] = float64(i%977) / 7
		}
		data = append(data, tb.data(nil, ids, names, scores))
	}
	tb.commit(data, nil)
	var paths []string
	for _, d := range data {
		paths = append(paths, "'"+d.FilePath()+"'")
	}
	p := startLuna(b, false, nil)
	c := p.dial(b, client.Options{})
	const agg = "SELECT count(*), sum(id), sum(length(name)), sum(score) FROM "
	scanSQL := agg + "iceberg_scan('" + dir + "')"
	parquetSQL := agg + "read_parquet([" + strings.Join(paths, ", ") + "])"
	rows := float64(files * perFile)
	once := func(sql string, want int) time.Duration {
		start := time.Now()
		got := queryRows(b, c, sql)
		el := time.Since(start)
		if len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprint(want)+"|") {
			b.Fatalf("%s: %v", sql, got)
		}
		return el
	}
	var rep strings.Builder
	for range b.N {
		// Interleaved, so a shared machine's noise hits both sides.
		var pq, ice time.Duration
		for i := range 5 {
			dp, di := once(parquetSQL, files*perFile), once(scanSQL, files*perFile)
			if i == 0 || dp < pq {
				pq = dp
			}
			if i == 0 || di < ice {
				ice = di
			}
		}
		// The same table with a position delete on every file.
		var paths []string
		var posv []int64
		for _, d := range data {
			paths = append(paths, d.FilePath())
			posv = append(posv, 7)
		}
		tb.commit(nil, []iceberg.DataFile{tb.posDeletes(paths, posv)})
		rows2 := rows - float64(files)
		var dscan time.Duration
		for i := range 5 {
			if d := once(scanSQL, files*perFile-files); i == 0 || d < dscan {
				dscan = d
			}
		}
		fmt.Fprintf(&rep, "\n== Iceberg scan: %d files x %d rows (BIGINT, VARCHAR, DOUBLE), best of 5, through luna\n", files, perFile)
		fmt.Fprintf(&rep, "  read_parquet over the data files:   %6.1f M rows/s (%v)\n", rows/pq.Seconds()/1e6, pq.Round(time.Millisecond))
		fmt.Fprintf(&rep, "  iceberg_scan:                       %6.1f M rows/s (%v), ratio %.2f\n", rows/ice.Seconds()/1e6, ice.Round(time.Millisecond), pq.Seconds()/ice.Seconds())
		fmt.Fprintf(&rep, "  iceberg_scan with position deletes: %6.1f M rows/s (%v)\n", rows2/dscan.Seconds()/1e6, dscan.Round(time.Millisecond))
		b.ReportMetric(rows/ice.Seconds(), "iceberg-rows/s")
		b.ReportMetric(rows/pq.Seconds(), "parquet-rows/s")
		b.ReportMetric(rows2/dscan.Seconds(), "iceberg-deletes-rows/s")
	}
	b.StopTimer()
	fmt.Print(rep.String())
}
