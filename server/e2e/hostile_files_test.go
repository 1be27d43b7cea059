//go:build duckdb_arrow

package e2e

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/lunadb/luna/client"
)

// vmHWM is the peak resident set of a process, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// bombPart is a deflated zip part of head, then chunk n times, then tail,
// built without compressing the whole: the compressed chunk, a
// self-contained non-final deflate block, is repeated.
type bombPart struct {
	name             string
	head, chunk, end string
	n                int
}

func deflateBlock(t *testing.T, s string, final bool) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(s))
	if final {
		w.Close()
	} else {
		w.Flush()
	}
	return b.Bytes()
}

// zipBomb writes a small workbook at path with its parts replaced by the
// bombs.
func zipBomb(t *testing.T, path string, bombs ...bombPart) {
	t.Helper()
	f := excelize.NewFile()
	f.SetSheetRow("Sheet1", "A1", &[]any{"a", "b"})
	f.SetSheetRow("Sheet1", "A2", &[]any{1, 2})
	base, err := f.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(base.Bytes()), int64(base.Len()))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := zip.NewWriter(out)
	replaced := map[string]bool{}
	for _, b := range bombs {
		replaced[b.name] = true
	}
	for _, zf := range zr.File {
		if !replaced[zf.Name] {
			if err := zw.Copy(zf); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, b := range bombs {
		var comp bytes.Buffer
		comp.Write(deflateBlock(t, b.head, false))
		chunk := deflateBlock(t, b.chunk, false)
		crc := crc32.Update(0, crc32.IEEETable, []byte(b.head))
		for range b.n {
			comp.Write(chunk)
			crc = crc32.Update(crc, crc32.IEEETable, []byte(b.chunk))
		}
		comp.Write(deflateBlock(t, b.end, true))
		crc = crc32.Update(crc, crc32.IEEETable, []byte(b.end))
		size := uint64(len(b.head)) + uint64(len(b.chunk))*uint64(b.n) + uint64(len(b.end))
		w, err := zw.CreateRaw(&zip.FileHeader{Name: b.name, Method: zip.Deflate, CRC32: crc,
			CompressedSize64: uint64(comp.Len()), UncompressedSize64: size})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(comp.Bytes())
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

const sheetHead = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c></row>`

// Zip and gzip bombs are refused with a clear error naming the file and
// the limit, and the server's peak memory stays under 512 MiB.
func TestHostileFilesBombsAreRefused(t *testing.T) {
	dir := t.TempDir()
	row := strings.Repeat(`<row><c><v>1</v></c><c><v>2</v></c><c><v>3</v></c></row>`, 1<<14)
	// A worksheet inflating to 1.4 GiB.
	sheetBomb := filepath.Join(dir, "sheet-bomb.xlsx")
	zipBomb(t, sheetBomb, bombPart{name: "xl/worksheets/sheet1.xml", head: sheetHead, chunk: row,
		n: 1400 << 20 / len(row), end: `</sheetData></worksheet>`})
	// A worksheet under the total, 900 MiB: streamed, never held whole.
	bigSheet := filepath.Join(dir, "big-sheet.xlsx")
	zipBomb(t, bigSheet, bombPart{name: "xl/worksheets/sheet1.xml", head: sheetHead, chunk: row,
		n: 900 << 20 / len(row), end: `</sheetData></worksheet>`})
	// Styles, a part held in memory, inflating to 600 MiB.
	stylesBomb := filepath.Join(dir, "styles-bomb.xlsx")
	zipBomb(t, stylesBomb, bombPart{name: "xl/styles.xml",
		head:  `<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts>`,
		chunk: strings.Repeat(`<numFmt numFmtId="200" formatCode="0.00"/>`, 1<<14), n: 600 << 20 / (42 << 14), end: `</numFmts></styleSheet>`})
	for _, f := range []string{sheetBomb, bigSheet, stylesBomb} {
		st, _ := os.Stat(f)
		if st.Size() > 8<<20 {
			t.Fatalf("%s is %d bytes, not a bomb", f, st.Size())
		}
	}
	// Iceberg metadata: 1 MiB of gzip inflating to 1 GiB (gzip members
	// concatenated read as one stream).
	tdir := filepath.Join(dir, "db", "bomb")
	if err := os.MkdirAll(filepath.Join(tdir, "metadata"), 0o700); err != nil {
		t.Fatal(err)
	}
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write([]byte(`{"format-version": 2, "location": "x", "properties": {"a": "`))
	zw.Close()
	var pad bytes.Buffer
	zw, _ = gzip.NewWriterLevel(&pad, gzip.BestCompression)
	zw.Write(bytes.Repeat([]byte("a"), 1<<20))
	zw.Close()
	for range 1024 {
		member.Write(pad.Bytes())
	}
	if err := os.WriteFile(filepath.Join(tdir, "metadata", "v1.gz.metadata.json"), member.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tdir, "metadata", "version-hint.text"), []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}

	p := startLuna(t, false, nil, "--query-timeout", "60s")
	c := p.dial(t, client.Options{})
	pid := p.cmd.Process.Pid
	before := vmHWM(t, pid)

	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+sheetBomb+"')", sheetBomb, "inflates to more than 1024 MiB")
	t.Logf("after the worksheet bomb: VmHWM %d MiB", vmHWM(t, pid)>>20)
	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+stylesBomb+"')", stylesBomb, "more than 64 MiB")
	t.Logf("after the styles bomb: VmHWM %d MiB", vmHWM(t, pid)>>20)
	wantError(t, c, "SELECT count(*) FROM iceberg_scan('"+tdir+"', metadata_compression_codec = 'gzip')", "v1.gz.metadata.json", "more than 128 MiB")
	t.Logf("after the gzip bomb: VmHWM %d MiB", vmHWM(t, pid)>>20)
	// The big sheet is read, streaming, within bounded memory (or stopped
	// by the timeout on a slow machine; what matters is memory).
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rows, err := c.Query(ctx, "SELECT count(*) FROM read_xlsx('"+bigSheet+"', header = true)")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	t.Logf("900 MiB worksheet: %v", err)
	peak := vmHWM(t, pid)
	t.Logf("server VmHWM: %d MiB before, %d MiB after the bombs", before>>20, peak>>20)
	if peak > 512<<20 {
		t.Fatalf("server peak RSS %d MiB, want under 512 MiB", peak>>20)
	}
}

// A range padded over 1,000 columns is capped, and padding that is allowed
// stops near --query-timeout.
func TestHostileFilesRangePadding(t *testing.T) {
	dir := t.TempDir()
	book := filepath.Join(dir, "wide.xlsx")
	f := excelize.NewFile()
	f.SetSheetRow("Sheet1", "A1", &[]any{1.0})
	if err := f.SaveAs(book); err != nil {
		t.Fatal(err)
	}
	p := startLuna(t, false, nil, "--query-timeout", "2s")
	c := p.dial(t, client.Options{})
	start := time.Now()
	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+book+"', range = 'A1:ALL1048576', header = false)", book, "more than the limit of 67108864 cells")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the cap took %v", d)
	}
	// Under the cap, but padding, conversion and the scan together take
	// longer than the timeout on this machine's 2 cores: the query must
	// end near it.
	start = time.Now()
	rows, err := c.Query(context.Background(), "SELECT count(*) FROM read_xlsx('"+book+"', range = 'A1:ALL65000', header = false)")
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	d := time.Since(start)
	t.Logf("65,000 padded rows × 1,000 columns: %v after %v", err, d)
	if d > 4*time.Second {
		t.Fatalf("the query ran %v past a 2s --query-timeout", d)
	}
	peak := vmHWM(t, p.cmd.Process.Pid)
	t.Logf("server VmHWM %d MiB", peak>>20)
	if peak > 512<<20 {
		t.Fatalf("server peak RSS %d MiB, want under 512 MiB", peak>>20)
	}
}
