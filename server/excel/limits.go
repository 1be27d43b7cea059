package excel

import (
	"archive/zip"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"
)

// Limits on what a workbook may make the server do. A workbook is a zip of
// XML parts, and a small file can claim gigabytes once inflated (a zip
// bomb); the limits hold memory near the size of the largest part Luna
// keeps in memory, whatever the file claims.
//
// Worksheets stream from the zip (from a temporary file beside the
// conversion when larger than excelize's 16 MiB threshold), so they are
// bounded only by the total. Every other part is held in memory whole and
// parsed, at several times its size: those get a tight cap. The shared
// strings also stream but excelize indexes them in memory (~40 bytes per
// string), so they get a cap of their own.
const (
	// MaxUnzipBytes caps the inflated size of the whole workbook.
	MaxUnzipBytes = 1 << 30
	// MaxSharedStringsBytes caps xl/sharedStrings.xml.
	MaxSharedStringsBytes = 64 << 20
	// MaxOtherPartsBytes caps the parts held in memory (styles, workbook,
	// relationships, drawings, media …), together.
	MaxOtherPartsBytes = 64 << 20
	// streamXMLBytes is the part size above which excelize spills a
	// worksheet or the shared strings to a temporary file.
	streamXMLBytes = 16 << 20
	// MaxPadCells caps rows × columns an explicit range may add as empty
	// padding past the sheet's last row: Excel's largest sheet padded over
	// 64 columns, or 1,000 columns over 64K rows.
	MaxPadCells = 64 << 20
	// batchCells bounds one Arrow record (rows × columns), so a wide range
	// does not build gigabyte batches.
	batchCells = 1 << 20
)

// checkZip refuses a workbook whose parts claim more than the limits.
// Declared sizes are binding: archive/zip fails a part that inflates past
// the size its header declares.
func checkZip(src, name string) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return errorf("read_xlsx: cannot open \"%s\" as an xlsx workbook: %v", name, err)
	}
	defer zr.Close()
	var total, other uint64
	for _, f := range zr.File {
		size := f.UncompressedSize64
		total += size
		if total > MaxUnzipBytes {
			return errorf("read_xlsx: \"%s\" inflates to more than %d MiB, the limit for a workbook (part %s)", name, MaxUnzipBytes>>20, f.Name)
		}
		part := strings.ToLower(strings.ReplaceAll(f.Name, "\\", "/"))
		switch {
		case strings.HasPrefix(part, "xl/worksheets/sheet"):
		case part == "xl/sharedstrings.xml":
			if size > MaxSharedStringsBytes {
				return errorf("read_xlsx: the shared strings of \"%s\" inflate to %d MiB, more than the limit of %d MiB", name, size>>20, MaxSharedStringsBytes>>20)
			}
		default:
			other += size
			if other > MaxOtherPartsBytes {
				return errorf("read_xlsx: the parts of \"%s\" other than worksheets inflate to more than %d MiB, the limit (part %s)", name, MaxOtherPartsBytes>>20, f.Name)
			}
		}
	}
	return nil
}

// openOptions are excelize's options with the limits above; tmpDir takes
// the worksheets it spills.
func openOptions(tmpDir string) excelize.Options {
	return excelize.Options{UnzipSizeLimit: MaxUnzipBytes, UnzipXMLSizeLimit: streamXMLBytes, TmpDir: tmpDir}
}

// cellMeta is what the reader needs of a cell beyond its value: its type
// attribute and style.
type cellMeta struct {
	typ   excelize.CellType
	style int
}

var cellTypes = map[string]excelize.CellType{
	"b": excelize.CellTypeBool, "d": excelize.CellTypeDate, "n": excelize.CellTypeNumber, "e": excelize.CellTypeError,
	"s": excelize.CellTypeSharedString, "str": excelize.CellTypeFormula, "inlineStr": excelize.CellTypeInlineString,
}

// sheetScanner reads cell types and styles of single rows straight from
// the sheet's XML, streaming. excelize's GetCellType and GetCellStyle
// would parse the whole worksheet into memory first, at many times its
// size, for the one or two rows the reader asks about.
type sheetScanner struct {
	src, part string
	rows      map[int]map[int]cellMeta
}

func newSheetScanner(src, sheet string) (*sheetScanner, error) {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	part, err := sheetPart(&zr.Reader, sheet)
	if err != nil {
		return nil, err
	}
	return &sheetScanner{src: src, part: part, rows: map[int]map[int]cellMeta{}}, nil
}

// sheetPart finds the worksheet part of the sheet named sheet through
// xl/workbook.xml and its relationships.
func sheetPart(zr *zip.Reader, sheet string) (string, error) {
	var wb struct {
		Sheets []struct {
			Name string `xml:"name,attr"`
			ID   string `xml:"http://schemas.openxmlformats.org/officeDocument/2006/relationships id,attr"`
		} `xml:"sheets>sheet"`
	}
	var rels struct {
		Rels []struct {
			ID     string `xml:"Id,attr"`
			Target string `xml:"Target,attr"`
		} `xml:"Relationship"`
	}
	if err := decodePart(zr, "xl/workbook.xml", &wb); err != nil {
		return "", err
	}
	if err := decodePart(zr, "xl/_rels/workbook.xml.rels", &rels); err != nil {
		return "", err
	}
	for _, s := range wb.Sheets {
		if !strings.EqualFold(s.Name, sheet) {
			continue
		}
		for _, r := range rels.Rels {
			if r.ID != s.ID {
				continue
			}
			t := strings.ReplaceAll(r.Target, "\\", "/")
			if strings.HasPrefix(t, "/") {
				return strings.TrimPrefix(path.Clean(t), "/"), nil
			}
			return path.Join("xl", t), nil
		}
	}
	return "", fmt.Errorf("no worksheet part for sheet %q", sheet)
}

func findPart(zr *zip.Reader, name string) *zip.File {
	for _, f := range zr.File {
		if strings.EqualFold(strings.ReplaceAll(f.Name, "\\", "/"), name) {
			return f
		}
	}
	return nil
}

func decodePart(zr *zip.Reader, name string, v any) error {
	f := findPart(zr, name)
	if f == nil {
		return fmt.Errorf("no %s", name)
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	// checkZip has bounded this part's size.
	return xml.NewDecoder(rc).Decode(v)
}

// row returns the cells of one row (1-based) by column, with the style a
// cell without its own takes from its row or column, as excelize does.
func (s *sheetScanner) row(ctx context.Context, row int) (map[int]cellMeta, error) {
	if m, ok := s.rows[row]; ok {
		return m, nil
	}
	zr, err := zip.OpenReader(s.src)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	f := findPart(&zr.Reader, s.part)
	if f == nil {
		return nil, fmt.Errorf("no %s", s.part)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	type colStyle struct{ min, max, style int }
	var cols []colStyle
	out := map[int]cellMeta{}
	d := xml.NewDecoder(rc)
	cur, col, rowStyle := 0, 0, 0
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, context.Cause(ctx)
			}
		}
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch el.Name.Local {
		case "col":
			cols = append(cols, colStyle{atoi(attr(el, "min")), atoi(attr(el, "max")), atoi(attr(el, "style"))})
		case "row":
			if r := atoi(attr(el, "r")); r > 0 {
				cur = r
			} else {
				cur++
			}
			if cur > row {
				s.rows[row] = out
				return out, nil
			}
			col, rowStyle = 0, 0
			if attr(el, "customFormat") == "1" || attr(el, "customFormat") == "true" {
				rowStyle = atoi(attr(el, "s"))
			}
		case "c":
			if ref := attr(el, "r"); ref != "" {
				if c, _, err := excelize.CellNameToCoordinates(ref); err == nil {
					col = c
				} else {
					col++
				}
			} else {
				col++
			}
			if cur != row {
				continue
			}
			m := cellMeta{typ: cellTypes[attr(el, "t")], style: atoi(attr(el, "s"))}
			if m.style == 0 {
				m.style = rowStyle
			}
			if m.style == 0 {
				for _, cs := range cols {
					if col >= cs.min && col <= cs.max {
						m.style = cs.style
					}
				}
			}
			out[col] = m
		}
	}
	s.rows[row] = out
	return out, nil
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// rowsPerBatch is how many rows of width columns go into one record.
func rowsPerBatch(width int) int {
	return max(1, min(batchRows, batchCells/max(width, 1)))
}
