package access

import (
	"errors"
	"strings"
	"testing"
)

// settings is a small stand-in for DuckDB's list.
func settings(name string) (global, known bool) {
	switch name {
	case "threads", "memory_limit", "timezone":
		return true, true
	case "search_path", "enable_progress_bar", "profiling_output":
		return false, true
	}
	return false, false
}

func TestNeedByKeywords(t *testing.T) {
	for _, tc := range []struct {
		text string
		typ  string
		need Role
		what string
	}{
		{"SELECT 1", "", Read, "SELECT"},
		{"/* INSERT */ SELECT 1", "", Read, "SELECT"},
		{"-- DELETE\n(SELECT 1)", "", Read, "SELECT"},
		{"SELECT 'DROP TABLE x'", "", Read, "SELECT"},
		{"WITH a AS (SELECT 'INSERT' AS x) SELECT * FROM a", "", Read, "SELECT"},
		{"WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "", Write, "INSERT"},
		{"INSERT INTO t VALUES (1)", "", Write, "INSERT"},
		{"merge into t using s on true when matched then delete", "", Write, "MERGE INTO"},
		{"COPY t TO 's3://b/k.csv'", "", Write, "COPY"},
		{"IMPORT DATABASE '/x'", "", Write, "IMPORT"},
		{"CREATE TABLE t(a int)", "", Write, "CREATE"},
		{"create temp secret s (type s3)", "", Admin, "CREATE SECRET"},
		{"CREATE OR REPLACE PERSISTENT SECRET s (TYPE gcs)", "", Admin, "CREATE SECRET"},
		{"DROP PERSISTENT SECRET s", "", Admin, "DROP SECRET"},
		{"CREATE TABLE secret(a int)", "CREATE", Write, "CREATE"},
		{"BEGIN", "", Read, "TRANSACTION"},
		{"EXECUTE p(1)", "", Read, "EXECUTE"},
		{"EXPLAIN INSERT INTO t VALUES (1)", "", Read, "EXPLAIN"},
		{"EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "", Write, "EXPLAIN ANALYZE INSERT"},
		{"EXPLAIN ANALYZE SELECT 1", "EXPLAIN", Read, "EXPLAIN ANALYZE SELECT"},
		{"PREPARE p AS INSERT INTO t VALUES ($1)", "PREPARE", Write, "INSERT"},
		{"PREPARE p(INTEGER) AS SELECT $1", "", Read, "SELECT"},
		{"PREPARE p AS ATTACH 'x.db'", "", Admin, "ATTACH"},
		{"SET threads = 1", "SET", Admin, "SET threads"},
		{"SET GLOBAL search_path = 'x'", "SET", Admin, "SET GLOBAL"},
		{"SET SESSION search_path = 'x'", "SET", Read, "SET"},
		{"SET TimeZone = 'UTC'", "SET", Admin, "SET timezone"},
		{"RESET search_path", "", Read, "RESET"},
		{"RESET ALL", "", Admin, "RESET"},
		{"SET VARIABLE x = 1", "SET", Read, "SET VARIABLE"},
		{"SET profiling_output = '/tmp/p'", "SET", Write, "SET profiling_output"},
		{"SET unknown_thing = 1", "SET", Admin, "SET unknown_thing"},
		{"USE other", "SET", Read, "USE"},
		{"PRAGMA memory_limit = '1GB'", "SET", Admin, "PRAGMA memory_limit"},
		{"PRAGMA table_info('t')", "SELECT", Read, "PRAGMA"},
		{"PRAGMA force_checkpoint", "PRAGMA", Admin, "PRAGMA force_checkpoint"},
		{"CHECKPOINT", "CALL", Admin, "CHECKPOINT"},
		{"CALL pragma_version()", "CALL", Read, "CALL"},
		{"INSTALL json", "LOAD", Admin, "INSTALL"},
		{"FORCE INSTALL json", "", Admin, "FORCE INSTALL"},
		{"ANALYZE", "VACUUM", Admin, "ANALYZE"},
		{"ATTACH ':memory:' AS x", "ATTACH", Admin, "ATTACH"},
		{"UPDATE EXTENSIONS", "", Admin, "UPDATE EXTENSIONS"},
		{"GRANT ALL ON t TO u", "", Admin, "GRANT"},
		{"SELECT 1", "INVALID", Admin, "INVALID"},
	} {
		st := Statement{Text: tc.text, Type: tc.typ}
		need, what, err := Need(&st, settings)
		if err != nil || need != tc.need || what != tc.what {
			t.Errorf("Need(%q, type %q) = %v %q %v, want %v %q", tc.text, tc.typ, need, what, err, tc.need, tc.what)
		}
	}
}

func TestCheckCalls(t *testing.T) {
	for _, tc := range []struct {
		st   Statement
		role Role
		want string
	}{
		{Statement{Text: "SELECT * FROM duckdb_secrets()"}, Write, "permission denied: role write cannot call duckdb_secrets()"},
		{Statement{Text: `SELECT * FROM "DuckDB_Secrets"()`}, Write, "permission denied: role write cannot call duckdb_secrets()"},
		{Statement{Text: "SELECT 'duckdb_secrets()'"}, Read, ""},
		{Statement{Text: "SELECT current_setting('threads')"}, Read, ""},
		{Statement{Text: "SELECT current_setting('s3_secret_access_key')"}, Write, "permission denied: role write cannot call current_setting()"},
		{Statement{Text: "SELECT current_setting('thr' || 'eads')"}, Write, "permission denied: role write cannot call current_setting()"},
		{Statement{Text: "INSERT INTO t SELECT nextval('s')", Type: "INSERT"}, Write, ""},
		{Statement{Text: "SELECT nextval('s')"}, Read, "permission denied: role read cannot call nextval()"},
		// A parse tree, when there is one, is what counts.
		{Statement{Text: "SELECT 1", Type: "SELECT", Parsed: true, Calls: []Call{{Name: "which_secret"}}}, Write, "permission denied: role write cannot call which_secret()"},
		{Statement{Text: "SELECT * FROM t AS query(a)", Type: "SELECT", Parsed: true}, Read, ""},
		{Statement{Text: "CALL luna_kill(4)"}, Read, ""},
		{Statement{Text: "SELECT 1", Type: "SELECT"}, Admin, ""},
		{Statement{Text: "ATTACH 'x'", Type: "ATTACH"}, Admin, ""},
	} {
		err := Check(tc.role, []Statement{tc.st}, settings)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Check(%v, %q) = %q, want %q", tc.role, tc.st.Text, got, tc.want)
		}
		var d *Denied
		if err != nil && !errors.As(err, &d) {
			t.Errorf("Check(%v, %q): %T is not a *Denied", tc.role, tc.st.Text, err)
		}
	}
}

// Every statement of a request is checked before any runs: a forbidden
// one anywhere denies the whole request.
func TestCheckRequest(t *testing.T) {
	stmts := []Statement{
		{Text: "CREATE TABLE t(a int)", Type: "CREATE"},
		{Text: "INSERT INTO t VALUES (1)"},
		{Text: "SET GLOBAL threads = 1", Type: "SET"},
	}
	if err := Check(Write, stmts, settings); err == nil || err.Error() != "permission denied: role write cannot run SET GLOBAL" {
		t.Fatalf("Check = %v", err)
	}
	if err := Check(Write, stmts[:2], settings); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if err := Check(Read, stmts[:2], settings); err == nil || err.Error() != "permission denied: role read cannot run CREATE" {
		t.Fatalf("Check = %v", err)
	}
}

func TestParseErrorPassedOn(t *testing.T) {
	st := Statement{Text: "SELCT 1", ParseError: "Parser Error: syntax error at or near \"SELCT\""}
	err := Check(Read, []Statement{st}, settings)
	if err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("Check = %v", err)
	}
	var d *Denied
	if errors.As(err, &d) {
		t.Fatal("a syntax error is not a denial")
	}
}

func TestBody(t *testing.T) {
	for in, want := range map[string]string{
		"EXPLAIN SELECT 1":                          "SELECT 1",
		"EXPLAIN ANALYZE INSERT INTO t VALUES (1)":  "INSERT INTO t VALUES (1)",
		"EXPLAIN (FORMAT json) SELECT 1":            "SELECT 1",
		"PREPARE p AS SELECT $1":                    "SELECT $1",
		"PREPARE p (INTEGER, VARCHAR) AS SELECT $1": "SELECT $1",
		"PREPARE p": "",
		"SELECT 1":  "",
	} {
		got, ok := Body(in)
		if got != want || ok != (want != "") {
			t.Errorf("Body(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}

func TestMaySession(t *testing.T) {
	if !SessionFunction("LUNA_CANCEL") || SessionFunction("luna_other") {
		t.Fatal("SessionFunction")
	}
	for _, tc := range []struct {
		role Role
		fn   string
		own  bool
		ok   bool
	}{
		{Admin, "luna_sessions", false, true},
		{Admin, "luna_kill", false, true},
		{Read, "luna_sessions", true, false},
		{Write, "luna_cancel", true, true},
		{Write, "luna_cancel", false, false},
		{Read, "luna_kill", true, false},
	} {
		err := MaySession(tc.role, tc.fn, tc.own)
		if (err == nil) != tc.ok {
			t.Errorf("MaySession(%v, %s, own %v) = %v", tc.role, tc.fn, tc.own, err)
		}
	}
	if err := MaySession(Read, "luna_kill", false); err.Error() != "permission denied: role read cannot call luna_kill()" {
		t.Fatal(err)
	}
}
