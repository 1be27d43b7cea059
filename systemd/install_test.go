package systemd

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
)

// installInto runs scripts/install.sh --prefix root with the given binaries.
func installInto(t *testing.T, root, luna, lunactl string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--prefix", root, "--bin", luna, "--lunactl", lunactl}, extra...)
	stdout, stderr, err := run(ctx, testenv.RepoRoot(), filepath.Join(testenv.RepoRoot(), "scripts", "install.sh"), args...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout + stderr
}

func TestInstall(t *testing.T) {
	luna, lunactl := binaries(t)
	root := t.TempDir()
	src := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// check asserts that path exists with the mode and, if want is not nil,
	// the content.
	check := func(rel string, mode fs.FileMode, want []byte) {
		t.Helper()
		p := filepath.Join(root, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode(), mode)
		}
		if want != nil {
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: content differs from its source", rel)
			}
		}
	}
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	installInto(t, root, luna, lunactl, "--enable")
	check("usr/bin/luna", 0o755, read(luna))
	check("usr/bin/lunactl", 0o755, read(lunactl))
	check("etc/systemd/system/luna.service", 0o644, src("luna.service"))
	check("etc/luna", fs.ModeDir|0o755, nil)
	check("etc/luna/init.d", fs.ModeDir|0o755, nil)
	check("etc/luna/luna.env", 0o600, src("luna.env"))
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/luna.service")
	if target, err := os.Readlink(wants); err != nil || target != "/etc/systemd/system/luna.service" {
		t.Errorf("--enable: %s -> %q (%v), want a link to /etc/systemd/system/luna.service", wants, target, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/luna/luna.env.new")); err == nil {
		t.Error("first install wrote luna.env.new")
	}

	// An operator's configuration survives a second run, which offers the
	// current template next to it.
	envPath := filepath.Join(root, "etc/luna/luna.env")
	edited := append(read(envPath), []byte("LUNA_PASSWD=operator-set\n")...)
	if err := os.WriteFile(envPath, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	sql := filepath.Join(root, "etc/luna/init.d/10-tables.sql")
	if err := os.WriteFile(sql, []byte("CREATE TABLE t (i INT);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := installInto(t, root, luna, lunactl)
	check("etc/luna/luna.env", 0o600, edited)
	check("etc/luna/luna.env.new", 0o600, src("luna.env"))
	check("etc/luna/init.d/10-tables.sql", 0o644, []byte("CREATE TABLE t (i INT);\n"))
	check("usr/bin/luna", 0o755, read(luna))
	check("etc/systemd/system/luna.service", 0o644, src("luna.service"))
	if !strings.Contains(out, "luna.env.new") {
		t.Errorf("second run does not mention luna.env.new:\n%s", out)
	}
	// No temporary files are left behind.
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".install.") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

func TestInstallErrors(t *testing.T) {
	luna, lunactl := binaries(t)
	root := t.TempDir()
	script := filepath.Join(testenv.RepoRoot(), "scripts", "install.sh")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--prefix", root, "--bin", filepath.Join(root, "nope"), "--lunactl", lunactl}, "luna binary not found"},
		{[]string{"--prefix", root, "--bin", luna, "--lunactl", filepath.Join(root, "nope")}, "lunactl binary not found"},
		{[]string{"--prefix", filepath.Join(root, "missing"), "--bin", luna, "--lunactl", lunactl}, "is not a directory"},
		{[]string{"--prefix", root, "--bin", luna, "--lunactl", lunactl, "--start"}, "--start needs --prefix /"},
		{[]string{"--bogus"}, "unknown argument: --bogus"},
		{[]string{"--prefix"}, "--prefix needs a value"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, stderr, err := run(ctx, testenv.RepoRoot(), script, tc.args...)
		cancel()
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("install.sh %s: err %v, stderr %q; want a failure saying %q", strings.Join(tc.args, " "), err, stderr, tc.want)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("failed runs left files in the prefix: %v", entries)
	}
}
