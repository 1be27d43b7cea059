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
	var out []Statement
	start, line, startLine := 0, 1, 1
	emit := func(end int) {
		text := src[start:end]
		// Leading blanks and comments are dropped, and the line is the one
		// where the statement's first word stands.
		if lead := noise(text); lead < len(text) {
			out = append(out, Statement{Text: strings.TrimRight(text[lead:], " \t\r\n"), Line: startLine + strings.Count(text[:lead], "\n")})
		}
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ';':
			emit(i)
			i++
			start, startLine = i, line
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			i = lineEnd(src, i)
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			j := skipBlockComment(src, i)
			line += strings.Count(src[i:j], "\n")
			i = j
		case c == '\'' || c == '"':
			escapes := c == '\'' && i > 0 && (src[i-1] == 'e' || src[i-1] == 'E') && (i < 2 || !identChar(src[i-2]))
			j := skipQuoted(src, i, c, escapes)
			line += strings.Count(src[i:j], "\n")
			i = j
		case c == '$':
			if tag, ok := dollarTag(src, i); ok {
				j := skipPast(src, i+len(tag), tag)
				line += strings.Count(src[i:j], "\n")
				i = j
			} else {
				i++
			}
		default:
			i++
		}
	}
	emit(len(src))
	return out
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
				return i
			}
		default:
			i++
		}
	}
	return len(src)
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
