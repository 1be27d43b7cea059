package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
)

func TestDebianVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                   "1.2.3",
		"1.2.3":                    "1.2.3",
		"v1.2.3-dirty":             "1.2.3+dirty",
		"v1.2.3-rc1":               "1.2.3~rc1",
		"v1.2.3-rc-1":              "1.2.3~rc.1",
		"v1.2.3-4-gabc1234":        "1.2.3+git4.abc1234",
		"v1.2.3-4-gabc1234-dirty":  "1.2.3+git4.abc1234.dirty",
		"v1.2.3-rc1-4-gabc1234":    "1.2.3~rc1+git4.abc1234",
		"b44f45b":                  "0.0.0~gitb44f45b",
		"b44f45b-dirty":            "0.0.0~gitb44f45b.dirty",
		"dev":                      "0.0.0~dev",
		" v2.0.0\n":                "2.0.0",
		"v10.20.30-beta.2-1-g0123": "10.20.30~beta.2+git1.0123",
	} {
		got, err := DebianVersion(in)
		if err != nil || got != want {
			t.Errorf("DebianVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":              "empty version",
		"-dirty":        "does not start with a number",
		"vnext":         `tag "vnext" does not start with a number`,
		"v1.2.3 beta":   "not a valid Debian version",
		"v1.2.3_x":      "not a valid Debian version",
		"v1.2:3":        "not a valid Debian version",
		"release-4-gab": "does not start with a number",
	} {
		if got, err := DebianVersion(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DebianVersion(%q) = %q, %v; want an error saying %q", in, got, err, want)
		}
	}
}

// Versions sort the way releases do, as dpkg compares them.
func TestDebianVersionOrder(t *testing.T) {
	if _, err := os.Stat("/usr/bin/dpkg"); err != nil {
		t.Fatal("dpkg is not installed: this test needs Debian's version comparison")
	}
	order := []string{"b44f45b", "v0.9.0", "v1.0.0-rc1", "v1.0.0-rc1-2-gabcdef0", "v1.0.0", "v1.0.0-1-gabcdef0", "v1.0.0-2-gabcdef0", "v1.0.1"}
	for i := 1; i < len(order); i++ {
		a, _ := DebianVersion(order[i-1])
		b, _ := DebianVersion(order[i])
		if err := runCmd("dpkg", "--compare-versions", a, "lt", b); err != nil {
			t.Errorf("%s (%s) does not sort before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}

// fakeBinaries writes two small executables standing in for the server and
// the client: the package builder only copies them.
func fakeBinaries(t *testing.T) (string, string) {
	dir := t.TempDir()
	for _, name := range []string{"luna", "lunactl"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho "+name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "luna"), filepath.Join(dir, "lunactl")
}

func TestBuildErrors(t *testing.T) {
	luna, lunactl := fakeBinaries(t)
	out := t.TempDir()
	good := Options{Version: "1.0.0", Luna: luna, Lunactl: lunactl, SourceDir: testenv.RepoRoot(), OutDir: out}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Version = "v1.0.0" }, `version "v1.0.0" is not a valid Debian version`},
		{func(o *Options) { o.Version = "" }, "is not a valid Debian version"},
		{func(o *Options) { o.Luna = filepath.Join(out, "missing") }, "luna binary: stat"},
		{func(o *Options) { o.Lunactl = testenv.RepoRoot() }, "lunactl binary " + testenv.RepoRoot() + " is not an executable file"},
		{func(o *Options) { o.SourceDir = out }, "source directory " + out},
		{func(o *Options) { o.OutDir = "" }, "no output directory"},
	} {
		o := good
		tc.change(&o)
		for name, build := range map[string]func(Options) (string, error){"BuildDeb": BuildDeb, "BuildTarball": BuildTarball} {
			if _, err := build(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s(%+v): %v; want an error saying %q", name, o, err, tc.want)
			}
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed builds left files: %v", entries)
	}
}

// TestBuild builds the package and the tarball from stand-in binaries
// and checks the tarball's layout and the checksums file; the systemd
// tests check the package with dpkg and install it.
func TestBuild(t *testing.T) {
	luna, lunactl := fakeBinaries(t)
	out := filepath.Join(t.TempDir(), "dist")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := Options{Version: "1.2.3~rc1", Luna: luna, Lunactl: lunactl, SourceDir: testenv.RepoRoot(), OutDir: out, MTime: mtime}
	deb, err := BuildDeb(o)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "luna_1.2.3~rc1_amd64.deb" {
		t.Errorf("package file %s", deb)
	}
	if b, err := os.ReadFile(deb); err != nil || !strings.HasPrefix(string(b), "!<arch>\ndebian-binary") {
		t.Errorf("%s is not an ar archive starting with debian-binary (%v)", deb, err)
	}
	// Same inputs, same bytes.
	first, _ := FileSHA256(deb)
	if _, err := BuildDeb(o); err != nil {
		t.Fatal(err)
	}
	if again, _ := FileSHA256(deb); again != first {
		t.Error("two builds of the same inputs differ")
	}

	tgz, err := BuildTarball(o)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name+" "+os.FileMode(h.Mode).String())
		if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, mtime)
		}
	}
	want := []string{
		"luna_1.2.3~rc1_linux_amd64/ -rwxr-xr-x", "luna_1.2.3~rc1_linux_amd64/bin/ -rwxr-xr-x",
		"luna_1.2.3~rc1_linux_amd64/systemd/ -rwxr-xr-x", "luna_1.2.3~rc1_linux_amd64/scripts/ -rwxr-xr-x",
		"luna_1.2.3~rc1_linux_amd64/bin/luna -rwxr-xr-x", "luna_1.2.3~rc1_linux_amd64/bin/lunactl -rwxr-xr-x",
		"luna_1.2.3~rc1_linux_amd64/systemd/luna.service -rw-r--r--", "luna_1.2.3~rc1_linux_amd64/systemd/luna.env -rw-r--r--",
		"luna_1.2.3~rc1_linux_amd64/scripts/install.sh -rwxr-xr-x",
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("tarball entries:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}

	sums, err := WriteChecksums(out, []string{tgz, deb})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(sums)
	debSum, _ := FileSHA256(deb)
	tgzSum, _ := FileSHA256(tgz)
	if wantSums := debSum + "  luna_1.2.3~rc1_amd64.deb\n" + tgzSum + "  luna_1.2.3~rc1_linux_amd64.tar.gz\n"; string(b) != wantSums {
		t.Errorf("SHA256SUMS:\n%s\nwant:\n%s", b, wantSums)
	}
	if _, err := WriteChecksums(out, []string{luna}); err == nil || !strings.Contains(err.Error(), "is not inside") {
		t.Errorf("WriteChecksums of a file outside the directory: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func runCmd(name string, args ...string) error {
	return exec.Command(name, args...).Run()
}

// debControl returns the control file of a .deb: an ar archive whose
// control.tar.gz member holds ./control.
func debControl(t *testing.T, deb string) string {
	t.Helper()
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "!<arch>\n") {
		t.Fatalf("%s is not an ar archive", deb)
	}
	for off := 8; off+60 <= len(b); {
		name := strings.TrimRight(strings.TrimSpace(string(b[off:off+16])), "/")
		var size int
		fmt.Sscan(strings.TrimSpace(string(b[off+48:off+58])), &size)
		data := b[off+60 : off+60+size]
		off += 60 + size + size%2
		if name != "control.tar.gz" {
			continue
		}
		gz, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("no control file in %s: %v", deb, err)
			}
			if strings.TrimPrefix(h.Name, "./") == "control" {
				c, _ := io.ReadAll(tr)
				return string(c)
			}
		}
	}
	t.Fatalf("no control.tar.gz in %s", deb)
	return ""
}

// TestMaintainer: the builder's Maintainer goes into the control file;
// without one the placeholder does; a malformed one is refused.
func TestMaintainer(t *testing.T) {
	luna, lunactl := fakeBinaries(t)
	o := Options{Version: "1.0.0", Luna: luna, Lunactl: lunactl, SourceDir: testenv.RepoRoot(), OutDir: t.TempDir()}
	for maintainer, want := range map[string]string{"": DefaultMaintainer, "Jane Doe <jane@example.com>": "Jane Doe <jane@example.com>"} {
		o.Maintainer = maintainer
		deb, err := BuildDeb(o)
		if err != nil {
			t.Fatal(err)
		}
		if c := debControl(t, deb); !strings.Contains(c, "\nMaintainer: "+want+"\n") {
			t.Errorf("Maintainer %q: control file\n%s", maintainer, c)
		}
	}
	for _, bad := range []string{"jane@example.com", "Jane <jane>", "Jane <jane@example.com", "<jane@example.com>", "Jane\nEvil <a@b>", "A <b@c>, D <e@f>"} {
		o.Maintainer = bad
		if _, err := BuildDeb(o); err == nil || !strings.Contains(err.Error(), "is not \"Name <address>\"") {
			t.Errorf("Maintainer %q: %v", bad, err)
		}
	}
}
