package excel

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	mainNS    = `xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"`
	relsNS    = `xmlns="http://schemas.openxmlformats.org/package/2006/relationships"`
	officeRel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
)

// rawBook writes a workbook from parts given as XML, with a package
// relationship, a workbook naming one sheet "S" and its relationships
// filled in unless parts has them.
func rawBook(t testing.TB, parts map[string]string) string {
	t.Helper()
	all := map[string]string{
		"_rels/.rels":     `<Relationships ` + relsNS + `><Relationship Id="rId1" Type="` + officeRel + `/officeDocument" Target="xl/workbook.xml"/></Relationships>`,
		"xl/workbook.xml": `<workbook ` + mainNS + ` xmlns:r="` + officeRel + `"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>`,
		"xl/_rels/workbook.xml.rels": `<Relationships ` + relsNS + `>` +
			`<Relationship Id="rId1" Type="` + officeRel + `/worksheet" Target="worksheets/sheet1.xml"/>` +
			`<Relationship Id="rId2" Type="` + officeRel + `/styles" Target="styles.xml"/>` +
			`<Relationship Id="rId3" Type="` + officeRel + `/sharedStrings" Target="sharedStrings.xml"/></Relationships>`,
	}
	for k, v := range parts {
		all[k] = v
	}
	p := filepath.Join(t.TempDir(), "raw.xlsx")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(all[name]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func sheetXML(rows string) string {
	return `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n" + `<worksheet ` + mainNS + `><sheetData>` + rows + `</sheetData></worksheet>`
}

// convertRaw converts a raw book and reads it back.
func convertRaw(t *testing.T, src string, o Options) (cols, rows []string, err error) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "out.parquet")
	if err := Convert(context.Background(), src, dst, "raw.xlsx", o); err != nil {
		return nil, nil, err
	}
	cols, rows = readBack(t, dst)
	return cols, rows, nil
}

func wantConverted(t *testing.T, src string, o Options, wantCols, wantRows []string) {
	t.Helper()
	cols, rows, err := convertRaw(t, src, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cols, wantCols) {
		t.Errorf("columns %q, want %q", cols, wantCols)
	}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("rows %q, want %q", rows, wantRows)
	}
}

// Styles: 0 General, 1 built-in 14 (date), 2 custom 60 (date-time, an id
// below 164 as SheetJS writes it), 3 built-in 21 (time), 4 id 14
// redefined as a number format, 5 custom 61 (date).
const testStyles = `<styleSheet ` + mainNS + `><numFmts count="3">` +
	`<numFmt numFmtId="60" formatCode="yyyy-mm-dd hh:mm:ss"/><numFmt numFmtId="61" formatCode="yyyy-mm-dd"/>` +
	`<numFmt numFmtId="14" formatCode="0.00"/></numFmts>` +
	`<cellStyleXfs count="1"><xf numFmtId="22"/></cellStyleXfs>` +
	`<cellXfs count="6"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="60"/><xf numFmtId="21"/><xf numFmtId="14"/><xf numFmtId="61"/></cellXfs>` +
	`<dxfs count="1"><dxf><numFmt numFmtId="60" formatCode="0"/></dxf></dxfs></styleSheet>`

// t="d" cells hold ISO 8601 text: DATE, TIMESTAMP or TIME by their number
// format, TIMESTAMP without one. Later cells cast to the column's type.
func TestConvertDateCells(t *testing.T) {
	// Without the redefinition of 14, style 1 is a date.
	styles := strings.Replace(testStyles, `<numFmt numFmtId="14" formatCode="0.00"/>`, "", 1)
	book := rawBook(t, map[string]string{
		"xl/styles.xml": styles,
		"xl/worksheets/sheet1.xml": sheetXML(
			`<row r="1"><c r="A1" t="str"><v>d</v></c><c r="B1" t="str"><v>ts</v></c><c r="C1" t="str"><v>tm</v></c><c r="D1" t="str"><v>plain</v></c><c r="E1" t="str"><v>n</v></c></row>` +
				`<row r="2"><c r="A2" s="1" t="d"><v>2024-01-15T00:00:00.000Z</v></c><c r="B2" s="2" t="d"><v>2024-01-15T10:30:00.000Z</v></c>` +
				`<c r="C2" s="3" t="d"><v>1899-12-31T06:45:30.000Z</v></c><c r="D2" t="d"><v>2024-01-15T10:30:00+02:00</v></c><c r="E2"><v>1.5</v></c></row>` +
				// Later cells: a serial, a date alone, a time alone, a
				// date-time in a DOUBLE column.
				`<row r="3"><c r="A3"><v>45307</v></c><c r="B3" t="d"><v>2024-01-16</v></c><c r="C3" t="d"><v>23:59:59</v></c>` +
				`<c r="D3"><v>45306.5</v></c><c r="E3" t="d"><v>2024-01-15T12:00:00Z</v></c></row>`),
	})
	wantConverted(t, book, Options{},
		[]string{"d date32", "ts timestamp[us]", "tm time64[us]", "plain timestamp[us]", "n float64"},
		[]string{
			"2024-01-15|2024-01-15T10:30:00Z|06:45:30.000000|2024-01-15T08:30:00Z|1.5",
			"2024-01-16|2024-01-16T00:00:00Z|23:59:59.000000|2024-01-15T12:00:00Z|45306.5",
		})
	// all_varchar reads the text as written.
	wantConverted(t, book, Options{AllVarchar: true},
		[]string{"d utf8", "ts utf8", "tm utf8", "plain utf8", "n utf8"},
		[]string{
			"2024-01-15T00:00:00.000Z|2024-01-15T10:30:00.000Z|1899-12-31T06:45:30.000Z|2024-01-15T10:30:00+02:00|1.5",
			"45307|2024-01-16|23:59:59|45306.5|2024-01-15T12:00:00Z",
		})
	// A date cell that is not ISO text names its cell.
	bad := rawBook(t, map[string]string{
		"xl/styles.xml":            styles,
		"xl/worksheets/sheet1.xml": sheetXML(`<row r="1"><c r="A1" s="1" t="d"><v>2024-01-15</v></c></row><row r="2"><c r="A2" t="d"><v>15/01/2024</v></c></row>`),
	})
	if _, _, err := convertRaw(t, bad, Options{}); err == nil || !strings.Contains(err.Error(), `cell A2: could not convert '15/01/2024' to DATE`) {
		t.Fatalf("bad date cell: %v", err)
	}
	wantConverted(t, bad, Options{IgnoreErrors: true}, []string{"A1 date32"}, []string{"2024-01-15", "NULL"})
}

// A <numFmt> in the stylesheet defines its id, whatever the id: 60 and 61
// are dates (SheetJS), a redefined 14 is a number. Differential formats'
// numFmts and cellStyleXfs are not cell styles.
func TestConvertExplicitNumFmtWins(t *testing.T) {
	book := rawBook(t, map[string]string{
		"xl/styles.xml": testStyles,
		"xl/worksheets/sheet1.xml": sheetXML(
			`<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c><c r="D1" t="s"><v>3</v></c></row>` +
				`<row r="2"><c r="A2" s="2"><v>45306.4375</v></c><c r="B2" s="5"><v>45306</v></c><c r="C2" s="4"><v>45306</v></c><c r="D2" s="3"><v>0.5</v></c></row>`),
		"xl/sharedStrings.xml": `<sst ` + mainNS + `><si><t>a</t></si><si><t>b</t></si><si><t>c</t></si><si><t>d</t></si></sst>`,
	})
	wantConverted(t, book, Options{},
		[]string{"a timestamp[us]", "b date32", "c float64", "d time64[us]"},
		[]string{"2024-01-15T10:30:00Z|2024-01-15|45306|12:00:00.000000"})
}

// Text cells of every kind count as text for the header and for types:
// shared strings (rich text joined, phonetic runs left out), t="str" and
// inline strings, with _xHHHH_ escapes decoded where Excel decodes them.
func TestConvertTextCells(t *testing.T) {
	book := rawBook(t, map[string]string{
		"xl/sharedStrings.xml": `<sst ` + mainNS + `><si><t>shared</t></si>` +
			`<si><r><rPr><b/></rPr><t>ri</t></r><r><t xml:space="preserve">ch </t></r><rPh sb="0" eb="1"><t>PHON</t></rPh></si>` +
			`<si><t>line_x000D_break</t></si><si/></sst>`,
		"xl/worksheets/sheet1.xml": sheetXML(
			`<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="str"><v>formula</v></c><c r="C1" t="inlineStr"><is><t>inline</t></is></c></row>` +
				`<row r="2"><c r="A2" t="s"><v>1</v></c><c r="B2" t="str"><f>"x"&amp;"y"</f><v>xy</v></c><c r="C2" t="inlineStr"><is><r><t>in</t></r><r><t>_x0041_</t></r><rPh><t>P</t></rPh></is></c></row>` +
				`<row r="3"><c r="A3" t="s"><v>2</v></c><c r="B3" t="str"><v>a_x000D_b</v></c><c r="C3" t="e"><v>#N/A</v></c></row>` +
				// An empty shared string is an empty cell.
				`<row r="4"><c r="A4" t="s"><v>3</v></c><c r="B4" t="str"><v>z</v></c></row>`),
	})
	wantConverted(t, book, Options{},
		[]string{"shared utf8", "formula utf8", "inline utf8"},
		[]string{"rich |xy|inA", "line\rbreak|a_x000D_b|#N/A", "NULL|z|NULL"})
}

// Rows and cells without references follow the one before; element
// prefixes, a workbook part elsewhere, absolute targets and the 1904 date
// system are read as Excel reads them.
func TestConvertPackageVariants(t *testing.T) {
	const x = `xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"`
	book := rawBook(t, map[string]string{
		"_rels/.rels":     `<Relationships ` + relsNS + `><Relationship Id="a" Type="` + officeRel + `/officeDocument" Target="/book/main.xml"/></Relationships>`,
		"xl/workbook.xml": "",
		"book/main.xml": `<x:workbook ` + x + ` xmlns:r="` + officeRel + `"><x:workbookPr date1904="1"/><x:sheets>` +
			`<x:sheet name="First" sheetId="1" r:id="r1"/><x:sheet name="Data &amp; more" sheetId="2" r:id="r2"/></x:sheets></x:workbook>`,
		"book/_rels/main.xml.rels": `<Relationships ` + relsNS + `>` +
			`<Relationship Id="r1" Type="` + officeRel + `/worksheet" Target="/sheets/one.xml"/>` +
			`<Relationship Id="r2" Type="` + officeRel + `/worksheet" Target="../sheets/two.xml"/>` +
			`<Relationship Id="r3" Type="` + officeRel + `/styles" Target="st.xml"/>` +
			`<Relationship Id="r4" Type="` + officeRel + `/hyperlink" Target="https://example.com/" TargetMode="External"/></Relationships>`,
		"book/st.xml": `<x:styleSheet ` + x + `><x:cellXfs><x:xf numFmtId="0"/><x:xf numFmtId="14"/></x:cellXfs></x:styleSheet>`,
		"sheets/one.xml": `<x:worksheet ` + x + `><x:sheetData><x:row><x:c t="inlineStr"><x:is><x:t>n</x:t></x:is></x:c><x:c t="inlineStr"><x:is><x:t>day</x:t></x:is></x:c></x:row>` +
			`<x:row><x:c><x:v>1</x:v></x:c><x:c s="1"><x:v>0</x:v></x:c></x:row><x:row><x:c r="B3" s="1"><x:v>45000</x:v></x:c></x:row></x:sheetData></x:worksheet>`,
		"sheets/two.xml": sheetXML(`<row r="1"><c r="A1"><v>7</v></c></row>`),
	})
	// Day 0 of the 1904 system is 1904-01-01; 45000 is 2027-03-16.
	wantConverted(t, book, Options{}, []string{"n float64", "day date32"}, []string{"1|1904-01-01", "NULL|2027-03-16"})
	wantConverted(t, book, Options{Sheet: "data & MORE"}, []string{"A1 float64"}, []string{"7"})
	if _, _, err := convertRaw(t, book, Options{Sheet: "Nope"}); err == nil || !strings.Contains(err.Error(), `(sheets: First, Data & more)`) {
		t.Fatalf("missing sheet: %v", err)
	}
}

// Sheets that break the format fail with an error naming the sheet and
// what is wrong, never a panic or a silent empty value.
func TestConvertBrokenSheets(t *testing.T) {
	sst := `<sst ` + mainNS + `><si><t>a</t></si></sst>`
	for _, c := range []struct{ rows, want string }{
		{`<row r="2"><c><v>1</v></c></row><row r="1"><c><v>2</v></c></row>`, "row 1 comes after row 2"},
		{`<row r="0"><c><v>1</v></c></row>`, `row number "0" is not one of a sheet's`},
		{`<row r="1048577"><c><v>1</v></c></row>`, `row number "1048577"`},
		{`<row r="1"><c r="A1" t="s"><v>5</v></c></row>`, `cell A1: shared string "5" does not exist (the workbook has 1)`},
		{`<row r="1"><c r="A1" t="s"><v>x</v></c></row>`, `cell A1: shared string "x" does not exist`},
		{`<row r="1"><c r="A1" t="q"><v>1</v></c></row>`, `cell A1: unknown cell type "q"`},
		{`<row r="1"><c r="11"><v>1</v></c></row>`, `"11" is not a cell reference`},
		{`<row r="1"><c r="XFE1"><v>1</v></c></row>`, `"XFE1" is not a cell reference`},
		{`<row r="1"><c r="A1"><v>1</v></c>`, "the sheet ends inside row 1"},
		{`<row r="1"><c r="A1"><v>1</v>`, "the sheet ends inside cell A1"},
		{`<row r="1"><c r="A1" <v>1</v></c></row>`, "malformed XML"},
	} {
		book := rawBook(t, map[string]string{"xl/sharedStrings.xml": sst, "xl/worksheets/sheet1.xml": sheetXML(c.rows)})
		_, _, err := convertRaw(t, book, Options{Header: new(false), StopAtEmpty: new(false)})
		if err == nil || !strings.Contains(err.Error(), `read_xlsx: sheet "S" of "raw.xlsx": `) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error with %q", c.rows, err, c.want)
		}
	}
	// Rows past the sheet's last, numbered only by counting, end it.
	rows := strings.Repeat(`<row><c><v>1</v></c></row>`, 3)
	book := rawBook(t, map[string]string{"xl/worksheets/sheet1.xml": sheetXML(`<row r="1048575"><c><v>1</v></c></row>` + rows)})
	if _, got, err := convertRaw(t, book, Options{}); err != nil || len(got) != 2 {
		t.Fatalf("rows past the last: %d rows, %v", len(got), err)
	}
}

// Conversion memory does not grow with the sheet: converting four times
// the rows peaks at about the same heap.
func TestConvertMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("converts 350,000 rows")
	}
	small, big := bigBook(t, 70_000), bigBook(t, 280_000)
	peakSmall, peakBig := convertPeak(t, small), convertPeak(t, big)
	t.Logf("peak heap: %d MiB for 70,000 rows, %d MiB for 280,000", peakSmall>>20, peakBig>>20)
	if peakBig > peakSmall*3/2+8<<20 {
		t.Fatalf("peak heap %d MiB for 280,000 rows against %d MiB for 70,000: memory grows with the sheet", peakBig>>20, peakSmall>>20)
	}
}

// bigBook is a sheet of n rows of text, a number and a date, as
// exceljs's streaming writer lays them out.
func bigBook(t *testing.T, n int) string {
	t.Helper()
	var sheet bytes.Buffer
	sheet.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet ` + mainNS + `><sheetData>`)
	sheet.WriteString(`<row r="1"><c r="A1" t="str"><v>name</v></c><c r="B1" t="str"><v>amount</v></c><c r="C1" t="str"><v>day</v></c></row>`)
	for i := 2; i <= n+1; i++ {
		fmt.Fprintf(&sheet, `<row r="%d" spans="1:3"><c r="A%d" t="str"><v>name-%d</v></c><c r="B%d"><v>%d.25</v></c><c r="C%d" s="1"><v>%d</v></c></row>`,
			i, i, i%1000, i, i, i, 40000+i%3000)
	}
	sheet.WriteString(`</sheetData></worksheet>`)
	p := filepath.Join(t.TempDir(), "big.xlsx")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	parts := map[string]string{
		"_rels/.rels":                `<Relationships ` + relsNS + `><Relationship Id="rId1" Type="` + officeRel + `/officeDocument" Target="xl/workbook.xml"/></Relationships>`,
		"xl/workbook.xml":            `<workbook ` + mainNS + ` xmlns:r="` + officeRel + `"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>`,
		"xl/_rels/workbook.xml.rels": `<Relationships ` + relsNS + `><Relationship Id="rId1" Type="` + officeRel + `/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`,
		"xl/styles.xml":              `<styleSheet ` + mainNS + `><cellXfs><xf numFmtId="0"/><xf numFmtId="14"/></cellXfs></styleSheet>`,
		"xl/worksheets/sheet1.xml":   sheet.String(),
	}
	for name, data := range parts {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// convertPeak converts src and returns the peak of live heap objects
// while it ran, sampled every millisecond.
func convertPeak(t *testing.T, src string) uint64 {
	t.Helper()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	err := Convert(context.Background(), src, filepath.Join(t.TempDir(), "out.parquet"), "big.xlsx", Options{})
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return peak
}

// Arbitrary sheet XML fails cleanly or converts; it never panics.
func FuzzConvertSheet(f *testing.F) {
	for _, rows := range []string{
		`<row r="1"><c r="A1" t="str"><v>a</v></c><c r="B1" t="s"><v>0</v></c></row><row r="2"><c r="A2" t="d"><v>2024-01-15</v></c><c r="B2"><v>1</v></c></row>`,
		`<row><c t="inlineStr"><is><r><t>x</t></r><rPh><t>y</t></rPh></is></c><c t="b"><v>1</v></c></row><row r="5"><c r="C5" s="1"><v>45000</v></c></row>`,
		`<row r="1"><c r="A1"><f>1+1</f></c></row><row r="2"><c r="A2" t="e"><v>#DIV/0!</v></c></row>`,
		`<row r="1"><c r="A1"><v><![CDATA[1]]></v><!-- x --></c></row>`,
	} {
		f.Add(rows, "")
		f.Add(rows, "A1:C3")
	}
	f.Fuzz(func(t *testing.T, rows, rng string) {
		book := rawBook(t, map[string]string{
			"xl/sharedStrings.xml":     `<sst ` + mainNS + `><si><t>s</t></si></sst>`,
			"xl/styles.xml":            testStyles,
			"xl/worksheets/sheet1.xml": sheetXML(rows),
		})
		dst := filepath.Join(t.TempDir(), "out.parquet")
		o := Options{Range: rng}
		if rng != "" {
			o.StopAtEmpty = new(true)
		}
		Convert(context.Background(), book, dst, "raw.xlsx", o)
	})
}

// An open-ended range ('A2:B', 'A:B') ends at the sheet's last row, empty
// rows inside it included; only a range with an end row pads past it.
func TestConvertOpenEndedRange(t *testing.T) {
	book := rawBook(t, map[string]string{"xl/worksheets/sheet1.xml": sheetXML(
		`<row r="1"><c r="A1"><v>1</v></c><c r="B1"><v>2</v></c></row><row r="2"><c r="A2"><v>3</v></c></row><row r="4"><c r="B4"><v>4</v></c></row>`)})
	for _, c := range []struct {
		rng  string
		want []string
	}{
		{"A2:B", []string{"3|NULL", "NULL|NULL", "NULL|4"}},
		{"A:B", []string{"1|2", "3|NULL", "NULL|NULL", "NULL|4"}},
		{"B:B", []string{"2", "NULL", "NULL", "4"}},
		{"A2:B6", []string{"3|NULL", "NULL|NULL", "NULL|4", "NULL|NULL", "NULL|NULL"}},
	} {
		_, rows, err := convertRaw(t, book, Options{Range: c.rng})
		if err != nil || !slices.Equal(rows, c.want) {
			t.Errorf("range %s: %q, %v; want %q", c.rng, rows, err, c.want)
		}
	}
}

func TestDedupe(t *testing.T) {
	if got := dedupe([]string{"a", "A", "a_1", "a", "", "b"}); !slices.Equal(got, []string{"a", "A_1", "a_1_1", "a_2", "column4", "b"}) {
		t.Fatalf("dedupe: %q", got)
	}
	// One name over a whole sheet's width is quick.
	names := make([]string, maxCols)
	for i := range names {
		names[i] = "x"
	}
	start := time.Now()
	got := dedupe(names)
	if got[maxCols-1] != fmt.Sprintf("x_%d", maxCols-1) || time.Since(start) > 5*time.Second {
		t.Fatalf("dedupe of %d names: %s in %v", maxCols, got[maxCols-1], time.Since(start))
	}
}
