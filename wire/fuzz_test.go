package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the parser. It must never panic,
// never loop, and every request it returns must re-encode to exactly the
// bytes it consumed.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"$18\r\nq:DESCRIBE tmpcur;\r\n",
		"AUTH K6K8bvyD2u\r\n$3\r\nx:1\r\n",
		"$4\r\nz:hi\r\n",
		"$0\r\n\r\n",
		"$3\r\nq:12\r\n",
		"$99999999999999999999\r\n",
		"AUTH x\n",
		"$-1\r\n",
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bytes.NewReader(in)
		r := NewReader(br, 1<<10)
		var again []byte
		for range len(in) + 1 {
			req, err := r.Next()
			if err != nil {
				var fe *FramingError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &fe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				if err == io.EOF && !bytes.Equal(again, in) {
					t.Fatalf("clean EOF but re-encoded %q != input %q", again, in)
				}
				return
			}
			switch req.Kind {
			case Exec:
				again = AppendRequest(again, "x:", req.Text)
			case Query:
				again = AppendRequest(again, "q:", req.Text)
			case Unknown:
				again = AppendRequest(again, "", req.Text)
			case Auth:
				again = append(append(append(again, "AUTH "...), req.Text...), "\r\n"...)
			}
			if !bytes.HasPrefix(in, again) {
				t.Fatalf("re-encoded %q is not a prefix of input %q", again, in)
			}
		}
		t.Fatal("parser did not make progress")
	})
}

// FuzzRoundTrip checks that any statement survives framing unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add("SELECT 1", true)
	f.Add("SELECT '\r\n$3\r\n'", false)
	f.Fuzz(func(t *testing.T, stmt string, exec bool) {
		prefix, kind := "q:", Query
		if exec {
			prefix, kind = "x:", Exec
		}
		in := AppendRequest(nil, prefix, stmt)
		req, err := NewReader(bytes.NewReader(in), len(in)).Next()
		if err != nil || req.Kind != kind || req.Text != stmt {
			t.Fatalf("got %+v, %v", req, err)
		}
	})
}
