// Package excel reads and writes .xlsx workbooks for Luna's read_xlsx and
// COPY … (FORMAT xlsx), with the meaning DuckDB's excel extension gives
// them: a sheet's cells become a typed Parquet file that DuckDB then scans
// with its own Parquet reader, and a query result in Parquet becomes a
// workbook.
//
// Types follow DuckDB's reader: each column's type comes from its cell in
// the first data row (numbers are DOUBLE unless their number format makes
// them a DATE, TIME or TIMESTAMP; TRUE/FALSE and boolean cells are
// BOOLEAN; text is VARCHAR; empty cells are DOUBLE, or VARCHAR with
// empty_as_varchar), and every later cell is cast to that type.
package excel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
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

// Key is a stable text form of the options, for caching conversions.
func (o Options) Key() string {
	b := func(p *bool) string {
		if p == nil {
			return "?"
		}
		return strconv.FormatBool(*p)
	}
	return fmt.Sprintf("sheet=%q header=%s all_varchar=%t ignore_errors=%t range=%q stop_at_empty=%s empty_as_varchar=%t",
		o.Sheet, b(o.Header), o.AllVarchar, o.IgnoreErrors, o.Range, b(o.StopAtEmpty), o.EmptyAsVarchar)
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
func Convert(ctx context.Context, src, dst, name string, o Options) (err error) {
	if err := checkZip(src, name); err != nil {
		return err
	}
	f, err := excelize.OpenFile(src, openOptions(filepath.Dir(dst)))
	if err != nil {
		return errorf("read_xlsx: cannot open \"%s\" as an xlsx workbook: %v", name, err)
	}
	defer f.Close()
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		return errorf("read_xlsx: no sheets found in \"%s\" (is the file corrupt?)", name)
	}
	sheet := o.Sheet
	if sheet == "" {
		sheet = sheets[0]
	} else if idx, _ := f.GetSheetIndex(sheet); idx < 0 {
		return errorf("read_xlsx: sheet \"%s\" not found in \"%s\" (sheets: %s)", sheet, name, strings.Join(sheets, ", "))
	}
	cells, err := newSheetScanner(src, sheet)
	if err != nil {
		return errorf("read_xlsx: sheet \"%s\" of \"%s\": %v", sheet, name, err)
	}
	r := &reader{f: f, sheet: sheet, name: name, o: o, cells: cells}
	if err := r.sniff(ctx); err != nil {
		return err
	}
	return r.write(ctx, dst)
}

type reader struct {
	f     *excelize.File
	cells *sheetScanner
	sheet string
	name  string
	o     Options

	rng      cellRange
	dataRow  int // first row read as data
	names    []string
	types    []colType
	stopAtEm bool
}

// rowIter walks the sheet's rows in order, empty and missing ones
// included.
type rowIter struct {
	rows *excelize.Rows
	num  int
}

func (r *reader) rows() (*rowIter, error) {
	rows, err := r.f.Rows(r.sheet)
	if err != nil {
		return nil, errorf("read_xlsx: sheet \"%s\" of \"%s\": %v", r.sheet, r.name, err)
	}
	return &rowIter{rows: rows}, nil
}

func (it *rowIter) next() ([]string, bool, error) {
	if !it.rows.Next() {
		return nil, false, it.rows.Error()
	}
	it.num++
	cols, err := it.rows.Columns(excelize.Options{RawCellValue: true})
	return cols, true, err
}

func (it *rowIter) close() { it.rows.Close() }

func cell(cols []string, col int) string {
	if col-1 < len(cols) {
		return cols[col-1]
	}
	return ""
}

func cellName(col, row int) string {
	n, _ := excelize.CoordinatesToCellName(col, row)
	return n
}

func (r *reader) cellErr(col, row int, format string, a ...any) error {
	return errorf("read_xlsx: sheet \"%s\" cell %s: %s", r.sheet, cellName(col, row), fmt.Sprintf(format, a...))
}

// sniff finds the range, the header and the column types.
func (r *reader) sniff(ctx context.Context) error {
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
	it, err := r.rows()
	if err != nil {
		return err
	}
	defer it.close()
	var header, first []string // cell values
	headerRow, firstRow := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		cols, ok, err := it.next()
		if err != nil {
			return errorf("read_xlsx: sheet \"%s\" of \"%s\": %v", r.sheet, r.name, err)
		}
		if !ok {
			break
		}
		row := it.num
		if !explicit {
			// The range is the first row with a value: from its first
			// non-empty cell to the last one before a gap.
			beg := 0
			for c, v := range cols {
				if v != "" {
					beg = c + 1
					break
				}
			}
			if beg == 0 {
				continue
			}
			end := beg
			for end < len(cols) && cols[end] != "" {
				end++
			}
			r.rng = cellRange{begRow: row, begCol: beg, endRow: maxRows + 1, endCol: end + 1}
			explicit = true // found: from here on as if given
			r.rng.explicitEndRow = false
		}
		if !r.rng.hasRow(row) || len(cols) == 0 {
			continue
		}
		if headerRow == 0 {
			headerRow, header = row, cols
			if !r.isHeader(ctx, row, cols) {
				break
			}
			continue
		}
		firstRow, first = row, cols
		break
	}
	if r.rng.begRow == 0 {
		return errorf("read_xlsx: no rows found in sheet \"%s\" of \"%s\"", r.sheet, r.name)
	}
	width := r.rng.endCol - r.rng.begCol
	hasHeader := headerRow != 0 && r.isHeader(ctx, headerRow, header)
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
			r.names = append(r.names, strings.TrimSpace(cell(header, c)))
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
		c := r.rng.begCol + i
		if firstRow == 0 {
			r.types[i] = r.emptyType()
			continue
		}
		t, err := r.cellType(ctx, c, firstRow, cell(first, c))
		if err != nil {
			return err
		}
		r.types[i] = t
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
// the row in the range is a non-empty string.
func (r *reader) isHeader(ctx context.Context, row int, cols []string) bool {
	if r.o.Header != nil {
		return *r.o.Header
	}
	meta, err := r.cells.row(ctx, row)
	if err != nil {
		return false
	}
	for c := r.rng.begCol; c < r.rng.endCol; c++ {
		if cell(cols, c) == "" {
			return false
		}
		if t := meta[c].typ; t != excelize.CellTypeSharedString && t != excelize.CellTypeInlineString {
			return false
		}
	}
	return true
}

// cellType is the column type a first-row cell gives.
func (r *reader) cellType(ctx context.Context, col, row int, v string) (colType, error) {
	if r.o.AllVarchar {
		return tVarchar, nil
	}
	if v == "" {
		return r.emptyType(), nil
	}
	if strings.EqualFold(v, "true") || strings.EqualFold(v, "false") {
		return tBoolean, nil
	}
	meta, err := r.cells.row(ctx, row)
	if err != nil {
		return 0, r.cellErr(col, row, "%v", err)
	}
	switch meta[col].typ {
	case excelize.CellTypeBool:
		return tBoolean, nil
	case excelize.CellTypeDate:
		return tDate, nil
	case excelize.CellTypeSharedString, excelize.CellTypeInlineString, excelize.CellTypeFormula, excelize.CellTypeError:
		return tVarchar, nil
	}
	style := meta[col].style
	if style == 0 {
		return tDouble, nil
	}
	st, err := r.f.GetStyle(style)
	if err != nil || st == nil {
		return tDouble, nil
	}
	return formatType(st.NumFmt, st.CustomNumFmt), nil
}

// formatType maps a number format to the type its values read as.
func formatType(id int, custom *string) colType {
	switch {
	case id >= 14 && id <= 17, id >= 27 && id <= 36, id >= 50 && id <= 58:
		return tDate
	case id >= 18 && id <= 21, id >= 45 && id <= 47:
		return tTime
	case id == 22:
		return tTimestamp
	}
	if custom == nil {
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
	out := make([]string, len(names))
	for i, n := range names {
		if n == "" {
			n = cellNameCol(i)
		}
		cand := n
		for k := 1; seen[strings.ToLower(cand)]; k++ {
			cand = fmt.Sprintf("%s_%d", n, k)
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

// write streams the data rows into a Parquet file.
func (r *reader) write(ctx context.Context, dst string) error {
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
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(batchRows))
	w, err := pqarrow.NewFileWriter(schema, out, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		return fmt.Errorf("read_xlsx: %w", err)
	}
	defer w.Close()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		n = 0
		return w.Write(rec)
	}
	it, err := r.rows()
	if err != nil {
		return err
	}
	defer it.close()
	per := rowsPerBatch(len(r.types))
	lastRow := r.dataRow - 1
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		cols, ok, err := it.next()
		if err != nil {
			return errorf("read_xlsx: sheet \"%s\" of \"%s\": %v", r.sheet, r.name, err)
		}
		if !ok {
			break
		}
		row := it.num
		if row < r.dataRow {
			continue
		}
		if !r.rng.hasRow(row) {
			break
		}
		empty := true
		for c := r.rng.begCol; c < r.rng.endCol; c++ {
			if cell(cols, c) != "" {
				empty = false
				break
			}
		}
		if empty {
			if r.stopAtEm {
				break
			}
			r.appendNull(b)
		} else if err := r.appendRow(b, cols, row); err != nil {
			return err
		}
		lastRow = row
		if n++; n == per {
			if err := flush(); err != nil {
				return fmt.Errorf("read_xlsx: writing %s: %w", dst, err)
			}
		}
	}
	// An explicit range that reads past the sheet's last row pads it with
	// empty rows, as DuckDB does.
	if r.o.Range != "" && r.rng.explicitEndRow && !r.stopAtEm {
		if pad := int64(r.rng.endRow-lastRow-1) * int64(len(r.types)); pad > MaxPadCells {
			return errorf("read_xlsx: range '%s' of \"%s\" would pad %d empty rows × %d columns (%d cells) past the sheet's last row, more than the limit of %d cells; give a range that ends nearer the data, or stop_at_empty = true",
				r.o.Range, r.name, r.rng.endRow-lastRow-1, len(r.types), pad, MaxPadCells)
		}
		for row := lastRow + 1; row < r.rng.endRow; row++ {
			r.appendNull(b)
			if n++; n == per {
				if err := ctx.Err(); err != nil {
					return context.Cause(ctx)
				}
				if err := flush(); err != nil {
					return fmt.Errorf("read_xlsx: writing %s: %w", dst, err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("read_xlsx: writing %s: %w", dst, err)
	}
	// Closing the writer closes the file too.
	if err := w.Close(); err != nil {
		return fmt.Errorf("read_xlsx: writing %s: %w", dst, err)
	}
	return nil
}

func (r *reader) appendNull(b *array.RecordBuilder) {
	for i := range r.types {
		b.Field(i).AppendNull()
	}
}

func (r *reader) appendRow(b *array.RecordBuilder, cols []string, row int) error {
	for i, t := range r.types {
		c := r.rng.begCol + i
		v := cell(cols, c)
		fb := b.Field(i)
		if v == "" {
			fb.AppendNull()
			continue
		}
		fail := func() error {
			if r.o.IgnoreErrors {
				fb.AppendNull()
				return nil
			}
			return r.cellErr(c, row, "could not convert '%s' to %s (column \"%s\"; ignore_errors = true reads it as NULL)", v, t, r.names[i])
		}
		switch t {
		case tVarchar:
			fb.(*array.StringBuilder).Append(v)
		case tBoolean:
			x, ok := parseBool(v)
			if !ok {
				if err := fail(); err != nil {
					return err
				}
				continue
			}
			fb.(*array.BooleanBuilder).Append(x)
		default:
			x, ok := parseDouble(v)
			if !ok {
				if err := fail(); err != nil {
					return err
				}
				continue
			}
			switch t {
			case tDouble:
				fb.(*array.Float64Builder).Append(x)
			case tDate:
				us := serialMicros(x)
				fb.(*array.Date32Builder).Append(arrow.Date32(floorDiv(us, 86400e6)))
			case tTime:
				us := serialMicros(x)
				fb.(*array.Time64Builder).Append(arrow.Time64(us - floorDiv(us, 86400e6)*86400e6))
			case tTimestamp:
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(serialMicros(x)))
			}
		}
	}
	return nil
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
