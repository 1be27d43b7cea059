//go:build duckdb_arrow

package e2e

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// Workbooks written at test time by the JavaScript writers people use
// most, exceljs and SheetJS (npm's xlsx), installed by scripts/tools.sh.
// Each script in testdata/xlsxwriters writes its workbooks and a JSON file
// of what it wrote: the columns and rows read_xlsx must return.

// writtenBook is one workbook a writer script describes.
type writtenBook struct {
	File    string `json:"file"`
	Sheet   string `json:"sheet"`
	Options string `json:"options"` // extra read_xlsx parameters
	Columns []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"columns"`
	Rows   [][]any `json:"rows"`
	Errors []struct {
		Options string   `json:"options"`
		Parts   []string `json:"parts"`
	} `json:"errors"` // reads that must fail, with what the error says
}

// xlsxWritersModules is the node_modules scripts/tools.sh installs the
// writers into.
func xlsxWritersModules(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(objstoretest.CacheDir(t), "npm", "xlsx-writers", "node_modules")
	for _, pkg := range []string{"exceljs", "xlsx"} {
		if _, err := os.Stat(filepath.Join(dir, pkg, "package.json")); err != nil {
			t.Fatalf("the npm package %s is not installed (%v): run `make tools`", pkg, err)
		}
	}
	return dir
}

// runXLSXWriter runs testdata/xlsxwriters/<script> with node into dir and
// returns the books its JSON (<script base>.json) describes.
func runXLSXWriter(t testing.TB, script, dir string, args ...string) []writtenBook {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for the xlsx writer tests: %v", err)
	}
	path := filepath.Join(testenv.RepoRoot(), "server", "e2e", "testdata", "xlsxwriters", script)
	cmd := exec.Command(node, append([]string{path, dir}, args...)...)
	// SheetJS's serial dates use the local zone: UTC makes them agree
	// with the ISO text the scripts record.
	cmd.Env = append(cleanEnv(), "NODE_PATH="+xlsxWritersModules(t), "TZ=UTC")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(script, ".js")+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Books []writtenBook `json:"books"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s's JSON: %v", script, err)
	}
	return doc.Books
}

// wantPartHas checks that the writer wrote what the test is about, so a
// writer that changed cannot make the test pass vacuously.
func wantPartHas(t *testing.T, book, part string, texts ...string) {
	t.Helper()
	zr, err := zip.OpenReader(book)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != part {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			if !strings.Contains(string(data), s) {
				t.Fatalf("%s of %s has no %s: the writer no longer writes what this test reads", part, filepath.Base(book), s)
			}
		}
		return
	}
	t.Fatalf("%s has no part %s", filepath.Base(book), part)
}

// checkBook reads a book through Luna and compares it with what its
// writer wrote: column names and types, then every row.
func checkBook(t *testing.T, c *client.Conn, dir string, b writtenBook) {
	t.Helper()
	call := fmt.Sprintf("read_xlsx('%s', sheet = '%s'", filepath.Join(dir, b.File), b.Sheet)
	if b.Options != "" {
		call += ", " + b.Options
	}
	call += ")"
	var want, sel []string
	for _, col := range b.Columns {
		want = append(want, col.Name+"|"+col.Type)
		q := `"` + col.Name + `"`
		switch col.Type {
		case "DATE", "TIME", "TIMESTAMP":
			q += "::VARCHAR"
		}
		sel = append(sel, q)
	}
	wantRows(t, c, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+call+")", want...)
	var rows []string
	for _, r := range b.Rows {
		vals := make([]string, len(r))
		for i, v := range r {
			vals[i] = expectedValue(t, b.Columns[i].Type, v)
		}
		rows = append(rows, strings.Join(vals, "|"))
	}
	wantRows(t, c, "SELECT "+strings.Join(sel, ", ")+" FROM "+call, rows...)
	for _, e := range b.Errors {
		call := fmt.Sprintf("read_xlsx('%s', sheet = '%s'", filepath.Join(dir, b.File), b.Sheet)
		if e.Options != "" {
			call += ", " + e.Options
		}
		wantError(t, c, "SELECT * FROM "+call+")", e.Parts...)
	}
}

// expectedValue is how Luna's result shows a value the writer wrote as a
// column of type typ (dates, times and timestamps cast to VARCHAR).
func expectedValue(t *testing.T, typ string, v any) string {
	t.Helper()
	if v == nil {
		return "NULL"
	}
	switch typ {
	case "DATE", "TIME", "TIMESTAMP":
		s, _ := v.(string)
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("a %s value %v is not ISO 8601 text: %v", typ, v, err)
		}
		switch typ {
		case "DATE":
			return ts.UTC().Format("2006-01-02")
		case "TIME":
			return ts.UTC().Format("15:04:05.999999")
		}
		return ts.UTC().Format("2006-01-02 15:04:05.999999")
	case "DOUBLE":
		f, ok := v.(float64)
		if !ok {
			t.Fatalf("a DOUBLE value %v (%T)", v, v)
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// SheetJS: dates as t="d" cells of ISO 8601 text (cellDates), custom
// date formats numbered from 60 (below Excel's custom range of 164 and
// up), text as t="str" cells, header rows included, shared strings with
// bookSST.
func TestXLSXWritersSheetJS(t *testing.T) {
	dir := t.TempDir()
	books := runXLSXWriter(t, "sheetjs.js", dir)
	wantPartHas(t, filepath.Join(dir, "sheetjs-cell-dates.xlsx"), "xl/worksheets/sheet1.xml",
		`<c r="A1" t="str"><v>id</v></c>`, `<c r="C2" s="1" t="d"><v>2024-01-15T00:00:00.000Z</v></c>`, `t="b"`)
	wantPartHas(t, filepath.Join(dir, "sheetjs-custom-formats.xlsx"), "xl/styles.xml",
		`<numFmt numFmtId="60" formatCode="yyyy-mm-dd hh:mm:ss"/>`, `<numFmt numFmtId="61" formatCode="yyyy-mm-dd"/>`)
	wantPartHas(t, filepath.Join(dir, "sheetjs-sst.xlsx"), "xl/worksheets/sheet1.xml", `<c r="A1" t="s">`, `t="d"`)
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	for _, b := range books {
		t.Run(strings.TrimSuffix(b.File, ".xlsx"), func(t *testing.T) { checkBook(t, c, dir, b) })
	}

	book := filepath.Join(dir, "sheetjs-cell-dates.xlsx")
	// header = false: the t="str" header row is data, so every column is
	// VARCHAR and a date cell reads as its ISO text.
	wantRows(t, c, "SELECT A1, C1, D1 FROM read_xlsx('"+book+"', header = false) LIMIT 2",
		"id|day|stamp", "1|2024-01-15T00:00:00.000Z|2024-01-15T10:30:00.000Z")
	// all_varchar keeps date cells as written.
	wantRows(t, c, "SELECT day, flag FROM read_xlsx('"+book+"', all_varchar = true) LIMIT 1", "2024-01-15T00:00:00.000Z|1")
	// A range without its header row: columns by letter, types from the
	// first row in it.
	wantRows(t, c, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_xlsx('"+book+"', range = 'C3:D4'))",
		"C|DATE", "D|TIMESTAMP")
	wantRows(t, c, "SELECT C::VARCHAR, D::VARCHAR FROM read_xlsx('"+book+"', range = 'C3:D4')",
		"2024-02-29|2024-02-29 23:59:59", "1999-12-31|2000-01-01 00:00:01")
	// Date cells and serials with custom formats read alike.
	wantRows(t, c, "SELECT count(*) FROM read_xlsx('"+book+"') a JOIN read_xlsx('"+filepath.Join(dir, "sheetjs-custom-formats.xlsx")+"') b USING (id, day, stamp)", "4")
}

// exceljs: the in-memory writer's shared strings (rich text among them),
// custom numFmt ids from 164 and formula results; the streaming writer's
// t="str" text and inline rich text.
func TestXLSXWritersExcelJS(t *testing.T) {
	dir := t.TempDir()
	books := runXLSXWriter(t, "exceljs.js", dir)
	wantPartHas(t, filepath.Join(dir, "exceljs-book.xlsx"), "xl/sharedStrings.xml", `<r><rPr><b/></rPr><t>bold</t></r>`)
	wantPartHas(t, filepath.Join(dir, "exceljs-book.xlsx"), "xl/styles.xml", `<numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>`)
	wantPartHas(t, filepath.Join(dir, "exceljs-stream.xlsx"), "xl/worksheets/sheet1.xml",
		`<c r="A1" t="str"><v>id</v></c>`, `t="inlineStr"><is><r>`, `<f>F2*2</f>`)
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	for _, b := range books {
		t.Run(strings.TrimSuffix(b.File, ".xlsx"), func(t *testing.T) { checkBook(t, c, dir, b) })
	}
	// Both writers' workbooks read the same.
	a, b := filepath.Join(dir, "exceljs-book.xlsx"), filepath.Join(dir, "exceljs-stream.xlsx")
	wantRows(t, c, "SELECT count(*) FROM (FROM read_xlsx('"+a+"') EXCEPT FROM read_xlsx('"+b+"'))", "0")
}

// bigXLSXRows is the size of the sheet the streaming tests and the
// benchmark read: exceljs's streaming writer makes it about 3.3 MB.
const bigXLSXRows = 100_000

// A 100,000-row sheet from exceljs's streaming writer converts quickly and
// in bounded memory, and reads the same as the same data in CSV.
func TestXLSXWritersBigSheet(t *testing.T) {
	dir := t.TempDir()
	runXLSXWriter(t, "exceljs.js", dir, strconv.Itoa(bigXLSXRows))
	book, csv := filepath.Join(dir, "big.xlsx"), filepath.Join(dir, "big.csv")
	// Without the race detector: this measures the conversion.
	p := startLuna(t, false, nil)
	c := p.dial(t, client.Options{})
	pid := p.cmd.Process.Pid
	before, cpu0 := vmHWM(t, pid), processCPU(t, pid)
	start := time.Now()
	// The first read converts the sheet. (header = true: the t="str"
	// header is TestXLSXWritersExcelJS's.)
	wantRows(t, c, "SELECT count(*) FROM read_xlsx('"+book+"', header = true)", strconv.Itoa(bigXLSXRows))
	took, cpu := time.Since(start), processCPU(t, pid)-cpu0
	peak := vmHWM(t, pid)
	t.Logf("converted and counted %d rows in %v (%.0f rows/s), %v of server CPU (%.0f rows per CPU second); VmHWM %d MiB before, %d MiB after",
		bigXLSXRows, took.Round(time.Millisecond), float64(bigXLSXRows)/took.Seconds(), cpu, float64(bigXLSXRows)/cpu.Seconds(), before>>20, peak>>20)
	// CPU time rather than wall time: the machine may be shared. The
	// benchmark reports the throughput.
	if cpu > time.Second {
		t.Errorf("converting %d rows took %v of CPU, want under 1s (100,000 rows/s)", bigXLSXRows, cpu)
	}
	if grew := peak - before; grew > 128<<20 {
		t.Errorf("the conversion raised the server's peak RSS by %d MiB, want under 128 MiB", grew>>20)
	}
	// The same data, typed the same, as DuckDB reads the CSV.
	wantRows(t, c, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_xlsx('"+book+"'))",
		"id|DOUBLE", "name|VARCHAR", "amount|DOUBLE", "day|DATE", "flag|BOOLEAN")
	wantRows(t, c, "SELECT count(*) FROM (SELECT id, name, amount, day, flag FROM read_xlsx('"+book+"') EXCEPT "+
		"SELECT id::DOUBLE, name, amount::DOUBLE, day, flag FROM read_csv('"+csv+"'))", "0")
	// Options on the big sheet: a range in the middle, and no header.
	wantRows(t, c, "SELECT min(A), max(A), count(*) FROM read_xlsx('"+book+"', range = 'A50001:A60000')", "50000|59999|10000")
	wantRows(t, c, "SELECT count(*) FROM read_xlsx('"+book+"', header = false)", strconv.Itoa(bigXLSXRows+1))
}

// processCPU is a process's user and system CPU time so far.
func processCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (USER_HZ, 100).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	return time.Duration(utime+stime) * time.Second / 100
}
