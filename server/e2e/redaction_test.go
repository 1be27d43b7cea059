//go:build duckdb_arrow

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// Startup statements DuckDB or Luna rejects, each quoting a secret value
// in the raw error: DuckDB's parser errors quote the statement.
const failingSecretSQL = `CREATE SECRET pg (TYPE postgres, HOST 'db', PASSWORD 'pg-s3cret-value-1') oops;
CREATE SECRET s3x (TYPE s3, KEY_ID 'AKIAs3cret-value-2', SECRET 's3cret-value-3' 's3cret-value-4');
SET s3_secret_access_key = 's3cret-value-5' nonsense;
ATTACH 'host=db password=s3cret-value-6 dbname=x' AS p (TYPE nosuchtype);
`

func TestStartupSQLErrorsLogNoSecret(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "init.sql", failingSecretSQL)

	// Going on past each failure logs every one of them.
	p := startLuna(t, true, nil, "--log-level", "debug", "--init-sql", file, "--init-sql-on-error", "continue")
	logs := p.logs.String()
	if n := strings.Count(logs, "startup statement failed"); n < 4 {
		t.Fatalf("want at least 4 failed statements logged, got %d:\n%s", n, logs)
	}
	if !strings.Contains(logs, "LINE 1:") || !strings.Contains(logs, "'***'") {
		t.Errorf("the errors lost DuckDB's excerpt instead of redacting it:\n%s", logs)
	}
	noSecret(t, "logs (continue)", logs)

	// Stopping at the first failure.
	lp := launchLuna(t, true, nil, "--log-level", "debug", "--init-sql", file)
	if code := lp.wait(60 * time.Second); code == 0 {
		t.Fatal("luna started despite a failing startup statement")
	}
	if !strings.Contains(lp.logs.String(), "init.sql:1") {
		t.Errorf("the failure does not name its file and line:\n%s", lp.logs)
	}
	noSecret(t, "logs (fail)", lp.logs.String())

	// A client sees its statement quoted without the value too: the
	// error goes to logs and tools as much as to its author.
	c := p.dial(t, client.Options{})
	for _, st := range strings.Split(strings.TrimSpace(failingSecretSQL), "\n")[:3] {
		err := c.Exec(context.Background(), st)
		if err == nil {
			t.Fatalf("%s: no error", st)
		}
		noSecret(t, "client error", err.Error())
	}
}

func noSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "s3cret-value") {
			t.Errorf("%s carry a secret value: %s", what, line)
		}
	}
}

// An error about a statement Luna rewrote quotes the client's statement,
// caret and all, and names no local copy.
func TestErrorsQuoteTheClientsStatement(t *testing.T) {
	dir := t.TempDir()
	xlsx := filepath.Join(dir, "sales.xlsx")
	salesWorkbook(t, xlsx)
	cache := filepath.Join(dir, "cache")

	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "errs")
	put(t, b, "data/a.csv", "id,name\n1,x\n")
	put(t, b, "data/b.csv", "id,name\n2,y\n")
	put(t, b, "bad/c.csv", "id,name\n1,x\nnot-a-number,y\n")

	p := startLuna(t, true, nil, "--object-cache-dir", cache)
	c := p.dial(t, client.Options{})
	if err := c.Exec(context.Background(), s3Secret(srv)); err != nil {
		t.Fatal(err)
	}

	call := "read_xlsx('" + xlsx + "', sheet = 'Sales')"
	for _, tc := range []struct {
		sql, at string // at: what the caret must point at
	}{
		{"SELECT nosuchcol, count(*) FROM " + call, "nosuchcol"},
		{"SELECT count(*) FROM " + call + " WHERE nosuchcol > 1", "nosuchcol"},
		{"SELECT nosuchcol FROM 's3://errs/data/*.csv'", "nosuchcol"},
		{"SELECT *\nFROM read_csv('s3://errs/data/a.csv')\nWHERE nosuchcol = 1", "nosuchcol"},
	} {
		_, err := queryErr(c, tc.sql)
		if err == nil {
			t.Fatalf("%s: no error", tc.sql)
		}
		msg := err.Error()
		if strings.Contains(msg, cache) || strings.Contains(msg, "read_parquet") {
			t.Errorf("%s: the error names the server's copies:\n%s", tc.sql, msg)
		}
		line, caret := excerptOf(t, msg)
		if !strings.Contains(tc.sql, strings.Trim(line, ".")) {
			t.Errorf("%s: excerpt %q is not of the statement sent", tc.sql, line)
		}
		if caret < 0 || !strings.HasPrefix(line[caret:], tc.at) {
			t.Errorf("%s: caret does not point at %q:\n%s", tc.sql, tc.at, msg)
		}
	}

	// An error about a file names the object, not its copy.
	_, err := queryErr(c, "SELECT * FROM read_csv('s3://errs/bad/*.csv', header = true, columns = {'id': 'INTEGER', 'name': 'VARCHAR'})")
	if err == nil {
		t.Fatal("no error for a malformed CSV")
	}
	if msg := err.Error(); strings.Contains(msg, cache) || !strings.Contains(msg, "s3://errs/bad/c.csv") {
		t.Errorf("error does not name the object:\n%s", msg)
	}
	if entries, _ := os.ReadDir(cache); len(entries) == 0 {
		t.Error("the cache was not used, so the test proves nothing")
	}
}

func queryErr(c *client.Conn, sql string) (int, error) {
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// excerptOf returns the quoted line of DuckDB's "LINE n:" excerpt and the
// caret's offset in it.
func excerptOf(t *testing.T, msg string) (string, int) {
	t.Helper()
	lines := strings.Split(msg, "\n")
	for i := len(lines) - 2; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "LINE ") {
			colon := strings.Index(lines[i], ": ") + 2
			return lines[i][colon:], strings.Index(lines[i+1], "^") - colon
		}
	}
	t.Fatalf("no excerpt in:\n%s", msg)
	return "", -1
}
