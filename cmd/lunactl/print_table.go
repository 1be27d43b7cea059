package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// tablePrinter draws a bordered table, as DuckDB's and psql's shells do.
// It buffers the cells, since column widths depend on every row.
type tablePrinter struct {
	w     io.Writer
	cells cells
}

func (p *tablePrinter) write(rec arrow.RecordBatch) error {
	p.cells.add(rec)
	return nil
}

func (p *tablePrinter) finish(n int64, elapsed time.Duration) error {
	if p.cells.schema.NumFields() == 0 {
		// A statement without a result set, sent as a query.
		_, err := fmt.Fprintln(p.w, "OK")
		return err
	}
	header := p.cells.header()
	widths := p.cells.widths(header)
	right := numeric(p.cells.schema)

	var b strings.Builder
	border := func() {
		for _, w := range widths {
			b.WriteByte('+')
			b.WriteString(strings.Repeat("-", w+2))
		}
		b.WriteString("+\n")
	}
	line := func(cells []string) {
		for j, cell := range cells {
			b.WriteString("| ")
			b.WriteString(pad(cell, widths[j], right[j]))
			b.WriteByte(' ')
		}
		b.WriteString("|\n")
	}
	border()
	line(header)
	border()
	for _, row := range p.cells.rows {
		line(row)
	}
	if len(p.cells.rows) > 0 {
		border()
	}
	b.WriteString(footer(n, len(p.cells.rows), elapsed))
	_, err := io.WriteString(p.w, b.String())
	return err
}
