package main

import (
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// jsonPrinter writes one JSON object per row (JSON Lines), keeping the
// columns in schema order.
type jsonPrinter struct {
	w    io.Writer
	keys [][]byte // encoded column names
	buf  bytes.Buffer
	enc  *json.Encoder // encodes into scratch
	// scratch holds one encoded value; Encode appends a newline that
	// must not end up inside the row.
	scratch bytes.Buffer
}

func newJSONPrinter(w io.Writer, schema *arrow.Schema) *jsonPrinter {
	p := &jsonPrinter{w: w}
	p.enc = json.NewEncoder(&p.scratch)
	p.enc.SetEscapeHTML(false) // values are data, not HTML
	for _, f := range schema.Fields() {
		p.keys = append(p.keys, p.encode(f.Name))
	}
	return p
}

// encode returns the JSON encoding of v, or nil if it has none.
func (p *jsonPrinter) encode(v any) []byte {
	p.scratch.Reset()
	if err := p.enc.Encode(v); err != nil {
		return nil
	}
	return bytes.Clone(bytes.TrimSuffix(p.scratch.Bytes(), []byte("\n")))
}

func (p *jsonPrinter) write(rec arrow.RecordBatch) error {
	for i := range int(rec.NumRows()) {
		p.buf.Reset()
		p.buf.WriteByte('{')
		for j, col := range rec.Columns() {
			if j > 0 {
				p.buf.WriteByte(',')
			}
			p.buf.Write(p.keys[j])
			p.buf.WriteByte(':')
			if col.IsNull(i) {
				p.buf.WriteString("null")
				continue
			}
			v := p.encode(col.GetOneForMarshal(i))
			if v == nil {
				// JSON has no NaN or infinity; fall back to the text.
				v = p.encode(col.ValueStr(i))
			}
			p.buf.Write(v)
		}
		p.buf.WriteString("}\n")
		if _, err := p.w.Write(p.buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

func (p *jsonPrinter) finish(int64, time.Duration) error { return nil }
