package excel

import (
	"archive/zip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
)

// The writer never writes through a link at the target, leaves no fixed
// temporary name, and creates the workbook 0640 rather than os.ModePerm.
func TestWriteReplacesLinksAndIsPrivate(t *testing.T) {
	src := book(t)
	dir := t.TempDir()
	pq := filepath.Join(dir, "a.parquet")
	if err := Convert(context.Background(), src, pq, "b.xlsx", Options{}); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim.txt")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.xlsx")
	if err := os.Symlink(victim, out); err != nil {
		t.Fatal(err)
	}
	// The old fixed temporary name, planted as a link: must not be used.
	if err := os.Symlink(victim, out+".part.xlsx"); err != nil {
		t.Fatal(err)
	}
	old := umask(0)
	defer umask(old)
	if err := Write(context.Background(), pq, out, WriteOptions{Header: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep" {
		t.Fatalf("the link's target was written: %q", got)
	}
	st, err := os.Lstat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&fs.ModeSymlink != 0 || st.Mode().Perm() != 0o640 {
		t.Fatalf("target mode %v, want a regular file 0640", st.Mode())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Fatalf("left behind %s", e.Name())
		}
	}
	if _, _, err := readRows(t, out); err != nil {
		t.Fatal(err)
	}
}

func readRows(t *testing.T, path string) ([]string, []string, error) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "x.parquet")
	if err := Convert(context.Background(), path, dst, "out.xlsx", Options{}); err != nil {
		return nil, nil, err
	}
	c, r := readBack(t, dst)
	return c, r, nil
}

// A range may not pad more than MaxPadCells, and padding stops when the
// context does.
func TestRangePaddingIsCappedAndCancellable(t *testing.T) {
	src := book(t)
	dir := t.TempDir()
	err := Convert(context.Background(), src, filepath.Join(dir, "x.parquet"), "b.xlsx", Options{Range: "A1:ALL1048576", Header: new(false)})
	if err == nil || !strings.Contains(err.Error(), `range 'A1:ALL1048576' of "b.xlsx" would pad`) || !strings.Contains(err.Error(), "limit of 67108864 cells") {
		t.Fatalf("over the cap: %v", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("client went away")
	cancel(stop)
	err = Convert(ctx, src, filepath.Join(dir, "y.parquet"), "b.xlsx", Options{Range: "A1:ALL60000", Header: new(false)})
	if !errors.Is(err, stop) {
		t.Fatalf("cancelled: %v", err)
	}
	// Within the cap it pads, as DuckDB does.
	dst := filepath.Join(dir, "z.parquet")
	if err := Convert(context.Background(), src, dst, "b.xlsx", Options{Range: "A1:B10", Header: new(true)}); err != nil {
		t.Fatal(err)
	}
	if _, rows := readBack(t, dst); len(rows) != 9 {
		t.Fatalf("%d rows, want 9", len(rows))
	}
}

// Parts that claim more than the limits are refused before anything is
// inflated, naming the file and the limit.
func TestZipLimits(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, size uint64) string {
		p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".xlsx")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(f)
		// Only the header's claim matters to the check.
		if _, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Store, UncompressedSize64: size}); err != nil {
			t.Fatal(err)
		}
		zw.Close()
		f.Close()
		return p
	}
	for _, c := range []struct {
		part string
		size uint64
		want string
	}{
		{"xl/worksheets/sheet1.xml", MaxUnzipBytes + 1, "inflates to more than 1024 MiB"},
		{"xl/sharedStrings.xml", MaxSharedStringsBytes + 1, "shared strings"},
		{"xl/styles.xml", MaxOtherPartsBytes + 1, "other than worksheets"},
	} {
		p := mk(c.part, c.size)
		err := checkZip(p, "hostile.xlsx")
		if err == nil || !strings.Contains(err.Error(), `"hostile.xlsx"`) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s of %d bytes: %v", c.part, c.size, err)
		}
	}
	if err := checkZip(book(t), "b.xlsx"); err != nil {
		t.Fatalf("a real workbook: %v", err)
	}
}

// Types and styles come from streaming the sheet, not from excelize's
// whole-sheet reader: a style set on a row or column applies as in Excel.
func TestCellMetaFromRowAndColumnStyles(t *testing.T) {
	f := excelize.NewFile()
	dateStyle, _ := f.NewStyle(&excelize.Style{NumFmt: 14})
	f.SetSheetRow("Sheet1", "A1", &[]any{"d", "e"})
	f.SetSheetRow("Sheet1", "A2", &[]any{45000, 45001})
	f.SetColStyle("Sheet1", "B", dateStyle)
	f.SetCellStyle("Sheet1", "A2", "A2", dateStyle)
	p := filepath.Join(t.TempDir(), "s.xlsx")
	if err := f.SaveAs(p); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "s.parquet")
	if err := Convert(context.Background(), p, dst, "s.xlsx", Options{}); err != nil {
		t.Fatal(err)
	}
	cols, _ := readBack(t, dst)
	if strings.Join(cols, ",") != "d date32,e date32" {
		t.Fatalf("columns %q", cols)
	}
}
