package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostileKeys are keys a bucket's writer may plant; none may become a
// local path.
var hostileKeys = []string{
	"",
	"/",
	"/etc/passwd",
	"data/../../../../var/lib/luna/stored_secrets/evil.secret.json",
	"..",
	"../x",
	"data/..",
	"data/../x.csv",
	".",
	"./a.csv",
	"data/./a.csv",
	"data//b.csv",
	"data/",
	"//x",
	`data\..\c.csv`,
	`..\..\x`,
	"data/\x00.csv",
	"data/a\x00/../../x",
	"data/nl\nx.csv",
	"data/esc\x1b[2J.csv",
	"data/del\x7f.csv",
	"data/c1\u0085.csv",
	"data/bad\xff.csv",
}

func TestKeyPathRefusesHostileKeys(t *testing.T) {
	root := filepath.Join(t.TempDir(), "view")
	for _, k := range hostileKeys {
		if p, err := keyPath(root, k); err == nil {
			t.Errorf("keyPath(%q) = %q, want an error", k, p)
		}
	}
}

func TestKeyPathKeepsOrdinaryKeys(t *testing.T) {
	root := filepath.Join(t.TempDir(), "view")
	for k, want := range map[string]string{
		"a.csv":                     "a.csv",
		"data/year=2024/part-0.csv": "data/year=2024/part-0.csv",
		"data/.hidden/e.csv":        "data/.hidden/e.csv",
		"data/...":                  "data/...",
		"data/..x/y":                "data/..x/y",
		"日本/データ.csv":                "日本/データ.csv",
		"data/with space & $.csv":   "data/with space & $.csv",
		"data/**/*.csv":             "data/**/*.csv", // a pattern is a path too
	} {
		p, err := keyPath(root, k)
		if err != nil || p != filepath.Join(root, filepath.FromSlash(want)) {
			t.Errorf("keyPath(%q) = %q, %v", k, p, err)
		}
	}
}

// FuzzKeyPath: whatever the key, an accepted one names a path strictly
// under root, and placing it there creates nothing outside root.
func FuzzKeyPath(f *testing.F) {
	for _, k := range hostileKeys {
		f.Add(k)
	}
	for _, k := range []string{"a", "a/b", "data/x.csv", "a/.b", "a/b../c", "...", "a/ ", " /a", "a/b/c/d/e/f"} {
		f.Add(k)
	}
	base := f.TempDir()
	root := filepath.Join(base, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		p, err := keyPath(root, key)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, root+string(filepath.Separator)) || p != filepath.Clean(p) {
			t.Fatalf("keyPath(%q) = %q: not strictly under %s", key, p, root)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || !filepath.IsLocal(rel) || rel == "." {
			t.Fatalf("keyPath(%q) = %q: relative %q (%v) is not local", key, p, rel, err)
		}
		for _, seg := range strings.Split(rel, string(filepath.Separator)) {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("keyPath(%q) = %q has segment %q", key, p, seg)
			}
		}
		if len(key) > 200 {
			return // long names exceed NAME_MAX; the pure check above is the point
		}
		placed, err := placeKey(root, key)
		if err != nil {
			return // e.g. a file where a directory should be, from an earlier input
		}
		if placed != p {
			t.Fatalf("placeKey(%q) = %q, keyPath %q", key, placed, p)
		}
		if ents, err := os.ReadDir(base); err != nil || len(ents) != 1 {
			t.Fatalf("placeKey(%q) made entries beside root: %v %v", key, ents, err)
		}
	})
}

func TestPlaceKeyRefusesSymlinkedDirectories(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "view")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "data")); err != nil {
		t.Fatal(err)
	}
	e := cachedFile(t, base, "bytes")
	if _, err := linkKey(e, root, "data/sub/x.csv"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("link through a symlinked directory: %v", err)
	}
	if _, err := linkKey(e, root, "data/x.csv"); err == nil {
		t.Fatal("link into a symlinked directory succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("created %v through the symlink", ents)
	}
	// A symlinked root is refused as well.
	if err := os.Symlink(outside, filepath.Join(base, "linkroot")); err != nil {
		t.Fatal(err)
	}
	if _, err := linkKey(e, filepath.Join(base, "linkroot"), "x.csv"); err == nil {
		t.Fatal("link under a symlinked root succeeded")
	}
}

func TestLinkKeyRefusesAnExistingPath(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "view")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	e := cachedFile(t, base, "object bytes")
	other := cachedFile(t, base, "planted")
	// Something else already there: an error, and it stays as it was.
	if _, err := linkKey(other, root, "data/x.csv"); err != nil {
		t.Fatal(err)
	}
	if _, err := linkKey(e, root, "data/x.csv"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("link over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "data", "x.csv")); string(b) != "planted" {
		t.Fatalf("existing file now holds %q", b)
	}
	// The same cached file twice (a statement naming an object twice) is
	// fine.
	p, err := linkKey(e, root, "data/y.csv")
	if err != nil {
		t.Fatal(err)
	}
	if q, err := linkKey(e, root, "data/y.csv"); err != nil || q != p {
		t.Fatalf("second link of the same file: %q %v", q, err)
	}
	// A file where a directory is needed.
	if _, err := linkKey(e, root, "data/x.csv/z.csv"); err == nil {
		t.Fatal("link below a file succeeded")
	}
	// A symlink fallback already there to another target.
	if err := os.Symlink(other.path, filepath.Join(root, "data", "s.csv")); err != nil {
		t.Fatal(err)
	}
	if _, err := linkKey(e, root, "data/s.csv"); err == nil {
		t.Fatal("link over a foreign symlink succeeded")
	}
}

// cachedFile is an entry whose file holds data, in a directory of dir.
func cachedFile(t *testing.T, dir, data string) *entry {
	t.Helper()
	f, err := os.CreateTemp(dir, "obj-*")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(data)
	f.Close()
	return &entry{path: f.Name(), size: int64(len(data))}
}
