package main

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"golang.org/x/text/width"

	"github.com/lunadb/luna/client"
)

// formats are the output formats, for -format and the shell's .mode.
var formats = []string{"table", "csv", "json", "line", "markdown", "arrow"}

// printer renders a result set batch by batch.
type printer interface {
	write(rec arrow.RecordBatch) error
	// finish completes the output; rows and elapsed feed the footers.
	finish(rows int64, elapsed time.Duration) error
}

// newPrinter returns a printer of format that shows every row.
func newPrinter(format string, w io.Writer, schema *arrow.Schema) (printer, error) {
	return newLimitedPrinter(format, w, schema, 0)
}

// newLimitedPrinter returns a printer of format; the formats made for
// people (table, line, markdown) show at most maxRows rows when it is
// above zero, and say how many there were.
func newLimitedPrinter(format string, w io.Writer, schema *arrow.Schema, maxRows int) (printer, error) {
	switch format {
	case "table":
		return &tablePrinter{w: w, cells: cells{schema: schema, max: maxRows}}, nil
	case "markdown":
		return &markdownPrinter{w: w, cells: cells{schema: schema, max: maxRows}}, nil
	case "line":
		return &linePrinter{w: w, schema: schema, max: maxRows}, nil
	case "csv":
		return newCSVPrinter(w, schema)
	case "json":
		return newJSONPrinter(w, schema), nil
	case "arrow":
		return &arrowPrinter{iw: ipc.NewWriter(w, ipc.WithSchema(schema))}, nil
	}
	return nil, usagef("unknown format %q", format)
}

// printRows streams rows to p.
func printRows(p printer, rows *client.Rows, start time.Time) error {
	var n int64
	for rows.Next() {
		rec := rows.RecordBatch()
		n += rec.NumRows()
		if err := p.write(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return p.finish(n, time.Since(start))
}

// cells holds a result's values as display text, for the formats that
// lay out every row before printing the first; beyond max rows (when
// above zero) it only counts.
type cells struct {
	schema *arrow.Schema
	max    int
	rows   [][]string
}

// cellEscaper keeps each row on one line.
var cellEscaper = strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`)

func (c *cells) add(rec arrow.RecordBatch) {
	for i := range int(rec.NumRows()) {
		if c.max > 0 && len(c.rows) >= c.max {
			return
		}
		c.rows = append(c.rows, rowText(rec, i))
	}
}

// rowText is row i of rec as display text.
func rowText(rec arrow.RecordBatch, i int) []string {
	row := make([]string, rec.NumCols())
	for j, col := range rec.Columns() {
		if col.IsNull(i) {
			row[j] = "NULL"
		} else {
			// Cloned: the batch's memory is reused once it is released.
			row[j] = strings.Clone(cellEscaper.Replace(col.ValueStr(i)))
		}
	}
	return row
}

// header is the column names as display text.
func (c *cells) header() []string {
	h := make([]string, c.schema.NumFields())
	for j, f := range c.schema.Fields() {
		h[j] = cellEscaper.Replace(f.Name)
	}
	return h
}

// widths are the columns' display widths over the header and every row.
func (c *cells) widths(header []string) []int {
	w := make([]int, len(header))
	for j, h := range header {
		w[j] = displayWidth(h)
	}
	for _, row := range c.rows {
		for j, cell := range row {
			w[j] = max(w[j], displayWidth(cell))
		}
	}
	return w
}

// numeric reports which columns hold numbers, which align right.
func numeric(schema *arrow.Schema) []bool {
	right := make([]bool, schema.NumFields())
	for j, f := range schema.Fields() {
		id := f.Type.ID()
		right[j] = arrow.IsInteger(id) || arrow.IsFloating(id) || arrow.IsDecimal(id)
	}
	return right
}

// pad fills cell to w display columns, on the left when right.
func pad(cell string, w int, right bool) string {
	fill := strings.Repeat(" ", max(0, w-displayWidth(cell)))
	if right {
		return fill + cell
	}
	return cell + fill
}

// footer is the line under a table: how many rows, how many of them are
// shown when not all, and how long it took.
func footer(n int64, shown int, elapsed time.Duration) string {
	noun := "rows"
	if n == 1 {
		noun = "row"
	}
	if int64(shown) < n {
		return fmt.Sprintf("(%d rows shown of %d, %s)\n", shown, n, formatElapsed(elapsed))
	}
	return fmt.Sprintf("(%d %s, %s)\n", n, noun, formatElapsed(elapsed))
}

// displayWidth is how many terminal columns s occupies: East Asian wide
// and fullwidth characters take two, combining marks none.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me):
		default:
			switch width.LookupRune(r).Kind() {
			case width.EastAsianWide, width.EastAsianFullwidth:
				n += 2
			default:
				n++
			}
		}
	}
	return n
}

// formatElapsed rounds d to about three significant digits.
func formatElapsed(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
