package remote

import (
	"regexp"
	"sort"
	"strings"

	"github.com/lunadb/luna/server/sqltext"
)

// edit writes text into b in place of the statement's bytes [from, to),
// and remembers where, so errors can be told in the client's terms.
func (s *Statement) edit(b *strings.Builder, from, to int, text string) {
	start := b.Len()
	b.WriteString(text)
	s.edits = append(s.edits, sqltext.Edit{OldStart: from, OldEnd: to, NewStart: start, NewEnd: b.Len()})
}

// ClientError rewords err, an error DuckDB gave for the rewritten SQL, so
// that it quotes what the client sent: DuckDB's excerpt of the statement
// is made from the client's text with the caret at the same place, and
// local copies are named by the URL or file they were made from. No cache
// path reaches the client. Errors that carry no such text come back as
// they are.
func (s *Statement) ClientError(err error) error {
	if err == nil || len(s.edits) == 0 {
		return err
	}
	msg := err.Error()
	out := sqltext.Reframe(msg, s.SQL, s.orig, s.edits.Back)
	out = s.namePaths(out)
	if out == msg {
		return err
	}
	return &reworded{msg: out, err: err}
}

// redactError removes the secret values of stmt from err: an error about
// a secret statement may quote the token at fault.
func redactError(stmt string, err error) error {
	msg := err.Error()
	if out := sqltext.RedactMessage(msg, stmt); out != msg {
		return &reworded{msg: out, err: err}
	}
	return err
}

type reworded struct {
	msg string
	err error
}

func (e *reworded) Error() string { return e.msg }
func (e *reworded) Unwrap() error { return e.err }

// namePaths replaces the local paths in msg that the rewrite put in the
// statement with what the client named; anything else under the cache
// directory is replaced by a placeholder.
func (s *Statement) namePaths(msg string) string {
	dir := s.r.cache.dir
	if !strings.Contains(msg, dir) {
		return msg
	}
	type naming struct{ local, shown string }
	var names []naming
	for _, e := range s.edits {
		shownText := s.orig[e.OldStart:e.OldEnd]
		shown := shownText
		if ts := sqltext.Tokens(shownText); len(ts) > 0 {
			for _, t := range ts {
				if t.Kind == sqltext.String {
					shown = t.Value
					break
				}
			}
		}
		for _, t := range sqltext.Tokens(s.SQL[e.NewStart:e.NewEnd]) {
			if t.Kind != sqltext.String || !strings.HasPrefix(t.Value, dir) {
				continue
			}
			names = append(names, naming{t.Value, shown})
			// Files under a listed prefix: the local root stands for the
			// URL's root, found as the longest tail the two share.
			if n := commonSuffix(t.Value, shown); n > 0 && n < len(shown) && !strings.HasPrefix(shown, "/") {
				names = append(names, naming{t.Value[:len(t.Value)-n] + "/", shown[:len(shown)-n] + "/"})
			}
		}
	}
	sort.SliceStable(names, func(a, b int) bool { return len(names[a].local) > len(names[b].local) })
	for _, n := range names {
		msg = strings.ReplaceAll(msg, n.local, n.shown)
	}
	return cachePath(dir).ReplaceAllString(msg, "(object cache)")
}

// commonSuffix is the length of the longest tail of a and b, from a '/'.
func commonSuffix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	for n > 0 && a[len(a)-n] != '/' {
		n--
	}
	return n
}

func cachePath(dir string) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(dir) + `[^\s'"]*`)
}
