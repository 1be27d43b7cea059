package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readAll(t *testing.T, in string, max int) ([]Request, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), max)
	var out []Request
	for {
		req, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, req)
	}
}

func TestSeedRequests(t *testing.T) {
	// Byte for byte as the original README writes them.
	in := "$18\r\nq:DESCRIBE tmpcur;\r\n" +
		"$39\r\nq:SELECT uuid, date, payer FROM tmpcur;\r\n" +
		"$79\r\nx:CREATE OR REPLACE SECRET (TYPE gcs, KEY_ID 'some-key', SECRET 'some-secret');\r\n" +
		"AUTH K6K8bvyD2u\r\n"
	reqs, err := readAll(t, in, 0)
	if err != io.EOF {
		t.Fatalf("err = %v", err)
	}
	want := []Request{
		{Query, "DESCRIBE tmpcur;"},
		{Query, "SELECT uuid, date, payer FROM tmpcur;"},
		{Exec, "CREATE OR REPLACE SECRET (TYPE gcs, KEY_ID 'some-key', SECRET 'some-secret');"},
		{Auth, "K6K8bvyD2u"},
	}
	if len(reqs) != len(want) {
		t.Fatalf("got %d requests: %+v", len(reqs), reqs)
	}
	for i := range want {
		if reqs[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, reqs[i], want[i])
		}
	}
}

func TestTextMayHoldFramingBytes(t *testing.T) {
	stmts := []string{
		"SELECT '\r\n$5\r\nq:x\r\n' AS s",
		"SELECT 'AUTH x\r\n', \"$\"\nFROM t -- ünïcødé ✓",
		"",
	}
	var in []byte
	for _, s := range stmts {
		in = AppendRequest(in, "q:", s)
	}
	reqs, err := readAll(t, string(in), 0)
	if err != io.EOF || len(reqs) != len(stmts) {
		t.Fatalf("reqs=%v err=%v", reqs, err)
	}
	for i, s := range stmts {
		if reqs[i].Kind != Query || reqs[i].Text != s {
			t.Errorf("request %d = %+v", i, reqs[i])
		}
	}
}

func TestUnknownPrefixIsNotFraming(t *testing.T) {
	reqs, err := readAll(t, "$4\r\nz:hi\r\n$0\r\n\r\n$1\r\nq\r\n$3\r\nq:1\r\n", 0)
	if err != io.EOF || len(reqs) != 4 {
		t.Fatalf("reqs=%v err=%v", reqs, err)
	}
	if reqs[0].Kind != Unknown || reqs[0].Prefix() != "z:" {
		t.Errorf("got %+v", reqs[0])
	}
	if reqs[1].Kind != Unknown || reqs[1].Prefix() != "" || reqs[2].Prefix() != "q" {
		t.Errorf("got %+v %+v", reqs[1], reqs[2])
	}
	if reqs[3] != (Request{Query, "1"}) {
		t.Errorf("got %+v", reqs[3])
	}
}

func TestMalformed(t *testing.T) {
	cases := []struct{ name, in, msg string }{
		{"bad first byte", "GET / HTTP/1.1\r\n", "expected '$' or AUTH"},
		{"lowercase auth", "auth x\r\n", "expected '$' or AUTH"},
		{"A but not AUTH", "AUTO x\r\n", "expected '$' or AUTH"},
		{"non-numeric length", "$1a\r\nq:\r\n", "decimal digits"},
		{"negative length", "$-3\r\nq:1\r\n", "decimal digits"},
		{"leading zero", "$03\r\nq:1\r\n", "leading zero"},
		{"empty length", "$\r\nq:1\r\n", "missing length"},
		{"LF without CR", "$3\nq:1\r\n", "decimal digits"},
		{"CR without LF", "$3\rq:1\r\n", "expected CRLF after length"},
		{"data not followed by CRLF", "$3\r\nq:12\r\n", "not followed by CRLF"},
		{"oversized", "$1000\r\n", "exceeds the limit of 100 bytes"},
		{"huge length", "$99999999999999999999999\r\n", "exceeds the limit"},
		{"auth without CR", "AUTH secret\n", "must end with CRLF"},
		{"auth too long", "AUTH " + strings.Repeat("x", 5000) + "\r\n", "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readAll(t, c.in, 100)
			var fe *FramingError
			if !errors.As(err, &fe) || !strings.Contains(fe.Msg, c.msg) {
				t.Fatalf("err = %v, want framing error with %q", err, c.msg)
			}
			if strings.Contains(fe.Seen, "secret") {
				t.Fatalf("password leaked into error: %q", fe.Seen)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	for _, in := range []string{"$", "$12", "$12\r", "$12\r\nq:SEL", "$3\r\nq:1\r", "AU", "AUTH pass"} {
		_, err := readAll(t, in, 0)
		if err != io.ErrUnexpectedEOF {
			t.Errorf("%q: err = %v, want unexpected EOF", in, err)
		}
	}
}

func TestAuthPasswordMayHoldSpaces(t *testing.T) {
	reqs, err := readAll(t, "AUTH  pass word \r\n", 0)
	if err != io.EOF || len(reqs) != 1 || reqs[0] != (Request{Auth, " pass word "}) {
		t.Fatalf("reqs=%+v err=%v", reqs, err)
	}
}

func TestFiftyPipelined(t *testing.T) {
	var in []byte
	for i := range 50 {
		in = AppendRequest(in, "q:", strings.Repeat("x", i))
	}
	r := NewReader(bytes.NewReader(in), 0)
	for i := range 50 {
		req, err := r.Next()
		if err != nil || len(req.Text) != i {
			t.Fatalf("request %d: %+v %v", i, req, err)
		}
		if i < 49 && !r.Buffered() {
			t.Fatalf("request %d: next one should be buffered", i)
		}
	}
}

// stallReader returns its data, then blocks the test if read again: a
// client that sent a length and stopped.
type stallReader struct {
	t    *testing.T
	data []byte
}

func (s *stallReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		s.t.Fatal("read past the length prefix: the body was waited for")
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestSetLimitRefusesOnTheLengthAlone(t *testing.T) {
	r := NewReader(&stallReader{t: t, data: []byte("$5000\r\n")}, 0)
	r.SetLimit(PreAuthMaxBytes, "before AUTH")
	_, err := r.Next()
	var fe *FramingError
	if !errors.As(err, &fe) || !strings.Contains(fe.Msg, "limit of 4096 bytes before AUTH") {
		t.Fatalf("err = %v", err)
	}
	// Raised again, the same reader takes large requests.
	in := AppendRequest(nil, "x:", strings.Repeat("s", 5000))
	r = NewReader(bytes.NewReader(in), 0)
	r.SetLimit(PreAuthMaxBytes, "before AUTH")
	r.SetLimit(DefaultMaxRequestBytes, "(--max-request-bytes)")
	if req, err := r.Next(); err != nil || len(req.Text) != 5000 {
		t.Fatalf("%d bytes, %v", len(req.Text), err)
	}
	if err := r.Wait(); err != io.EOF {
		t.Fatalf("Wait at the end = %v", err)
	}
}
