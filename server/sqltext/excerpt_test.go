package sqltext

import (
	"strings"
	"testing"
)

func TestReframeMapsTheCaretBack(t *testing.T) {
	orig := "SELECT typeof(day), count(*) FROM read_xlsx('/data/t.xlsx', sheet = 'S2')"
	call := "read_xlsx('/data/t.xlsx', sheet = 'S2')"
	local := "read_parquet('/tmp/cache/x/1.parquet')"
	i := strings.Index(orig, call)
	ran := orig[:i] + local
	edits := Edits{{OldStart: i, OldEnd: len(orig), NewStart: i, NewEnd: len(ran)}}
	msg := "Binder Error: Referenced column \"day\" not found in FROM clause!\n\nLINE 1: " + ran + "\n                      ^"
	got := Reframe(msg, ran, orig, edits.Back)
	want := "Binder Error: Referenced column \"day\" not found in FROM clause!\n\nLINE 1: " + orig + "\n                      ^"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// A caret inside the replacement points at what it replaced.
	msg = "Binder Error: x\n\nLINE 1: " + ran + "\n" + strings.Repeat(" ", len("LINE 1: ")+i+5) + "^"
	got = Reframe(msg, ran, orig, edits.Back)
	if !strings.HasSuffix(got, "\n"+strings.Repeat(" ", len("LINE 1: ")+i)+"^") || strings.Contains(got, "/tmp/cache") {
		t.Errorf("got\n%s", got)
	}
}

func TestReframeLongLinesAndUnplaceable(t *testing.T) {
	long := "SELECT " + strings.Repeat("a, ", 60) + "nosuch FROM t"
	at := strings.Index(long, "nosuch")
	msg := "Binder Error: no\n\n" + strings.TrimPrefix(Excerpt(long, at), "\n\n")
	got := Reframe(msg, long, long, func(o int) int { return o })
	if got != msg {
		t.Errorf("identity reframe changed a long excerpt:\n%s\n%s", got, msg)
	}
	if !strings.Contains(got, "...") {
		t.Errorf("a long line is not cut: %s", got)
	}
	lines := strings.Split(got, "\n")
	caret := strings.Index(lines[len(lines)-1], "^")
	if !strings.HasPrefix(lines[len(lines)-2][caret:], "nosuch") {
		t.Errorf("caret not under the place:\n%s", got)
	}
	// An excerpt that is not of the statement is dropped, not passed on.
	got = Reframe("Binder Error: no\n\nLINE 1: SELECT '/secret/path'\n        ^", "SELECT 1", "SELECT 1", func(o int) int { return o })
	if got != "Binder Error: no" {
		t.Errorf("got %q", got)
	}
}

func TestExcerptMultiLine(t *testing.T) {
	src := "SELECT 1,\n  nosuch\nFROM t"
	got := Excerpt(src, strings.Index(src, "nosuch"))
	if got != "\n\nLINE 2:   nosuch\n          ^" {
		t.Errorf("got %q", got)
	}
}
