package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/lunadb/luna/wire"
)

// readAll reads one response from br and returns its int values.
func readAll(t *testing.T, br *bufio.Reader) ([]int64, error) {
	t.Helper()
	rdr, sr, err := openResult(br, bodyAllocator, "q")
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	var got []int64
	for rdr.Next() {
		got = append(got, rdr.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
	}
	return got, endError(rdr, sr)
}

// overReadGuard fails the test if anything reads past the data before it.
type overReadGuard struct{ t *testing.T }

func (g overReadGuard) Read([]byte) (int, error) {
	g.t.Error("read past the end of the last response")
	return 0, io.ErrUnexpectedEOF
}

func TestBackToBackStreams(t *testing.T) {
	var wire []byte
	wire = append(wire, ipcStream(t, intSchema, intBatch(1, 2), intBatch(3))...)
	wire = append(wire, ipcStream(t, intSchema)...) // zero rows
	wire = append(wire, ipcStream(t, intSchema, intBatch(4))...)
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(wire), overReadGuard{t}))

	for i, want := range []string{"[1 2 3]", "[]", "[4]"} {
		got, err := readAll(t, br)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if fmtVals(got) != want {
			t.Errorf("response %d: got %v, want %s", i, got, want)
		}
	}
}

func TestLegacyEndOfStream(t *testing.T) {
	// A bare zero word also ends a stream; the next one must still parse.
	first := withoutEOS(ipcStream(t, intSchema, intBatch(7)))
	wire := append(append(first, 0, 0, 0, 0), ipcStream(t, intSchema, intBatch(8))...)
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(wire), overReadGuard{t}))
	for _, want := range []string{"[7]", "[8]"} {
		got, err := readAll(t, br)
		if err != nil || fmtVals(got) != want {
			t.Fatalf("got %v, %v; want %s", got, err, want)
		}
	}
}

func TestAbortMarkerAfterBatch(t *testing.T) {
	wire := append(withoutEOS(ipcStream(t, intSchema, intBatch(1, 2))), abortMarker("division by zero")...)
	got, err := readAll(t, bufio.NewReader(bytes.NewReader(wire)))
	if fmtVals(got) != "[1 2]" {
		t.Errorf("rows before the abort: got %v", got)
	}
	var le *Error
	if !errors.As(err, &le) || !le.Aborted || le.Message != "division by zero" || le.Input != "q" {
		t.Fatalf("got error %#v, want aborted *Error", err)
	}
}

func TestAbortMarkerInsteadOfSchema(t *testing.T) {
	_, _, err := openResult(bufio.NewReader(bytes.NewReader(abortMarker("early"))), bodyAllocator, "q")
	var le *Error
	if !errors.As(err, &le) || le.Message != "early" {
		t.Fatalf("got %v, want *Error early", err)
	}
}

func TestStreamCutAtBoundary(t *testing.T) {
	wire := withoutEOS(ipcStream(t, intSchema, intBatch(1)))
	got, err := readAll(t, bufio.NewReader(bytes.NewReader(wire)))
	if fmtVals(got) != "[1]" || !errors.Is(err, ErrIncompleteResult) {
		t.Fatalf("got %v, %v; want [1], ErrIncompleteResult", got, err)
	}
	if errors.Is(err, io.EOF) {
		t.Error("error matches io.EOF, which arrow treats as a clean end")
	}
}

func TestStreamCutMidMessage(t *testing.T) {
	full := ipcStream(t, intSchema, intBatch(1, 2, 3))
	for _, cut := range []int{len(full) - 9, len(full) - 20, 12} {
		_, err := readAll(t, bufio.NewReader(bytes.NewReader(full[:cut])))
		if !errors.Is(err, ErrIncompleteResult) {
			t.Errorf("cut at %d: got %v, want ErrIncompleteResult", cut, err)
		}
	}
}

func TestIsStatusTable(t *testing.T) {
	str, i64 := arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64
	marked := arrow.NewMetadata([]string{wire.StatusMetadataKey}, []string{"1"})
	tests := []struct {
		name   string
		fields []arrow.Field
		md     *arrow.Metadata
		want   bool
	}{
		{"marked", []arrow.Field{{Name: "input", Type: str}, {Name: "error", Type: str}}, &marked, true},
		{"unmarked shape", []arrow.Field{{Name: "input", Type: str}, {Name: "error", Type: str}}, nil, true},
		{"wrong type", []arrow.Field{{Name: "input", Type: str}, {Name: "error", Type: i64}}, nil, false},
		{"extra column", []arrow.Field{{Name: "input", Type: str}, {Name: "error", Type: str}, {Name: "x", Type: str}}, nil, false},
		{"other names", []arrow.Field{{Name: "a", Type: str}, {Name: "b", Type: str}}, nil, false},
	}
	for _, tt := range tests {
		if got := isStatusTable(arrow.NewSchema(tt.fields, tt.md)); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
