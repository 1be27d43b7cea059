package sqltext

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Edit is one replacement made to a text: the bytes [OldStart, OldEnd) of
// the original stand as [NewStart, NewEnd) in the edited text.
type Edit struct {
	OldStart, OldEnd int
	NewStart, NewEnd int
}

// Edits are the replacements that turned one text into another, in order
// and not overlapping; the text between them is the same in both.
type Edits []Edit

// Back maps a byte offset of the edited text to the original: in text
// both share, the same character; inside a replacement, the start of what
// it replaced.
func (es Edits) Back(off int) int {
	return es.mapOffset(off, func(e Edit) (int, int, int, int) { return e.NewStart, e.NewEnd, e.OldStart, e.OldEnd })
}

// Forward maps a byte offset of the original text to the edited one, as
// Back does the other way.
func (es Edits) Forward(off int) int {
	return es.mapOffset(off, func(e Edit) (int, int, int, int) { return e.OldStart, e.OldEnd, e.NewStart, e.NewEnd })
}

// mapOffset maps off from one side of the edits (from) to the other (to).
func (es Edits) mapOffset(off int, sides func(Edit) (fromStart, fromEnd, toStart, toEnd int)) int {
	delta := 0
	for _, e := range es {
		fs, fe, ts, te := sides(e)
		if off < fs {
			break
		}
		if off < fe {
			return ts
		}
		delta = te - fe
	}
	return off + delta
}

// excerptRE matches the excerpt DuckDB appends to an error about a place
// in the statement: a blank line, "LINE n: " and the line (cut with "..."
// when long), then a caret under the place.
var excerptRE = regexp.MustCompile(`\n\nLINE ([0-9]+): ([^\n]*)\n( *)\^\s*$`)

// maxExcerptWidth is how much of a long line an excerpt shows, as DuckDB
// does.
const maxExcerptWidth = 120

// Reframe rewrites the excerpt at the end of a DuckDB error message so it
// quotes shown instead of ran, the text DuckDB was given: back maps an
// offset of ran to one of shown. When the excerpt cannot be placed in ran
// it is dropped, so the message never quotes text other than shown. A
// message without an excerpt comes back as it is.
func Reframe(msg, ran, shown string, back func(int) int) string {
	m := excerptRE.FindStringSubmatchIndex(msg)
	if m == nil {
		return msg
	}
	head := msg[:m[0]]
	line, _ := strconv.Atoi(msg[m[2]:m[3]])
	text := msg[m[4]:m[5]]
	col := (m[7] - m[6]) - len("LINE : ") - (m[3] - m[2])
	off, ok := locate(ran, line, text, col)
	if !ok {
		return head
	}
	return head + Excerpt(shown, back(off))
}

// locate finds the byte offset in src that an excerpt of line with its
// caret at render column col points at.
func locate(src string, line int, text string, col int) (int, bool) {
	start := 0
	for n := 1; n < line; n++ {
		i := strings.IndexAny(src[start:], "\r\n")
		if i < 0 {
			return 0, false
		}
		start += i + 1
	}
	end := len(src)
	if i := strings.IndexAny(src[start:], "\r\n"); i >= 0 {
		end = start + i
	}
	row := src[start:end]
	// The excerpt may be cut at either end; try the cut forms first, and
	// the text as it is in case the line itself has the dots.
	type form struct {
		core string
		skip int
	}
	var forms []form
	core, skip := text, 0
	if strings.HasPrefix(core, "...") {
		core, skip = core[3:], 3
	}
	if strings.HasSuffix(core, "...") {
		forms = append(forms, form{strings.TrimSuffix(core, "..."), skip})
	}
	forms = append(forms, form{core, skip}, form{text, 0})
	for _, f := range forms {
		i := strings.Index(row, f.core)
		if i < 0 || f.core == "" {
			continue
		}
		c := col - f.skip
		if c < 0 {
			continue
		}
		// Columns count characters; excerpts here are mostly ASCII.
		b := 0
		for n := 0; n < c && b < len(f.core); n++ {
			_, w := utf8.DecodeRuneInString(f.core[b:])
			b += w
		}
		return start + i + b, true
	}
	return 0, false
}

// Excerpt renders the place off of src as DuckDB does: "LINE n: ", the
// line (at most maxExcerptWidth characters around the place, cut with
// "..."), and a caret under the place, after a blank line.
func Excerpt(src string, off int) string {
	off = max(0, min(off, len(src)))
	line, start := 1, 0
	for i := 0; i < off; i++ {
		if src[i] == '\n' || src[i] == '\r' {
			line++
			start = i + 1
		}
	}
	end := len(src)
	if i := strings.IndexAny(src[off:], "\r\n"); i >= 0 {
		end = off + i
	}
	row := []rune(src[start:end])
	at := utf8.RuneCountInString(src[start:off])
	from, to := 0, len(row)
	if len(row) > maxExcerptWidth {
		from = max(0, at-maxExcerptWidth/2)
		to = min(len(row), from+maxExcerptWidth)
		from = max(0, to-maxExcerptWidth)
	}
	prefix := "LINE " + strconv.Itoa(line) + ": "
	var b strings.Builder
	b.WriteString("\n\n")
	b.WriteString(prefix)
	pad := len(prefix) + at - from
	if from > 0 {
		b.WriteString("...")
		pad += 3
	}
	b.WriteString(string(row[from:to]))
	if to < len(row) {
		b.WriteString("...")
	}
	b.WriteString("\n")
	b.WriteString(strings.Repeat(" ", pad))
	b.WriteString("^")
	return b.String()
}
