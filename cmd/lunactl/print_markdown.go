package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// markdownPrinter writes a GitHub-flavoured Markdown table, numbers
// aligned right, '|' in values escaped.
type markdownPrinter struct {
	w     io.Writer
	cells cells
}

var markdownEscaper = strings.NewReplacer("|", `\|`)

func (p *markdownPrinter) write(rec arrow.RecordBatch) error {
	p.cells.add(rec)
	return nil
}

func (p *markdownPrinter) finish(n int64, elapsed time.Duration) error {
	if p.cells.schema.NumFields() == 0 {
		_, err := fmt.Fprintln(p.w, "OK")
		return err
	}
	header := p.cells.header()
	for j := range header {
		header[j] = markdownEscaper.Replace(header[j])
	}
	for _, row := range p.cells.rows {
		for j := range row {
			row[j] = markdownEscaper.Replace(row[j])
		}
	}
	widths := p.cells.widths(header)
	right := numeric(p.cells.schema)

	var b strings.Builder
	line := func(cells []string) {
		b.WriteByte('|')
		for j, cell := range cells {
			b.WriteString(" " + pad(cell, widths[j], right[j]) + " |")
		}
		b.WriteByte('\n')
	}
	line(header)
	b.WriteByte('|')
	for j, w := range widths {
		rule := strings.Repeat("-", max(w, 3))
		if right[j] {
			rule = rule[1:] + ":"
		}
		b.WriteString(" " + rule + " |")
	}
	b.WriteByte('\n')
	for _, row := range p.cells.rows {
		line(row)
	}
	if shown := len(p.cells.rows); int64(shown) < n {
		b.WriteString("\n" + footer(n, shown, elapsed))
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}
