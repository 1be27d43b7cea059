package main

import (
	"bytes"
	"testing"
	"time"
)

func TestMarkdown(t *testing.T) {
	want := `|   id | name   | ok    | score |
| ---: | ------ | ----- | ----: |
|    1 | Zoë    | true  |   1.5 |
|   22 | 日本語 | false |    -2 |
| NULL | NULL   | NULL  |  NULL |
`
	if got := render(t, "markdown", sampleBatch(t)); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestLine(t *testing.T) {
	want := "   id = 1\n name = Zoë\n   ok = true\nscore = 1.5\n\n" +
		"   id = 22\n name = 日本語\n   ok = false\nscore = -2\n\n" +
		"   id = NULL\n name = NULL\n   ok = NULL\nscore = NULL\n"
	if got := render(t, "line", sampleBatch(t)); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}

// The formats made for people stop after maxRows and say how many
// there were; the machine formats always carry every row.
func TestMaxRows(t *testing.T) {
	rec := sampleBatch(t)
	for format, want := range map[string]string{
		"table": "+----+------+------+-------+\n| id | name | ok   | score |\n+----+------+------+-------+\n|  1 | Zoë  | true |   1.5 |\n+----+------+------+-------+\n(1 rows shown of 6, 2s)\n",
		"line":  "   id = 1\n name = Zoë\n   ok = true\nscore = 1.5\n\n(1 rows shown of 6, 2s)\n",
		"csv":   "id,name,ok,score\n1,Zoë,true,1.5\n22,日本語,false,-2\n,,,\n1,Zoë,true,1.5\n22,日本語,false,-2\n,,,\n",
	} {
		var out bytes.Buffer
		p, err := newLimitedPrinter(format, &out, rec.Schema(), 1)
		if err != nil {
			t.Fatal(err)
		}
		p.write(rec)
		p.write(rec)
		if err := p.finish(6, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("%s: got\n%q\nwant\n%q", format, out.String(), want)
		}
	}
}

func TestDisplayWidth(t *testing.T) {
	for s, want := range map[string]int{"abc": 3, "日本語": 6, "ｶ": 1, "Ａ": 2, "e\u0301": 1, "": 0} {
		if got := displayWidth(s); got != want {
			t.Errorf("displayWidth(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestProgressText(t *testing.T) {
	for _, c := range []struct {
		sp   sessionProgress
		want string
	}{
		{sessionProgress{percent: -1, rows: -1}, "1.5s (Ctrl-C cancels)"},
		{sessionProgress{percent: 42.26, rows: 1234567, downloaded: 3 << 20}, " 42.3% · 1,234,567 rows · 3.0 MiB downloaded · 1.5s (Ctrl-C cancels)"},
	} {
		if got := c.sp.String(1500 * time.Millisecond); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	if got := groupDigits(-1234); got != "-1,234" {
		t.Errorf("groupDigits(-1234) = %q", got)
	}
	if got := formatBytes(512); got != "512 B" {
		t.Errorf("formatBytes(512) = %q", got)
	}
}
