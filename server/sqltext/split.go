// Package sqltext reads SQL text the way DuckDB's parser does where it
// matters to Luna: it knows string literals ('…' with ” escapes, E'…' with
// backslash escapes, $tag$…$tag$), quoted identifiers and both comment
// styles, so a ';' or a quote inside any of them is not mistaken for
// structure.
package sqltext

import "strings"

// Statement is one statement of a script.
type Statement struct {
	Text string // without the terminating ';'
	Line int    // 1-based line where the statement starts
}

// Split cuts a script into statements at the semicolons that end them.
// Statements holding only blanks and comments are dropped. An unterminated
// literal or comment runs to the end of the text; DuckDB reports it when
// the statement runs.
func Split(src string) []Statement {
	var lc lineCounter
	out, rest := splitTerminated(src, &lc)
	return lc.appendStatement(out, src, rest, len(src))
}

// SplitTyped reads text still being typed, as a shell does line by line:
// done are the statements a ';' has ended, rest the text after the last
// such ';', and open reports whether rest is more than blanks and closed
// comments: the start of a statement that needs more lines.
func SplitTyped(src string) (done []Statement, rest string, open bool) {
	done, start := splitTerminated(src, &lineCounter{})
	rest = src[start:]
	return done, rest, !closedNoise(rest)
}

// splitTerminated returns the statements of src that a ';' ends and the
// index where the text after the last of them starts.
func splitTerminated(src string, lc *lineCounter) (out []Statement, rest int) {
	start := 0
	scan(src, func(end int) {
		out = lc.appendStatement(out, src, start, end)
		start = end + 1
	})
	return out, start
}

// lineCounter numbers lines as statements are cut, in order, counting
// each part of the text once.
type lineCounter struct {
	line    int // lines before counted, less one
	counted int
}

// appendStatement appends src[start:end] to out unless it is only blanks
// and comments. Leading ones are dropped, and the line is the one where
// the statement's first word stands.
func (lc *lineCounter) appendStatement(out []Statement, src string, start, end int) []Statement {
	text := src[start:end]
	if lead := noise(text); lead < len(text) {
		lc.line += strings.Count(src[lc.counted:start+lead], "\n")
		lc.counted = start + lead
		out = append(out, Statement{Text: strings.TrimRight(text[lead:], " \t\r\n"), Line: lc.line + 1})
	}
	return out
}

// scan calls end with the index of every ';' that ends a statement.
func scan(src string, end func(int)) {
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ';':
			end(i)
			i++
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			i = lineEnd(src, i)
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			i = skipBlockComment(src, i)
		case c == '\'' || c == '"':
			escapes := c == '\'' && i > 0 && (src[i-1] == 'e' || src[i-1] == 'E') && (i < 2 || !identChar(src[i-2]))
			i = skipQuoted(src, i, c, escapes)
		case c == '$':
			if tag, ok := dollarTag(src, i); ok {
				i = skipPast(src, i+len(tag), tag)
			} else {
				i++
			}
		default:
			i++
		}
	}
}

// closedNoise reports whether s is only blanks and comments, every block
// comment closed.
func closedNoise(s string) bool {
	if noise(s) < len(s) {
		return false
	}
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "--"):
			i = lineEnd(s, i)
		case strings.HasPrefix(s[i:], "/*"):
			j, closed := blockCommentEnd(s, i)
			if !closed {
				return false
			}
			i = j
		default:
			i++
		}
	}
	return true
}

// skipPast returns the index just past the first end at or after from, or
// len(src).
func skipPast(src string, from int, end string) int {
	k := strings.Index(src[from:], end)
	if k < 0 {
		return len(src)
	}
	return from + k + len(end)
}

// lineEnd returns the index of the newline ending the line at i, or len(src).
func lineEnd(src string, i int) int {
	if k := strings.IndexByte(src[i:], '\n'); k >= 0 {
		return i + k
	}
	return len(src)
}

// skipBlockComment skips a /* */ comment, nested ones included.
func skipBlockComment(src string, i int) int {
	end, _ := blockCommentEnd(src, i)
	return end
}

// blockCommentEnd returns the index just past the comment opened at i,
// or len(src) and false when it is not closed.
func blockCommentEnd(src string, i int) (int, bool) {
	depth := 0
	for i < len(src) {
		switch {
		case strings.HasPrefix(src[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(src[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i, true
			}
		default:
			i++
		}
	}
	return len(src), false
}

// skipQuoted skips a literal or identifier opened by q at i: a doubled
// quote stands for itself, and with escapes (E'…') so does \q.
func skipQuoted(src string, i int, q byte, escapes bool) int {
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			if escapes {
				i++
			}
		case q:
			if i+1 < len(src) && src[i+1] == q {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(src)
}

// dollarTag reports the $tag$ opening a dollar-quoted string at i. A $
// followed by digits is a parameter ($1), not a quote.
func dollarTag(src string, i int) (string, bool) {
	if i > 0 && identChar(src[i-1]) {
		return "", false // part of an identifier such as a$b
	}
	j := i + 1
	for j < len(src) && identChar(src[j]) {
		j++
	}
	if j >= len(src) || src[j] != '$' {
		return "", false
	}
	tag := src[i : j+1]
	if len(tag) > 2 && tag[1] >= '0' && tag[1] <= '9' {
		return "", false
	}
	return tag, true
}

func identChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// noise returns the length of the blanks and comments that start s.
func noise(s string) int {
	i := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case strings.HasPrefix(s[i:], "--"):
			i = lineEnd(s, i)
		case strings.HasPrefix(s[i:], "/*"):
			i = skipBlockComment(s, i)
		default:
			return i
		}
	}
	return i
}
