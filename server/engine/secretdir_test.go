//go:build duckdb_arrow

package engine

import (
	"context"
	"path/filepath"
	"testing"
)

// DuckDB's own secret directory follows --db-home-dir, so a lockdown of
// the working directory does not hold it.
func TestSecretDirectoryFollowsTheHome(t *testing.T) {
	home := t.TempDir()
	db, err := Open(Options{HomeDir: home})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.SecretDirectory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".duckdb", "stored_secrets"); got != want {
		t.Fatalf("secret_directory = %q, want %q", got, want)
	}
}
