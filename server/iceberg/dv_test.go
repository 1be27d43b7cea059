package iceberg

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
)

// dvBlob frames a serialized bitmap as a deletion-vector-v1 blob.
func dvBlob(bitmap []byte) []byte {
	body := append(append([]byte(nil), dvMagic...), bitmap...)
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(body))
}

func writeBlob(t *testing.T, prefix, blob []byte) deletionVector {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dv.puffin")
	if err := os.WriteFile(p, append(append([]byte(nil), prefix...), blob...), 0o600); err != nil {
		t.Fatal(err)
	}
	return deletionVector{uri: "file://" + p, local: p, offset: int64(len(prefix)), size: int64(len(blob)), ref: "data.parquet"}
}

func TestDeletionVectorDecodes(t *testing.T) {
	want := roaring64.BitmapOf(0, 3, 4, 5, 70000, 1<<33)
	raw, err := want.ToBytes()
	if err != nil {
		t.Fatal(err)
	}
	dv := writeBlob(t, []byte("PFA1"), dvBlob(raw))
	got, err := dv.read(1 << 34)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equals(want) {
		t.Fatalf("decoded %v, want %v", got.ToArray(), want.ToArray())
	}
	// A position past the data file's rows is refused, not ignored.
	if _, err := dv.read(70001); err == nil || !strings.Contains(err.Error(), "deletes row 8589934592 of a data file with 70001 rows") {
		t.Fatalf("read past the rows: %v", err)
	}
}

func TestDeletionVectorRefusesMalformedBlobs(t *testing.T) {
	raw, _ := roaring64.BitmapOf(1, 2).ToBytes()
	good := dvBlob(raw)
	cases := map[string]func([]byte) []byte{
		"bad length": func(b []byte) []byte { b[3]++; return b },
		"bad magic":  func(b []byte) []byte { b[4] = 0; return b },
		"bad crc":    func(b []byte) []byte { b[len(b)-1]++; return b },
		// A bitmap count of 2^62 would make the decoder allocate for it.
		"huge count": func(b []byte) []byte {
			body := append(append([]byte(nil), dvMagic...), binary.LittleEndian.AppendUint64(nil, 1<<62)...)
			body = append(body, make([]byte, 16)...)
			out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
			out = append(out, body...)
			return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(body))
		},
		"garbage bitmap": func(b []byte) []byte {
			body := append(append([]byte(nil), dvMagic...), binary.LittleEndian.AppendUint64(nil, 1)...)
			body = append(body, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4)
			out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
			out = append(out, body...)
			return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(body))
		},
	}
	for name, mangle := range cases {
		t.Run(name, func(t *testing.T) {
			dv := writeBlob(t, nil, mangle(append([]byte(nil), good...)))
			if _, err := dv.read(100); err == nil {
				t.Fatal("malformed blob accepted")
			}
		})
	}
	// An entry whose range runs past the file.
	dv := writeBlob(t, nil, good)
	dv.size += 10
	if _, err := dv.read(100); err == nil || !strings.Contains(err.Error(), "ends past the file") {
		t.Fatalf("blob past the end: %v", err)
	}
}
