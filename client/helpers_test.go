package client

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lunadb/luna/wire"
)

var intSchema = arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)

// intBatch builds a one-column batch of the given values.
func intBatch(vals ...int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, intSchema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues(vals, nil)
	return b.NewRecordBatch()
}

// ipcStream encodes a complete Arrow IPC stream, end-of-stream marker
// included. The batches are released.
func ipcStream(t *testing.T, schema *arrow.Schema, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withoutEOS strips the 8-byte end-of-stream marker from a stream.
func withoutEOS(stream []byte) []byte { return stream[:len(stream)-8] }

// statusStream encodes a status table; marked adds the luna.status metadata.
func statusStream(t *testing.T, input, msg string, marked bool) []byte {
	t.Helper()
	var md *arrow.Metadata
	if marked {
		m := arrow.NewMetadata([]string{wire.StatusMetadataKey}, []string{"1"})
		md = &m
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "input", Type: arrow.BinaryTypes.String},
		{Name: "error", Type: arrow.BinaryTypes.String},
	}, md)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(input)
	b.Field(1).(*array.StringBuilder).Append(msg)
	return ipcStream(t, schema, b.NewRecordBatch())
}

// abortMarker encodes the server's abort marker, whose length claims 8
// bytes more than are sent.
func abortMarker(msg string) []byte {
	out := []byte{0xFF, 0xFF, 0xFF, 0xFF}
	out = binary.LittleEndian.AppendUint32(out, uint32(16+len(msg)))
	out = append(out, abortMagic...)
	return append(out, msg...)
}

// fakeServer is the far end of a net.Pipe, driven by a test script.
type fakeServer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// pipe returns a client Conn and starts script on the server end. The
// returned channel closes when script is done.
func pipe(t *testing.T, script func(s *fakeServer)) (*Conn, <-chan struct{}) {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sc.Close()
		script(&fakeServer{t: t, nc: sc, br: bufio.NewReader(sc)})
	}()
	c := NewConn(cc)
	t.Cleanup(func() { c.Close(); <-done })
	return c, done
}

// readRequest reads one request and returns its data (prefix and
// statement) or, for an AUTH line, the whole line.
func (s *fakeServer) readRequest() string {
	line, err := s.br.ReadString('\n')
	if err != nil {
		s.t.Errorf("server: reading request: %v", err)
		return ""
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil {
		s.t.Errorf("server: bad length %q", line)
		return ""
	}
	data := make([]byte, n+2)
	if _, err := io.ReadFull(s.br, data); err != nil {
		s.t.Errorf("server: reading data: %v", err)
		return ""
	}
	if string(data[n:]) != "\r\n" {
		s.t.Errorf("server: data not followed by CRLF: %q", data)
	}
	return string(data[:n])
}

// expect reads a request and checks it.
func (s *fakeServer) expect(want string) {
	if got := s.readRequest(); got != want {
		s.t.Errorf("server: got request %q, want %q", got, want)
	}
}

func (s *fakeServer) write(chunks ...[]byte) {
	for _, b := range chunks {
		if _, err := s.nc.Write(b); err != nil {
			s.t.Errorf("server: write: %v", err)
			return
		}
	}
}

// collect reads all of rows and returns the values of its int column.
func collect(t *testing.T, rows *Rows) ([]int64, error) {
	t.Helper()
	var got []int64
	for rows.Next() {
		col := rows.RecordBatch().Column(0).(*array.Int64)
		got = append(got, col.Int64Values()...)
	}
	return got, rows.Err()
}

func fmtVals(v []int64) string { return fmt.Sprint(v) }
