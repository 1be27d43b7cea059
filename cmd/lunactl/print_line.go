package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// linePrinter writes each row as "column = value" lines with the names
// aligned and a blank line between rows, as DuckDB's .mode line does:
// readable for wide rows.
type linePrinter struct {
	w      io.Writer
	schema *arrow.Schema
	max    int
	shown  int
	names  []string // padded column names
}

func (p *linePrinter) write(rec arrow.RecordBatch) error {
	if p.names == nil {
		c := cells{schema: p.schema}
		header := c.header()
		w := 0
		for _, h := range header {
			w = max(w, displayWidth(h))
		}
		for _, h := range header {
			p.names = append(p.names, pad(h, w, true))
		}
	}
	var b strings.Builder
	for i := range int(rec.NumRows()) {
		if p.max > 0 && p.shown >= p.max {
			break
		}
		if p.shown > 0 {
			b.WriteByte('\n')
		}
		for j, v := range rowText(rec, i) {
			b.WriteString(p.names[j] + " = " + v + "\n")
		}
		p.shown++
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

func (p *linePrinter) finish(n int64, elapsed time.Duration) error {
	switch {
	case p.schema.NumFields() == 0:
		_, err := fmt.Fprintln(p.w, "OK")
		return err
	case int64(p.shown) < n:
		_, err := io.WriteString(p.w, "\n"+footer(n, p.shown, elapsed))
		return err
	}
	return nil
}
