package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lunadb/luna/client"
)

// COPY tbl FROM '….xlsx' loads a sheet into an existing table, its
// columns cast to the table's types by position, as DuckDB documents it.
func TestExcelCopyFrom(t *testing.T) {
	dir := t.TempDir()
	book := filepath.Join(dir, "sales.xlsx")
	salesWorkbook(t, book)
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	q := func(s string) string { return strings.ReplaceAll(s, "BOOK", book) }
	exec := func(sql string) {
		t.Helper()
		if err := c.Exec(ctx, q(sql)); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	exec("CREATE TABLE s (id INTEGER, name VARCHAR, amount DECIMAL(10,2), day DATE, stamp TIMESTAMP, paid BOOLEAN)")
	exec("COPY s FROM 'BOOK' (FORMAT xlsx, HEADER true)")
	wantRows(t, c, "SELECT id, name, amount, day::VARCHAR, paid FROM s ORDER BY id",
		"1|alice|10.5|2025-01-31|true", "2|bob|20|2025-02-01|false", "3|carol|NULL|2025-02-02|true", "4|dave|40.25|2025-02-03|false")
	// The result is the row count, as COPY FROM's.
	wantRows(t, c, q("COPY s FROM 'BOOK'"), "4")
	wantRows(t, c, "SELECT count(*) FROM s", "8")

	// A column list, a schema-qualified table, read_xlsx's options.
	exec("CREATE SCHEMA x")
	exec("CREATE TABLE x.raw (b BIGINT, a BIGINT)")
	exec("COPY x.raw (a, b) FROM 'BOOK' (FORMAT 'xlsx', SHEET 'Raw', HEADER false, STOP_AT_EMPTY false)")
	wantRows(t, c, "SELECT a, b FROM x.raw", "1|2", "3|4", "NULL|NULL", "5|6")

	// Bad input: clear errors that quote what the client sent, never the
	// rewrite or a cache path.
	for sql, want := range map[string][]string{
		"COPY s FROM 'BOOK' (FORMAT xlsx, COLOUR 'red')":          {"COPY FROM xlsx: unknown parameter colour"},
		"COPY s FROM 'BOOK' (FORMAT xlsx, SHEET 'Nope')":          {`sheet "Nope" not found`},
		"COPY x.raw FROM 'BOOK' (FORMAT xlsx)":                    {"table raw has 2 columns but 6 values"},
		"COPY s FROM '" + dir + "/missing.xlsx' (FORMAT xlsx)":    {"cannot open file", "missing.xlsx"},
		"COPY s FROM 'BOOK' (FORMAT xlsx, SHEET 'Raw', HEADER 7)": {"header must be a BOOLEAN"},
	} {
		err := c.Exec(ctx, q(sql))
		if err == nil {
			t.Errorf("%s: no error", sql)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", sql, err, w)
			}
		}
		for _, leak := range []string{"read_parquet", "INSERT INTO", "/views/", "/converted/"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%s: error %q shows the rewrite (%s)", sql, err, leak)
			}
		}
	}
	// A COPY FROM of another format is DuckDB's own, even for a .xlsx
	// name: whatever DuckDB makes of it, the sheet is not converted.
	if err := c.Exec(ctx, "COPY s FROM '"+book+"' (FORMAT csv)"); err != nil && strings.Contains(err.Error(), "read_parquet") {
		t.Errorf("COPY FROM (FORMAT csv) was rewritten: %v", err)
	}
	// COPY (query) TO with FROM 'x.xlsx' inside still reads the sheet.
	out := filepath.Join(dir, "out.csv")
	exec("COPY (SELECT count(*) AS n FROM 'BOOK') TO '" + out + "' (FORMAT csv)")
	wantRows(t, c, "SELECT n FROM read_csv('"+out+"')", "4")
}
