//go:build duckdb_arrow

package appliance

import "testing"

func TestReloadable(t *testing.T) {
	cases := []struct {
		in, sql, name string
		ok            bool
	}{
		{"CREATE TABLE t AS FROM 's3://b/x.csv'", "CREATE OR REPLACE TABLE t AS FROM 's3://b/x.csv'", "t", true},
		{"create or replace table main.t as select 1", "CREATE OR REPLACE TABLE main.t as select 1", "main.t", true},
		{"CREATE TABLE IF NOT EXISTS \"My T\" AS FROM x", "CREATE OR REPLACE TABLE \"My T\" AS FROM x", "\"My T\"", true},
		{"/* c */ CREATE TABLE t(a INT) AS SELECT 1", "CREATE OR REPLACE TABLE t(a INT) AS SELECT 1", "t", true},
		{"CREATE TEMP TABLE t AS FROM x", "", "", false},
		{"INSERT INTO t FROM 's3://b/x.csv'", "", "", false},
		{"CREATE VIEW v AS FROM x", "", "", false},
		{"CREATE OR TABLE t AS FROM x", "", "", false},
		{"CREATE TABLE IF t AS FROM x", "", "", false},
		{"CREATE TABLE", "", "", false},
		{"CREATE TABLE t", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		sql, name, ok := reloadable(c.in)
		if ok != c.ok || sql != c.sql || name != c.name {
			t.Errorf("reloadable(%q) = %q, %q, %v; want %q, %q, %v", c.in, sql, name, ok, c.sql, c.name, c.ok)
		}
	}
}
