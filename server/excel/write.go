package excel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/xuri/excelize/v2"
)

// WriteOptions are COPY … (FORMAT xlsx)'s options.
type WriteOptions struct {
	Header bool   // write the column names as the first row
	Sheet  string // default Sheet1
}

// Write turns the Parquet file a COPY wrote into a workbook, converting
// as DuckDB's xlsx writer does: numbers become numbers, dates, times and
// timestamps become serials with a date or time format, booleans stay
// booleans, everything else becomes text.
func Write(ctx context.Context, src, dst string, o WriteOptions) error {
	if o.Sheet == "" {
		o.Sheet = "Sheet1"
	}
	pf, err := file.OpenParquetFile(src, false)
	if err != nil {
		return fmt.Errorf("COPY TO xlsx: reading the result: %w", err)
	}
	defer pf.Close()
	rd, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: batchRows}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("COPY TO xlsx: reading the result: %w", err)
	}
	rr, err := rd.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("COPY TO xlsx: reading the result: %w", err)
	}
	defer rr.Release()

	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", o.Sheet); err != nil {
		return fmt.Errorf("COPY TO xlsx: sheet name %q: %w", o.Sheet, err)
	}
	sw, err := f.NewStreamWriter(o.Sheet)
	if err != nil {
		return fmt.Errorf("COPY TO xlsx: %w", err)
	}
	dateFmt, tsFmt, timeFmt := "yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss", "hh:mm:ss"
	dateStyle, _ := f.NewStyle(&excelize.Style{CustomNumFmt: &dateFmt})
	tsStyle, _ := f.NewStyle(&excelize.Style{CustomNumFmt: &tsFmt})
	timeStyle, _ := f.NewStyle(&excelize.Style{CustomNumFmt: &timeFmt})

	schema := rr.Schema()
	row := 1
	if o.Header {
		names := make([]any, schema.NumFields())
		for i, fl := range schema.Fields() {
			names[i] = fl.Name
		}
		if err := sw.SetRow("A1", names); err != nil {
			return fmt.Errorf("COPY TO xlsx: %w", err)
		}
		row++
	}
	for rr.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := rr.RecordBatch()
		cols := rec.Columns()
		vals := make([]any, len(cols))
		for r := 0; r < int(rec.NumRows()); r++ {
			if row > maxRows {
				return fmt.Errorf("COPY TO xlsx: more than %d rows do not fit in a sheet", maxRows)
			}
			for c, col := range cols {
				vals[c] = cellValue(col, r, dateStyle, tsStyle, timeStyle)
			}
			cellRef, _ := excelize.CoordinatesToCellName(1, row)
			if err := sw.SetRow(cellRef, vals); err != nil {
				return fmt.Errorf("COPY TO xlsx: row %d: %w", row, err)
			}
			row++
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("COPY TO xlsx: reading the result: %w", err)
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("COPY TO xlsx: %w", err)
	}
	return save(f, dst)
}

// save writes the workbook to a private temporary file next to dst and
// renames it into place: no fixed name another process could plant a link
// at, nothing written through a link at dst (the rename replaces the link
// itself), and no half-written workbook under dst's name.
func save(f *excelize.File, dst string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.part")
	if err != nil {
		return fmt.Errorf("COPY TO xlsx: writing %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o640); err != nil {
		return fmt.Errorf("COPY TO xlsx: writing %s: %w", dst, err)
	}
	if err := f.Write(tmp); err != nil {
		return fmt.Errorf("COPY TO xlsx: writing %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("COPY TO xlsx: writing %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("COPY TO xlsx: writing %s: %w", dst, err)
	}
	return nil
}

func cellValue(col arrow.Array, r int, dateStyle, tsStyle, timeStyle int) any {
	if col.IsNull(r) {
		return nil
	}
	switch a := col.(type) {
	case *array.Boolean:
		return a.Value(r)
	case *array.Int8:
		return float64(a.Value(r))
	case *array.Int16:
		return float64(a.Value(r))
	case *array.Int32:
		return float64(a.Value(r))
	case *array.Int64:
		return float64(a.Value(r))
	case *array.Uint8:
		return float64(a.Value(r))
	case *array.Uint16:
		return float64(a.Value(r))
	case *array.Uint32:
		return float64(a.Value(r))
	case *array.Uint64:
		return float64(a.Value(r))
	case *array.Float32:
		return float64(a.Value(r))
	case *array.Float64:
		return a.Value(r)
	case *array.String:
		return a.Value(r)
	case *array.LargeString:
		return a.Value(r)
	case *array.Date32:
		return excelize.Cell{StyleID: dateStyle, Value: float64(a.Value(r)) + excelEpochDays}
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		t := a.Value(r).ToTime(unit)
		return excelize.Cell{StyleID: tsStyle, Value: Serial(t)}
	case *array.Time64:
		unit := a.DataType().(*arrow.Time64Type).Unit
		us := int64(a.Value(r))
		if unit == arrow.Nanosecond {
			us /= 1000
		}
		return excelize.Cell{StyleID: timeStyle, Value: float64(us) / 86400e6}
	case *array.Decimal128, *array.Decimal256:
		var f float64
		fmt.Sscan(col.ValueStr(r), &f)
		return f
	}
	return col.ValueStr(r)
}
