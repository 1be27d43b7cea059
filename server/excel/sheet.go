package excel

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// cellKind is what a cell's t attribute says its value is.
type cellKind uint8

const (
	kNumber cellKind = iota // t="n" or none: a number, or a date serial
	kText                   // t="s", "str" or "inlineStr"
	kBool                   // t="b": 1 or 0
	kDate                   // t="d": ISO 8601 text
	kError                  // t="e": #DIV/0! and the like
)

// xcell is one cell with a value (or a formula) in a row.
type xcell struct {
	col     int
	kind    cellKind
	formula bool
	style   int    // cellXfs index: the cell's own, else its row's or column's
	v       []byte // the value, shared strings resolved
	off     int    // where v starts in the row's arena; -1 when it is not there
}

func (c *xcell) empty() bool { return c == nil || len(c.v) == 0 }

// maxRowBytes bounds the values of one row held at once.
const maxRowBytes = 64 << 20

// sheetRows streams a worksheet's rows: each call to next reads one <row>
// into num and cells (valid until the next call), cells in the order
// written. Rows the sheet does not have are not returned: a gap in num is
// a run of empty rows.
type sheetRows struct {
	wb     *workbook
	sc     *xmlScanner
	closer io.Closer

	colStyles []int32 // style by column, from <cols>; nil when none
	inData    bool
	done      bool

	num   int
	cells []xcell
	arena []byte
}

func (wb *workbook) openSheet(ctx context.Context, part string) (*sheetRows, error) {
	sc, closer, err := wb.scan(ctx, part)
	if err != nil {
		return nil, err
	}
	return &sheetRows{wb: wb, sc: sc, closer: closer}, nil
}

func (s *sheetRows) Close() error { return s.closer.Close() }

// next reads the next row; false at the end of the sheet's data.
func (s *sheetRows) next() (bool, error) {
	sc := s.sc
	for !s.done {
		k, err := sc.next()
		if err != nil {
			return false, err
		}
		switch k {
		case tokEOF:
			s.done = true
		case tokEnd:
			if string(sc.name) == "sheetData" {
				s.done = true
			}
		case tokStart:
			switch string(sc.name) {
			case "col":
				if !s.inData {
					s.addColStyle()
				}
			case "sheetData":
				s.inData = !sc.selfClose
				s.done = sc.selfClose
			case "row":
				if !s.inData {
					continue
				}
				more, err := s.readRow()
				if err != nil || more {
					return more, err
				}
			}
		}
	}
	return false, nil
}

// addColStyle records a <col min max style> range.
func (s *sheetRows) addColStyle() {
	style, _ := atoiBytes(s.sc.attrBytes("style"), 1<<30)
	if style == 0 {
		return
	}
	lo, ok1 := atoiBytes(s.sc.attrBytes("min"), maxCols)
	hi, ok2 := atoiBytes(s.sc.attrBytes("max"), 1<<30)
	if !ok1 || !ok2 || lo < 1 {
		return
	}
	if s.colStyles == nil {
		s.colStyles = make([]int32, maxCols+1)
	}
	for c := lo; c <= min(hi, maxCols); c++ {
		s.colStyles[c] = int32(style)
	}
}

// readRow reads the <row> just started; false when the sheet has no
// more rows a sheet may hold.
func (s *sheetRows) readRow() (bool, error) {
	sc := s.sc
	num := s.num + 1
	if ref := sc.attrBytes("r"); ref != nil {
		n, ok := atoiBytes(ref, maxRows)
		if !ok || n < 1 {
			return false, fmt.Errorf("row number %q is not one of a sheet's (1 to %d)", ref, maxRows)
		}
		if n <= s.num {
			return false, fmt.Errorf("row %d comes after row %d", n, s.num)
		}
		num = n
	} else if num > maxRows {
		// Rows past Excel's last are not part of any range.
		s.done = true
		return false, nil
	}
	s.num = num
	rowStyle := 0
	if cf := sc.attrBytes("customFormat"); string(cf) == "1" || string(cf) == "true" {
		rowStyle, _ = atoiBytes(sc.attrBytes("s"), 1<<30)
	}
	s.cells, s.arena = s.cells[:0], s.arena[:0]
	if sc.selfClose {
		return true, nil
	}
	col := 0
	for {
		k, err := sc.next()
		if err != nil {
			return false, err
		}
		switch k {
		case tokEOF:
			return false, fmt.Errorf("the sheet ends inside row %d", num)
		case tokEnd:
			if string(sc.name) == "row" {
				for i := range s.cells {
					if c := &s.cells[i]; c.off >= 0 {
						c.v = s.arena[c.off : c.off+len(c.v)]
					}
				}
				return true, nil
			}
		case tokStart:
			if string(sc.name) == "c" {
				if col, err = s.readCell(col, rowStyle); err != nil {
					return false, err
				}
			}
		}
	}
}

// readCell reads the <c> just started, after the cell in column prev,
// and returns its column.
func (s *sheetRows) readCell(prev, rowStyle int) (int, error) {
	sc := s.sc
	col := prev + 1
	if ref := sc.attrBytes("r"); ref != nil {
		c, ok := refColumn(ref)
		if !ok {
			return 0, fmt.Errorf("row %d: %q is not a cell reference", s.num, ref)
		}
		col = c
	}
	if col > maxCols {
		return 0, fmt.Errorf("row %d: a cell past column XFD", s.num)
	}
	c := xcell{col: col, off: len(s.arena)}
	shared, inline := false, false
	switch t := sc.attrBytes("t"); string(t) {
	case "", "n":
	case "s":
		c.kind, shared = kText, true
	case "str":
		c.kind = kText
	case "inlineStr":
		c.kind, inline = kText, true
	case "b":
		c.kind = kBool
	case "d":
		c.kind = kDate
	case "e":
		c.kind = kError
	default:
		return 0, fmt.Errorf("cell %s: unknown cell type %q", cellName(col, s.num), t)
	}
	c.style, _ = atoiBytes(sc.attrBytes("s"), 1<<30)
	if c.style == 0 {
		c.style = rowStyle
	}
	if c.style == 0 && s.colStyles != nil {
		c.style = int(s.colStyles[col])
	}
	if sc.selfClose {
		return col, nil // no value
	}
	// The value is the text of <v>, or of an inline string's <t>
	// elements outside phonetic runs.
	var inV, inIs, inT bool
	rph := 0
	for done := false; !done; {
		k, err := sc.next()
		if err != nil {
			return 0, err
		}
		switch k {
		case tokEOF:
			return 0, fmt.Errorf("the sheet ends inside cell %s", cellName(col, s.num))
		case tokText:
			s.arena = append(s.arena, sc.text...)
			if len(s.arena) > maxRowBytes {
				return 0, fmt.Errorf("row %d holds more than %d MiB of values", s.num, maxRowBytes>>20)
			}
		case tokStart:
			if sc.selfClose {
				if string(sc.name) == "f" {
					c.formula = true
				}
				break
			}
			switch string(sc.name) {
			case "v":
				inV = !inIs
			case "f":
				c.formula = true
			case "is":
				inIs = true
			case "t":
				inT = inIs && rph == 0
			case "rPh":
				rph++
			}
		case tokEnd:
			switch string(sc.name) {
			case "v":
				inV = false
			case "t":
				inT = false
			case "is":
				inIs = false
			case "rPh":
				rph = max(0, rph-1)
			case "c":
				done = true
			}
		}
		sc.keepText = inV || inT
	}
	sc.keepText = false
	v := s.arena[c.off:]
	switch {
	case shared:
		if len(v) == 0 {
			break
		}
		i, ok := atoiBytes(v, 1<<31-1)
		sv, found := s.wb.sst.get(i)
		if !ok || !found {
			return 0, fmt.Errorf("cell %s: shared string %q does not exist (the workbook has %d)", cellName(col, s.num), bytes.TrimSpace(v), len(s.wb.sst.ends))
		}
		s.arena = s.arena[:c.off]
		c.v, c.off = sv, -1
	case inline && bytes.Contains(v, []byte("_x")):
		// Inline strings carry _xHHHH_ escapes as shared strings do.
		s.arena = s.arena[:c.off+len(unescapeBstr(v))]
	}
	if c.off >= 0 {
		c.v = s.arena[c.off:]
	}
	if len(c.v) == 0 && !c.formula {
		return col, nil
	}
	s.cells = append(s.cells, c)
	return col, nil
}

// refColumn reads the column of a reference such as AB12.
func refColumn(ref []byte) (int, bool) {
	col, i := 0, 0
	for ; i < len(ref); i++ {
		ch := ref[i]
		switch {
		case ch >= 'A' && ch <= 'Z':
			col = col*26 + int(ch-'A'+1)
		case ch >= 'a' && ch <= 'z':
			col = col*26 + int(ch-'a'+1)
		default:
			return col, i > 0 && col <= maxCols
		}
		if col > maxCols {
			return 0, false
		}
	}
	return col, i > 0
}
