package sqltext

import "strings"

// Kind is a token's kind.
type Kind uint8

const (
	// Word is a keyword or an unquoted identifier.
	Word Kind = iota + 1
	// String is a string literal: '…', E'…' or $tag$…$tag$.
	String
	// Ident is a "quoted identifier".
	Ident
	// Symbol is any other character outside blanks and comments.
	Symbol
)

// Token is one token of a statement. Start and End are byte offsets of
// its source text; Value is a String's or Ident's content with quoting
// undone, a Word as written, or a Symbol's character.
type Token struct {
	Kind       Kind
	Start, End int
	Value      string
}

// Tokens returns the tokens of src, skipping blanks and comments.
// Numbers come out as Words.
func Tokens(src string) []Token {
	var out []Token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			i = lineEnd(src, i)
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			i = skipBlockComment(src, i)
		case c == '\'':
			j := skipQuoted(src, i, '\'', false)
			out = append(out, Token{String, i, j, unquote(src[i:j], '\'', false)})
			i = j
		case (c == 'e' || c == 'E') && i+1 < len(src) && src[i+1] == '\'':
			j := skipQuoted(src, i+1, '\'', true)
			out = append(out, Token{String, i, j, unquote(src[i+1:j], '\'', true)})
			i = j
		case c == '"':
			j := skipQuoted(src, i, '"', false)
			out = append(out, Token{Ident, i, j, unquote(src[i:j], '"', false)})
			i = j
		case c == '$':
			if tag, ok := dollarTag(src, i); ok {
				j := skipPast(src, i+len(tag), tag)
				body := src[i+len(tag) : max(j-len(tag), i+len(tag))]
				out = append(out, Token{String, i, j, body})
				i = j
				continue
			}
			out = append(out, Token{Symbol, i, i + 1, "$"})
			i++
		case identChar(c):
			j := i
			for j < len(src) && (identChar(src[j]) || src[j] == '$') {
				j++
			}
			out = append(out, Token{Word, i, j, src[i:j]})
			i = j
		default:
			out = append(out, Token{Symbol, i, i + 1, src[i : i+1]})
			i++
		}
	}
	return out
}

// unquote undoes the quoting of a literal or identifier q…q, doubled
// quotes included, and with escapes (E'…') backslash escapes.
func unquote(s string, q byte, escapes bool) string {
	if len(s) >= 2 && s[len(s)-1] == q {
		s = s[1 : len(s)-1]
	} else if len(s) >= 1 {
		s = s[1:] // unterminated
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q && i+1 < len(s) && s[i+1] == q:
			b.WriteByte(q)
			i++
		case escapes && c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Quote writes s as a plain SQL string literal.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// IsWord reports whether t is the keyword w, in any case.
func (t Token) IsWord(w string) bool {
	return t.Kind == Word && strings.EqualFold(t.Value, w)
}
