//go:build duckdb_arrow

package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/lunadb/luna/server/access"
)

// need is the lowest role access.Check lets run sql, and the denial the
// role below it gets.
func need(t *testing.T, c *Conn, sql string, luna func(string) bool) (access.Role, string) {
	t.Helper()
	ctx := context.Background()
	stmts, err := c.Classify(ctx, sql, luna)
	if err != nil {
		t.Fatalf("Classify(%q): %v", sql, err)
	}
	denial := ""
	for _, r := range []access.Role{access.Read, access.Write} {
		err := access.Check(r, stmts, c.Settings(ctx))
		if err == nil {
			return r, denial
		}
		denial = err.Error()
	}
	return access.Admin, denial
}

func TestClassifyRoles(t *testing.T) {
	_, c := open(t)
	ctx := context.Background()
	if err := c.Exec(ctx, "CREATE TABLE base(a int); CREATE SEQUENCE seq"); err != nil {
		t.Fatal(err)
	}
	luna := func(s string) bool {
		return strings.Contains(s, "://") || strings.Contains(strings.ToLower(s), "secret") || strings.Contains(s, "xlsx") || strings.Contains(s, "iceberg_")
	}
	for _, tc := range []struct {
		sql    string
		need   access.Role
		denial string // of the role below need
	}{
		{"SELECT 1", access.Read, ""},
		{"/* INSERT */ SELECT 1", access.Read, ""},
		{"-- DROP TABLE base\nSELECT 1", access.Read, ""},
		{"SELECT 'DROP TABLE x'", access.Read, ""},
		{"SELECT $$INSERT INTO base VALUES (1)$$", access.Read, ""},
		{`SELECT 1 AS "INSERT"`, access.Read, ""},
		{"WITH a AS (SELECT 1) SELECT * FROM a", access.Read, ""},
		{"FROM base", access.Read, ""},
		{"DESCRIBE base", access.Read, ""},
		{"SHOW TABLES", access.Read, ""},
		{"SUMMARIZE base", access.Read, ""},
		{"EXPLAIN SELECT 1", access.Read, ""},
		{"EXPLAIN INSERT INTO base VALUES (1)", access.Read, ""},
		{"EXPLAIN ANALYZE SELECT 1", access.Read, ""},
		{"EXPLAIN ANALYZE INSERT INTO base VALUES (1)", access.Write, "permission denied: role read cannot run EXPLAIN ANALYZE INSERT"},
		{"EXPLAIN (ANALYZE, FORMAT json) DELETE FROM base", access.Write, "permission denied: role read cannot run EXPLAIN ANALYZE DELETE"},
		{"PREPARE p AS SELECT $1", access.Read, ""},
		{"PREPARE p AS INSERT INTO base VALUES ($1)", access.Write, "permission denied: role read cannot run INSERT"},
		{"PREPARE q AS SELECT 1; EXECUTE q", access.Read, ""},
		{"SET search_path = 'main'", access.Read, ""},
		{"SET SESSION enable_progress_bar = true", access.Read, ""},
		{"RESET enable_progress_bar", access.Read, ""},
		{"SET VARIABLE v = 42", access.Read, ""},
		{"USE memory", access.Read, ""},
		{"SET threads = 1", access.Admin, "permission denied: role write cannot run SET threads"},
		{"SET SESSION threads = 1", access.Admin, "permission denied: role write cannot run SET threads"},
		{"SET GLOBAL enable_progress_bar = true", access.Admin, "permission denied: role write cannot run SET GLOBAL"},
		{"RESET threads", access.Admin, "permission denied: role write cannot run RESET threads"},
		{"PRAGMA threads = 1", access.Admin, "permission denied: role write cannot run PRAGMA threads"},
		{"SET profiling_output = '/tmp/p.json'", access.Write, "permission denied: role read cannot run SET profiling_output"},
		{"SET no_such_setting = 1", access.Admin, "permission denied: role write cannot run SET no_such_setting"},
		{"BEGIN; SELECT 1; COMMIT", access.Read, ""},
		{"PRAGMA table_info('base')", access.Read, ""},
		{"PRAGMA database_size", access.Read, ""},
		{"PRAGMA enable_profiling", access.Admin, "permission denied: role write cannot run PRAGMA enable_profiling"},
		{"CREATE TABLE t(a int)", access.Write, "permission denied: role read cannot run CREATE"},
		{"CREATE TABLE t(a int); INSERT INTO t VALUES (1)", access.Write, "permission denied: role read cannot run CREATE"},
		{"SELECT 1; INSERT INTO base VALUES (1)", access.Write, "permission denied: role read cannot run INSERT"},
		{"CREATE VIEW v AS SELECT 1; SELECT * FROM v", access.Write, "permission denied: role read cannot run CREATE"},
		{"WITH s AS (SELECT 1 a) INSERT INTO base SELECT a FROM s", access.Write, "permission denied: role read cannot run INSERT"},
		{"UPDATE base SET a = 2", access.Write, "permission denied: role read cannot run UPDATE"},
		{"DELETE FROM base", access.Write, "permission denied: role read cannot run DELETE"},
		{"TRUNCATE base", access.Write, "permission denied: role read cannot run DELETE"},
		{"ALTER TABLE base ADD COLUMN b int", access.Write, "permission denied: role read cannot run ALTER"},
		{"DROP TABLE base", access.Write, "permission denied: role read cannot run DROP"},
		{"CREATE MACRO m(x) AS x + 1", access.Write, "permission denied: role read cannot run CREATE"},
		{"CREATE SEQUENCE s2", access.Write, "permission denied: role read cannot run CREATE"},
		{"COPY base TO '/tmp/x.csv'", access.Write, "permission denied: role read cannot run COPY"},
		{"COPY base FROM '/tmp/x.csv'", access.Write, "permission denied: role read cannot run COPY"},
		{"COPY base TO 's3://bucket/x.csv'", access.Write, "permission denied: role read cannot run COPY"},
		{"COPY base TO '/tmp/x.xlsx' (FORMAT xlsx)", access.Write, "permission denied: role read cannot run COPY"},
		{"EXPORT DATABASE '/tmp/exported'", access.Write, "permission denied: role read cannot run EXPORT"},
		{"MERGE INTO base USING (SELECT 1 a) s ON base.a = s.a WHEN MATCHED THEN DELETE", access.Write, "permission denied: role read cannot run MERGE INTO"},
		{"SELECT nextval('seq')", access.Write, "permission denied: role read cannot call nextval()"},
		{"SELECT * FROM 's3://bucket/x.parquet'", access.Read, ""},
		{"SELECT * FROM read_xlsx('/tmp/a.xlsx')", access.Read, ""},
		{"SELECT * FROM iceberg_scan('s3://bucket/tbl')", access.Read, ""},
		{"CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", access.Admin, "permission denied: role write cannot run CREATE SECRET"},
		{"CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", access.Admin, "permission denied: role write cannot run CREATE SECRET"},
		{"CREATE OR REPLACE SECRET s (TYPE http)", access.Admin, "permission denied: role write cannot run CREATE SECRET"},
		{"DROP SECRET s", access.Admin, "permission denied: role write cannot run DROP SECRET"},
		{"SELECT * FROM duckdb_secrets()", access.Admin, "permission denied: role write cannot call duckdb_secrets()"},
		{`SELECT * FROM system.main."duckdb_secrets"()`, access.Admin, "permission denied: role write cannot call duckdb_secrets()"},
		{"SELECT (SELECT count(*) FROM which_secret('s3://b/x', 's3'))", access.Admin, "permission denied: role write cannot call which_secret()"},
		{"CREATE TABLE leak AS FROM duckdb_secrets()", access.Admin, "permission denied: role write cannot call duckdb_secrets()"},
		{"SELECT current_setting('threads')", access.Read, ""},
		{"SELECT current_setting('http_proxy_password')", access.Admin, "permission denied: role write cannot call current_setting()"},
		{"SELECT current_setting(name) FROM (SELECT 'threads' AS name)", access.Admin, "permission denied: role write cannot call current_setting()"},
		{"FROM duckdb_settings()", access.Admin, "permission denied: role write cannot call duckdb_settings()"},
		{"FROM query('SELECT 1')", access.Admin, "permission denied: role write cannot call query()"},
		{"CALL pragma_version()", access.Read, ""},
		{"CALL luna_cancel(3)", access.Read, ""},
		{"FROM luna_sessions()", access.Read, ""},
		{"CALL checkpoint()", access.Admin, "permission denied: role write cannot call checkpoint()"},
		{"CHECKPOINT", access.Admin, "permission denied: role write cannot run CHECKPOINT"},
		{"FORCE CHECKPOINT", access.Admin, "permission denied: role write cannot run FORCE CHECKPOINT"},
		{"VACUUM", access.Admin, "permission denied: role write cannot run VACUUM"},
		{"ATTACH ':memory:' AS x", access.Admin, "permission denied: role write cannot run ATTACH"},
		{"DETACH x", access.Admin, "permission denied: role write cannot run DETACH"},
		{"INSTALL json", access.Admin, "permission denied: role write cannot run INSTALL"},
		{"LOAD json", access.Admin, "permission denied: role write cannot run LOAD"},
		{"UPDATE EXTENSIONS", access.Admin, "permission denied: role write cannot run UPDATE EXTENSIONS"},
		{"SELECT 1; ATTACH ':memory:' AS y; SELECT 2", access.Admin, "permission denied: role write cannot run ATTACH"},
		{"SELECT 1;; -- trailing", access.Read, ""},
		{"PIVOT (SELECT 1 AS a) ON a", access.Write, "permission denied: role read cannot run CREATE"},
		{"PIVOT (SELECT 1 AS a) ON a IN (1)", access.Read, ""},
		{"IMPORT DATABASE '/nonexistent'", access.Write, "permission denied: role read cannot run IMPORT"},
		{"SELECT 1; IMPORT DATABASE '/nonexistent'", access.Write, "permission denied: role read cannot run IMPORT"},
		{"SELCT 1", access.Read, ""}, // DuckDB's syntax error is the answer; Check passes it on
	} {
		got, denial := need(t, c, tc.sql, luna)
		if tc.sql == "SELCT 1" {
			stmts, _ := c.Classify(ctx, tc.sql, luna)
			err := access.Check(access.Read, stmts, c.Settings(ctx))
			if err == nil || !strings.Contains(err.Error(), "syntax error") {
				t.Errorf("%q: Check = %v, want DuckDB's syntax error", tc.sql, err)
			}
			continue
		}
		if got != tc.need || denial != tc.denial {
			t.Errorf("%q: needs %v (denial %q), want %v (denial %q)", tc.sql, got, denial, tc.need, tc.denial)
		}
	}
	// Nothing of it ran.
	if _, err := c.Query(ctx, "SELECT * FROM t", 1); err == nil {
		t.Fatal("table t exists after classification")
	}
}

// Classifying prepares statements; a statement that fails to prepare must
// not abort the session's open transaction.
func TestClassifyInTransaction(t *testing.T) {
	_, c := open(t)
	ctx := context.Background()
	if err := c.Exec(ctx, "CREATE TABLE base(a int); BEGIN; INSERT INTO base VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Classify(ctx, "CREATE TABLE t(a int); INSERT INTO t VALUES (1); SELECT nosuchfn(1)", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "INSERT INTO base VALUES (2); COMMIT"); err != nil {
		t.Fatal("transaction after Classify:", err)
	}
}
