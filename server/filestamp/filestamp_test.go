package filestamp

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A rewrite of the same size with the old time, a rename over the file and
// a removal are all changes; a file left alone is not.
func TestChanges(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p, "one")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(p, old, old)
	a := Of(p, "")
	if len(a) != 1 || !a.Equal(Of(p)) || a.Unreadable() {
		t.Fatalf("unchanged file: %v vs %v", a, Of(p))
	}
	write(p, "two")
	if a.Equal(Of(p)) {
		t.Error("a rewrite was not noticed")
	}
	b := Of(p)
	tmp := filepath.Join(dir, "tmp")
	write(tmp, "two")
	fi, _ := os.Stat(p)
	os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	if b.Equal(Of(p)) {
		t.Error("a rename over the file with the same size and time was not noticed")
	}
	c := Of(p)
	os.Remove(p)
	if d := Of(p); c.Equal(d) || !d.Unreadable() || !d.Equal(Of(p)) {
		t.Error("a removal: not noticed once, or noticed again")
	}
}
