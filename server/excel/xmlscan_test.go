package excel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
)

// tokens renders every token of doc, read through r's chunking, as text:
// <name a=v …> for a start tag (/> when it closes itself), </name>, and
// quoted character data.
func tokens(t *testing.T, doc string, oneByte bool) (string, error) {
	t.Helper()
	var r = strings.NewReader(doc)
	sc := newXMLScanner(context.Background(), r)
	if oneByte {
		sc = newXMLScanner(context.Background(), iotest.OneByteReader(r))
		sc.buf = make([]byte, 16) // grows as tags need
	}
	sc.keepText = true
	var out []string
	for {
		k, err := sc.next()
		if err != nil {
			return strings.Join(out, " "), err
		}
		switch k {
		case tokEOF:
			return strings.Join(out, " "), nil
		case tokStart:
			s := "<" + string(sc.name)
			for _, a := range sc.attrs {
				s += fmt.Sprintf(" %s=%s", a.name, attrValue(a.raw))
			}
			if sc.selfClose {
				s += "/"
			}
			out = append(out, s+">")
		case tokEnd:
			out = append(out, "</"+string(sc.name)+">")
		case tokText:
			out = append(out, fmt.Sprintf("%q", sc.text))
		}
	}
}

func TestXMLScanner(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n" + `<a x="1"><b/></a>`, `"\n" <a x=1> <b/> </a>`},
		// Prefixes are dropped from element and attribute names.
		{`<x:row r="1" x14ac:dyDescent="0.25"></x:row>`, `<row r=1 dyDescent=0.25> </row>`},
		// Entities in text and attributes; '>' and the other quote inside
		// a quoted value.
		{`<t a="&lt;&amp;&#65;&#x42;&quot;" b='x>y"z'>1 &lt; 2 &amp;&amp; &#x1F600;</t>`, `<t a=<&AB" b=x>y"z> "1 < 2 && 😀" </t>`},
		// Not an entity: kept as written.
		{`<t>AT&T; &nbsp; a & b</t>`, `<t> "AT&T; &nbsp; a & b" </t>`},
		// CDATA is text, comments and a DOCTYPE are skipped.
		{`<!DOCTYPE x [<!ENTITY e "v">]><v><![CDATA[<b>&amp;]]]]><!-- c > d --></v>`, `<v> "<b>&amp;]]" </v>`},
		// \r\n and a lone \r read as \n.
		{"<t>a\r\nb\rc</t>", `<t> "a\nb\nc" </t>`},
		{`<c r="A1" ` + "\n\t" + `s = "2" />`, `<c r=A1 s=2/>`},
		{`<a></a >`, `<a> </a>`},
		// A UTF-8 byte order mark is text before the root.
		{"\xef\xbb\xbf<a/>", `"\ufeff" <a/>`},
	} {
		for _, oneByte := range []bool{false, true} {
			got, err := tokens(t, c.doc, oneByte)
			if err != nil || got != c.want {
				t.Errorf("%q (one byte at a time: %v):\ngot  %s (%v)\nwant %s", c.doc, oneByte, got, err, c.want)
			}
		}
	}
}

func TestXMLScannerMalformed(t *testing.T) {
	for _, doc := range []string{
		"\xff\xfe<\x00a\x00/\x00>\x00", `<a b></a>`, `<a b=1></a>`, `<a b="1></a>`, `<a`, `<a/ >`, `< a>`, `<![CDATA[x`, `<!-- x`, `<?xml`,
	} {
		if got, err := tokens(t, doc, false); !errors.Is(err, errMalformed) {
			t.Errorf("%q: %s, %v; want a malformed XML error", doc, got, err)
		}
	}
	// A tag longer than maxTagBytes, and text longer than maxTextBytes.
	if _, err := tokens(t, `<a b="`+strings.Repeat("x", maxTagBytes)+`"/>`, false); !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a long tag: %v", err)
	}
	if _, err := tokens(t, `<t>`+strings.Repeat("x", maxTextBytes+1)+`</t>`, false); !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long text: %v", err)
	}
	// Text nobody asked for is skipped, however long.
	sc := newXMLScanner(context.Background(), strings.NewReader(`<t>`+strings.Repeat("x", maxTextBytes+1)+`</t>`))
	for {
		k, err := sc.next()
		if err != nil {
			t.Fatalf("skipped text: %v", err)
		}
		if k == tokEOF {
			break
		}
	}
}

// The scanner stops when its context does, however long the part.
func TestXMLScannerCancels(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("gone")
	cancel(stop)
	sc := newXMLScanner(ctx, strings.NewReader(strings.Repeat("<a/>", 2*checkEvery)))
	for {
		k, err := sc.next()
		if err != nil {
			if !errors.Is(err, stop) {
				t.Fatalf("error %v, want the cancellation", err)
			}
			return
		}
		if k == tokEOF {
			t.Fatal("read to the end after cancellation")
		}
	}
}

func TestUnescapeBstr(t *testing.T) {
	for in, want := range map[string]string{
		"a_x000D_b":        "a\rb",
		"_x005F_x000D_":    "_x000D_",
		"no escapes":       "no escapes",
		"_x00e9_t_x00E9_":  "été",
		"_xZZZZ_ and _x1_": "_xZZZZ_ and _x1_",
	} {
		if got := string(unescapeBstr([]byte(in))); got != want {
			t.Errorf("unescapeBstr(%q) = %q, want %q", in, got, want)
		}
	}
}
