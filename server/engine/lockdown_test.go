//go:build duckdb_arrow

package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestAllowedDirectoriesLockDownDuckDB(t *testing.T) {
	allowed := t.TempDir()
	if err := os.WriteFile(filepath.Join(allowed, "a.txt"), []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(Options{Threads: 1, TempDir: filepath.Join(allowed, "tmp")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.RestrictFiles(context.Background(), []string{allowed}); err != nil {
		t.Fatal(err)
	}
	c, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	err = c.Exec(ctx, "SELECT * FROM read_text('/etc/passwd')")
	if err == nil || !strings.Contains(err.Error(), `Permission Error: Cannot access file "/etc/passwd" - file system operations are disabled by configuration`) {
		t.Fatalf("read_text outside: %v", err)
	}
	if err := c.Exec(ctx, "SELECT * FROM read_text('"+filepath.Join(allowed, "a.txt")+"')"); err != nil {
		t.Fatalf("read_text inside: %v", err)
	}
	// A temporary secret still works: persistent ones are off, so DuckDB
	// does not try to read its secret directory.
	if err := c.Exec(ctx, "CREATE SECRET s (TYPE http, BEARER_TOKEN 'x')"); err != nil && !strings.Contains(err.Error(), "Extension") {
		t.Fatalf("temporary secret: %v", err)
	}
	p, err := db.FilePolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Locked || !slices.Contains(p.Dirs, allowed+"/") {
		t.Fatalf("policy %+v", p)
	}
	if sd, err := db.SecretDirectory(ctx); err != nil || sd == "" {
		t.Fatalf("secret directory %q: %v", sd, err)
	}
	// Startup SQL may still SET things; once locked, nothing may.
	if err := c.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatalf("SET before the lock: %v", err)
	}
	if err := db.LockConfiguration(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET allowed_directories = ['/']", "SET lock_configuration = false", "SET TimeZone = 'UTC'"} {
		if err := c.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "locked") {
			t.Errorf("%s after the lock: %v", q, err)
		}
	}
}

// Hand-written SET statements count as much as the flag.
func TestFilePolicyFollowsHandWrittenSettings(t *testing.T) {
	db, c := open(t)
	ctx := context.Background()
	p, err := db.FilePolicy(ctx)
	if err != nil || p.Locked {
		t.Fatalf("open database: %+v %v", p, err)
	}
	if err := c.Exec(ctx, "SET allowed_directories = ['/srv/data']; SET allowed_paths = ['/srv/one.xlsx']; SET enable_external_access = false"); err != nil {
		t.Fatal(err)
	}
	p, err = db.FilePolicy(ctx)
	if err != nil || !p.Locked || !slices.Contains(p.Dirs, "/srv/data/") || !slices.Equal(p.Paths, []string{"/srv/one.xlsx"}) {
		t.Fatalf("after SET: %+v %v", p, err)
	}
	if err := p.CheckRead("/etc/passwd", "/etc/passwd"); err == nil {
		t.Fatal("policy allows /etc/passwd")
	}
}
