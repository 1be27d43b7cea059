//go:build duckdb_arrow

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
	"github.com/lunadb/luna/server/sqltext"
)

// usersFile writes a users file with one user per role, each user named
// after its role with password pw-<role>.
func usersFile(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, role := range []string{"read", "write", "admin"} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+role), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s:%s\n", role, h, role)
	}
	path := filepath.Join(dir, "users")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// roleConns connects as each role's user.
func roleConns(t *testing.T, p *proc) map[string]*client.Conn {
	conns := map[string]*client.Conn{}
	for _, role := range []string{"read", "write", "admin"} {
		conns[role] = p.dial(t, client.Options{Password: role + " pw-" + role})
	}
	return conns
}

// roleRequest runs sql as x: or q: (draining the result) and returns the
// server's error message, "" when it succeeded.
func roleRequest(c *client.Conn, query bool, sql string) string {
	ctx := context.Background()
	var err error
	if query {
		var rows *client.Rows
		rows, err = c.Query(ctx, sql)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
	} else {
		err = c.Exec(ctx, sql)
	}
	if err == nil {
		return ""
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Message
	}
	return err.Error()
}

// TestRoleMatrix runs each statement as read, write and admin against a
// server with --allowed-directories and the S3 emulator, and checks that
// each role is allowed or refused with the exact denial, and that nothing
// of a refused request ran.
func TestRoleMatrix(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	bucket := s3Bucket(t, srv, "rolesb")
	put(t, bucket, "in.csv", "n\n1\n2\n3\n")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	book := filepath.Join(data, "sales.xlsx")
	salesWorkbook(t, book)
	ice := filepath.Join(data, "events")
	snapshotsTable(t, ice, "file://"+ice, nil)

	p := startLuna(t, true, nil, "--users-file", usersFile(t, dir), "--allowed-directories", data)
	conns := roleConns(t, p)
	admin := conns["admin"]
	if msg := roleRequest(admin, false, s3Secret(srv)+" CREATE TABLE base(who VARCHAR)"); msg != "" {
		t.Fatal(msg)
	}
	threads := scalar(t, admin, "SELECT current_setting('threads')::VARCHAR")
	count := func(sql string) string { return scalar(t, admin, "SELECT count(*)::VARCHAR FROM "+sql) }
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	uploaded := func(key string) bool {
		objs, err := bucket.List(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		return len(objs) > 0
	}
	// lockdown is DuckDB's refusal of settings and extensions under
	// --allowed-directories ("the configuration has been locked", "file
	// system operations are disabled by configuration"): the role allows
	// them, the lockdown does not.
	const lockdown = "lockdown"
	const ok = ""

	for _, cell := range []struct {
		name  string
		query bool
		sql   string // ROLE stands for the role's name
		// want per role: ok, lockdown, or the exact denial
		read, write, admin string
		// ran reports whether the role's request had its effect.
		ran func(role string) bool
	}{
		{name: "SELECT", query: true, sql: "SELECT 42"},
		{name: "CREATE TABLE", sql: "CREATE TABLE ct_ROLE(a int)",
			read: "permission denied: role read cannot run CREATE",
			ran:  func(r string) bool { return count("duckdb_tables() WHERE table_name = 'ct_"+r+"'") == "1" }},
		{name: "INSERT", sql: "INSERT INTO base VALUES ('ROLE')",
			read: "permission denied: role read cannot run INSERT",
			ran:  func(r string) bool { return count("base WHERE who = '"+r+"'") == "1" }},
		{name: "COPY TO local", sql: "COPY (SELECT 1 AS x) TO '" + data + "/out_ROLE.csv'",
			read: "permission denied: role read cannot run COPY",
			ran:  func(r string) bool { return exists(filepath.Join(data, "out_"+r+".csv")) }},
		{name: "COPY TO bucket", sql: "COPY (SELECT 1 AS x) TO 's3://rolesb/out_ROLE.csv'",
			read: "permission denied: role read cannot run COPY",
			ran:  func(r string) bool { return uploaded("out_" + r + ".csv") }},
		{name: "read from bucket", query: true, sql: "SELECT count(*) FROM 's3://rolesb/in.csv'"},
		{name: "CREATE SECRET", sql: "CREATE SECRET sec_ROLE (TYPE s3, KEY_ID 'k', SECRET 'v', SCOPE 's3://elsewhere-ROLE')",
			read:  "permission denied: role read cannot run CREATE SECRET",
			write: "permission denied: role write cannot run CREATE SECRET",
			ran:   func(r string) bool { return count("duckdb_secrets() WHERE name = 'sec_"+r+"'") == "1" }},
		{name: "duckdb_secrets()", query: true, sql: "SELECT name FROM duckdb_secrets()",
			read:  "permission denied: role read cannot call duckdb_secrets()",
			write: "permission denied: role write cannot call duckdb_secrets()"},
		{name: "SET GLOBAL", sql: "SET GLOBAL threads = 1",
			read:  "permission denied: role read cannot run SET GLOBAL",
			write: "permission denied: role write cannot run SET GLOBAL",
			admin: lockdown,
			ran:   func(string) bool { return scalar(t, admin, "SELECT current_setting('threads')::VARCHAR") != threads }},
		{name: "SET global setting", sql: "SET threads = 1",
			read:  "permission denied: role read cannot run SET threads",
			write: "permission denied: role write cannot run SET threads",
			admin: lockdown,
			ran:   func(string) bool { return scalar(t, admin, "SELECT current_setting('threads')::VARCHAR") != threads }},
		{name: "ATTACH", sql: "ATTACH ':memory:' AS att_ROLE",
			read:  "permission denied: role read cannot run ATTACH",
			write: "permission denied: role write cannot run ATTACH",
			ran:   func(r string) bool { return count("duckdb_databases() WHERE database_name = 'att_"+r+"'") == "1" }},
		{name: "INSTALL", sql: "INSTALL json",
			read:  "permission denied: role read cannot run INSTALL",
			write: "permission denied: role write cannot run INSTALL",
			admin: lockdown},
		{name: "read_xlsx", query: true, sql: "SELECT count(*) FROM read_xlsx('" + book + "')"},
		{name: "COPY xlsx", sql: "COPY (SELECT 1 AS x) TO '" + data + "/out_ROLE.xlsx' (FORMAT xlsx)",
			read: "permission denied: role read cannot run COPY",
			ran:  func(r string) bool { return exists(filepath.Join(data, "out_"+r+".xlsx")) }},
		{name: "iceberg_scan", query: true, sql: "SELECT count(*) FROM iceberg_scan(" + sqltext.Quote(ice) + ")"},
		{name: "multi-statement", sql: "CREATE TABLE ms_ROLE(a int); INSERT INTO ms_ROLE VALUES (1); ATTACH ':memory:' AS ms_att_ROLE",
			read:  "permission denied: role read cannot run CREATE",
			write: "permission denied: role write cannot run ATTACH",
			ran:   func(r string) bool { return count("duckdb_tables() WHERE table_name = 'ms_"+r+"'") == "1" }},
		{name: "multi-statement read", query: true, sql: "SELECT 1; INSERT INTO base VALUES ('ms_ROLE'); SELECT 2",
			read: "permission denied: role read cannot run INSERT",
			ran:  func(r string) bool { return count("base WHERE who = 'ms_"+r+"'") == "1" }},
	} {
		t.Run(cell.name, func(t *testing.T) {
			for _, role := range []string{"read", "write", "admin"} {
				want := map[string]string{"read": cell.read, "write": cell.write, "admin": cell.admin}[role]
				got := roleRequest(conns[role], cell.query, strings.ReplaceAll(cell.sql, "ROLE", role))
				switch want {
				case ok:
					if got != "" {
						t.Errorf("%s: %s", role, got)
					}
				case lockdown:
					if !strings.Contains(got, "configuration") || strings.Contains(got, "permission denied") {
						t.Errorf("%s: got %q, want the lockdown's refusal", role, got)
					}
				default:
					if got != want {
						t.Errorf("%s: got %q, want %q", role, got, want)
					}
				}
				if cell.ran != nil {
					if ran := cell.ran(role); ran != (want == ok) {
						t.Errorf("%s: the request ran: %v, want %v", role, ran, want == ok)
					}
				}
			}
		})
	}
	// A denial leaves the session usable.
	if got := scalar(t, conns["read"], "SELECT 'still here'"); got != "still here" {
		t.Fatal(got)
	}
}

// TestRoleGlobalSettings checks, without the lockdown that forbids every
// SET, that admin changes a global setting and the other roles cannot,
// while they keep their session-local ones.
func TestRoleGlobalSettings(t *testing.T) {
	dir := t.TempDir()
	p := startLuna(t, true, nil, "--users-file", usersFile(t, dir))
	conns := roleConns(t, p)
	before := scalar(t, conns["admin"], "SELECT current_setting('threads')::VARCHAR")
	for _, role := range []string{"read", "write"} {
		if got, want := roleRequest(conns[role], false, "SET threads = 1"), "permission denied: role "+role+" cannot run SET threads"; got != want {
			t.Fatalf("%s: got %q, want %q", role, got, want)
		}
		if got := scalar(t, conns["admin"], "SELECT current_setting('threads')::VARCHAR"); got != before {
			t.Fatalf("threads changed to %s by a denied SET", got)
		}
		if got := roleRequest(conns[role], false, "SET search_path = 'main'; SET VARIABLE v = 7"); got != "" {
			t.Fatalf("%s: session settings: %s", role, got)
		}
		if got := scalar(t, conns[role], "SELECT getvariable('v')::VARCHAR"); got != "7" {
			t.Fatalf("%s: variable %s", role, got)
		}
	}
	if got := roleRequest(conns["admin"], false, "SET GLOBAL threads = 1"); got != "" {
		t.Fatal(got)
	}
	if got := scalar(t, conns["read"], "SELECT current_setting('threads')::VARCHAR"); got != "1" {
		t.Fatalf("threads = %s after admin's SET GLOBAL", got)
	}
}
