package remote

import (
	"testing"

	"github.com/lunadb/luna/server/sqltext"
)

func TestCopySource(t *testing.T) {
	for sql, want := range map[string]string{
		"COPY t FROM 'a.xlsx'":                        "a.xlsx",
		"copy s.t (a, b) from 'x.xlsx' (HEADER)":      "x.xlsx",
		`COPY "my t" FROM 's3://b/k.xlsx'`:            "s3://b/k.xlsx",
		"COPY (SELECT * FROM 'a.xlsx') TO 'o.csv'":    "",
		"COPY t TO 'a.xlsx'":                          "",
		"COPY FROM DATABASE a TO b":                   "",
		"SELECT * FROM 'a.xlsx'":                      "",
		"COPY t (a, b FROM 'a.xlsx'":                  "",
		"COPY":                                        "",
		"COPY t FROM":                                 "",
		"COPY a.b.c FROM 'f.xlsx' WITH (FORMAT xlsx)": "f.xlsx",
	} {
		toks := sqltext.Tokens(sql)
		got := ""
		if i := copySource(toks); i >= 0 {
			got = toks[i].Value
		}
		if got != want {
			t.Errorf("copySource(%q) = %q, want %q", sql, got, want)
		}
	}
}
