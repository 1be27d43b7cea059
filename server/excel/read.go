// Package excel reads and writes .xlsx workbooks for Luna's read_xlsx and
// COPY … (FORMAT xlsx), with the meaning DuckDB's excel extension gives
// them: a sheet's cells become a typed Parquet file that DuckDB then scans
// with its own Parquet reader, and a query result in Parquet becomes a
// workbook.
//
// Types follow DuckDB's reader: each column's type comes from its cell in
// the first data row (numbers are DOUBLE unless their number format makes
// them a DATE, TIME or TIMESTAMP; date cells of ISO 8601 text are a DATE,
// TIME or TIMESTAMP by their format; TRUE/FALSE and boolean cells are
// BOOLEAN; text of any kind is VARCHAR; empty cells are DOUBLE, or VARCHAR
// with empty_as_varchar), and every later cell is cast to that type.
//
// Reading does not go through excelize: the sheet's XML streams through a
// small tokenizer (xmlscan.go) with the shared strings and styles read
// once, so a sheet converts at about the speed of inflating it, in memory
// that does not grow with the sheet.
package excel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/xuri/excelize/v2"
)

// Limits of a worksheet, as Excel has them.
const (
	maxRows = 1048576
	maxCols = 16384
)

// batchRows is how many rows go into one Arrow record (and so one Parquet
// row group at most).
const batchRows = 64 * 1024

// Options are read_xlsx's named parameters. Nil pointers mean "not
// given": DuckDB then infers the header and stops at the first empty row
// unless a range was given.
type Options struct {
	Sheet          string
	Header         *bool
	AllVarchar     bool
	IgnoreErrors   bool
	Range          string
	StopAtEmpty    *bool
	EmptyAsVarchar bool
}

// readerVersion changes when a conversion's result may differ for the
// same workbook and options, so conversions cached by an older server
// are not reused.
const readerVersion = 2

// Key is a stable text form of the options and the reader's version, for
// caching conversions.
func (o Options) Key() string {
	b := func(p *bool) string {
		if p == nil {
			return "?"
		}
		return strconv.FormatBool(*p)
	}
	return fmt.Sprintf("reader=%d sheet=%q header=%s all_varchar=%t ignore_errors=%t range=%q stop_at_empty=%s empty_as_varchar=%t",
		readerVersion, o.Sheet, b(o.Header), o.AllVarchar, o.IgnoreErrors, o.Range, b(o.StopAtEmpty), o.EmptyAsVarchar)
}

// colType is a column's DuckDB type.
type colType int

const (
	tDouble colType = iota
	tVarchar
	tBoolean
	tDate
	tTime
	tTimestamp
)

func (t colType) String() string {
	return [...]string{"DOUBLE", "VARCHAR", "BOOLEAN", "DATE", "TIME", "TIMESTAMP"}[t]
}

func (t colType) arrow() arrow.DataType {
	switch t {
	case tVarchar:
		return arrow.BinaryTypes.String
	case tBoolean:
		return arrow.FixedWidthTypes.Boolean
	case tDate:
		return arrow.FixedWidthTypes.Date32
	case tTime:
		return arrow.FixedWidthTypes.Time64us
	case tTimestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	}
	return arrow.PrimitiveTypes.Float64
}

// cellRange is a 1-based range, beg inclusive, end exclusive.
type cellRange struct {
	begRow, begCol, endRow, endCol int
	explicitEndRow                 bool
}

func (r cellRange) hasRow(row int) bool { return row >= r.begRow && row < r.endRow }

// parseRange reads 'A1:B2', 'A5:Z' or 'E:Z'.
func parseRange(s string) (cellRange, error) {
	bad := fmt.Errorf("read_xlsx: invalid range '%s' (want e.g. 'A1:C10', 'A5:Z' or 'B:D')", s)
	a, b, ok := strings.Cut(strings.ToUpper(strings.TrimSpace(s)), ":")
	if !ok {
		return cellRange{}, bad
	}
	br, bc, okb := parsePos(a, 1, 1)
	er, ec, oke := parsePos(b, maxRows, maxCols)
	if !okb || !oke || br > er || bc > ec || ec-bc+1 > maxCols {
		return cellRange{}, bad
	}
	return cellRange{begRow: br, begCol: bc, endRow: er + 1, endCol: ec + 1, explicitEndRow: strings.ContainsAny(b, "0123456789")}, nil
}

func parsePos(s string, defRow, defCol int) (row, col int, ok bool) {
	i := 0
	for i < len(s) && s[i] >= 'A' && s[i] <= 'Z' {
		col = col*26 + int(s[i]-'A'+1)
		i++
		if col > maxCols {
			return 0, 0, false
		}
	}
	letters := i > 0
	if !letters {
		col = defCol
	}
	if i == len(s) {
		return defRow, col, letters
	}
	if s[i] == '0' {
		return 0, 0, false
	}
	n, err := strconv.Atoi(s[i:])
	if err != nil || n < 1 || n > maxRows {
		return 0, 0, false
	}
	return n, col, true
}

// Error is a read_xlsx failure; its text names the file, sheet and cell
// where that helps.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

func errorf(format string, a ...any) error { return &Error{msg: fmt.Sprintf(format, a...)} }

// Convert reads one sheet of the workbook at src and writes it to dst as
// Parquet. name is how the file is named in errors (the path the user
// wrote).
//
// The sheet streams: its XML is read once, row by row, and the Parquet
// file is written a row group at a time, so memory holds one batch of
// rows, the shared strings and the styles, whatever the sheet's size.
func Convert(ctx context.Context, src, dst, name string, o Options) (err error) {
	if err := checkZip(src, name); err != nil {
		return err
	}
	wb, err := openWorkbook(ctx, src)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return errorf("read_xlsx: cannot open \"%s\" as an xlsx workbook: %v", name, err)
	}
	defer wb.Close()
	if len(wb.sheets) == 0 {
		return errorf("read_xlsx: no sheets found in \"%s\" (is the file corrupt?)", name)
	}
	ref := wb.sheets[0]
	if o.Sheet != "" {
		found := false
		for _, s := range wb.sheets {
			if strings.EqualFold(s.name, o.Sheet) {
				ref, found = s, true
				break
			}
		}
		if !found {
			names := make([]string, len(wb.sheets))
			for i, s := range wb.sheets {
				names[i] = s.name
			}
			return errorf("read_xlsx: sheet \"%s\" not found in \"%s\" (sheets: %s)", o.Sheet, name, strings.Join(names, ", "))
		}
	}
	r := &reader{wb: wb, sheet: ref.name, name: name, o: o, ctx: ctx}
	if ref.part == "" {
		return r.fail(errors.New("the workbook names no worksheet part for it"))
	}
	if err := wb.readParts(ctx); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return errorf("read_xlsx: cannot open \"%s\" as an xlsx workbook: %v", name, err)
	}
	if wb.date1904 {
		r.dayShift = date1904Days
	}
	if r.rows, err = wb.openSheet(ctx, ref.part); err != nil {
		return r.fail(err)
	}
	defer r.rows.Close()
	if err := r.sniff(); err != nil {
		return err
	}
	return r.write(dst)
}

// date1904Days is how many days the 1904 date system's serials start
// after the 1900 system's.
const date1904Days = 1462

type reader struct {
	wb    *workbook
	rows  *sheetRows
	ctx   context.Context
	sheet string
	name  string
	o     Options

	rng      cellRange
	dataRow  int // first row read as data
	names    []string
	types    []colType
	stopAtEm bool
	dayShift float64 // added to serials: 1462 in the 1904 date system

	// pending are the rows sniff read, for write to read again.
	pending []sheetRow
}

// sheetRow is a row kept past the stream's next call.
type sheetRow struct {
	num   int
	cells []xcell
}

// fail is a sheet's error, or the cancellation that caused it.
func (r *reader) fail(err error) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	return errorf("read_xlsx: sheet \"%s\" of \"%s\": %v", r.sheet, r.name, err)
}

// advance reads the stream's next row into r.rows.
func (r *reader) advance() (bool, error) {
	if err := r.ctx.Err(); err != nil {
		return false, context.Cause(r.ctx)
	}
	ok, err := r.rows.next()
	if err != nil {
		return false, r.fail(err)
	}
	return ok, nil
}

// keep copies the stream's current row, its cells by column; of cells
// written twice the last counts, as in write.
func (r *reader) keep() sheetRow {
	row := sheetRow{num: r.rows.num, cells: make([]xcell, len(r.rows.cells))}
	for i, c := range r.rows.cells {
		c.v = bytes.Clone(c.v)
		row.cells[i] = c
	}
	slices.SortStableFunc(row.cells, func(a, b xcell) int { return a.col - b.col })
	kept := row.cells[:0]
	for _, c := range row.cells {
		if n := len(kept); n > 0 && kept[n-1].col == c.col {
			kept[n-1] = c
			continue
		}
		kept = append(kept, c)
	}
	row.cells = kept
	return row
}

// at is the cell of a sorted row in column col, or nil.
func at(cells []xcell, col int) *xcell {
	if i, ok := slices.BinarySearchFunc(cells, col, func(c xcell, col int) int { return c.col - col }); ok {
		return &cells[i]
	}
	return nil
}

func value(cells []xcell, col int) string {
	if c := at(cells, col); c != nil {
		return string(c.v)
	}
	return ""
}

// hasValues is whether a row counts as one with data: a cell with a value
// or a formula.
func hasValues(cells []xcell) bool { return len(cells) > 0 }

func cellName(col, row int) string {
	n, _ := excelize.CoordinatesToCellName(col, row)
	return n
}

func (r *reader) cellErr(col, row int, format string, a ...any) error {
	return errorf("read_xlsx: sheet \"%s\" cell %s: %s", r.sheet, cellName(col, row), fmt.Sprintf(format, a...))
}

// sniff finds the range, the header and the column types, reading as few
// rows as that takes; write reads them again from r.pending.
func (r *reader) sniff() error {
	explicit := r.o.Range != ""
	if explicit {
		rng, err := parseRange(r.o.Range)
		if err != nil {
			return err
		}
		r.rng = rng
	}
	r.stopAtEm = !explicit
	if r.o.StopAtEmpty != nil {
		r.stopAtEm = *r.o.StopAtEmpty
	}
	var header, first []xcell
	headerRow, firstRow := 0, 0
	hasHeader := false
	for {
		ok, err := r.advance()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		// Rows that are not data are neither copied nor kept: a range far
		// down a sheet costs a scan, not memory.
		if !hasValues(r.rows.cells) || (explicit && !r.rng.hasRow(r.rows.num)) {
			if explicit && r.rows.num >= r.rng.endRow {
				break
			}
			continue
		}
		if !explicit && !slices.ContainsFunc(r.rows.cells, func(c xcell) bool { return !c.empty() }) {
			continue
		}
		row := r.keep()
		if !explicit {
			// The range is the first row with a value: from its first
			// non-empty cell to the last one before a gap.
			beg := 0
			for _, c := range row.cells {
				if !c.empty() {
					beg = c.col
					break
				}
			}
			end := beg
			for !at(row.cells, end+1).empty() {
				end++
			}
			r.rng = cellRange{begRow: row.num, begCol: beg, endRow: maxRows + 1, endCol: end + 1}
			explicit = true // found: from here on as if given
		}
		r.pending = append(r.pending, row)
		if headerRow == 0 {
			headerRow, header = row.num, row.cells
			if hasHeader = r.isHeader(header); !hasHeader {
				break
			}
			continue
		}
		firstRow, first = row.num, row.cells
		break
	}
	if r.rng.begRow == 0 {
		return errorf("read_xlsx: no rows found in sheet \"%s\" of \"%s\"", r.sheet, r.name)
	}
	width := r.rng.endCol - r.rng.begCol
	switch {
	case headerRow == 0:
		if r.o.Range == "" {
			return errorf("read_xlsx: no rows found in sheet \"%s\" of \"%s\"", r.sheet, r.name)
		}
		// An empty explicit range: columns named after the range.
		for c := r.rng.begCol; c < r.rng.endCol; c++ {
			col, _ := excelize.ColumnNumberToName(c)
			r.names = append(r.names, col)
		}
		r.dataRow = r.rng.begRow
	case hasHeader:
		for c := r.rng.begCol; c < r.rng.endCol; c++ {
			r.names = append(r.names, strings.TrimSpace(value(header, c)))
		}
		r.dataRow = headerRow + 1
	default:
		firstRow, first = headerRow, header
		for c := r.rng.begCol; c < r.rng.endCol; c++ {
			if r.o.Range != "" {
				col, _ := excelize.ColumnNumberToName(c)
				r.names = append(r.names, col)
			} else {
				r.names = append(r.names, cellName(c, headerRow))
			}
		}
		r.dataRow = headerRow
	}
	if r.o.Range != "" && r.dataRow < r.rng.begRow {
		r.dataRow = r.rng.begRow
	}
	r.names = dedupe(r.names)
	r.types = make([]colType, width)
	for i := range width {
		if firstRow == 0 {
			r.types[i] = r.emptyType()
			continue
		}
		r.types[i] = r.cellType(at(first, r.rng.begCol+i))
	}
	return nil
}

func (r *reader) emptyType() colType {
	if r.o.AllVarchar || r.o.EmptyAsVarchar {
		return tVarchar
	}
	return tDouble
}

// isHeader applies the header option, or DuckDB's guess: every cell of
// the row in the range is a non-empty string (a shared, inline or
// formula-result string: t="s", "inlineStr" or "str").
func (r *reader) isHeader(cells []xcell) bool {
	if r.o.Header != nil {
		return *r.o.Header
	}
	for c := r.rng.begCol; c < r.rng.endCol; c++ {
		if cell := at(cells, c); cell.empty() || cell.kind != kText {
			return false
		}
	}
	return true
}

// cellType is the column type a first-row cell gives.
func (r *reader) cellType(c *xcell) colType {
	if r.o.AllVarchar {
		return tVarchar
	}
	if c.empty() {
		return r.emptyType()
	}
	if bytes.EqualFold(c.v, []byte("true")) || bytes.EqualFold(c.v, []byte("false")) {
		return tBoolean
	}
	switch c.kind {
	case kBool:
		return tBoolean
	case kText, kError:
		return tVarchar
	case kDate:
		// A date cell holds ISO 8601 text; its format says whether the
		// time of day matters.
		switch t := r.wb.styles.typeOf(c.style); t {
		case tDate, tTime, tTimestamp:
			return t
		}
		return tTimestamp
	}
	return r.wb.styles.typeOf(c.style)
}

// maxBatchBytes bounds the text one batch of rows holds.
const maxBatchBytes = 16 << 20

// column is one output column's builder, by type.
type column struct {
	t     colType
	name  string
	fb    array.Builder
	str   *array.BinaryBuilder
	f64   *array.Float64Builder
	boo   *array.BooleanBuilder
	date  *array.Date32Builder
	clock *array.Time64Builder
	ts    *array.TimestampBuilder
}

// write streams the data rows into a Parquet file, a row group a batch.
func (r *reader) write(dst string) error {
	fields := make([]arrow.Field, len(r.names))
	for i, n := range r.names {
		fields[i] = arrow.Field{Name: n, Type: r.types[i].arrow(), Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("read_xlsx: %w", err)
	}
	defer out.Close()
	// Dictionary encoding pays for text, which repeats; for numbers and
	// dates it costs more time than it saves space.
	opts := []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(batchRows),
		parquet.WithDictionaryDefault(false)}
	for i, t := range r.types {
		if t == tVarchar {
			opts = append(opts, parquet.WithDictionaryFor(r.names[i], true))
		}
	}
	props := parquet.NewWriterProperties(opts...)
	w, err := pqarrow.NewFileWriter(schema, out, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		return fmt.Errorf("read_xlsx: %w", err)
	}
	defer w.Close()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	cols := make([]column, len(r.types))
	for i, t := range r.types {
		c := column{t: t, name: r.names[i], fb: b.Field(i)}
		switch fb := c.fb.(type) {
		case *array.StringBuilder:
			c.str = fb.BinaryBuilder
		case *array.Float64Builder:
			c.f64 = fb
		case *array.BooleanBuilder:
			c.boo = fb
		case *array.Date32Builder:
			c.date = fb
		case *array.Time64Builder:
			c.clock = fb
		case *array.TimestampBuilder:
			c.ts = fb
		}
		cols[i] = c
	}
	n, textBytes := 0, 0
	per := rowsPerBatch(len(r.types))
	flush := func() error {
		if n == 0 {
			return nil
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		n, textBytes = 0, 0
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("read_xlsx: writing %s: %w", dst, err)
		}
		return nil
	}
	// added counts a row into the batch, flushing a full one.
	added := func(size int) error {
		n++
		textBytes += size
		if n < per && textBytes < maxBatchBytes {
			return nil
		}
		if err := r.ctx.Err(); err != nil {
			return context.Cause(r.ctx)
		}
		return flush()
	}
	nulls := func(count int) error {
		for range count {
			for i := range cols {
				cols[i].fb.AppendNull()
			}
			if err := added(0); err != nil {
				return err
			}
		}
		return nil
	}

	width := r.rng.endCol - r.rng.begCol
	slots := make([]*xcell, width)
	next := r.dataRow // the next row to write
	lastRow := r.dataRow - 1
	pending := r.pending
	r.pending = nil
	for {
		var num int
		var cells []xcell
		if len(pending) > 0 {
			num, cells = pending[0].num, pending[0].cells
			pending = pending[1:]
		} else {
			ok, err := r.advance()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			num, cells = r.rows.num, r.rows.cells
		}
		if num < r.dataRow {
			continue
		}
		if !r.rng.hasRow(num) {
			break
		}
		// Rows the sheet leaves out are empty.
		if gap := num - next; gap > 0 {
			if r.stopAtEm {
				break
			}
			if err := nulls(gap); err != nil {
				return err
			}
			lastRow = num - 1
		}
		next = num + 1
		clear(slots)
		empty := true
		for i := range cells {
			c := &cells[i]
			if k := c.col - r.rng.begCol; k >= 0 && k < width {
				slots[k] = c
				if len(c.v) > 0 {
					empty = false
				}
			}
		}
		if empty {
			if r.stopAtEm {
				break
			}
			if err := nulls(1); err != nil {
				return err
			}
		} else {
			size, err := r.appendRow(cols, slots, num)
			if err != nil {
				return err
			}
			if err := added(size); err != nil {
				return err
			}
		}
		lastRow = num
	}
	// An explicit range that reads past the sheet's last row pads it with
	// empty rows, as DuckDB does.
	if r.o.Range != "" && r.rng.explicitEndRow && !r.stopAtEm {
		if pad := int64(r.rng.endRow-lastRow-1) * int64(len(r.types)); pad > MaxPadCells {
			return errorf("read_xlsx: range '%s' of \"%s\" would pad %d empty rows × %d columns (%d cells) past the sheet's last row, more than the limit of %d cells; give a range that ends nearer the data, or stop_at_empty = true",
				r.o.Range, r.name, r.rng.endRow-lastRow-1, len(r.types), pad, MaxPadCells)
		}
		if err := nulls(r.rng.endRow - lastRow - 1); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	// Closing the writer closes the file too.
	if err := w.Close(); err != nil {
		return fmt.Errorf("read_xlsx: writing %s: %w", dst, err)
	}
	return nil
}

// appendRow appends one row's cells, cast to the column types, and
// returns the bytes of text it added.
func (r *reader) appendRow(cols []column, slots []*xcell, row int) (int, error) {
	size := 0
	for i := range cols {
		col := &cols[i]
		c := slots[i]
		if c.empty() {
			col.fb.AppendNull()
			continue
		}
		v := c.v
		if col.t == tVarchar {
			col.str.Append(v)
			size += len(v)
			continue
		}
		ok := true
		switch col.t {
		case tBoolean:
			var x bool
			x, ok = parseBool(string(v))
			if ok = ok && c.kind != kDate; ok {
				col.boo.Append(x)
			}
		case tDouble:
			var x float64
			if c.kind == kDate {
				var us int64
				if us, ok = parseISO(v); ok {
					x = float64(us)/86400e6 + excelEpochDays - r.dayShift
				}
			} else {
				x, ok = parseDouble(string(v))
			}
			if ok {
				col.f64.Append(x)
			}
		default:
			var us int64
			us, ok = r.micros(c)
			if ok {
				switch col.t {
				case tDate:
					col.date.Append(arrow.Date32(floorDiv(us, 86400e6)))
				case tTime:
					col.clock.Append(arrow.Time64(us - floorDiv(us, 86400e6)*86400e6))
				case tTimestamp:
					col.ts.Append(arrow.Timestamp(us))
				}
			}
		}
		if !ok {
			if !r.o.IgnoreErrors {
				return 0, r.cellErr(c.col, row, "could not convert '%s' to %s (column \"%s\"; ignore_errors = true reads it as NULL)", v, col.t, col.name)
			}
			col.fb.AppendNull()
		}
	}
	return size, nil
}

// micros is a cell's value as a point in time: a date cell's ISO text, a
// number's serial, or text that is either.
func (r *reader) micros(c *xcell) (int64, bool) {
	if c.kind == kDate {
		return parseISO(c.v)
	}
	if x, ok := parseDouble(string(c.v)); ok {
		return serialMicros(x + r.dayShift), true
	}
	if c.kind == kText {
		return parseISO(c.v)
	}
	return 0, false
}

// isoLayouts are the ISO 8601 forms a t="d" cell may hold, most common
// first. Go's parser takes fractional seconds after the seconds of any of
// them.
var isoLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"15:04:05",
	"15:04",
}

// parseISO reads ISO 8601 date, date-time or time text as microseconds
// since the Unix epoch, in UTC (a zone offset is applied, as a cast to
// TIMESTAMP does). A time alone is on day 0 of Excel's calendar.
func parseISO(b []byte) (int64, bool) {
	s := string(bytes.TrimSpace(b))
	for _, layout := range isoLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if layout[0] == '1' { // a time of day
			return int64(t.Hour())*3600e6 + int64(t.Minute())*60e6 + int64(t.Second())*1e6 + int64(t.Nanosecond()/1e3) - excelEpochDays*86400e6, true
		}
		return t.UnixMicro(), true
	}
	return 0, false
}

// formatType maps a number format to the type its values read as: the
// format code custom when the stylesheet defines the id (whatever the id),
// else Excel's built-in format of that id.
func formatType(id int, custom *string) colType {
	if custom == nil {
		switch {
		case id >= 14 && id <= 17, id >= 27 && id <= 36, id >= 50 && id <= 58:
			return tDate
		case id >= 18 && id <= 21, id >= 45 && id <= 47:
			return tTime
		case id == 22:
			return tTimestamp
		}
		return tDouble
	}
	var date, clock, minutes bool
	inQuote := false
	code := strings.ToLower(*custom)
	for i := 0; i < len(code); i++ {
		ch := code[i]
		switch {
		case ch == '"':
			inQuote = !inQuote
		case inQuote:
		case ch == '\\' || ch == '_' || ch == '*':
			i++ // the next character is literal
		case ch == '[':
			// [h], [mm] are elapsed time; [Red], [$-409] are not.
			j := strings.IndexByte(code[i:], ']')
			if j < 0 {
				j = len(code) - i
			}
			inner := code[i+1 : i+j]
			if inner != "" && strings.Trim(inner, "hms") == "" {
				clock = true
			}
			i += j
		case ch == 'y' || ch == 'd':
			date = true
		case ch == 'h' || ch == 's':
			clock = true
		case ch == 'm':
			minutes = true
		}
	}
	if minutes && !clock {
		date = true
	}
	switch {
	case date && clock:
		return tTimestamp
	case date:
		return tDate
	case clock:
		return tTime
	}
	return tDouble
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	next := map[string]int{} // by name, the first suffix that may be free
	out := make([]string, len(names))
	for i, n := range names {
		if n == "" {
			n = cellNameCol(i)
		}
		cand := n
		if seen[strings.ToLower(cand)] {
			// Suffixes below next are taken: a header of one name
			// repeated costs linear time, not quadratic.
			key := strings.ToLower(n)
			k := max(next[key], 1)
			for ; seen[strings.ToLower(fmt.Sprintf("%s_%d", n, k))]; k++ {
			}
			cand = fmt.Sprintf("%s_%d", n, k)
			next[key] = k + 1
		}
		seen[strings.ToLower(cand)] = true
		out[i] = cand
	}
	return out
}

func cellNameCol(i int) string { return fmt.Sprintf("column%d", i) }

// excelEpochDays is the serial of 1970-01-01 in Excel's 1900 date system.
const excelEpochDays = 25569

// serialMicros converts an Excel serial (days since 1899-12-30) to
// microseconds since the Unix epoch, rounding away float noise below a
// millisecond as DuckDB does.
func serialMicros(serial float64) int64 {
	secs := serial * 86400
	if math.Abs(secs-math.Round(secs)) < 1e-3 {
		secs = math.Round(secs)
	}
	us := (secs - excelEpochDays*86400) * 1e6
	switch {
	case us <= math.MinInt64:
		return math.MinInt64
	case us >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(us)
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "1", "y", "yes":
		return true, true
	case "false", "f", "0", "n", "no":
		return false, true
	}
	return false, false
}

func parseDouble(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Serial is the Excel serial of t, for writers.
func Serial(t time.Time) float64 {
	return float64(t.UnixMicro())/86400e6 + excelEpochDays
}
