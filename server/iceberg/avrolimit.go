package iceberg

import (
	"bufio"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
)

// Manifest lists and manifests are Avro container files whose blocks are
// compressed; the Avro reader inflates each block whole in memory, so a
// small hostile block can inflate to gigabytes. checkAvro walks the blocks
// first, inflating them into nothing, and refuses a file past the limits.
const (
	// MaxAvroBlockBytes caps one inflated block (writers use blocks of a
	// few MiB at most).
	MaxAvroBlockBytes = 64 << 20
	// MaxAvroFileBytes caps a whole manifest or manifest list, inflated:
	// its entries are all held in memory.
	MaxAvroFileBytes = 256 << 20
)

var errAvroFormat = errors.New("not an Avro container file")

func checkAvro(ctx context.Context, r io.Reader) error {
	br := bufio.NewReader(r)
	magic := make([]byte, 4)
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != "Obj\x01" {
		return errAvroFormat
	}
	codec := "null"
	for {
		n, err := binary.ReadVarint(br)
		if err != nil {
			return errAvroFormat
		}
		if n == 0 {
			break
		}
		if n < 0 {
			n = -n
			if _, err := binary.ReadVarint(br); err != nil { // block size
				return errAvroFormat
			}
		}
		for range n {
			k, err := avroBytes(br, 1<<10)
			if err != nil {
				return err
			}
			v, err := avroBytes(br, 1<<20)
			if err != nil {
				return err
			}
			if string(k) == "avro.codec" {
				codec = string(v)
			}
		}
	}
	if _, err := io.CopyN(io.Discard, br, 16); err != nil { // sync marker
		return errAvroFormat
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if _, err := binary.ReadVarint(br); err == io.EOF {
			return nil
		} else if err != nil {
			return errAvroFormat
		}
		size, err := binary.ReadVarint(br)
		if err != nil || size < 0 || size > MaxAvroFileBytes {
			return errAvroFormat
		}
		n, err := inflatedSize(codec, io.LimitReader(br, size), size)
		if err != nil {
			return err
		}
		if n > MaxAvroBlockBytes {
			return fmt.Errorf("a block inflates to more than %d MiB, the limit", MaxAvroBlockBytes>>20)
		}
		if total += n; total > MaxAvroFileBytes {
			return fmt.Errorf("it inflates to more than %d MiB, the limit", MaxAvroFileBytes>>20)
		}
		if _, err := io.CopyN(io.Discard, br, 16); err != nil {
			return errAvroFormat
		}
	}
}

func avroBytes(br *bufio.Reader, max int64) ([]byte, error) {
	n, err := binary.ReadVarint(br)
	if err != nil || n < 0 || n > max {
		return nil, errAvroFormat
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, errAvroFormat
	}
	return b, nil
}

// inflatedSize counts a block's inflated bytes, stopping just past the
// block limit.
func inflatedSize(codec string, block io.Reader, size int64) (int64, error) {
	limit := int64(MaxAvroBlockBytes + 1)
	switch codec {
	case "null", "":
		return io.Copy(io.Discard, block)
	case "deflate":
		return io.Copy(io.Discard, io.LimitReader(flate.NewReader(block), limit))
	case "snappy":
		data, err := io.ReadAll(block)
		if err != nil || len(data) < 4 {
			return 0, errAvroFormat
		}
		n, err := snappy.DecodedLen(data[:len(data)-4])
		return int64(n), err
	case "zstandard":
		zr, err := zstd.NewReader(block, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)))
		if err != nil {
			return 0, err
		}
		defer zr.Close()
		n, err := io.Copy(io.Discard, io.LimitReader(zr, limit))
		if n >= limit {
			return n, nil
		}
		return n, err
	}
	return 0, fmt.Errorf("unsupported Avro codec %q", codec)
}
