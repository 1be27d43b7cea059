package main

import (
	"encoding/csv"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// csvPrinter writes RFC 4180 CSV with a header; NULL is empty.
type csvPrinter struct {
	cw     *csv.Writer
	record []string
}

func newCSVPrinter(w io.Writer, schema *arrow.Schema) (*csvPrinter, error) {
	p := &csvPrinter{cw: csv.NewWriter(w), record: make([]string, schema.NumFields())}
	if len(p.record) == 0 {
		return p, nil
	}
	for j, f := range schema.Fields() {
		p.record[j] = f.Name
	}
	return p, p.cw.Write(p.record)
}

func (p *csvPrinter) write(rec arrow.RecordBatch) error {
	for i := range int(rec.NumRows()) {
		for j, col := range rec.Columns() {
			p.record[j] = "" // NULL
			if col.IsValid(i) {
				p.record[j] = col.ValueStr(i)
			}
		}
		if err := p.cw.Write(p.record); err != nil {
			return err
		}
	}
	return nil
}

func (p *csvPrinter) finish(int64, time.Duration) error {
	p.cw.Flush()
	return p.cw.Error()
}
