package sqltext

import (
	"regexp"
	"sort"
	"strings"
)

// Redacted is a statement with its secret values replaced by ***.
type Redacted struct {
	// SQL is the statement with every secret value replaced.
	SQL string
	// Edits map SQL back to the original statement.
	Edits Edits
	// Values are the secret values found, as written and unquoted.
	Values []string
}

// The options of CREATE SECRET whose values are not secret: they say what
// the secret is for, and operators need them in errors.
var publicSecretOptions = map[string]bool{
	"type": true, "provider": true, "scope": true, "region": true, "endpoint": true,
	"url_style": true, "use_ssl": true, "account_name": true, "chain": true,
	"host": true, "port": true, "database": true, "dbname": true, "user": true,
	"url_compatibility_mode": true,
}

// secretName matches names of settings and options that hold secrets.
var secretName = regexp.MustCompile(`(?i)secret|password|passwd|token|key|credential|connection_string|sas|signature`)

// inlinePassword matches a password inside a connection string: libpq's
// password=…, and the password of a URL's user information.
var inlinePassword = regexp.MustCompile(`(?i)(?:\bpassword\s*=\s*)([^\s;']+)|(?:[a-z][a-z0-9+.-]*://[^/\s:@']*:)([^@\s/']+)@`)

// Redact finds the secret values in sql: every value of CREATE SECRET but
// the public options above, values of SET and PRAGMA for settings named
// like secrets, strings after a keyword named like one (PASSWORD 'x'), and
// passwords inside connection strings. It errs towards redacting: a value
// it cannot place is redacted.
func Redact(sql string) Redacted {
	toks := Tokens(sql)
	type span struct {
		start, end int
		literal    bool // a whole string literal: replaced by '***'
	}
	var spans []span // over sql: which bytes to replace
	var values []string
	hide := func(t Token) {
		if t.Kind == Symbol {
			return
		}
		spans = append(spans, span{t.Start, t.End, t.Kind == String})
		values = append(values, t.Value, sql[t.Start:t.End])
	}
	hideFrom := func(i int) { // the values of a setting
		for ; i < len(toks) && toks[i].Value != ";"; i++ {
			if toks[i].Kind == String || toks[i].Kind == Word && !toks[i].IsWord("TO") {
				hide(toks[i])
			}
		}
	}

	inSecret := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.Kind == Symbol && t.Value == ";":
			inSecret = false
		case statementStart(toks, i) && (t.IsWord("SET") || t.IsWord("PRAGMA")):
			j := i + 1
			for j < len(toks) && (toks[j].IsWord("GLOBAL") || toks[j].IsWord("SESSION") || toks[j].IsWord("LOCAL")) {
				j++
			}
			if j < len(toks) && (toks[j].Kind == Word || toks[j].Kind == Ident) && secretName.MatchString(toks[j].Value) {
				hideFrom(j + 1)
			}
		case t.IsWord("SECRET") && !inSecret && secretStatement(toks, i):
			inSecret = true
			j := i + 1
			for j < len(toks) && toks[j].Value != "(" {
				j++
			}
			i = redactOptions(toks, j+1, hide) - 1
		case t.Kind == String:
			if i > 0 && (toks[i-1].Kind == Word || toks[i-1].Kind == Ident) && secretName.MatchString(toks[i-1].Value) &&
				!publicSecretOptions[strings.ToLower(toks[i-1].Value)] {
				hide(t)
				continue
			}
			for _, m := range inlinePassword.FindAllStringSubmatchIndex(sql[t.Start:t.End], -1) {
				for g := 2; g+1 < len(m); g += 2 {
					if m[g] >= 0 {
						s, e := t.Start+m[g], t.Start+m[g+1]
						spans = append(spans, span{s, e, false})
						values = append(values, sql[s:e])
					}
				}
			}
		}
	}

	sort.Slice(spans, func(a, b int) bool { return spans[a].start < spans[b].start })
	var b strings.Builder
	var edits Edits
	last := 0
	for _, sp := range spans {
		if sp.start < last {
			continue // inside a span already replaced
		}
		b.WriteString(sql[last:sp.start])
		start := b.Len()
		if sp.literal {
			b.WriteString("'***'")
		} else {
			b.WriteString("***")
		}
		edits = append(edits, Edit{OldStart: sp.start, OldEnd: sp.end, NewStart: start, NewEnd: b.Len()})
		last = sp.end
	}
	if len(edits) == 0 {
		return Redacted{SQL: sql}
	}
	b.WriteString(sql[last:])
	return Redacted{SQL: b.String(), Edits: edits, Values: values}
}

// statementStart reports whether toks[i] begins a statement.
func statementStart(toks []Token, i int) bool {
	return i == 0 || toks[i-1].Kind == Symbol && toks[i-1].Value == ";"
}

// secretStatement reports whether the SECRET at toks[i] is that of
// CREATE [OR REPLACE] [PERSISTENT|TEMPORARY|TEMP] SECRET.
func secretStatement(toks []Token, i int) bool {
	for j := i - 1; j >= 0; j-- {
		switch {
		case toks[j].IsWord("PERSISTENT"), toks[j].IsWord("TEMPORARY"), toks[j].IsWord("TEMP"),
			toks[j].IsWord("OR"), toks[j].IsWord("REPLACE"):
		case toks[j].IsWord("CREATE"):
			return true
		default:
			return false
		}
	}
	return false
}

// redactOptions hides the values of the option list of CREATE SECRET
// that starts at toks[i], and returns the index after it. An option is a
// name then its value tokens, up to a comma at the list's own depth; of a
// public option only the first value token is shown, so a missing comma
// cannot expose the next option's value.
func redactOptions(toks []Token, i int, hide func(Token)) int {
	depth := 0
	name := ""
	n := 0 // tokens of the current option so far
	for ; i < len(toks); i++ {
		t := toks[i]
		if t.Kind == Symbol {
			switch t.Value {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				if depth == 0 {
					return i + 1
				}
				depth--
			case ",":
				if depth == 0 {
					name, n = "", 0
					continue
				}
			case ";":
				return i
			}
		}
		n++
		if n == 1 {
			name = strings.ToLower(t.Value)
			continue
		}
		if publicSecretOptions[name] && n == 2 && depth == 0 {
			continue
		}
		if publicSecretOptions[name] && name == "scope" {
			continue // a list of scopes is still public
		}
		hide(t)
	}
	return i
}

// RedactMessage removes secret values from a message about sql (a DuckDB
// error, say): an excerpt of the statement is shown from its redacted
// form, and the values are replaced wherever else they appear. Values
// shorter than four characters are replaced only where quoted, so that a
// short value does not garble the whole message.
func RedactMessage(msg, sql string) string {
	r := Redact(sql)
	if len(r.Values) == 0 {
		return msg
	}
	msg = Reframe(msg, sql, r.SQL, r.Edits.Forward)
	vals := append([]string(nil), r.Values...)
	sort.Slice(vals, func(a, b int) bool { return len(vals[a]) > len(vals[b]) })
	for _, v := range vals {
		switch {
		case v == "":
		case len(v) >= 4:
			msg = strings.ReplaceAll(msg, v, "***")
		default:
			msg = strings.ReplaceAll(msg, "'"+v+"'", "'***'")
		}
	}
	return msg
}
