package sqltext

import (
	"testing"
)

func TestTokens(t *testing.T) {
	src := `SELECT 'it''s', E'a\'b\n', $x$ $$ 'q' $x$, "Col ""1""" -- 's3://no'
FROM read_csv('s3://b/k*.csv') /* 'gs://no' */ WHERE a<>$1`
	toks := Tokens(src)
	var strs, idents []string
	for _, tk := range toks {
		switch tk.Kind {
		case String:
			strs = append(strs, tk.Value)
			if src[tk.Start] != '\'' && src[tk.Start] != 'E' && src[tk.Start] != '$' {
				t.Errorf("string token starts at %q", src[tk.Start:])
			}
		case Ident:
			idents = append(idents, tk.Value)
		}
	}
	want := []string{"it's", "a'b\n", " $$ 'q' ", "s3://b/k*.csv"}
	if len(strs) != len(want) {
		t.Fatalf("strings %q", strs)
	}
	for i := range want {
		if strs[i] != want[i] {
			t.Errorf("string %d = %q, want %q", i, strs[i], want[i])
		}
	}
	if len(idents) != 1 || idents[0] != `Col "1"` {
		t.Errorf("idents %q", idents)
	}
	if !toks[0].IsWord("select") {
		t.Errorf("first token %+v", toks[0])
	}
	last := toks[len(toks)-1]
	if last.Kind != Word || last.Value != "1" || toks[len(toks)-2].Value != "$" {
		t.Errorf("parameter tokens %+v %+v", toks[len(toks)-2], last)
	}
}

func TestQuote(t *testing.T) {
	if got := Quote("a'b"); got != "'a''b'" {
		t.Fatal(got)
	}
	toks := Tokens(Quote("x'y''z"))
	if len(toks) != 1 || toks[0].Value != "x'y''z" {
		t.Fatalf("%+v", toks)
	}
}

func FuzzTokens(f *testing.F) {
	f.Add("SELECT 'a''b', E'\\'', $t$x$t$, \"i\" -- c\n/* d */")
	f.Fuzz(func(t *testing.T, src string) {
		prev := 0
		for _, tk := range Tokens(src) {
			if tk.Start < prev || tk.End <= tk.Start || tk.End > len(src) {
				t.Fatalf("bad token %+v in %q", tk, src)
			}
			prev = tk.End
		}
	})
}
