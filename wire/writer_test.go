package wire

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriterGathersInOrder(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	big := bytes.Repeat([]byte("B"), smallWrite+1)
	var want bytes.Buffer
	for i := range 200 {
		small := []byte(strings.Repeat(string(rune('a'+i%26)), i%700))
		w.Write(small)
		want.Write(small)
		if i%17 == 0 {
			w.Write(big)
			want.Write(big)
		}
		if i%50 == 49 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.Buffered() != 0 {
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatalf("gathered %d bytes differ from the %d written", out.Len(), want.Len())
	}
}
