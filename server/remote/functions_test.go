package remote

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/lunadb/luna/server/sqltext"
)

func TestFormatCallsRewrite(t *testing.T) {
	dir := t.TempDir()
	f := excelize.NewFile()
	f.SetSheetRow("Sheet1", "A1", &[]any{"n"})
	f.SetSheetRow("Sheet1", "A2", &[]any{1})
	f.SetSheetRow("Sheet1", "A3", &[]any{"three"})
	book := filepath.Join(dir, "b.xlsx")
	if err := f.SaveAs(book); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct{ sql, want, err string }{
		{"SELECT * FROM read_xlsx('" + book + "', range = 'A1:A2')", "SELECT * FROM read_parquet('", ""},
		{"SELECT * FROM read_xlsx('" + book + "', range = 'A1:A3')", "", `sheet "Sheet1" cell A3`},
		{"SELECT * FROM '" + book + "' WHERE n > 0", "", "could not convert 'three' to DOUBLE"},
		{"SELECT * FROM read_xlsx('" + book + "', range = 'A1:A3', ignore_errors = true) WHERE n > 0", "SELECT * FROM read_parquet('", ""},
		{"COPY t TO '" + dir + "/o.xlsx' (FORMAT xlsx, HEADER true)", "COPY t TO '", ""},
		{"SELECT * FROM read_xlsx('" + book + "', sheet = 'S1' , )", "", "expected name = value"},
		{"SELECT * FROM read_xlsx('" + book + "', sheet = lower('S'))", "", "sheet must be a literal"},
		{"SELECT * FROM read_xlsx('" + book + "'", "", "is not closed"},
		{"SELECT * FROM iceberg_scan('" + dir + "/none', version => '1')", "", "no metadata file for version '1'"},
	} {
		s, err := r.Prepare(ctx, c.sql)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.sql, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if !strings.HasPrefix(s.SQL, c.want) {
			t.Errorf("%s:\n got %s\nwant prefix %s", c.sql, s.SQL, c.want)
		}
		s.Finish(ctx, false)
	}
}

func TestIcebergFilters(t *testing.T) {
	for _, c := range []struct{ sql, want string }{
		{"SELECT * FROM iceberg_scan('x') WHERE a = 1 AND b >= 'k' ORDER BY a", "[{a = 1 false} {b >= k true}]"},
		{"SELECT * FROM iceberg_scan('x') t WHERE t.a < -2.5 AND u.b = 1", "[{a < -2.5 false}]"},
		{"SELECT * FROM iceberg_scan('x') AS t WHERE 3 <= t.a", "[{a >= 3 false}]"},
		{"SELECT * FROM iceberg_scan('x') WHERE a = 1 OR b = 2", "[]"},
		{"SELECT * FROM iceberg_scan('x') JOIN y ON true WHERE a = 1", "[]"},
		{"SELECT * FROM iceberg_scan('x') WHERE d = DATE '2025-01-01' AND (a = 1 OR a = 2)", "[{d = 2025-01-01 true}]"},
		{"SELECT * FROM (SELECT * FROM iceberg_scan('x')) WHERE a = 1", "[]"},
	} {
		toks := sqltext.Tokens(c.sql)
		i := 0
		for !toks[i].IsWord("iceberg_scan") {
			i++
		}
		call, err := parseCall(c.sql, toks, i)
		if err != nil {
			t.Fatal(err)
		}
		got := icebergFilters(toks, call.end)
		var parts []string
		for _, f := range got {
			parts = append(parts, "{"+f.Column+" "+f.Op+" "+f.Value+" "+map[bool]string{true: "true", false: "false"}[f.String]+"}")
		}
		if s := "[" + strings.Join(parts, " ") + "]"; s != c.want {
			t.Errorf("%s: %s, want %s", c.sql, s, c.want)
		}
	}
}

func TestFormatsInvolved(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT * FROM READ_XLSX('a')": true, "FROM Iceberg_Scan('x')": true, "FROM 'a.XLSX'": true,
		"SELECT 1": false, "SELECT icebergscan": false, "SELECT xls": false,
	} {
		if got := formatsInvolved(sql); got != want {
			t.Errorf("formatsInvolved(%q) = %v", sql, got)
		}
	}
}

func TestInvolved(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1":                           false,
		"SELECT 'secre_t', 'xls', 'iceberg'": false,
		"FROM 's3://b/k.csv'":                true,
		"create Secret (TYPE s3)":            true,
		"FROM duckdb_SECRETS()":              true,
		"FROM 'Sales.XLSX'":                  true,
		"FROM ICEBERG_SCAN('t')":             true,
		"":                                   false,
	} {
		if got := Involved(sql); got != want {
			t.Errorf("Involved(%q) = %v, want %v", sql, got, want)
		}
	}
}
