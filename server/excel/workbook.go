package excel

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"
)

// workbook is what reading a sheet needs of the whole file: where each
// sheet's part is, the shared strings and the number formats of the cell
// styles. Parts are read with xmlScanner, each once.
type workbook struct {
	zr       *zip.ReadCloser
	sheets   []sheetRef
	date1904 bool
	sst      sharedStrings
	styles   styleTable

	stringsPart, stylesPart string
}

type sheetRef struct{ name, part string }

const (
	relOfficeDocument = "/officeDocument"
	relWorksheet      = "/worksheet"
	relSharedStrings  = "/sharedStrings"
	relStyles         = "/styles"
)

// openWorkbook opens src (checkZip has bounded its parts) and reads its
// sheet list; readParts reads the shared strings and styles.
func openWorkbook(ctx context.Context, src string) (*workbook, error) {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return nil, err
	}
	// klauspost's inflate is about twice the standard library's, and a
	// sheet's conversion is mostly inflating and scanning it.
	zr.RegisterDecompressor(zip.Deflate, func(r io.Reader) io.ReadCloser { return flate.NewReader(r) })
	wb := &workbook{zr: zr}
	if err := wb.readIndex(ctx); err != nil {
		zr.Close()
		return nil, err
	}
	return wb, nil
}

func (wb *workbook) Close() error { return wb.zr.Close() }

// readIndex finds the workbook part through the package relationships and
// reads its sheets, date system and related parts.
func (wb *workbook) readIndex(ctx context.Context) error {
	main := "xl/workbook.xml"
	if rels, err := wb.readRels(ctx, "_rels/.rels", ""); err == nil {
		for _, r := range rels {
			if strings.HasSuffix(r.typ, relOfficeDocument) {
				main = r.target
				break
			}
		}
	}
	dir := path.Dir(main)
	rels, err := wb.readRels(ctx, path.Join(dir, "_rels", path.Base(main)+".rels"), dir)
	if err != nil {
		return err
	}
	byID := map[string]string{}
	wb.stringsPart, wb.stylesPart = path.Join(dir, "sharedStrings.xml"), path.Join(dir, "styles.xml")
	for _, r := range rels {
		byID[r.id] = r.target
		switch {
		case strings.HasSuffix(r.typ, relSharedStrings):
			wb.stringsPart = r.target
		case strings.HasSuffix(r.typ, relStyles):
			wb.stylesPart = r.target
		}
	}
	sc, closer, err := wb.scan(ctx, main)
	if err != nil {
		return err
	}
	defer closer.Close()
	for {
		k, err := sc.next()
		if err != nil {
			return fmt.Errorf("reading %s: %w", main, err)
		}
		if k == tokEOF {
			break
		}
		if k != tokStart {
			continue
		}
		switch string(sc.name) {
		case "workbookPr":
			v, _ := sc.attr("date1904")
			wb.date1904 = v == "1" || v == "true"
		case "sheet":
			name, _ := sc.attr("name")
			id, _ := sc.attr("id")
			wb.sheets = append(wb.sheets, sheetRef{name: name, part: byID[id]})
		}
	}
	return nil
}

type relationship struct{ id, typ, target string }

// readRels reads a relationships part; targets are resolved against dir,
// or the package root when they start with '/'.
func (wb *workbook) readRels(ctx context.Context, part, dir string) ([]relationship, error) {
	sc, closer, err := wb.scan(ctx, part)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	var out []relationship
	for {
		k, err := sc.next()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", part, err)
		}
		if k == tokEOF {
			return out, nil
		}
		if k != tokStart || string(sc.name) != "Relationship" {
			continue
		}
		if mode, _ := sc.attr("TargetMode"); mode == "External" {
			continue
		}
		id, _ := sc.attr("Id")
		typ, _ := sc.attr("Type")
		target, _ := sc.attr("Target")
		target = strings.ReplaceAll(target, "\\", "/")
		if strings.HasPrefix(target, "/") {
			target = strings.TrimPrefix(path.Clean(target), "/")
		} else {
			target = path.Join(dir, target)
		}
		out = append(out, relationship{id: id, typ: typ, target: target})
	}
}

// findPart finds a part by name, as case-insensitively as Excel does.
func (wb *workbook) findPart(name string) *zip.File {
	for _, f := range wb.zr.File {
		if strings.EqualFold(strings.ReplaceAll(f.Name, "\\", "/"), name) {
			return f
		}
	}
	return nil
}

// scan opens a part for scanning.
func (wb *workbook) scan(ctx context.Context, part string) (*xmlScanner, io.Closer, error) {
	f := wb.findPart(part)
	if f == nil {
		return nil, nil, fmt.Errorf("no %s in the package", part)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", part, err)
	}
	return newXMLScanner(ctx, rc), rc, nil
}

// readParts reads the shared strings and the styles; both are optional.
func (wb *workbook) readParts(ctx context.Context) error {
	if wb.findPart(wb.stringsPart) != nil {
		if err := wb.readSharedStrings(ctx); err != nil {
			return err
		}
	}
	if wb.findPart(wb.stylesPart) != nil {
		if err := wb.readStyles(ctx); err != nil {
			return err
		}
	}
	return nil
}

// sharedStrings holds every shared string in one buffer (checkZip caps
// the part at MaxSharedStringsBytes, and the text is never longer than
// the XML it came from), so a string costs its bytes and 4 more.
type sharedStrings struct {
	data []byte
	ends []uint32
}

func (s *sharedStrings) get(i int) ([]byte, bool) {
	if i < 0 || i >= len(s.ends) {
		return nil, false
	}
	beg := uint32(0)
	if i > 0 {
		beg = s.ends[i-1]
	}
	return s.data[beg:s.ends[i]], true
}

// readSharedStrings reads <si> items: their <t> text, rich text runs
// joined, phonetic runs (<rPh>) left out.
func (wb *workbook) readSharedStrings(ctx context.Context) error {
	part := wb.stringsPart
	sc, closer, err := wb.scan(ctx, part)
	if err != nil {
		return err
	}
	defer closer.Close()
	if f := wb.findPart(part); f != nil {
		wb.sst.data = make([]byte, 0, min(f.UncompressedSize64, MaxSharedStringsBytes)/2)
	}
	var inSI, inT bool
	rph := 0
	beg := 0
	for {
		k, err := sc.next()
		if err != nil {
			return fmt.Errorf("reading %s: %w", part, err)
		}
		switch k {
		case tokEOF:
			return nil
		case tokStart:
			switch string(sc.name) {
			case "si":
				inSI, beg = true, len(wb.sst.data)
				if sc.selfClose {
					wb.sst.ends = append(wb.sst.ends, uint32(beg))
					inSI = false
				}
			case "t":
				inT = inSI && rph == 0 && !sc.selfClose
			case "rPh":
				if !sc.selfClose {
					rph++
				}
			}
		case tokEnd:
			switch string(sc.name) {
			case "si":
				if inSI {
					wb.sst.data = wb.sst.data[:beg+len(unescapeBstr(wb.sst.data[beg:]))]
					if len(wb.sst.data) > MaxSharedStringsBytes {
						return fmt.Errorf("reading %s: more than %d MiB of text", part, MaxSharedStringsBytes>>20)
					}
					wb.sst.ends = append(wb.sst.ends, uint32(len(wb.sst.data)))
				}
				inSI, inT = false, false
			case "t":
				inT = false
			case "rPh":
				rph = max(0, rph-1)
			}
		case tokText:
			if inT {
				wb.sst.data = append(wb.sst.data, sc.text...)
			}
		}
		sc.keepText = inT
	}
}

// unescapeBstr decodes OOXML's _xHHHH_ escapes (a character XML cannot
// hold, such as _x000D_ for a carriage return; _x005F_ is a literal '_'),
// as Excel and excelize read them. b is decoded in place.
func unescapeBstr(b []byte) []byte {
	if !bytes.Contains(b, []byte("_x")) {
		return b
	}
	out := b[:0]
	for i := 0; i < len(b); {
		if i+7 <= len(b) && b[i] == '_' && b[i+1] == 'x' && b[i+6] == '_' {
			if n, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16); err == nil {
				// Output never passes the read position: a seven-byte
				// escape becomes at most three bytes.
				out = utf8.AppendRune(out, rune(n))
				i += 7
				continue
			}
		}
		out = append(out, b[i])
		i++
	}
	return out
}

// styleTable maps a cell's style index to the type its number format
// gives a number.
type styleTable struct {
	types []colType // by cellXfs index
}

// maxNumFmts bounds the custom number formats kept from a stylesheet;
// Excel allows a few hundred.
const maxNumFmts = 1 << 16

func (st *styleTable) typeOf(style int) colType {
	if style < 0 || style >= len(st.types) {
		return tDouble
	}
	return st.types[style]
}

// readStyles reads the stylesheet's custom number formats and the number
// format of each cell style (cellXfs). A <numFmt> in the stylesheet
// defines its id whatever the id: writers such as SheetJS number custom
// formats from 60, inside the range Excel reserves for built-in ones.
func (wb *workbook) readStyles(ctx context.Context) error {
	part := wb.stylesPart
	sc, closer, err := wb.scan(ctx, part)
	if err != nil {
		return err
	}
	defer closer.Close()
	custom := map[int]string{}
	var xfIDs []int
	var inNumFmts, inCellXfs bool
	for {
		k, err := sc.next()
		if err != nil {
			return fmt.Errorf("reading %s: %w", part, err)
		}
		if k == tokEOF {
			break
		}
		if k == tokEnd {
			switch string(sc.name) {
			case "numFmts":
				inNumFmts = false
			case "cellXfs":
				inCellXfs = false
			}
			continue
		}
		if k != tokStart {
			continue
		}
		switch string(sc.name) {
		case "numFmts":
			inNumFmts = !sc.selfClose
		case "cellXfs":
			inCellXfs = !sc.selfClose
		case "numFmt":
			if !inNumFmts {
				continue // a differential format's, not a cell style's
			}
			id, ok := atoiBytes(sc.attrBytes("numFmtId"), 1<<30)
			if !ok {
				continue
			}
			code, _ := sc.attr("formatCode")
			if _, seen := custom[id]; !seen && len(custom) >= maxNumFmts {
				return fmt.Errorf("reading %s: more than %d number formats", part, maxNumFmts)
			}
			custom[id] = code
		case "xf":
			if inCellXfs {
				id, _ := atoiBytes(sc.attrBytes("numFmtId"), 1<<30)
				xfIDs = append(xfIDs, id)
			}
		}
	}
	byID := map[int]colType{}
	wb.styles.types = make([]colType, len(xfIDs))
	for i, id := range xfIDs {
		t, ok := byID[id]
		if !ok {
			if code, isCustom := custom[id]; isCustom {
				t = formatType(id, &code)
			} else {
				t = formatType(id, nil)
			}
			byID[id] = t
		}
		wb.styles.types[i] = t
	}
	return nil
}
