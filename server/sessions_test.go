//go:build duckdb_arrow

package server

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lunadb/luna/server/engine"
)

func TestMentions(t *testing.T) {
	for _, c := range []struct {
		sql, name string
		want      bool
	}{
		{"FROM luna_sessions()", "luna_sessions", true},
		{"from LUNA_Sessions ()", "luna_sessions", true},
		{"SELECT 1", "luna_sessions", false},
		{"SELECT a_b, c_d FROM luna_session", "luna_sessions", false},
		{"_luna_sessions", "luna_sessions", true}, // a pre-check: the tokens decide
		{"una_sessions", "luna_sessions", false},
		{"CALL luna_kill(3)", "luna_kill", true},
		{"CALL luna_kil", "luna_kill", false},
	} {
		if got := mentions(c.sql, c.name); got != c.want {
			t.Errorf("mentions(%q, %q) = %v", c.sql, c.name, got)
		}
	}
}

func TestControlRequest(t *testing.T) {
	for _, c := range []struct {
		sql   string
		calls []controlCall
		ok    bool
		err   string
	}{
		{"SELECT 1", nil, false, ""},
		{"SELECT 'CALL luna_cancel(1)'", nil, false, ""},
		{"CALL luna_cancel(7)", []controlCall{{id: 7}}, true, ""},
		{" call  LUNA_KILL ( 12 ) ; ", []controlCall{{kill: true, id: 12}}, true, ""},
		{"CALL luna_cancel(1); CALL luna_kill(2)", []controlCall{{id: 1}, {kill: true, id: 2}}, true, ""},
		{"/* x */ CALL luna_cancel(3) -- y", []controlCall{{id: 3}}, true, ""},
		{"CALL luna_cancel(1+1)", nil, true, "CALL luna_cancel(42)"},
		{"CALL luna_kill('3')", nil, true, "CALL luna_kill(42)"},
		{"CALL luna_kill(-3)", nil, true, "CALL luna_kill(42)"},
		{"CALL luna_kill(99999999999999999999999)", nil, true, "CALL luna_kill(42)"},
		{"CALL luna_cancel()", nil, true, "CALL luna_cancel(42)"},
		{"SELECT 1; CALL luna_cancel(3)", nil, true, "request of their own"},
	} {
		calls, ok, err := controlRequest(c.sql)
		if ok != c.ok || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: ok %v, err %v", c.sql, ok, err)
			continue
		}
		if len(calls) != len(c.calls) {
			t.Errorf("%q: calls %v", c.sql, calls)
			continue
		}
		for i := range calls {
			if calls[i] != c.calls[i] {
				t.Errorf("%q: calls %v", c.sql, calls)
			}
		}
	}
}

// hostileTexts are strings that must come back from DuckDB as text, never
// run as SQL.
var hostileTexts = []string{
	"it's",
	`'); DROP TABLE victim; SELECT ('`,
	`\'; DROP TABLE victim; --`,
	"a\x00b'); DROP TABLE victim; --",
	"\x01\x02\x1b[31m\x7f\u0085\u2028",
	"line\nbreak\r\ttab",
	"\xff\xfe invalid ' utf8",
	"$$ dollar $$'",
	`E'\x27'`,
	strings.Repeat(`'\`, 5000),
	"ü 🌙 '",
}

func TestLiteralRoundTrip(t *testing.T) {
	db, err := engine.Open(engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE victim AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	for _, s := range hostileTexts {
		want := printable(s)
		if !utf8.ValidString(want) || strings.ContainsAny(want, "\x00\x01\x1b\x7f\n") {
			t.Errorf("printable(%q) = %q", s, want)
		}
		rows, err := conn.Query(ctx, "SELECT "+literal(s)+" AS v", 16)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		rec, err := rows.Next()
		if err != nil || rec == nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got := rec.Column(0).ValueStr(0); got != want {
			t.Errorf("%q came back as %q, want %q", s, got, want)
		}
		rec.Release()
		rows.Close()
	}
	rows, err := conn.Query(ctx, "SELECT count(*) FROM victim", 16)
	if err != nil {
		t.Fatalf("victim: %v", err)
	}
	rows.Close()
	if literal("") != "NULL" {
		t.Error("an empty value is not NULL")
	}
}

func TestStatementExcerpt(t *testing.T) {
	for _, c := range []struct {
		sql  string
		n    int
		want string
	}{
		{"SELECT 1", 200, "SELECT 1"},
		{"SELECT 12345", 6, "SELECT…"},
		{"SELECT 1", 0, ""},
		{"CREATE SECRET s (TYPE s3, KEY_ID 'AKIAxyz-value', SECRET 'verysecret')", 200, "CREATE SECRET s (TYPE s3, KEY_ID '***', SECRET '***')"},
		// A value cut by the limit is still redacted.
		{"CREATE SECRET s (TYPE s3, SECRET 'verysecret')", 40, "CREATE SECRET s (TYPE s3, SECRET '***')"},
		{"SELECT 'ü🌙ü'", 9, "SELECT 'ü…"},
	} {
		if got := statementExcerpt(c.sql, c.n); got != c.want {
			t.Errorf("statementExcerpt(%q, %d) = %q, want %q", c.sql, c.n, got, c.want)
		}
	}
	long := "CREATE SECRET s (TYPE s3, SECRET '" + strings.Repeat("v", 100000) + "')"
	if got := statementExcerpt(long, 200); strings.Contains(got, "vvvv") {
		t.Errorf("a long secret shows: %q", got)
	}
}
