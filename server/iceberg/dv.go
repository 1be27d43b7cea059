package iceberg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
)

// Deletion vectors (format v3) are Puffin blobs of type
// deletion-vector-v1, one per data file, each a Roaring bitmap of the
// file's deleted row positions. DuckDB cannot read them, so a scan turns
// the vectors it needs into one small Parquet file of (file_path, pos,
// seq) rows that joins like position deletes.

// MaxDeletionVectorBytes caps one deletion-vector blob: it is read whole.
// A vector costs at most 8 KiB per 65,536 rows of its data file, so this
// covers files of 500 million rows.
const MaxDeletionVectorBytes = 64 << 20

// dvMagic starts every deletion-vector-v1 blob (Iceberg spec, "Deletion
// Vectors").
var dvMagic = []byte{0xD1, 0xD3, 0x39, 0x64}

type deletionVector struct {
	uri          string // the Puffin file, as recorded
	local        string
	offset, size int64
	ref          string // the data file it deletes from, as recorded
	seq          int64
}

// deletionVector reads a manifest entry for a deletion vector.
func (t *Table) deletionVector(df iceberg.DataFile, seq int64) (deletionVector, error) {
	ref, off, size := df.ReferencedDataFile(), df.ContentOffset(), df.ContentSizeInBytes()
	if ref == nil || off == nil || size == nil {
		return deletionVector{}, fmt.Errorf("%s: deletion vector in %s lacks referenced_data_file, content_offset or content_size_in_bytes", t.fn, df.FilePath())
	}
	if *off < 0 || *size < 12 || *size > MaxDeletionVectorBytes {
		return deletionVector{}, fmt.Errorf("%s: deletion vector in %s has offset %d and size %d (at most %d bytes)", t.fn, df.FilePath(), *off, *size, MaxDeletionVectorBytes)
	}
	return deletionVector{uri: df.FilePath(), offset: *off, size: *size, ref: *ref, seq: seq}, nil
}

// read decodes the vector's bitmap from its local Puffin file, checking
// its framing and checksum and that every position is below rows.
func (dv deletionVector) read(rows int64) (*roaring64.Bitmap, error) {
	f, err := os.Open(dv.local)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if dv.offset+dv.size > st.Size() {
		return nil, fmt.Errorf("the blob at %d (%d bytes) ends past the file's %d bytes", dv.offset, dv.size, st.Size())
	}
	blob := make([]byte, dv.size)
	if _, err := f.ReadAt(blob, dv.offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n := binary.BigEndian.Uint32(blob); int64(n) != dv.size-8 {
		return nil, fmt.Errorf("the blob's length field says %d bytes, its entry %d", n, dv.size-8)
	}
	if !bytes.Equal(blob[4:8], dvMagic) {
		return nil, errors.New("the blob is not a deletion-vector-v1 (bad magic)")
	}
	body := blob[4 : len(blob)-4]
	if got, want := crc32.ChecksumIEEE(body), binary.BigEndian.Uint32(blob[len(blob)-4:]); got != want {
		return nil, fmt.Errorf("the blob's checksum is %08x, its content's %08x", want, got)
	}
	bm := body[4:]
	// The decoder allocates by the bitmap count before reading: each
	// 32-bit bitmap takes at least 8 bytes, so a larger count is a lie.
	if len(bm) < 8 || binary.LittleEndian.Uint64(bm) > uint64(len(bm)-8)/8 {
		return nil, errors.New("the bitmap's header is malformed")
	}
	b := roaring64.New()
	if err := decodeBitmap(b, bm); err != nil {
		return nil, err
	}
	if !b.IsEmpty() && b.Maximum() >= uint64(rows) {
		return nil, fmt.Errorf("it deletes row %d of a data file with %d rows", b.Maximum(), rows)
	}
	return b, nil
}

// decodeBitmap reads a portable 64-bit Roaring bitmap; the decoder's
// panics on malformed containers become errors.
func decodeBitmap(b *roaring64.Bitmap, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the bitmap is malformed: %v", r)
		}
	}()
	if err := b.UnmarshalBinary(data); err != nil {
		return fmt.Errorf("the bitmap is malformed: %w", err)
	}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("the bitmap is malformed: %w", err)
	}
	return nil
}

// Columns of the file deletion vectors become; read by name.
var dvSchema = arrow.NewSchema([]arrow.Field{
	{Name: "file_path", Type: arrow.BinaryTypes.String},
	{Name: "pos", Type: arrow.PrimitiveTypes.Int64},
	{Name: "seq", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// writeDeletionVectors decodes each vector and writes its positions to a
// Parquet file in dir; rows gives each referenced data file's row count.
func (t *Table) writeDeletionVectors(ctx context.Context, dvs []deletionVector, rows map[string]int64, dir string) (string, error) {
	out, err := os.CreateTemp(dir, "iceberg-dv-*.parquet")
	if err != nil {
		return "", fmt.Errorf("%s: %w", t.fn, err)
	}
	name := out.Name()
	fail := func(err error) (string, error) {
		out.Close()
		os.Remove(name)
		return "", err
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true))
	w, err := pqarrow.NewFileWriter(dvSchema, out, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return fail(fmt.Errorf("%s: %w", t.fn, err))
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, dvSchema)
	defer rb.Release()
	paths := rb.Field(0).(*array.StringBuilder)
	pos := rb.Field(1).(*array.Int64Builder)
	seqs := rb.Field(2).(*array.Int64Builder)
	flush := func() error {
		rec := rb.NewRecordBatch()
		defer rec.Release()
		return w.Write(rec)
	}
	buf := make([]uint64, 8192)
	for _, dv := range dvs {
		if err := ctx.Err(); err != nil {
			w.Close()
			return fail(context.Cause(ctx))
		}
		b, err := dv.read(rows[dv.ref])
		if err != nil {
			w.Close()
			return fail(fmt.Errorf("%s: deletion vector in %s for %s: %w", t.fn, dv.uri, dv.ref, err))
		}
		it := b.ManyIterator()
		for n := it.NextMany(buf); n > 0; n = it.NextMany(buf) {
			for _, p := range buf[:n] {
				paths.Append(dv.ref)
				pos.Append(int64(p))
				seqs.Append(dv.seq)
			}
			if pos.Len() >= batchRows {
				if err := flush(); err != nil {
					w.Close()
					return fail(fmt.Errorf("%s: writing deletion vectors: %w", t.fn, err))
				}
			}
		}
	}
	if err := flush(); err != nil {
		w.Close()
		return fail(fmt.Errorf("%s: writing deletion vectors: %w", t.fn, err))
	}
	if err := w.Close(); err != nil { // closes out too
		os.Remove(name)
		return "", fmt.Errorf("%s: writing deletion vectors: %w", t.fn, err)
	}
	return filepath.Clean(name), nil
}

// batchRows is how many positions go into one Parquet row group.
const batchRows = 128 * 1024
