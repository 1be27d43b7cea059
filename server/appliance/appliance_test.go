//go:build duckdb_arrow

package appliance

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lunadb/luna/server/engine"
)

func TestInitFilesOrder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.sql", "a.sql", "c.txt", "10.sql"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	os.Mkdir(filepath.Join(dir, "sub.sql"), 0o755)
	single := filepath.Join(t.TempDir(), "x.sql")
	os.WriteFile(single, nil, 0o644)
	got, err := initFiles([]string{single, dir})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{single, filepath.Join(dir, "10.sql"), filepath.Join(dir, "a.sql"), filepath.Join(dir, "b.sql")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	if _, err := initFiles([]string{filepath.Join(dir, "nope")}); err == nil || !strings.Contains(err.Error(), "--init-sql") {
		t.Fatalf("err = %v", err)
	}
}

func TestInitRunnerReportsFileAndLine(t *testing.T) {
	db, err := engine.Open(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, _ := db.Connect()
	defer c.Close()
	f := filepath.Join(t.TempDir(), "s.sql")
	os.WriteFile(f, []byte("CREATE TABLE a(x INT);\n-- comment\n\nINSERT INTO a VALUES ('nan?');\nINSERT INTO a VALUES (2);"), 0o644)
	var lines []int
	r := &initRunner{conn: c, log: slog.New(slog.DiscardHandler), started: func(_ string, l int) { lines = append(lines, l) }}
	_, err = r.run(context.Background(), []string{f})
	var ie *InitError
	if !errors.As(err, &ie) || ie.File != f || ie.Line != 4 || !strings.Contains(err.Error(), "Conversion Error") {
		t.Fatalf("err = %v", err)
	}
	r.continueOnError = true
	c.Exec(context.Background(), "DROP TABLE a")
	lines = nil
	failed, err := r.run(context.Background(), []string{f})
	if err != nil || failed != 1 || !reflect.DeepEqual(lines, []int{1, 4, 5}) {
		t.Fatalf("failed %d, lines %v, err %v", failed, lines, err)
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0:7688": "127.0.0.1:7688", "[::]:7688": "[::1]:7688", "127.0.0.2:9": "127.0.0.2:9"} {
		a, _ := net.ResolveTCPAddr("tcp", in)
		if got := dialAddr(a); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}
