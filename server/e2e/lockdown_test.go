//go:build duckdb_arrow

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lunadb/luna/client"
)

const deniedSuffix = `" - file system operations are disabled by configuration`

func denied(path string) string {
	return `Permission Error: Cannot access file "` + path + deniedSuffix
}

// With --allowed-directories, Luna's own readers and writers (read_xlsx,
// COPY … (FORMAT xlsx), iceberg_*) refuse what DuckDB refuses, in DuckDB's
// words, including paths a table's metadata points at; inside, they work.
func TestAllowedDirectoriesCoverLunasOwnReaders(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	outside := filepath.Join(root, "outside")
	home := filepath.Join(root, "home")
	for _, d := range []string{allowed, outside, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	inBook, outBook := filepath.Join(allowed, "sales.xlsx"), filepath.Join(outside, "sales.xlsx")
	salesWorkbook(t, inBook)
	salesWorkbook(t, outBook)
	if err := os.Symlink(outBook, filepath.Join(allowed, "link.xlsx")); err != nil {
		t.Fatal(err)
	}
	inTable, outTable := filepath.Join(allowed, "db", "events"), filepath.Join(outside, "db", "events")
	snapshotsTable(t, inTable, "file://"+inTable, nil)
	snapshotsTable(t, outTable, "file://"+outTable, nil)
	// A table inside whose metadata sends the reader to /etc/passwd.
	evil := hostileMetadata(t, inTable, "file:///etc/passwd")

	p := startLuna(t, true, nil, "--allowed-directories", allowed, "--db-home-dir", home)
	c := p.dial(t, client.Options{})
	ctx := context.Background()

	// DuckDB's own refusal, for reference.
	wantError(t, c, "SELECT * FROM read_text('/etc/passwd')", denied("/etc/passwd"))

	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+outBook+"')", denied(outBook))
	wantError(t, c, "SELECT count(*) FROM '"+outBook+"'", denied(outBook))
	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+allowed+"/../outside/sales.xlsx')", denied(allowed+"/../outside/sales.xlsx"))
	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+filepath.Join(allowed, "link.xlsx")+"')", denied(filepath.Join(allowed, "link.xlsx")))
	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+outside+"/*.xlsx')", denied(outside+"/*.xlsx"))
	wantRows(t, c, "SELECT count(*) FROM read_xlsx('"+inBook+"')", "4")

	outCopy := filepath.Join(outside, "out.xlsx")
	if err := c.Exec(ctx, "COPY (SELECT 1 AS x) TO '"+outCopy+"' (FORMAT xlsx)"); err == nil || !strings.Contains(err.Error(), denied(outCopy)) {
		t.Fatalf("COPY TO xlsx outside: %v", err)
	}
	if _, err := os.Stat(outCopy); !os.IsNotExist(err) {
		t.Fatalf("COPY outside wrote %s: %v", outCopy, err)
	}
	inCopy := filepath.Join(allowed, "out.xlsx")
	if err := c.Exec(ctx, "COPY (SELECT 1 AS x) TO '"+inCopy+"' (FORMAT xlsx, HEADER true)"); err != nil {
		t.Fatalf("COPY TO xlsx inside: %v", err)
	}
	wantRows(t, c, "SELECT x FROM read_xlsx('"+inCopy+"')", "1")

	for _, fn := range []string{"iceberg_scan", "iceberg_metadata", "iceberg_snapshots"} {
		wantError(t, c, "SELECT count(*) FROM "+fn+"('"+outTable+"')", denied(outTable+"/metadata/version-hint.text"))
		if got := queryRows(t, c, "SELECT count(*) > 0 FROM "+fn+"('"+inTable+"')"); len(got) != 1 || got[0] != "true" {
			t.Fatalf("%s inside: %q", fn, got)
		}
	}
	wantError(t, c, "SELECT count(*) FROM iceberg_scan('"+evil+"')", denied("file:///etc/passwd"))
	wantError(t, c, "SELECT count(*) FROM iceberg_metadata('"+evil+"')", denied("file:///etc/passwd"))

	// DuckDB itself refuses extensions and databases outside, and no SET
	// can undo the lockdown.
	wantError(t, c, "ATTACH '"+filepath.Join(outside, "x.db")+"' AS x", denied(filepath.Join(outside, "x.db")))
	wantError(t, c, "LOAD '"+filepath.Join(outside, "x.duckdb_extension")+"'", "Permission Error: Loading external extensions is disabled through configuration")
	wantError(t, c, "INSTALL '"+filepath.Join(outside, "x.duckdb_extension")+"'", "Permission Error: Cannot access ", deniedSuffix)
	for _, q := range []string{"SET enable_external_access = true", "SET allowed_directories = ['/']", "SET lock_configuration = false"} {
		wantError(t, c, q, "Invalid Input Error: Cannot change configuration option")
	}
}

// A lockdown that would let read_text return the stored secrets is
// refused at startup: from the flag, or hand-written in startup SQL.
func TestAllowedDirectoriesMustNotHoldSecrets(t *testing.T) {
	home := t.TempDir()
	p := launchLuna(t, true, nil, "--allowed-directories", home, "--db-home-dir", home)
	if code := p.wait(60e9); code == 0 {
		t.Fatal("luna started with the secrets directory allowed")
	}
	if !p.logs.Await("stored secrets directory") {
		t.Fatalf("no clear error:\n%s", p.logs)
	}

	init := writeFile(t, t.TempDir(), "lock.sql", "SET allowed_directories = ['"+home+"']; SET enable_external_access = false;\n")
	p = launchLuna(t, true, nil, "--init-sql", init, "--db-home-dir", home)
	if code := p.wait(60e9); code == 0 {
		t.Fatal("luna started with a hand-written lockdown exposing the secrets")
	}
	if !p.logs.Await("stored secrets directory") {
		t.Fatalf("no clear error:\n%s", p.logs)
	}
}

// A lockdown written by hand in startup SQL binds Luna's readers too.
func TestHandWrittenLockdownCoversLunasOwnReaders(t *testing.T) {
	root := t.TempDir()
	allowed, outside := filepath.Join(root, "allowed"), filepath.Join(root, "outside")
	for _, d := range []string{allowed, outside} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	outBook := filepath.Join(outside, "sales.xlsx")
	salesWorkbook(t, outBook)
	salesWorkbook(t, filepath.Join(allowed, "sales.xlsx"))
	cache := filepath.Join(allowed, "cache")
	init := writeFile(t, root, "lock.sql", "SET allowed_directories = ['"+allowed+"']; SET enable_external_access = false; SET lock_configuration = true;\n")
	p := startLuna(t, true, nil, "--init-sql", init, "--object-cache-dir", cache)
	c := p.dial(t, client.Options{})
	wantError(t, c, "SELECT count(*) FROM read_xlsx('"+outBook+"')", denied(outBook))
	wantRows(t, c, "SELECT count(*) FROM read_xlsx('"+filepath.Join(allowed, "sales.xlsx")+"')", "4")
}

// hostileMetadata writes a metadata file for the table at dir whose
// current snapshot's manifest list is target, and returns its path.
func hostileMetadata(t *testing.T, dir, target string) string {
	t.Helper()
	hint, err := os.ReadFile(filepath.Join(dir, "metadata", "version-hint.text"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "metadata", "v"+strings.TrimSpace(string(hint))+".metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.Unmarshal(data, &md); err != nil {
		t.Fatal(err)
	}
	for _, s := range md["snapshots"].([]any) {
		s.(map[string]any)["manifest-list"] = target
	}
	out, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "metadata", "v99-hostile.metadata.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
