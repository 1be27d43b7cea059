package fspolicy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyResolvesLinksAndDotDot(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{allowed, outside, filepath.Join(allowed, "sub")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(allowed, "a.xlsx"), filepath.Join(outside, "secret.txt"), filepath.Join(allowed, "sub", "s.xlsx")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustLink := func(target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	mustLink(outside, filepath.Join(allowed, "escape"))
	mustLink(filepath.Join(outside, "secret.txt"), filepath.Join(allowed, "secret-link.txt"))
	mustLink(filepath.Join(allowed, "sub"), filepath.Join(allowed, "sublink"))
	mustLink(filepath.Join(outside, "nonexistent-dir"), filepath.Join(allowed, "dangling"))
	mustLink(allowed, filepath.Join(outside, "into-allowed"))

	p := Policy{Locked: true, Dirs: []string{allowed + "/"}, Paths: []string{filepath.Join(outside, "one.txt")}}
	reads := map[string]bool{
		filepath.Join(allowed, "a.xlsx"):                 true,
		filepath.Join(allowed, "sub", "..", "a.xlsx"):    true,
		filepath.Join(allowed, "sublink", "s.xlsx"):      true,
		filepath.Join(allowed, "*.xlsx"):                 true,
		filepath.Join(outside, "into-allowed", "a.xlsx"): true, // a link into an allowed directory
		filepath.Join(allowed, "missing.xlsx"):           true, // fails later as not found
		filepath.Join(outside, "one.txt"):                true, // allowed_paths
		allowed + "/../outside/secret.txt":               false,
		filepath.Join(allowed, "escape", "secret.txt"):   false,
		filepath.Join(allowed, "secret-link.txt"):        false,
		filepath.Join(allowed, "dangling", "x.xlsx"):     false,
		filepath.Join(allowed, "escape", "*.txt"):        false,
		filepath.Join(root, "allowedX", "a.xlsx"):        false,
		"/etc/passwd": false,
		"/*":          false,
	}
	for path, want := range reads {
		err := p.CheckGlob(path, path)
		if (err == nil) != want {
			t.Errorf("CheckRead(%s) = %v, want allowed=%v", path, err, want)
		}
		var de *DeniedError
		if err != nil && (!errors.As(err, &de) || !strings.HasPrefix(err.Error(), `Permission Error: Cannot access file "`+path+`" - file system operations are disabled by configuration`)) {
			t.Errorf("CheckRead(%s) error %q is not DuckDB's wording", path, err)
		}
	}
	writes := map[string]bool{
		filepath.Join(allowed, "new.xlsx"):               true,
		filepath.Join(allowed, "secret-link.txt"):        true, // the link is replaced, never written through
		filepath.Join(allowed, "sublink", "new.xlsx"):    true,
		filepath.Join(allowed, "escape", "new.xlsx"):     false,
		filepath.Join(allowed, "..", "new.xlsx"):         false,
		filepath.Join(allowed, "dangling", "new.xlsx"):   false,
		filepath.Join(outside, "into-allowed", "n.xlsx"): true,
		"/tmp/../etc/new.xlsx":                           false,
	}
	for path, want := range writes {
		if err := p.CheckWrite(path, path); (err == nil) != want {
			t.Errorf("CheckWrite(%s) = %v, want allowed=%v", path, err, want)
		}
	}
	if err := (Policy{}).CheckRead("/etc/passwd", "/etc/passwd"); err != nil {
		t.Errorf("an open policy refused: %v", err)
	}
}

func TestRelativePathsResolveAgainstTheWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	p := Policy{Locked: true, Dirs: []string{dir}}
	if err := p.CheckRead("data/x.xlsx", "data/x.xlsx"); err != nil {
		t.Errorf("relative path inside: %v", err)
	}
	if err := p.CheckRead("../x.xlsx", "../x.xlsx"); err == nil {
		t.Error("relative path outside allowed")
	}
}

func TestSecretsOutsideAllowedDirectories(t *testing.T) {
	home := t.TempDir()
	secrets := filepath.Join(home, "stored_secrets")
	if err := (Policy{Locked: true, Dirs: []string{home}}).CheckSecrets(secrets); err == nil || !strings.Contains(err.Error(), secrets) {
		t.Errorf("allowed home holding the secrets: %v", err)
	}
	if err := (Policy{Locked: true, Dirs: []string{secrets}}).CheckSecrets(secrets); err == nil {
		t.Error("the secrets directory itself allowed")
	}
	if err := (Policy{Locked: true, Dirs: []string{filepath.Join(home, "object-cache")}}).CheckSecrets(secrets); err != nil {
		t.Errorf("a sibling directory: %v", err)
	}
	if err := (Policy{}).CheckSecrets(secrets); err != nil {
		t.Errorf("no lockdown: %v", err)
	}
}
