package sqltext

import (
	"reflect"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	src := "-- header; not a statement\n" +
		"CREATE TABLE a AS SELECT 'x;y' AS s;\n" +
		"\n" +
		"  SELECT \"we;ird\", E'it\\'s;', 'it''s;' FROM a; /* c; */\n" +
		"SELECT $$ ; $$, $fn$ a;\n b $fn$, $1;\n" +
		"/* nested /* ; */ still ; */ SELECT 4;;\n" +
		"-- trailing comment only\n"
	want := []Statement{
		{"CREATE TABLE a AS SELECT 'x;y' AS s", 2},
		{"SELECT \"we;ird\", E'it\\'s;', 'it''s;' FROM a", 4},
		{"SELECT $$ ; $$, $fn$ a;\n b $fn$, $1", 5},
		{"SELECT 4", 7},
	}
	got := Split(src)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%#v\nwant\n%#v", got, want)
	}
}

func TestSplitLineAfterComment(t *testing.T) {
	got := Split("SELECT 1;\n\n-- note\nSELECT 2")
	if len(got) != 2 || got[1].Line != 4 || got[1].Text != "SELECT 2" {
		t.Fatalf("got %#v", got)
	}
}

func TestSplitUnterminated(t *testing.T) {
	for _, src := range []string{"SELECT 'abc; SELECT 2", "SELECT 1 /* x; SELECT 2", "SELECT $q$ x; SELECT 2", `SELECT "x; y`} {
		if got := Split(src); len(got) != 1 || got[0].Text != src {
			t.Errorf("%q: got %#v", src, got)
		}
	}
	if got := Split(" \n-- only\n/* c */ ;; "); len(got) != 0 {
		t.Errorf("blank script gave %#v", got)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("SELECT 1; SELECT 'a;b'; $x$;$x$")
	f.Fuzz(func(t *testing.T, src string) {
		for _, st := range Split(src) {
			if st.Line < 1 || st.Text == "" {
				t.Fatalf("bad statement %#v", st)
			}
		}
	})
}

func TestSplitTyped(t *testing.T) {
	for _, c := range []struct {
		src  string
		done []string
		rest string
		open bool
	}{
		{"SELECT 1", nil, "SELECT 1", true},
		{"SELECT 1;", []string{"SELECT 1"}, "", false},
		{"SELECT ';';\n", []string{"SELECT ';'"}, "\n", false},
		{"SELECT 'a;\nb", nil, "SELECT 'a;\nb", true},
		{"CREATE TABLE t (\n  a INT\n);\nSELECT", []string{"CREATE TABLE t (\n  a INT\n)"}, "\nSELECT", true},
		{"SELECT 1; -- done", []string{"SELECT 1"}, " -- done", false},
		{"SELECT 1; /* open", []string{"SELECT 1"}, " /* open", true},
		{"SELECT 1; /* shut */", []string{"SELECT 1"}, " /* shut */", false},
		{"SELECT 1; /* a /* nested */ still", []string{"SELECT 1"}, " /* a /* nested */ still", true},
		{"SELECT $x$;$x$;", []string{"SELECT $x$;$x$"}, "", false},
	} {
		done, rest, open := SplitTyped(c.src)
		var texts []string
		for _, s := range done {
			texts = append(texts, s.Text)
		}
		if !slices.Equal(texts, c.done) || rest != c.rest || open != c.open {
			t.Errorf("SplitTyped(%q) = %q, %q, %v; want %q, %q, %v", c.src, texts, rest, open, c.done, c.rest, c.open)
		}
	}
}
