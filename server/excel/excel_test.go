package excel

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/xuri/excelize/v2"
)

// readBack returns the converted file's columns as "name TYPE" and its
// rows as '|'-joined values.
func readBack(t *testing.T, path string) (cols, rows []string) {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	rd, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := rd.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	for _, f := range tbl.Schema().Fields() {
		cols = append(cols, f.Name+" "+f.Type.String())
	}
	for r := 0; r < int(tbl.NumRows()); r++ {
		var vals []string
		for c := 0; c < int(tbl.NumCols()); c++ {
			ch := tbl.Column(c).Data().Chunk(0)
			if ch.IsNull(r) {
				vals = append(vals, "NULL")
			} else {
				vals = append(vals, ch.ValueStr(r))
			}
		}
		rows = append(rows, strings.Join(vals, "|"))
	}
	return cols, rows
}

func book(t *testing.T) string {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	dateStyle, _ := f.NewStyle(&excelize.Style{NumFmt: 14})
	timeStyle, _ := f.NewStyle(&excelize.Style{NumFmt: 21})
	f.SetSheetRow("Sheet1", "A1", &[]any{"n", "when", "clock", "flag", "text"})
	d := time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)
	f.SetSheetRow("Sheet1", "A2", &[]any{1.5, d, 0.75, true, "x"})
	f.SetSheetRow("Sheet1", "A3", &[]any{-2, d.AddDate(0, 0, 1), 0.5, false, 42})
	f.SetCellStyle("Sheet1", "B2", "B3", dateStyle)
	f.SetCellStyle("Sheet1", "C2", "C3", timeStyle)
	p := filepath.Join(t.TempDir(), "b.xlsx")
	if err := f.SaveAs(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConvertTypes(t *testing.T) {
	src := book(t)
	dst := filepath.Join(t.TempDir(), "out.parquet")
	if err := Convert(context.Background(), src, dst, "b.xlsx", Options{}); err != nil {
		t.Fatal(err)
	}
	cols, rows := readBack(t, dst)
	if want := []string{"n float64", "when date32", "clock time64[us]", "flag bool", "text utf8"}; !slices.Equal(cols, want) {
		t.Fatalf("columns %q, want %q", cols, want)
	}
	if want := []string{"1.5|2024-02-29|18:00:00.000000|true|x", "-2|2024-03-01|12:00:00.000000|false|42"}; !slices.Equal(rows, want) {
		t.Fatalf("rows %q, want %q", rows, want)
	}
}

func TestFormatType(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, c := range []struct {
		id     int
		custom *string
		want   colType
	}{
		{0, nil, tDouble}, {14, nil, tDate}, {22, nil, tTimestamp}, {20, nil, tTime},
		{164, s("yyyy-mm-dd"), tDate}, {164, s("hh:mm:ss"), tTime}, {164, s("dd/mm/yyyy hh:mm"), tTimestamp},
		{164, s(`0.00" days"`), tDouble}, {164, s("[h]:mm"), tTime}, {164, s("[Red]0.00"), tDouble},
		{164, s("mmm yyyy"), tDate},
	} {
		if got := formatType(c.id, c.custom); got != c.want {
			t.Errorf("formatType(%d, %v) = %s, want %s", c.id, c.custom, got, c.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want cellRange
		ok   bool
	}{
		{"A1:B2", cellRange{1, 1, 3, 3, true}, true},
		{"a5:z", cellRange{5, 1, maxRows + 1, 27, false}, true},
		{"E:Z", cellRange{1, 5, maxRows + 1, 27, false}, true},
		{"B2", cellRange{}, false},
		{"B9:A1", cellRange{}, false},
		{"A0:B1", cellRange{}, false},
		{"1:", cellRange{}, false},
		{":", cellRange{}, false},
	} {
		got, err := parseRange(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("parseRange(%q) = %+v, %v; want %+v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	src := book(t)
	err := Convert(context.Background(), src, filepath.Join(dir, "x.parquet"), "b.xlsx", Options{Sheet: "Other"})
	if err == nil || !strings.Contains(err.Error(), `sheet "Other" not found in "b.xlsx" (sheets: Sheet1)`) {
		t.Fatalf("missing sheet: %v", err)
	}
	err = Convert(context.Background(), filepath.Join(dir, "none.xlsx"), filepath.Join(dir, "x.parquet"), "none.xlsx", Options{})
	if err == nil || !strings.Contains(err.Error(), "none.xlsx") {
		t.Fatalf("missing file: %v", err)
	}
	// Text in a number column names its cell.
	f := excelize.NewFile()
	f.SetSheetName("Sheet1", "Sales")
	f.SetSheetRow("Sales", "A1", &[]any{"amount"})
	f.SetSheetRow("Sales", "A2", &[]any{1})
	f.SetSheetRow("Sales", "A3", &[]any{"n/a"})
	p := filepath.Join(dir, "bad.xlsx")
	f.SaveAs(p)
	err = Convert(context.Background(), p, filepath.Join(dir, "x.parquet"), "bad.xlsx", Options{})
	if err == nil || !strings.Contains(err.Error(), `read_xlsx: sheet "Sales" cell A3: could not convert 'n/a' to DOUBLE`) {
		t.Fatalf("bad cell: %v", err)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	src := book(t)
	dir := t.TempDir()
	pq := filepath.Join(dir, "a.parquet")
	if err := Convert(context.Background(), src, pq, "b.xlsx", Options{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.xlsx")
	if err := Write(context.Background(), pq, out, WriteOptions{Header: true, Sheet: "Data"}); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "again.parquet")
	if err := Convert(context.Background(), out, again, "out.xlsx", Options{}); err != nil {
		t.Fatal(err)
	}
	_, want := readBack(t, pq)
	_, got := readBack(t, again)
	if !slices.Equal(got, want) {
		t.Fatalf("round trip %q, want %q", got, want)
	}
}
