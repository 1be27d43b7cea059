package iceberg

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/hamba/avro/v2/ocf"
)

func avroFile(t *testing.T, codec string, blocks ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("Obj\x01")
	put := func(n int64) { b.Write(binary.AppendVarint(nil, n)) }
	str := func(s string) { put(int64(len(s))); b.WriteString(s) }
	put(2)
	str("avro.schema")
	str(`"bytes"`)
	str("avro.codec")
	str(codec)
	put(0)
	sync := strings.Repeat("s", 16)
	b.WriteString(sync)
	for _, blk := range blocks {
		put(1)
		put(int64(len(blk)))
		b.Write(blk)
		b.WriteString(sync)
	}
	return b.Bytes()
}

func TestCheckAvroRefusesBlockBombs(t *testing.T) {
	var comp bytes.Buffer
	w, _ := flate.NewWriter(&comp, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	for range MaxAvroBlockBytes>>20 + 1 {
		w.Write(zeros)
	}
	w.Close()
	err := checkAvro(context.Background(), bytes.NewReader(avroFile(t, "deflate", comp.Bytes())))
	if err == nil || !strings.Contains(err.Error(), "more than 64 MiB") {
		t.Fatalf("deflate bomb: %v", err)
	}

	// A file the Avro library writes passes, block by block.
	var good bytes.Buffer
	enc, err := ocf.NewEncoder(`"bytes"`, &good, ocf.WithCodec(ocf.Deflate), ocf.WithBlockLength(2))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := enc.Encode([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	enc.Close()
	if err := checkAvro(context.Background(), bytes.NewReader(good.Bytes())); err != nil {
		t.Fatalf("a real file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := checkAvro(ctx, bytes.NewReader(good.Bytes())); err == nil {
		t.Fatal("cancelled check went on")
	}
}
