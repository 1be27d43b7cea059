package sqltext

import (
	"reflect"
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
