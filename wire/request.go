// Package wire is Luna's TCP protocol, both ends of it: framing requests
// (AppendRequest, AppendAuth) and parsing them (Reader), and the Arrow IPC
// streams that answer every request (status tables, query results and the
// abort marker) with the conventions a client reads them by. It knows
// nothing of DuckDB and needs no cgo; the server and the client import it.
//
// A request is either a length-framed command,
//
//	$<len>\r\n<prefix><statement>\r\n
//
// where <len> counts the two-byte prefix ("x:" execute, "q:" query) and the
// statement, or an authentication line, AUTH <password>\r\n.
package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unsafe"
)

// Kind is what a request asks for.
type Kind uint8

const (
	// Exec runs statements and answers with a status table ("x:").
	Exec Kind = iota + 1
	// Query streams the result of a statement ("q:").
	Query
	// Auth authenticates the connection ("AUTH <password>").
	Auth
	// Unknown is a well-framed command whose prefix is not known; the
	// connection stays usable.
	Unknown
)

func (k Kind) String() string {
	switch k {
	case Exec:
		return "exec"
	case Query:
		return "query"
	case Auth:
		return "auth"
	default:
		return "unknown"
	}
}

// Request is one parsed request.
type Request struct {
	Kind Kind
	// Text is the statement text after the prefix; for Auth, the password;
	// for Unknown, the whole data, prefix included.
	Text string
}

// Prefix returns the first two bytes of an Unknown request's data, or all
// of it if shorter.
func (r Request) Prefix() string {
	if len(r.Text) > 2 {
		return r.Text[:2]
	}
	return r.Text
}

// DefaultMaxRequestBytes is the default cap on a command's <len>.
const DefaultMaxRequestBytes = 64 << 20

// DefaultBatchRows is how many rows the server joins into each record
// batch it writes by default: DuckDB's own chunk size.
const DefaultBatchRows = 2048

// maxAuthLine caps an AUTH line; passwords are short.
const maxAuthLine = 4096

// PreAuthMaxBytes caps a command sent before AUTH: it can only be refused,
// so there is no reason to buffer more of it than an AUTH line.
const PreAuthMaxBytes = maxAuthLine

// maxLenDigits is enough digits for any int64 length.
const maxLenDigits = 19

// FramingError reports bytes that are not a request. Framing cannot be
// resynchronized after one, so the connection must be closed.
type FramingError struct {
	Msg  string
	Seen string // the offending bytes, for the status table's input column
}

func (e *FramingError) Error() string { return "malformed request: " + e.Msg }

// Reader reads requests from a stream.
type Reader struct {
	br  *bufio.Reader
	max int
	// limit names what sets max, for the error.
	limit string
	// seen collects the bytes of the request being parsed, up to a
	// small cap, only so that a framing error can show them.
	seen []byte
}

// NewReader reads requests from r. A command whose <len> is larger than
// maxBytes is a framing error; maxBytes <= 0 means DefaultMaxRequestBytes.
func NewReader(r io.Reader, maxBytes int) *Reader {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{br: br, max: maxBytes, limit: "(--max-request-bytes)"}
}

// SetLimit changes the cap on a command's <len> for the requests read
// from now on; why names the limit in the error, e.g. "before AUTH".
func (r *Reader) SetLimit(maxBytes int, why string) {
	r.max, r.limit = maxBytes, why
}

// Wait blocks until a byte of a further request is buffered, or returns
// the error that ends the stream (io.EOF for a clean end). It reads no
// more than the buffer holds.
func (r *Reader) Wait() error {
	_, err := r.br.Peek(1)
	return err
}

// Buffered reports whether bytes of a further request are already
// buffered, which lets a writer skip flushing between pipelined responses.
func (r *Reader) Buffered() bool { return r.br.Buffered() > 0 }

// Next reads the next request. It returns io.EOF when the stream ends
// cleanly between requests, io.ErrUnexpectedEOF when it ends inside one,
// and a *FramingError for bytes that are not a request.
func (r *Reader) Next() (Request, error) {
	r.seen = r.seen[:0]
	b, err := r.br.ReadByte()
	if err != nil {
		return Request{}, err
	}
	r.note(b)
	switch b {
	case '$':
		return r.command()
	case 'A':
		return r.auth()
	default:
		return Request{}, r.framing("expected '$' or AUTH, got %q", b)
	}
}

func (r *Reader) note(b ...byte) {
	if n := 64 - len(r.seen); n > 0 {
		r.seen = append(r.seen, b[:min(n, len(b))]...)
	}
}

func (r *Reader) framing(format string, args ...any) *FramingError {
	return &FramingError{Msg: fmt.Sprintf(format, args...), Seen: strings.ToValidUTF8(string(r.seen), "?")}
}

// unexpected turns EOF inside a request into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// command parses "<len>\r\n<data>\r\n" after the '$'.
func (r *Reader) command() (Request, error) {
	n, digits := 0, 0
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return Request{}, unexpected(err)
		}
		r.note(b)
		if b == '\r' {
			break
		}
		if b < '0' || b > '9' {
			return Request{}, r.framing("length must be decimal digits, got %q", b)
		}
		if digits == 1 && n == 0 {
			// One spelling per length keeps framing unambiguous.
			return Request{}, r.framing("length has a leading zero")
		}
		digits++
		if digits > maxLenDigits {
			return Request{}, r.framing("length has too many digits")
		}
		n = n*10 + int(b-'0')
		if n > r.max {
			// Refused on the digits alone, before anything is buffered.
			return Request{}, r.framing("request of more than %d bytes exceeds the limit of %d bytes %s", n, r.max, r.limit)
		}
	}
	if digits == 0 {
		return Request{}, r.framing("missing length after '$'")
	}
	if err := r.expect('\n', "length"); err != nil {
		return Request{}, err
	}
	data := make([]byte, n+2)
	if _, err := io.ReadFull(r.br, data); err != nil {
		return Request{}, unexpected(err)
	}
	if data[n] != '\r' || data[n+1] != '\n' {
		r.note(data[:min(n, 32)]...)
		return Request{}, r.framing("data of length %d is not followed by CRLF", n)
	}
	return parseData(data[:n]), nil
}

// parseData splits data into kind and text. data is owned by the request
// and never written again, so the text shares its memory instead of
// copying a statement that may be megabytes long.
func parseData(data []byte) Request {
	text := unsafe.String(unsafe.SliceData(data), len(data))
	if len(data) >= 2 && data[1] == ':' {
		switch data[0] {
		case 'x':
			return Request{Kind: Exec, Text: text[2:]}
		case 'q':
			return Request{Kind: Query, Text: text[2:]}
		}
	}
	return Request{Kind: Unknown, Text: text}
}

func (r *Reader) expect(want byte, after string) error {
	b, err := r.br.ReadByte()
	if err != nil {
		return unexpected(err)
	}
	r.note(b)
	if b != want {
		return r.framing("expected CRLF after %s", after)
	}
	return nil
}

var authPrefix = []byte("UTH ")

// auth parses "UTH <password>\r\n" after the 'A'.
func (r *Reader) auth() (Request, error) {
	head, err := r.br.Peek(len(authPrefix))
	if !bytes.HasPrefix(authPrefix, head) {
		return Request{}, r.framing("expected '$' or AUTH")
	}
	if err != nil {
		return Request{}, unexpected(err)
	}
	r.note(authPrefix...)
	r.br.Discard(len(authPrefix))
	// The password itself is never noted: it must not reach an error.
	var line []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxAuthLine {
			return Request{}, r.framing("AUTH line longer than %d bytes", maxAuthLine)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return Request{}, unexpected(err)
		}
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return Request{}, r.framing("AUTH line must end with CRLF")
	}
	return Request{Kind: Auth, Text: string(line[:len(line)-2])}, nil
}
