package excel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// xmlScanner is a small streaming XML tokenizer for workbook parts. It
// knows what a spreadsheet part needs (tags with attributes, character
// data with entities, CDATA, comments, processing instructions and a
// DOCTYPE to skip) and nothing of namespaces beyond dropping prefixes.
// encoding/xml allocates for every token and reads a worksheet at about
// 20 MB/s; this reads from one reused buffer, so a sheet converts at the
// speed of inflating it.
//
// Memory is bounded: one tag may be at most maxTagBytes, one run of
// character data at most maxTextBytes, and text nobody asked for
// (keepText false) is skipped without being buffered.
type xmlScanner struct {
	r   io.Reader
	buf []byte
	pos int // next unread byte of buf
	end int // end of the valid bytes of buf
	eof bool

	ctx     context.Context
	tokens  int // since the last cancellation check
	started bool

	// keepText makes next return character data; otherwise it is skipped.
	keepText bool

	// The current token: a tag's local name, attributes and whether it
	// closes itself, or character data. Valid until the next call.
	name      []byte
	attrs     []xmlAttr
	selfClose bool
	text      []byte
}

// xmlAttr is an attribute as written: its local name and its raw value,
// entities not yet decoded (attrValue decodes them).
type xmlAttr struct{ name, raw []byte }

type tokKind int

const (
	tokEOF tokKind = iota
	tokStart
	tokEnd
	tokText
)

const (
	// maxTagBytes bounds one tag with its attributes.
	maxTagBytes = 1 << 20
	// maxTextBytes bounds one run of character data (a cell value, a
	// shared string). Excel's own limit is 32,767 characters a cell.
	maxTextBytes = 16 << 20
	// scanBufBytes is the scanner's read buffer.
	scanBufBytes = 256 << 10
	// checkEvery is how many tokens pass between cancellation checks.
	checkEvery = 4096
)

var errMalformed = errors.New("malformed XML")

func newXMLScanner(ctx context.Context, r io.Reader) *xmlScanner {
	return &xmlScanner{r: r, buf: make([]byte, scanBufBytes), ctx: ctx}
}

// fill reads more input, keeping buf[pos:end] (moved to the front). It
// grows the buffer when the kept bytes fill it, up to limit bytes kept.
func (s *xmlScanner) fill(limit int) error {
	if s.eof {
		return io.ErrUnexpectedEOF
	}
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:s.end])
		s.pos, s.end = 0, n
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= limit {
			return fmt.Errorf("%w: an element longer than %d bytes", errMalformed, limit)
		}
		nb := make([]byte, min(2*len(s.buf), limit))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	for {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
			if n > 0 {
				return nil
			}
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// next reads the next token.
func (s *xmlScanner) next() (tokKind, error) {
	if s.tokens++; s.tokens >= checkEvery {
		s.tokens = 0
		if err := s.ctx.Err(); err != nil {
			return tokEOF, context.Cause(s.ctx)
		}
	}
	if !s.started {
		s.started = true
		if err := s.checkEncoding(); err != nil {
			return tokEOF, err
		}
	}
	for {
		if s.pos == s.end {
			if err := s.fill(len(s.buf)); err != nil {
				if err == io.ErrUnexpectedEOF {
					return tokEOF, nil
				}
				return tokEOF, err
			}
		}
		if s.buf[s.pos] != '<' {
			if s.keepText {
				return s.readText()
			}
			if err := s.skipText(); err != nil {
				return tokEOF, err
			}
			continue
		}
		k, err := s.readMarkup()
		if err != nil || k != tokEOF {
			return k, err
		}
		// A comment, processing instruction or DOCTYPE: go on.
	}
}

// checkEncoding refuses a part in UTF-16 (a byte order mark, or '<' as
// two bytes), which workbooks may in principle use and none in practice
// do; a UTF-8 byte order mark is skipped with the text before the root.
func (s *xmlScanner) checkEncoding() error {
	for s.end-s.pos < 2 && !s.eof {
		if err := s.fill(len(s.buf)); err != nil && err != io.ErrUnexpectedEOF {
			return err
		}
	}
	if b := s.buf[s.pos:s.end]; len(b) >= 2 && (b[0] == 0xFE && b[1] == 0xFF || b[0] == 0xFF && b[1] == 0xFE || b[0] == '<' && b[1] == 0 || b[0] == 0 && b[1] == '<') {
		return fmt.Errorf("%w: UTF-16 text is not supported", errMalformed)
	}
	return nil
}

// skipText passes over character data up to the next '<' or the end.
func (s *xmlScanner) skipText() error {
	for {
		if i := bytes.IndexByte(s.buf[s.pos:s.end], '<'); i >= 0 {
			s.pos += i
			return nil
		}
		s.pos = s.end
		if err := s.fill(len(s.buf)); err != nil {
			if err == io.ErrUnexpectedEOF {
				return nil
			}
			return err
		}
	}
}

// readText decodes character data up to the next '<' into s.text.
func (s *xmlScanner) readText() (tokKind, error) {
	s.text = s.text[:0]
	for {
		chunk := s.buf[s.pos:s.end]
		i := bytes.IndexByte(chunk, '<')
		if i >= 0 {
			chunk = chunk[:i]
		}
		// Copy runs without '&' or '\r' at once.
		for len(chunk) > 0 {
			j := 0
			for j < len(chunk) && chunk[j] != '&' && chunk[j] != '\r' {
				j++
			}
			if j == len(chunk) {
				s.text = append(s.text, chunk...)
				s.pos += len(chunk)
				break
			}
			s.text = append(s.text, chunk[:j]...)
			s.pos += j
			if chunk[j] == '\r' {
				// XML reads \r\n and a lone \r as \n.
				s.text = append(s.text, '\n')
				s.pos++
				if s.pos == s.end {
					if err := s.fill(len(s.buf)); err != nil && err != io.ErrUnexpectedEOF {
						return tokEOF, err
					}
				}
				if s.pos < s.end && s.buf[s.pos] == '\n' {
					s.pos++
				}
			} else if err := s.readEntity(); err != nil {
				return tokEOF, err
			}
			break // the buffer may have moved
		}
		if len(s.text) > maxTextBytes {
			return tokEOF, fmt.Errorf("%w: character data longer than %d bytes", errMalformed, maxTextBytes)
		}
		if s.pos < s.end && s.buf[s.pos] == '<' {
			return tokText, nil
		}
		if s.pos == s.end {
			if err := s.fill(len(s.buf)); err != nil {
				if err == io.ErrUnexpectedEOF {
					return tokText, nil
				}
				return tokEOF, err
			}
		}
	}
}

// readEntity decodes the entity at s.pos (an '&') onto s.text.
func (s *xmlScanner) readEntity() error {
	const longest = len("&#x0010FFFF;")
	for s.end-s.pos < longest && !s.eof {
		if err := s.fill(len(s.buf)); err != nil && err != io.ErrUnexpectedEOF {
			return err
		}
	}
	rest := s.buf[s.pos:s.end]
	if semi := bytes.IndexByte(rest[:min(len(rest), longest)], ';'); semi > 0 {
		var ok bool
		if s.text, ok = appendEntity(s.text, rest[1:semi]); ok {
			s.pos += semi + 1
			return nil
		}
	}
	// Not an entity: keep the '&' as written, as attrValue does.
	s.text = append(s.text, '&')
	s.pos++
	return nil
}

// appendEntity appends what the entity named by ent (between '&' and
// ';') stands for.
func appendEntity(dst, ent []byte) ([]byte, bool) {
	switch string(ent) {
	case "lt":
		return append(dst, '<'), true
	case "gt":
		return append(dst, '>'), true
	case "amp":
		return append(dst, '&'), true
	case "quot":
		return append(dst, '"'), true
	case "apos":
		return append(dst, '\''), true
	}
	if len(ent) < 2 || ent[0] != '#' {
		return dst, false
	}
	var n uint64
	var err error
	if ent[1] == 'x' || ent[1] == 'X' {
		n, err = strconv.ParseUint(string(ent[2:]), 16, 32)
	} else {
		n, err = strconv.ParseUint(string(ent[1:]), 10, 32)
	}
	if err != nil || n > utf8.MaxRune {
		return dst, false
	}
	return utf8.AppendRune(dst, rune(n)), true
}

// readMarkup reads what starts at s.pos, a '<': a tag, CDATA (as text),
// or something to skip (then it returns tokEOF and no error).
func (s *xmlScanner) readMarkup() (tokKind, error) {
	if err := s.ensure(2); err != nil {
		return tokEOF, err
	}
	switch s.buf[s.pos+1] {
	case '!':
		return s.readBang()
	case '?':
		return tokEOF, s.skipPast("?>")
	}
	for {
		k, n, err := s.parseTag(s.buf[s.pos:s.end])
		if err != nil {
			return tokEOF, err
		}
		if n > 0 {
			s.pos += n
			return k, nil
		}
		// The tag goes on past the buffer: read more and parse it again.
		if err := s.fill(maxTagBytes); err != nil {
			if err == io.ErrUnexpectedEOF {
				return tokEOF, fmt.Errorf("%w: unterminated tag", errMalformed)
			}
			return tokEOF, err
		}
	}
}

// parseTag parses the start or end tag that b begins with (b[0] is '<')
// and returns its length, or 0 when b ends first.
func (s *xmlScanner) parseTag(b []byte) (tokKind, int, error) {
	if len(b) > 1 && b[1] == '/' {
		j := bytes.IndexByte(b, '>')
		if j < 0 {
			return tokEOF, 0, nil
		}
		s.name = localName(trimSpace(b[2:j]))
		return tokEnd, j + 1, nil
	}
	i := 1
	for i < len(b) && !isSpace(b[i]) && b[i] != '>' && b[i] != '/' {
		i++
	}
	if i == len(b) {
		return tokEOF, 0, nil
	}
	if i == 1 {
		return tokEOF, 0, fmt.Errorf("%w: a tag without a name", errMalformed)
	}
	s.name = localName(b[1:i])
	s.attrs = s.attrs[:0]
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			return tokEOF, 0, nil
		}
		switch b[i] {
		case '>':
			s.selfClose = false
			return tokStart, i + 1, nil
		case '/':
			if i+1 == len(b) {
				return tokEOF, 0, nil
			}
			if b[i+1] != '>' {
				return tokEOF, 0, fmt.Errorf("%w: a stray '/' in <%s>", errMalformed, s.name)
			}
			s.selfClose = true
			return tokStart, i + 2, nil
		}
		from := i
		for i < len(b) && b[i] != '=' && !isSpace(b[i]) && b[i] != '>' && b[i] != '/' {
			i++
		}
		name := b[from:i]
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			return tokEOF, 0, nil
		}
		if b[i] != '=' {
			return tokEOF, 0, fmt.Errorf("%w: an attribute without a value in <%s>", errMalformed, s.name)
		}
		for i++; i < len(b) && isSpace(b[i]); i++ {
		}
		if i == len(b) {
			return tokEOF, 0, nil
		}
		q := b[i]
		if q != '"' && q != '\'' {
			return tokEOF, 0, fmt.Errorf("%w: an unquoted attribute value in <%s>", errMalformed, s.name)
		}
		e := bytes.IndexByte(b[i+1:], q)
		if e < 0 {
			return tokEOF, 0, nil
		}
		s.attrs = append(s.attrs, xmlAttr{name: localName(name), raw: b[i+1 : i+1+e]})
		i += e + 2
	}
}

func trimLeftSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

func trimSpace(b []byte) []byte {
	b = trimLeftSpace(b)
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// readBang reads a comment or DOCTYPE (skipped) or CDATA (text).
func (s *xmlScanner) readBang() (tokKind, error) {
	if err := s.ensure(9); err != nil {
		return tokEOF, err
	}
	head := s.buf[s.pos : s.pos+9]
	switch {
	case bytes.HasPrefix(head, []byte("<!--")):
		return tokEOF, s.skipPast("-->")
	case bytes.Equal(head, []byte("<![CDATA[")):
		s.pos += 9
		s.text = s.text[:0]
		for {
			if i := bytes.Index(s.buf[s.pos:s.end], []byte("]]>")); i >= 0 {
				if s.keepText {
					s.text = append(s.text, s.buf[s.pos:s.pos+i]...)
				}
				s.pos += i + 3
				break
			}
			// Keep the last two bytes: they may begin the terminator.
			keep := max(s.pos, s.end-2)
			if s.keepText {
				s.text = append(s.text, s.buf[s.pos:keep]...)
			}
			s.pos = keep
			if len(s.text) > maxTextBytes {
				return tokEOF, fmt.Errorf("%w: CDATA longer than %d bytes", errMalformed, maxTextBytes)
			}
			if err := s.fill(len(s.buf)); err != nil {
				if err == io.ErrUnexpectedEOF {
					return tokEOF, fmt.Errorf("%w: unterminated CDATA", errMalformed)
				}
				return tokEOF, err
			}
		}
		if !s.keepText {
			return tokEOF, nil
		}
		return tokText, nil
	}
	// <!DOCTYPE …> with an internal subset in brackets, or another
	// declaration: skip to its end. Entities it declares are not used.
	depth, quote := 0, byte(0)
	for {
		for ; s.pos < s.end; s.pos++ {
			c := s.buf[s.pos]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '[':
				depth++
			case c == ']':
				depth--
			case c == '>' && depth <= 0:
				s.pos++
				return tokEOF, nil
			}
		}
		if err := s.fill(len(s.buf)); err != nil {
			if err == io.ErrUnexpectedEOF {
				return tokEOF, fmt.Errorf("%w: unterminated declaration", errMalformed)
			}
			return tokEOF, err
		}
	}
}

// skipPast moves past the next occurrence of end.
func (s *xmlScanner) skipPast(end string) error {
	for {
		if i := bytes.Index(s.buf[s.pos:s.end], []byte(end)); i >= 0 {
			s.pos += i + len(end)
			return nil
		}
		s.pos = max(s.pos, s.end-len(end)+1)
		if err := s.fill(len(s.buf)); err != nil {
			if err == io.ErrUnexpectedEOF {
				return fmt.Errorf("%w: missing %q", errMalformed, end)
			}
			return err
		}
	}
}

// ensure makes n bytes available at s.pos, or fails at the end of input.
func (s *xmlScanner) ensure(n int) error {
	for s.end-s.pos < n {
		if err := s.fill(len(s.buf)); err != nil {
			if err == io.ErrUnexpectedEOF {
				if s.end-s.pos >= 2 && n > 2 {
					// Short markup at the very end: let the caller
					// match what there is.
					return s.padEnd(n)
				}
				return fmt.Errorf("%w: truncated", errMalformed)
			}
			return err
		}
	}
	return nil
}

// padEnd pads the input's tail with spaces so a prefix check of n bytes
// can run; the padding can never match markup.
func (s *xmlScanner) padEnd(n int) error {
	for s.end-s.pos < n {
		if s.end == len(s.buf) {
			return fmt.Errorf("%w: truncated", errMalformed)
		}
		s.buf[s.end] = ' '
		s.end++
	}
	return nil
}

// attr returns the decoded value of the attribute with local name name.
func (s *xmlScanner) attr(name string) (string, bool) {
	for _, a := range s.attrs {
		if string(a.name) == name {
			return attrValue(a.raw), true
		}
	}
	return "", false
}

// attrBytes returns an attribute's raw value (for numbers and names,
// which have no entities); it is valid until the next token.
func (s *xmlScanner) attrBytes(name string) []byte {
	for _, a := range s.attrs {
		if string(a.name) == name {
			return a.raw
		}
	}
	return nil
}

// attrValue decodes the entities of an attribute value.
func attrValue(raw []byte) string {
	if bytes.IndexByte(raw, '&') < 0 {
		return string(raw)
	}
	out := make([]byte, 0, len(raw))
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '&')
		if i < 0 {
			out = append(out, raw...)
			break
		}
		out = append(out, raw[:i]...)
		raw = raw[i:]
		semi := bytes.IndexByte(raw, ';')
		var ok bool
		if semi > 0 {
			out, ok = appendEntity(out, raw[1:semi])
		}
		if !ok {
			// Not an entity: keep the text as written.
			out = append(out, '&')
			raw = raw[1:]
			continue
		}
		raw = raw[semi+1:]
	}
	return string(out)
}

// localName drops a namespace prefix: x:row is row.
func localName(b []byte) []byte {
	if i := bytes.LastIndexByte(b, ':'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// atoiBytes parses a non-negative decimal; ok is false for anything else
// or a value above limit.
func atoiBytes(b []byte, limit int) (int, bool) {
	b = trimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > limit {
			return 0, false
		}
	}
	return n, true
}
