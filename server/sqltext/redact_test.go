package sqltext

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`CREATE SECRET s (TYPE s3, KEY_ID 'AKIAEXAMPLE', SECRET 'wJalrXUtn', SCOPE 's3://b', ENDPOINT 'h:9000')`,
			`CREATE SECRET s (TYPE s3, KEY_ID '***', SECRET '***', SCOPE 's3://b', ENDPOINT 'h:9000')`},
		{`create or replace persistent secret (type postgres, host 'db', password 'hunter22')`,
			`create or replace persistent secret (type postgres, host 'db', password '***')`},
		// A missing comma must not expose the next option's value.
		{`CREATE SECRET (TYPE s3 KEY_ID 'AKIAEXAMPLE')`, `CREATE SECRET (TYPE s3 *** '***')`},
		{`CREATE SECRET (TYPE http, EXTRA_HTTP_HEADERS MAP {'Authorization': 'Bearer abcdef'})`,
			`CREATE SECRET (TYPE http, EXTRA_HTTP_HEADERS *** {'***': '***'})`},
		{`SET s3_secret_access_key = 'wJalrXUtn'; SELECT 'wJalrXUtn'`, `SET s3_secret_access_key = '***'; SELECT 'wJalrXUtn'`},
		{`SET GLOBAL azure_storage_connection_string TO 'AccountKey=abc'`, `SET GLOBAL azure_storage_connection_string TO '***'`},
		{`ATTACH 'host=db user=me password=hunter22 dbname=x' AS p (TYPE postgres)`, `ATTACH 'host=db user=me password=*** dbname=x' AS p (TYPE postgres)`},
		{`ATTACH 'postgresql://me:hunter22@db/x' AS p`, `ATTACH 'postgresql://me:***@db/x' AS p`},
		{`SELECT 1`, `SELECT 1`},
		// Ordinary statements stay as written.
		{`SELECT * FROM secret_table WHERE secret = 'x'`, `SELECT * FROM secret_table WHERE secret = 'x'`},
	} {
		if got := Redact(tc.in).SQL; got != tc.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactMessage(t *testing.T) {
	sql := "CREATE SECRET s (\n  TYPE postgres,\n  HOST 'db',\n  PASSWORD 'hunter22-very-secret') oops"
	msg := "Parser Error: syntax error at or near \"oops\"" + Excerpt(sql, strings.Index(sql, "oops"))
	got := RedactMessage(msg, sql)
	want := "Parser Error: syntax error at or near \"oops\"\n\nLINE 4:   PASSWORD '***') oops\n                          ^"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// A caret inside a secret points at the redacted value.
	sql = "CREATE SECRET s (TYPE postgres, PASSWORD 'hunter22-very-secret' HOST 'db')"
	msg = "Parser Error: syntax error" + Excerpt(sql, strings.Index(sql, "very"))
	got = RedactMessage(msg, sql)
	if strings.Contains(got, "hunter22") || !strings.HasSuffix(got, "PASSWORD '***' *** '***')\n"+strings.Repeat(" ", len("LINE 1: CREATE SECRET s (TYPE postgres, PASSWORD "))+"^") {
		t.Errorf("got\n%s", got)
	}
	// A value the message repeats elsewhere is replaced too.
	got = RedactMessage(`Invalid Input Error: bad key "AKIAEXAMPLE"`, `CREATE SECRET (TYPE s3, KEY_ID 'AKIAEXAMPLE')`)
	if strings.Contains(got, "AKIAEXAMPLE") {
		t.Errorf("secret in message: %s", got)
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		`CREATE SECRET (TYPE s3, KEY_ID 'abcd', SECRET 'efgh')`,
		`SET s3_session_token='abcd'`, `ATTACH 'password=abcd'`, `CREATE SECRET ((((`, `CREATE SECRET x (TYPE s3, SCOPE ['a', 'b'])`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		r := Redact(sql)
		for i, e := range r.Edits {
			if e.OldStart > e.OldEnd || e.NewStart > e.NewEnd || (i > 0 && e.OldStart < r.Edits[i-1].OldEnd) {
				t.Fatalf("bad edits %v", r.Edits)
			}
		}
		for off := 0; off <= len(r.SQL); off++ {
			if b := r.Edits.Back(off); b < 0 || b > len(sql) {
				t.Fatalf("Back(%d) = %d outside the original", off, b)
			}
		}
		_ = RedactMessage("Parser Error: x\n\nLINE 1: "+sql+"\n        ^", sql)
	})
}
