package systemd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/nspawn"
	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// TestDebPackage checks the built package with dpkg-deb: its control
// fields, its maintainer scripts, its conffiles and the files it installs.
func TestDebPackage(t *testing.T) {
	needTools(t, "dpkg-deb")
	deb := debPath(t, debV1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	info, _, err := run(ctx, "", "dpkg-deb", "--info", deb)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Package: luna\n", "Version: " + debV1 + "\n", "Architecture: amd64\n", "Depends: systemd\n",
		"Section: database\n", "Priority: optional\n", "Homepage: https://github.com/lunadb/luna\n",
		"Maintainer: Luna maintainers <", "Description: In-memory columnar SQL server on DuckDB\n",
	} {
		if !strings.Contains(info, " "+want) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
		}
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if !regexp.MustCompile(`\*\s+` + script + `\s+#!/bin/sh`).MatchString(info) {
			t.Errorf("the package has no executable %s script:\n%s", script, info)
		}
	}
	conffiles, _, err := run(ctx, "", "dpkg-deb", "--info", deb, "conffiles")
	if err != nil {
		t.Fatal(err)
	}
	if conffiles != "/etc/luna/luna.env\n" {
		t.Errorf("conffiles is %q, want only /etc/luna/luna.env", conffiles)
	}

	contents, _, err := run(ctx, "", "dpkg-deb", "--contents", deb)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // path -> mode and owner
	for _, line := range strings.Split(strings.TrimSpace(contents), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("unexpected dpkg-deb --contents line %q", line)
		}
		got[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0] + " " + f[1]
	}
	want := map[string]string{
		"/usr/bin/luna":                               "-rwxr-xr-x root/root",
		"/usr/bin/lunactl":                            "-rwxr-xr-x root/root",
		"/lib/systemd/system/luna.service":            "-rw-r--r-- root/root",
		"/etc/luna":                                   "drwxr-xr-x root/root",
		"/etc/luna/init.d":                            "drwxr-xr-x root/root",
		"/etc/luna/luna.env":                          "-rw------- root/root",
		"/lib/systemd/system/luna-configure@.service": "-rw-r--r-- root/root",
		"/usr/lib/luna":                               "drwxr-xr-x root/root",
		"/usr/lib/luna/startup-gcp-mig.sh":            "-rwxr-xr-x root/root",
		"/usr/lib/luna/startup-aws-asg.sh":            "-rwxr-xr-x root/root",
	}
	for path, mode := range want {
		if got[path] != mode {
			t.Errorf("%s: %q in the package, want %q", path, got[path], mode)
		}
	}
	for path, mode := range got {
		if _, ok := want[path]; !ok && !strings.HasPrefix(mode, "d") {
			t.Errorf("unexpected file in the package: %s", path)
		}
	}

	// The installed files are the ones from the repository and the build.
	x := t.TempDir()
	if _, _, err := run(ctx, "", "dpkg-deb", "-x", deb, x); err != nil {
		t.Fatal(err)
	}
	luna, lunactl := binaries(t)
	for dst, src := range map[string]string{
		"usr/bin/luna":                               luna,
		"usr/bin/lunactl":                            lunactl,
		"lib/systemd/system/luna.service":            filepath.Join(testenv.RepoRoot(), "systemd", "luna.service"),
		"etc/luna/luna.env":                          filepath.Join(testenv.RepoRoot(), "systemd", "luna.env"),
		"lib/systemd/system/luna-configure@.service": filepath.Join(testenv.RepoRoot(), "systemd", "luna-configure@.service"),
		"usr/lib/luna/startup-gcp-mig.sh":            filepath.Join(testenv.RepoRoot(), "scripts", "startup-gcp-mig.sh"),
		"usr/lib/luna/startup-aws-asg.sh":            filepath.Join(testenv.RepoRoot(), "scripts", "startup-aws-asg.sh"),
	} {
		if !sameFile(t, filepath.Join(x, dst), src) {
			t.Errorf("%s in the package differs from %s", dst, src)
		}
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		ctrl, _, err := run(ctx, "", "dpkg-deb", "--info", deb, script)
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "packaging", "deb", script))
		if err != nil {
			t.Fatal(err)
		}
		if ctrl != string(src) {
			t.Errorf("the package's %s differs from packaging/deb/%s", script, script)
		}
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// TestReleaseTarball checks what luna-package release writes: the tarball
// with what scripts/install.sh needs, laid out so that it runs from inside
// it, and SHA256SUMS covering the tarball and the package.
func TestReleaseTarball(t *testing.T) {
	dir := releaseDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tarball := "luna_" + debV1 + "_linux_amd64.tar.gz"

	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		if m := regexp.MustCompile(`^[0-9a-f]{64}  (\S+)$`).FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		} else {
			t.Errorf("SHA256SUMS line %q is not in sha256sum's format", line)
		}
	}
	sort.Strings(names)
	if want := []string{"luna_" + debV1 + "_amd64.deb", tarball}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("SHA256SUMS covers %q, want %q", names, want)
	}
	if out, _, err := run(ctx, dir, "sha256sum", "--strict", "-c", "SHA256SUMS"); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v", err)
	} else if strings.Count(out, ": OK") != 2 {
		t.Errorf("sha256sum -c SHA256SUMS:\n%s", out)
	}

	x := t.TempDir()
	if _, _, err := run(ctx, "", "tar", "-xzf", filepath.Join(dir, tarball), "-C", x); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(x, strings.TrimSuffix(tarball, ".tar.gz"))
	luna, lunactl := binaries(t)
	for rel, src := range map[string]string{
		"bin/luna":             luna,
		"bin/lunactl":          lunactl,
		"systemd/luna.service": filepath.Join(testenv.RepoRoot(), "systemd", "luna.service"),
		"systemd/luna.env":     filepath.Join(testenv.RepoRoot(), "systemd", "luna.env"),
		"scripts/install.sh":   filepath.Join(testenv.RepoRoot(), "scripts", "install.sh"),
	} {
		if !sameFile(t, filepath.Join(top, rel), src) {
			t.Errorf("%s in the tarball differs from %s", rel, src)
		}
	}
	prefix := t.TempDir()
	if _, _, err := run(ctx, top, "scripts/install.sh", "--prefix", prefix); err != nil {
		t.Fatalf("install.sh from the tarball: %v", err)
	}
	if !sameFile(t, filepath.Join(prefix, "usr/bin/luna"), luna) {
		t.Error("install.sh from the tarball did not install its bin/luna")
	}
}

// TestLunaPackageUsage feeds luna-package malformed input.
func TestLunaPackageUsage(t *testing.T) {
	releaseDir(t) // builds the tool
	luna, lunactl := binaries(t)
	out := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"rpm"}, 2, `unknown command "rpm"`},
		{[]string{"deb", "-luna", luna}, 2, "-version is required"},
		{[]string{"deb", "-version", "vfoo", "-out", out}, 2, `tag "vfoo" does not start with a number`},
		{[]string{"deb", "-version", "v1.0.0 beta", "-out", out}, 2, "not a valid Debian version"},
		{[]string{"deb", "-version", "v1.0.0", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"deb", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"debian-version"}, 2, "want exactly one version argument"},
		{[]string{"deb", "-version", "v1.0.0", "-luna", filepath.Join(out, "nope"), "-lunactl", lunactl, "-source", testenv.RepoRoot(), "-out", out}, 1, "luna binary: stat"},
		{[]string{"deb", "-version", "v1.0.0", "-luna", filepath.Join(testenv.RepoRoot(), "systemd", "luna.env"), "-lunactl", lunactl, "-source", testenv.RepoRoot(), "-out", out}, 1, "is not an executable file"},
		{[]string{"release", "-version", "v1.0.0", "-luna", luna, "-lunactl", lunactl, "-source", out, "-out", out}, 1, "source directory"},
	} {
		cmd := exec.Command(pkgTool, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("luna-package %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed builds left files behind: %v", entries)
	}
	for in, want := range map[string]string{
		"v1.2.3": "1.2.3", "abc1234-dirty": "0.0.0~gitabc1234.dirty", "v2.0.0-rc1-2-gdeadbee": "2.0.0~rc1+git2.deadbee",
	} {
		got, err := exec.Command(pkgTool, "debian-version", in).Output()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("luna-package debian-version %s: %q %v, want %s", in, got, err, want)
		}
	}
}

// TestMaintainerScriptsShellcheck lints the package's maintainer scripts
// (TestShellcheck covers scripts/, the startup scripts included).
func TestMaintainerScriptsShellcheck(t *testing.T) {
	needTools(t, "shellcheck")
	scripts, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "packaging", "deb", "*"))
	if err != nil || len(scripts) != 3 {
		t.Fatalf("want postinst, prerm and postrm in packaging/deb, found %v (%v)", scripts, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "shellcheck", append([]string{"--shell=sh"}, scripts...)...).CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// TestStartupScriptsShareCode keeps the code the two startup scripts share
// identical, since each must be a single file for user data and metadata.
func TestStartupScriptsShareCode(t *testing.T) {
	block := func(name string) string {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "scripts", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i := strings.Index(s, "\n# --- common: begin")
		j := strings.Index(s, "\n# --- common: end ---\n")
		if i < 0 || j < i {
			t.Fatalf("%s has no common block", name)
		}
		return s[i:j]
	}
	if block("startup-gcp-mig.sh") != block("startup-aws-asg.sh") {
		t.Error("the common blocks of startup-gcp-mig.sh and startup-aws-asg.sh differ")
	}
}

// TestDebWithoutSystemd installs and purges the package where systemd is
// not running, as in an image build: a container whose init is a shell.
// The unit is enabled (symlinks only), nothing is started, and the purge
// leaves nothing behind.
func TestDebWithoutSystemd(t *testing.T) {
	needRoot(t)
	needTools(t, "systemd-nspawn", "debootstrap", "flock")
	_, lunactl := binaries(t)
	a := newBareAppliance(t, lunactl, map[string]string{debPath(t, debV1): "/root/pkg/luna.deb"})
	nspawn := func(script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "systemd-nspawn", "-q", "--pipe", "-D", a.Root, "--register=no", "--keep-unit",
			"--machine="+a.Name, "/bin/sh", "-ec", script).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-nspawn sh -c %q: %v\n%s", script, err, out)
		}
		return string(out)
	}
	out := nspawn(`test ! -d /run/systemd/system
DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/pkg/luna.deb
getent passwd luna
readlink /etc/systemd/system/multi-user.target.wants/luna.service
dpkg-query -W -f='${Status} ${Version}\n' luna`)
	for _, want := range []string{"luna:x:", "/lib/systemd/system/luna.service\n", "install ok installed " + debV1} {
		if !strings.Contains(out, want) {
			t.Errorf("install without systemd: output lacks %q:\n%s", want, out)
		}
	}
	out = nspawn(`DEBIAN_FRONTEND=noninteractive apt-get purge -y -q luna
for p in /usr/bin/luna /etc/luna /lib/systemd/system/luna.service /etc/systemd/system/multi-user.target.wants/luna.service; do
	if [ -e "$p" ] || [ -L "$p" ]; then echo "left behind: $p"; fi
done
if getent passwd luna; then echo "left behind: user luna"; fi
if getent group luna; then echo "left behind: group luna"; fi`)
	if strings.Contains(out, "left behind") {
		t.Errorf("purge without systemd:\n%s", out)
	}
}

// TestDebAppliance installs, upgrades, removes and purges the package in a
// booted appliance container.
func TestDebAppliance(t *testing.T) {
	needRoot(t)
	needTools(t, "systemd-nspawn", "nsenter", "debootstrap", "flock")
	_, lunactl := binaries(t)
	a := newBareAppliance(t, lunactl, map[string]string{
		debPath(t, debV1): "/root/pkg/luna_" + debV1 + "_amd64.deb",
		debPath(t, debV2): "/root/pkg/luna_" + debV2 + "_amd64.deb",
	})
	a.Boot()
	a.waitBooted()
	apt := func(args ...string) string {
		t.Helper()
		return a.must(append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y", "-q"}, args...)...)
	}

	// First install: enabled, not started.
	apt("install", "/root/pkg/luna_"+debV1+"_amd64.deb")
	if st := a.show("UnitFileState", "ActiveState", "FragmentPath"); st["UnitFileState"] != "enabled" || st["ActiveState"] != "inactive" ||
		st["FragmentPath"] != "/lib/systemd/system/luna.service" {
		t.Errorf("after the first install: %v; want enabled, inactive, from /lib/systemd/system/luna.service", st)
	}
	if out := a.must("getent", "passwd", "luna"); !strings.HasSuffix(strings.TrimSpace(out), ":/nonexistent:/usr/sbin/nologin") {
		t.Errorf("the luna user: %q", out)
	}
	if out := a.must("stat", "-c", "%a %U", "/etc/luna/luna.env", "/etc/luna/init.d"); out != "600 root\n755 root\n" {
		t.Errorf("modes of luna.env and init.d: %q", out)
	}
	if out, err := a.Exec("systemd-analyze", "verify", "luna.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify luna.service: %v\n%s", err, out)
	}

	// The operator's configuration: loopback ports of this test, a log
	// level and startup SQL.
	env := a.Read("etc/luna/luna.env")
	for name, value := range map[string]string{"LUNA_API_HOST_PORT": a.api, "LUNA_HEALTH_HOST_PORT": a.health} {
		var ok bool
		if env, ok = setEnv(env, name, value); !ok {
			t.Fatalf("the installed luna.env does not set %s", name)
		}
	}
	env += "LUNA_LOG_LEVEL=debug\n"
	if err := os.WriteFile(filepath.Join(a.Root, "etc/luna/luna.env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	a.write("etc/luna/init.d/10-tables.sql", preloadSQL)

	a.must("systemctl", "start", "luna.service")
	if out, _ := a.Exec("systemctl", "status", "--no-pager", "luna.service"); !strings.Contains(out, "Active: active (running)") {
		t.Fatalf("systemctl status after start:\n%s", out)
	}
	if got := a.query("SELECT count(*) FROM preload"); got != "1000" {
		t.Errorf("preload has %q rows, want 1000", got)
	}
	if code, _ := a.get("/readyz"); code != 200 {
		t.Errorf("/readyz answered %d", code)
	}
	// DynamicUser= takes the package's static user.
	pid := a.show("MainPID")["MainPID"]
	if out := a.must("stat", "-c", "%U", "/proc/"+pid); strings.TrimSpace(out) != "luna" {
		t.Errorf("luna runs as %q, want the luna user", out)
	}
	invocation := a.show("InvocationID")["InvocationID"]

	// Upgrade: the edited luna.env is kept and the service restarted.
	apt("install", "/root/pkg/luna_"+debV2+"_amd64.deb")
	if got := a.Read("etc/luna/luna.env"); got != env {
		t.Errorf("the upgrade changed the edited luna.env")
	}
	if a.exists("/etc/luna/luna.env.dpkg-new") || a.exists("/etc/luna/luna.env.dpkg-dist") {
		t.Errorf("the upgrade left a luna.env.dpkg-* file")
	}
	st := a.show("ActiveState", "SubState", "InvocationID", "MainPID")
	if st["ActiveState"] != "active" || st["SubState"] != "running" || st["InvocationID"] == invocation || st["MainPID"] == pid {
		t.Errorf("after the upgrade: %v; want active/running in a new invocation (was %s, PID %s)", st, invocation, pid)
	}
	if out := a.must("dpkg-query", "-W", "-f=${Version}", "luna"); out != debV2 {
		t.Errorf("installed version %q after the upgrade, want %s", out, debV2)
	}
	if got := a.query("SELECT count(*) FROM preload"); got != "1000" {
		t.Errorf("after the upgrade, preload has %q rows, want 1000", got)
	}
	if !strings.Contains(a.journalMessages(), `"level":"DEBUG"`) {
		t.Error("no debug records in the journal: the edited luna.env was not used")
	}

	// An administrator's disable and stop survive an upgrade (a reinstall
	// runs the same maintainer script steps).
	a.must("systemctl", "disable", "--now", "luna.service")
	apt("install", "--reinstall", "/root/pkg/luna_"+debV2+"_amd64.deb")
	if st := a.show("UnitFileState", "ActiveState"); st["UnitFileState"] != "disabled" || st["ActiveState"] != "inactive" {
		t.Errorf("after disable and an upgrade: %v; want disabled and inactive", st)
	}
	a.must("systemctl", "enable", "--now", "luna.service")

	// Remove: stopped, binaries and unit gone, configuration kept.
	apt("remove", "luna")
	if st := a.show("ActiveState", "LoadState"); st["ActiveState"] != "inactive" || st["LoadState"] != "not-found" {
		t.Errorf("after remove: %v; want inactive and not-found", st)
	}
	for _, p := range []string{"/usr/bin/luna", "/usr/bin/lunactl", "/lib/systemd/system/luna.service"} {
		if a.exists(p) {
			t.Errorf("after remove, %s is still there", p)
		}
	}
	if !a.exists("/etc/luna/luna.env") {
		t.Error("remove deleted the configuration; only purge should")
	}

	// Purge: nothing left.
	apt("purge", "luna")
	for _, p := range []string{"/etc/luna", "/var/lib/luna", "/var/lib/private/luna", "/var/lib/luna-home", "/var/lib/private/luna-home",
		"/etc/systemd/system/multi-user.target.wants/luna.service", "/etc/systemd/system/luna.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/luna.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/luna.service"} {
		if a.exists(p) {
			t.Errorf("after purge, %s is still there", p)
		}
	}
	if out, err := a.Exec("getent", "passwd", "luna"); err == nil {
		t.Errorf("after purge, the user is still there: %s", out)
	}
	if out, err := a.Exec("getent", "group", "luna"); err == nil {
		t.Errorf("after purge, the group is still there: %s", out)
	}
	if out, err := a.Exec("dpkg-query", "-W", "-f=${Status}", "luna"); err == nil && !strings.Contains(out, "not-installed") {
		t.Errorf("after purge, dpkg still knows luna: %s", out)
	}
	// list-unit-files exits 1 when no unit matches.
	if out, _ := a.Exec("systemctl", "list-unit-files", "--no-legend", "luna.service"); strings.Contains(out, "luna.service") {
		t.Errorf("after purge, systemd still has the unit: %s", out)
	}
}

// startupRun is the state of the node after a startup script run that the
// next run must not disturb.
type startupRun struct {
	stamps map[string]string
	pid    string
	invoc  string
}

func (a *appliance) startupState() startupRun {
	a.t.Helper()
	s := startupRun{stamps: map[string]string{}}
	for _, p := range []string{"/usr/bin/luna", "/etc/luna/luna.env", "/etc/luna/init.d/50-preload.sql", "/var/lib/dpkg/info/luna.list"} {
		s.stamps[p] = a.fileStamp(p)
	}
	st := a.show("MainPID", "InvocationID", "ActiveState", "SubState")
	if st["ActiveState"] != "active" || st["SubState"] != "running" {
		a.t.Fatalf("luna.service is %s/%s after the startup script, want active/running", st["ActiveState"], st["SubState"])
	}
	s.pid, s.invoc = st["MainPID"], st["InvocationID"]
	return s
}

// checkServing checks the node a startup script set up: running, serving
// the preloaded table to clients with the password only, the password
// nowhere on disk.
func (a *appliance) checkServing(passwd, passwdFrom string) {
	t := a.t
	t.Helper()
	if out, _ := a.Exec("systemctl", "status", "--no-pager", "luna.service"); !strings.Contains(out, "Active: active (running)") {
		t.Fatalf("systemctl status:\n%s", out)
	}
	if out := a.must("systemctl", "is-enabled", "luna.service"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("luna.service is %q, want enabled", out)
	}
	if got, err := a.queryPass("SELECT count(*) FROM preload", passwd); err != nil || got != "1000" {
		t.Errorf("preload with the password: %q %v, want 1000 rows", got, err)
	}
	if got, err := a.queryPass("SELECT 1", "wrong"); err == nil {
		t.Errorf("a wrong password was accepted (%q)", got)
	}
	if code, _ := a.get("/readyz"); code != 200 {
		t.Errorf("/readyz answered %d", code)
	}
	if env := a.Read("etc/luna/luna.env"); !strings.Contains(env, "\nLUNA_PASSWD_FROM="+passwdFrom+"\n") {
		t.Errorf("luna.env does not set LUNA_PASSWD_FROM=%s:\n%s", passwdFrom, env)
	}
	if out, err := a.Exec("grep", "-rlF", passwd, "/etc", "/var/lib", "/root", "/tmp", "/var/log", "/var/cache"); err == nil {
		t.Errorf("the password is on disk: %s", out)
	}
	if got := a.Read("etc/luna/init.d/50-preload.sql"); got != preloadSQL {
		t.Errorf("50-preload.sql is %q, want %q", got, preloadSQL)
	}
}

// checkSecondRun runs a startup script again with the same settings: it
// must leave everything as it was.
func (a *appliance) checkSecondRun(env []string, script string) {
	t := a.t
	t.Helper()
	before := a.startupState()
	out, err := a.ExecEnv(env, script)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	for _, want := range []string{"is already installed", "configuration is unchanged", "luna is ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("second run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "wrote ") {
		t.Errorf("second run rewrote files:\n%s", out)
	}
	after := a.startupState()
	for p, s := range before.stamps {
		if after.stamps[p] != s {
			t.Errorf("second run changed %s (%s -> %s)", p, s, after.stamps[p])
		}
	}
	if after.pid != before.pid || after.invoc != before.invoc {
		t.Errorf("second run restarted luna (PID %s -> %s)", before.pid, after.pid)
	}
	if n := strings.Count(a.must("cat", "/var/log/dpkg.log"), " install luna:"); n != 1 {
		t.Errorf("dpkg.log shows %d installs of luna, want 1", n)
	}
}

// fileServer serves the release directory on loopback, the way a bucket
// serves release files, and records the paths asked for.
func fileServer(t *testing.T, dir string) (string, *recorder) {
	rec := &recorder{}
	fs := http.FileServer(http.Dir(dir))
	return "http://" + serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r.URL.Path)
		fs.ServeHTTP(w, r)
	})), rec
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// secretSQL is startup SQL the scripts fetch from a secret source
// (LUNA_INIT_SQL_FROM), as CREATE SECRET statements would be.
const secretSQL = "CREATE TABLE from_secret AS SELECT 'classified' AS s;"

// checkInitSQLFiles checks the startup SQL files a startup script wrote:
// their content and that only root and the service's group can read them.
func (a *appliance) checkInitSQLFiles() {
	t := a.t
	t.Helper()
	for path, want := range map[string]string{
		"/etc/luna/init.d/50-preload.sql": preloadSQL,
		"/etc/luna/init.d/40-secret.sql":  secretSQL + "\n",
	} {
		if got := a.Read(path); got != want {
			t.Errorf("%s is %q, want %q", path, got, want)
		}
		if got := strings.TrimSpace(a.must("stat", "-c", "%a %U:%G", path)); got != "640 root:luna" {
			t.Errorf("%s: mode and owner %q, want 640 root:luna", path, got)
		}
	}
	if got := strings.TrimSpace(a.must("stat", "-c", "%a %U:%G", "/etc/luna/luna.env")); got != "600 root:root" {
		t.Errorf("luna.env: mode and owner %q, want 600 root:root", got)
	}
	if got, err := a.queryPass("SELECT s FROM from_secret", a.passwd); err != nil || got != "classified" {
		t.Errorf("the table of the secret startup SQL: %q %v", got, err)
	}
}

// checkRecord checks the release record of the installed package.
func (a *appliance) checkRecord(sum, version string) {
	a.t.Helper()
	if got, want := a.Read("var/lib/luna-release/release"), sum+" "+version+"\n"; got != want {
		a.t.Errorf("the release record is %q, want %q", got, want)
	}
}

// uploadGCS puts data into a fake-gcs-server bucket as object name.
func uploadGCS(t *testing.T, host, bucket, name string, data []byte) {
	t.Helper()
	u := "http://" + host + "/upload/storage/v1/b/" + bucket + "/o?uploadType=media&name=" + url.QueryEscape(name)
	resp, err := http.Post(u, "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("uploading gs://%s/%s: %s: %s", bucket, name, resp.Status, b)
	}
}

// TestStartupGCP runs scripts/startup-gcp-mig.sh in the appliance against a
// metadata server, a Cloud Storage emulator and a release URL on loopback:
// an install from a private gs:// bucket with the service account's token,
// preload, secret startup SQL and the password from metadata, a second run
// that downloads and changes nothing, a wrong checksum refused, an upgrade
// by changing the metadata, and a run whose download would fail but is not
// needed.
func TestStartupGCP(t *testing.T) {
	needRoot(t)
	needTools(t, "systemd-nspawn", "nsenter", "debootstrap", "flock")
	_, lunactl := binaries(t)
	dir := releaseDir(t)
	base, files := fileServer(t, dir)
	deb1, deb2 := "luna_"+debV1+"_amd64.deb", "luna_"+debV2+"_amd64.deb"
	sum1, sum2 := sha256Of(t, filepath.Join(dir, deb1)), sha256Of(t, filepath.Join(dir, deb2))

	// The release in a private bucket; the recorder shows the token sent.
	gcs := objstoretest.StartFakeGCS(t)
	gcs.CreateBucket(t, "luna-releases")
	deb1Bytes, err := os.ReadFile(filepath.Join(dir, deb1))
	if err != nil {
		t.Fatal(err)
	}
	uploadGCS(t, gcs.Host, "luna-releases", "releases/v1/"+deb1, deb1Bytes)
	storage := objstoretest.StartRecorder(t, gcs.Host, nil)

	a := newBareAppliance(t, lunactl, map[string]string{
		filepath.Join(testenv.RepoRoot(), "scripts", "startup-gcp-mig.sh"): "/root/startup-gcp-mig.sh",
	})
	a.passwd = "gcp-Pa55-from-metadata-7f3a"
	const token = "ya29.startup-test-token"
	md := &fakeGCEMetadata{token: token, attrs: map[string]string{
		"luna-release-url":    "gs://luna-releases/releases/v1/" + deb1,
		"luna-release-sha256": strings.ToUpper(sum1), // case does not matter
		"luna-init-sql":       preloadSQL,
		"luna-init-sql-from":  "gcp-metadata:luna-init-secret",
		"luna-init-secret":    secretSQL,
		"luna-passwd":         a.passwd,
		"luna-env":            "# ports of this test\nLUNA_API_HOST_PORT=" + a.api + "\nLUNA_HEALTH_HOST_PORT=" + a.health + "\n",
	}}
	mdHost := serve(t, md)
	env := []string{"GCE_METADATA_HOST=" + mdHost, "STORAGE_EMULATOR_HOST=" + storage.Addr}
	a.Boot()
	a.waitBooted()

	out, err := a.ExecEnv(env, "/root/startup-gcp-mig.sh")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run:\n%s", nspawn.Tail(out, 12))
	if !strings.Contains(out, "installing luna "+debV1) || !strings.Contains(out, "luna is ready") {
		t.Errorf("first run output:\n%s", out)
	}
	a.checkServing(a.passwd, "gcp-metadata:luna-passwd")
	a.checkInitSQLFiles()
	a.checkRecord(sum1, debV1)
	if envFile := a.Read("etc/luna/luna.env"); !strings.Contains(envFile, "\nGCE_METADATA_HOST="+mdHost+"\n") ||
		!strings.Contains(envFile, "\nLUNA_API_HOST_PORT="+a.api+"\n") {
		t.Errorf("luna.env lacks the metadata host or the ports:\n%s", envFile)
	}
	// One download, through the JSON API, with the service account's token.
	var gets []string
	for _, r := range storage.Requests() {
		gets = append(gets, r.Method+" "+r.URI+" "+r.Header.Get("Authorization"))
	}
	if want := "GET /storage/v1/b/luna-releases/o/releases%2Fv1%2F" + url.PathEscape(deb1) + "?alt=media Bearer " + token; len(gets) != 1 || gets[0] != want {
		t.Errorf("storage requests %q, want [%q]", gets, want)
	}
	// The script asked for each setting with the flavor header, and the
	// server read the password (luna-passwd).
	reqs := strings.Join(md.list(), "\n")
	for _, attr := range []string{"luna-release-url", "luna-release-sha256", "luna-init-sql", "luna-init-sql-from", "luna-init-secret", "luna-passwd-from", "luna-env", "luna-passwd"} {
		if !strings.Contains(reqs+"\n", "GET /computeMetadata/v1/instance/attributes/"+attr+"\n") {
			t.Errorf("no metadata request for %s:\n%s", attr, reqs)
		}
	}
	if strings.Contains(reqs, "NO-FLAVOR") {
		t.Errorf("metadata requests without Metadata-Flavor: Google:\n%s", reqs)
	}

	a.checkSecondRun(env, "/root/startup-gcp-mig.sh")
	if n := len(storage.Requests()); n != 1 {
		t.Errorf("the second run downloaded the release again (%d storage requests)", n)
	}

	// The second version with a checksum that is not its own: refused,
	// the running version untouched.
	before := a.startupState()
	wrong := strings.Repeat("ab", 32)
	md.set("luna-release-url", base+"/"+deb2)
	md.set("luna-release-sha256", wrong)
	out, err = a.ExecEnv(env, "/root/startup-gcp-mig.sh")
	if err == nil {
		t.Fatalf("a wrong checksum was accepted:\n%s", out)
	}
	if want := "SHA-256 mismatch for " + base + "/" + deb2 + ": expected " + wrong + ", got " + sum2 + "; not installing it"; !strings.Contains(out, want) {
		t.Errorf("wrong checksum: output lacks %q:\n%s", want, out)
	}
	if after := a.startupState(); after.pid != before.pid || after.stamps["/usr/bin/luna"] != before.stamps["/usr/bin/luna"] {
		t.Error("a refused package changed the node")
	}

	// With the right checksum the node upgrades and keeps serving.
	md.set("luna-release-sha256", sum2)
	out, err = a.ExecEnv(env, "/root/startup-gcp-mig.sh")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.must("dpkg-query", "-W", "-f=${Version}", "luna"); got != debV2 {
		t.Errorf("after the upgrade run, luna %s is installed, want %s:\n%s", got, debV2, out)
	}
	if after := a.startupState(); after.pid == before.pid {
		t.Error("the upgrade did not restart luna")
	}
	a.checkServing(a.passwd, "gcp-metadata:luna-passwd")
	a.checkRecord(sum2, debV2)
	t.Logf("release downloads: %q", files.list())

	// Every setting from the environment: the script asks the metadata
	// server nothing (the server reads the secret startup SQL there) and,
	// as nothing changed, restarts nothing.
	asked := len(md.list())
	settings := append(env,
		"LUNA_RELEASE_URL="+base+"/"+deb2, "LUNA_RELEASE_SHA256="+sum2,
		"LUNA_INIT_SQL_B64="+base64.StdEncoding.EncodeToString([]byte(preloadSQL)),
		"LUNA_INIT_SQL_FROM=gcp-metadata:luna-init-secret",
		"LUNA_PASSWD_FROM=gcp-metadata:luna-passwd",
		"LUNA_TLS_FROM=", "LUNA_TLS_CLIENT_CA_FROM=", "LUNA_USERS_FROM=",
		"LUNA_ENV=LUNA_API_HOST_PORT="+a.api+"\nLUNA_HEALTH_HOST_PORT="+a.health)
	out, err = a.ExecEnv(settings, "/root/startup-gcp-mig.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "configuration is unchanged") {
		t.Errorf("run with the settings in the environment:\n%s", out)
	}
	for _, r := range md.list()[asked:] {
		if r != "GET /computeMetadata/v1/instance/attributes/luna-init-secret" {
			t.Errorf("with every setting in the environment, the script still asked the metadata server for %q", r)
		}
	}

	// A release URL nothing answers, for the installed package's SHA-256:
	// nothing is downloaded, so the boot succeeds without the network.
	downloads := len(files.list())
	out, err = a.ExecEnv(append(env, "LUNA_RELEASE_URL=http://"+closedAddr(t)+"/"+deb2, "LUNA_RELEASE_SHA256="+sum2), "/root/startup-gcp-mig.sh")
	if err != nil {
		t.Fatalf("with an unreachable release URL for the installed version: %v", err)
	}
	if !strings.Contains(out, "luna "+debV2+" is already installed from a package of this SHA-256: not downloading") ||
		!strings.Contains(out, "luna is ready") || strings.Contains(out, "startup-gcp-mig: downloading") {
		t.Errorf("run with an unreachable release URL:\n%s", out)
	}
	if n := len(files.list()); n != downloads {
		t.Errorf("release downloads: %q", files.list()[downloads:])
	}

	checkTLSAndUsers(t, a, md, env, "/root/startup-gcp-mig.sh")
}

// checkTLSAndUsers turns on TLS and named users through the metadata
// (luna-tls-from, luna-users-from: secrets the node fetches, here from
// the metadata server itself), checks a TLS client with a named user's
// role, then renews the certificate: the next run rewrites the file
// without restarting luna, and the next handshake presents it.
func checkTLSAndUsers(t *testing.T, a *appliance, md *fakeGCEMetadata, env []string, script string) {
	t.Helper()
	pki := newTestPKI(t)
	md.set("luna-tls", pki.serverBundle(t, a.api, 501))
	md.set("luna-tls-from", "gcp-metadata:luna-tls")
	md.set("luna-users", usersLine(t, "dash", "dash-Pa55", "read"))
	md.set("luna-users-from", "gcp-metadata:luna-users")
	out, err := a.ExecEnv(env, script)
	if err != nil {
		t.Fatalf("run with TLS and users: %v\n%s", err, out)
	}
	if !strings.Contains(out, "configuration changed: restarting luna") || !strings.Contains(out, "luna is ready") {
		t.Errorf("run with TLS and users:\n%s", out)
	}
	if got := strings.TrimSpace(a.must("stat", "-c", "%a %U:%G", "/etc/luna/tls/server.pem")); got != "640 root:luna" {
		t.Errorf("server.pem is %s, want 640 root:luna", got)
	}
	envFile := a.Read("etc/luna/luna.env")
	for _, want := range []string{"\nLUNA_TLS_CERT_FILE=/etc/luna/tls/server.pem\n", "\nLUNA_TLS_KEY_FILE=/etc/luna/tls/server.pem\n", "\nLUNA_USERS_FROM=gcp-metadata:luna-users\n"} {
		if !strings.Contains(envFile, want) {
			t.Errorf("luna.env lacks %q:\n%s", strings.TrimSpace(want), envFile)
		}
	}
	lunactl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stdout, stderr, err := run(ctx, "", a.lunactl, append([]string{"-addr", a.api, "-tls-ca-file", pki.caFile, "--format", "csv"}, args...)...)
		return strings.TrimSpace(stdout + stderr), err
	}
	if got, err := lunactl("-user", "dash", "-pass", "dash-Pa55", "-p", "SELECT count(*) FROM preload"); err != nil || !strings.HasSuffix(got, "\n1000") {
		t.Errorf("dash over TLS: %q %v", got, err)
	}
	if got, err := lunactl("-user", "dash", "-pass", "dash-Pa55", "-x", "-p", "DROP TABLE preload"); err == nil || !strings.Contains(got, "permission denied: role read cannot run DROP") {
		t.Errorf("dash's DROP: %q %v, want the read role's denial", got, err)
	}
	// The password still works, plain too (TLS is not required).
	if got, err := a.queryPass("SELECT count(*) FROM preload", a.passwd); err != nil || got != "1000" {
		t.Errorf("plain client with the password: %q %v", got, err)
	}
	if got := pki.servedSerial(t, a.api); got != 501 {
		t.Fatalf("served certificate %d, want 501", got)
	}

	// A renewal: the file changes, luna does not restart, the next
	// handshake presents the new certificate.
	before := a.startupState()
	md.set("luna-tls", pki.serverBundle(t, a.api, 502))
	out, err = a.ExecEnv(env, script)
	if err != nil {
		t.Fatalf("run with a renewed certificate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "wrote /etc/luna/tls/server.pem") || !strings.Contains(out, "configuration is unchanged") {
		t.Errorf("run with a renewed certificate:\n%s", out)
	}
	if after := a.startupState(); after.pid != before.pid {
		t.Error("a renewed certificate restarted luna")
	}
	deadline := time.Now().Add(20 * time.Second)
	for pki.servedSerial(t, a.api) != 502 {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served within 20s")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// closedAddr is a loopback host:port nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// TestStartupAWS runs scripts/startup-aws-asg.sh in the appliance with its
// settings in the environment, the region and the instance role's
// credentials from a loopback IMDSv2, the release from a private S3 bucket
// (versitygw, behind a front that checks the role's signature) and the
// password and the secret startup SQL from a loopback SSM endpoint:
// malformed settings and a wrong checksum are refused before anything is
// installed, then an install and a second run that changes nothing.
// Operator access comes first: amazon-ssm-agent from the region's public
// bucket and the SSH keys in admin's authorized_keys are in place even when
// the release cannot be installed, and a change of keys rewrites only
// them.
func TestStartupAWS(t *testing.T) {
	needRoot(t)
	needTools(t, "systemd-nspawn", "nsenter", "debootstrap", "flock")
	_, lunactl := binaries(t)
	dir := releaseDir(t)
	base, _ := fileServer(t, dir)
	deb1, deb2 := "luna_"+debV1+"_amd64.deb", "luna_"+debV2+"_amd64.deb"
	sum1, sum2 := sha256Of(t, filepath.Join(dir, deb1)), sha256Of(t, filepath.Join(dir, deb2))

	const passwd = "aws-Pa55-from-ssm-91c2"
	imds := &fakeIMDS{region: "eu-west-3", role: "luna-node",
		keyID: "ASIAROLETEST", secret: "role/secret+key", session: "role-session/token+="}
	ssm := &fakeSSM{params: map[string]string{"/luna/passwd": passwd, "/luna/init-sql": secretSQL}}
	imdsURL, ssmURL := "http://"+serve(t, imds), "http://"+serve(t, ssm)
	vgw := objstoretest.StartVersityGW(t)
	vgw.CreateBucket(t, "luna-releases")
	deb2Bytes, err := os.ReadFile(filepath.Join(dir, deb2))
	if err != nil {
		t.Fatal(err)
	}
	vgw.PutObject(t, "luna-releases", "releases/"+deb2, deb2Bytes)
	// Where "Manually install SSM Agent on Debian Server instances" (AWS
	// Systems Manager User Guide) has the agent: amazon-ssm-REGION,
	// latest/debian_amd64/amazon-ssm-agent.deb, public.
	vgw.CreateBucket(t, "amazon-ssm-eu-west-3")
	vgw.PutObject(t, "amazon-ssm-eu-west-3", "latest/debian_amd64/amazon-ssm-agent.deb", fakeSSMAgentDeb(t))
	s3 := &s3Front{keyID: imds.keyID, secret: imds.secret, session: imds.session, region: imds.region, s3: vgw, public: "amazon-ssm-eu-west-3"}
	s3URL := "http://" + serve(t, s3)
	release := "s3://luna-releases/releases/" + deb2

	script := "/root/startup-aws-asg.sh"
	a := newBareAppliance(t, lunactl, map[string]string{
		filepath.Join(testenv.RepoRoot(), "scripts", "startup-aws-asg.sh"): script,
	})
	a.passwd = passwd
	// Stands in for the instance profile and the regional endpoint, which
	// the server's AWS SDK would find on EC2.
	a.write("etc/systemd/system/luna.service.d/aws-test.conf", "[Service]\n"+
		"Environment=AWS_ACCESS_KEY_ID=AKIDLUNATEST AWS_SECRET_ACCESS_KEY=luna-test-secret\n"+
		"Environment=AWS_ENDPOINT_URL_SSM="+ssmURL+" AWS_EC2_METADATA_DISABLED=true\n")
	a.Boot()
	a.waitBooted()
	// Debian's AMIs log in as admin, whose authorized_keys may hold keys of
	// its own.
	const ownKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKuL2H5krWDGGUZvDIosqIa7glMwpCBQ4ip8cFfTSJHk from-the-key-pair"
	keys := []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeTMeXba6g45lEQlFJurzL44thKbnq+UbtlraoSfw0G alice@laptop",
		"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKI8t8uR1Q3z/Yg3wddPMR9aLz5U5DX0mufbzHbHS8ZV96WcbaCSokOq7m/hT2A2vUeb1vj7bWZc3Esis2BWMKs= carol",
	}
	a.must("useradd", "--create-home", "--shell", "/bin/bash", "admin")
	a.must("install", "-d", "-m", "0700", "-o", "admin", "-g", "admin", "/home/admin/.ssh")
	a.must("sh", "-c", "echo '"+ownKey+"' >/home/admin/.ssh/authorized_keys && chown admin:admin /home/admin/.ssh/authorized_keys && chmod 0600 /home/admin/.ssh/authorized_keys")
	authorized := func() string { return a.must("cat", "/home/admin/.ssh/authorized_keys") }
	agentInstalls := func() int {
		return strings.Count(a.must("cat", "/var/log/dpkg.log"), " install amazon-ssm-agent:")
	}

	good := map[string]string{
		"LUNA_SSM_AGENT":                    "yes",
		"LUNA_SSH_AUTHORIZED_KEYS":          keys[0] + "\n" + keys[1],
		"LUNA_RELEASE_URL":                  release,
		"LUNA_RELEASE_SHA256":               sum2,
		"LUNA_PASSWD_SSM_PARAMETER":         "/luna/passwd",
		"LUNA_INIT_SQL_B64":                 base64.StdEncoding.EncodeToString([]byte(preloadSQL)),
		"LUNA_INIT_SQL_FROM":                "aws-ssm:/luna/init-sql",
		"LUNA_ENV":                          "LUNA_API_HOST_PORT=" + a.api + "\nLUNA_HEALTH_HOST_PORT=" + a.health,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": imdsURL,
		"AWS_ENDPOINT_URL_S3":               s3URL,
		// For luna fetch-secret, which takes the role's credentials.
		"AWS_ENDPOINT_URL_SSM": ssmURL,
	}
	envWith := func(change map[string]string) []string {
		var env []string
		for k, v := range good {
			if c, ok := change[k]; ok {
				v = c
			}
			if v != "<unset>" {
				env = append(env, k+"="+v)
			}
		}
		for k, v := range change {
			if _, ok := good[k]; !ok {
				env = append(env, k+"="+v)
			}
		}
		return env
	}
	// Malformed access settings are refused before anything is done.
	for _, tc := range []struct {
		change map[string]string
		want   string
	}{
		{map[string]string{"LUNA_SSH_AUTHORIZED_KEYS": keys[0] + "\nnot a key"}, "line 2 of LUNA_SSH_AUTHORIZED_KEYS is not an OpenSSH public key"},
		{map[string]string{"LUNA_SSH_AUTHORIZED_KEYS": `command="/bin/sh" ` + keys[0]}, "line 1 of LUNA_SSH_AUTHORIZED_KEYS is not an OpenSSH public key (TYPE BASE64 [COMMENT], no options)"},
		{map[string]string{"LUNA_SSH_AUTHORIZED_KEYS": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU="}, "line 1 of LUNA_SSH_AUTHORIZED_KEYS is not an OpenSSH public key"},
		{map[string]string{"LUNA_SSM_AGENT": "maybe"}, "LUNA_SSM_AGENT must be yes or no, got 'maybe'"},
		{map[string]string{"LUNA_SSH_USER": "Admin User"}, "LUNA_SSH_USER must be a user name"},
	} {
		out, err := a.ExecEnv(envWith(tc.change), script)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("startup-aws-asg.sh with %v: %v; want a failure saying %q:\n%s", tc.change, err, tc.want, out)
		}
		if strings.Contains(out, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU") {
			t.Errorf("the error shows the private key:\n%s", out)
		}
	}
	if n := agentInstalls(); n != 0 || authorized() != ownKey+"\n" || len(s3.list()) != 0 {
		t.Fatalf("refused runs set up access: %d agent installs, S3 %q, authorized_keys:\n%s", n, s3.list(), authorized())
	}
	for _, tc := range []struct {
		change map[string]string
		want   string
	}{
		{map[string]string{"LUNA_PASSWD_SSM_PARAMETER": "<unset>"}, "no password source: set LUNA_PASSWD_SSM_PARAMETER"},
		{map[string]string{"LUNA_PASSWD_SSM_PARAMETER": "bad name!"}, "LUNA_PASSWD_SSM_PARAMETER must be an SSM parameter name"},
		{map[string]string{"LUNA_PASSWD_FROM": "not a source"}, "LUNA_PASSWD_FROM must be KIND:NAME"},
		{map[string]string{"LUNA_INIT_SQL_FROM": "none"}, "LUNA_INIT_SQL_FROM must be KIND:NAME"},
		{map[string]string{"LUNA_RELEASE_URL": "<unset>"}, "no release URL: set LUNA_RELEASE_URL"},
		{map[string]string{"LUNA_RELEASE_URL": "ftp://example/luna.deb"}, "release URL must be http://, https://, gs://BUCKET/OBJECT or s3://BUCKET/KEY"},
		{map[string]string{"LUNA_RELEASE_URL": "s3://luna-releases/luna 1.deb"}, "release URL must be"},
		{map[string]string{"LUNA_RELEASE_URL": "s3://Bad_Bucket/luna.deb"}, "release URL must be"},
		{map[string]string{"LUNA_RELEASE_URL": "gs://luna-releases/" + deb2}, "gs:// needs a Google service account"},
		{map[string]string{"LUNA_RELEASE_SHA256": ""}, "no release SHA-256: set LUNA_RELEASE_SHA256"},
		{map[string]string{"LUNA_RELEASE_SHA256": "abc"}, "release SHA-256 must be 64 hex digits, got 'abc'"},
		{map[string]string{"LUNA_INIT_SQL_B64": "!!not base64!!"}, "LUNA_INIT_SQL_B64 is not valid base64"},
		{map[string]string{"LUNA_ENV": "LUNA_PASSWD=in-the-clear"}, "LUNA_PASSWD cannot be set through LUNA_ENV"},
		{map[string]string{"LUNA_ENV": "HOME=/"}, "bad setting 'HOME' in LUNA_ENV"},
		{map[string]string{"LUNA_ENV": "LUNA_MEMORY_LIMIT=4GB\nLUNA_THREADS 4"}, "bad setting 'LUNA_THREADS 4' in LUNA_ENV"},
		{map[string]string{"LUNA_RELEASE_URL": base + "/missing.deb"}, "downloading " + base + "/missing.deb failed"},
		{map[string]string{"LUNA_RELEASE_URL": "s3://luna-releases/missing.deb"}, "downloading s3://luna-releases/missing.deb failed"},
		{map[string]string{"LUNA_RELEASE_SHA256": sum1}, "SHA-256 mismatch for " + release + ": expected " + sum1 + ", got " + sum2 + "; not installing it"},
	} {
		out, err := a.ExecEnv(envWith(tc.change), script)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("startup-aws-asg.sh with %v: %v; want a failure saying %q:\n%s", tc.change, err, tc.want, out)
		}
		// A password pasted into the wrong variable is not echoed.
		if v := tc.change["LUNA_PASSWD_FROM"]; v != "" && strings.Contains(out, v) {
			t.Errorf("the error shows the value of LUNA_PASSWD_FROM:\n%s", out)
		}
	}
	if out, err := a.Exec("dpkg-query", "-W", "-f=${Status}", "luna"); err == nil && strings.Contains(out, "installed") && !strings.Contains(out, "not-installed") {
		t.Fatalf("refused runs installed luna: %s", out)
	}
	if a.exists("/etc/luna") {
		t.Error("refused runs created /etc/luna")
	}
	// The runs that got as far as the download set up access first, so a
	// node whose release fails can be reached: the agent once, unsigned
	// from the public bucket, running; the keys after admin's own.
	agentGET := "GET /amazon-ssm-eu-west-3/latest/debian_amd64/amazon-ssm-agent.deb public"
	gets := 0
	for _, r := range s3.list() {
		if r == agentGET {
			gets++
		}
	}
	if n := agentInstalls(); n != 1 || gets != 1 {
		t.Errorf("%d agent installs, S3 requests %q: want the agent downloaded and installed once", n, s3.list())
	}
	if out, _ := a.Exec("systemctl", "is-active", "amazon-ssm-agent.service"); strings.TrimSpace(out) != "active" {
		t.Errorf("amazon-ssm-agent.service is %q", strings.TrimSpace(out))
	}
	wantKeys := ownKey + "\n# luna: keys from LUNA_SSH_AUTHORIZED_KEYS\n" + keys[0] + "\n" + keys[1] + "\n# luna: end of keys from LUNA_SSH_AUTHORIZED_KEYS\n"
	if got := authorized(); got != wantKeys {
		t.Errorf("authorized_keys:\n%s\nwant:\n%s", got, wantKeys)
	}
	if got := a.must("stat", "-c", "%a %U:%G", "/home/admin/.ssh", "/home/admin/.ssh/authorized_keys"); got != "700 admin:admin\n600 admin:admin\n" {
		t.Errorf("modes and owners: %q", got)
	}
	if len(ssm.list()) != 0 {
		t.Errorf("refused runs reached SSM: %q", ssm.list())
	}
	s3.reset()

	env := envWith(nil)
	out, err := a.ExecEnv(env, script)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first run:\n%s", nspawn.Tail(out, 12))
	a.checkServing(passwd, "aws-ssm:/luna/passwd")
	a.checkInitSQLFiles()
	a.checkRecord(sum2, debV2)
	if envFile := a.Read("etc/luna/luna.env"); !strings.Contains(envFile, "\nAWS_REGION=eu-west-3\n") {
		t.Errorf("luna.env lacks the instance's region:\n%s", envFile)
	}
	// The release: one GET signed with the role's session credentials.
	if want := "GET /luna-releases/releases/" + strings.ReplaceAll(deb2, "+", "%2B") + " ok"; !slices.Equal(s3.list(), []string{want}) {
		t.Errorf("S3 requests %q, want [%q]", s3.list(), want)
	}
	// The server read its password with its own credentials, the script
	// the secret startup SQL with the role's.
	ssmReqs := ssm.list()
	var passwdReqs, sqlReqs int
	for _, r := range ssmReqs {
		switch r {
		case "POST / AmazonSSM.GetParameter name=/luna/passwd decrypt=true scope=AKIDLUNATEST/eu-west-3/ssm/aws4_request":
			passwdReqs++
		case "POST / AmazonSSM.GetParameter name=/luna/init-sql decrypt=true scope=ASIAROLETEST/eu-west-3/ssm/aws4_request":
			sqlReqs++
		default:
			t.Errorf("unexpected SSM request %q", r)
		}
	}
	if passwdReqs == 0 || sqlReqs != 1 {
		t.Errorf("SSM requests %q: want the password (by the server) and the startup SQL once (by the script)", ssmReqs)
	}
	imdsReqs := strings.Join(imds.list(), "\n")
	for _, want := range []string{"PUT /latest/api/token", "GET /latest/meta-data/placement/region",
		"GET /latest/meta-data/iam/security-credentials/", "GET /latest/meta-data/iam/security-credentials/luna-node"} {
		if !strings.Contains(imdsReqs+"\n", want+"\n") {
			t.Errorf("no IMDS request %q:\n%s", want, imdsReqs)
		}
	}
	if strings.Contains(imdsReqs, "unexpected") {
		t.Errorf("IMDS requests without a session token:\n%s", imdsReqs)
	}

	a.checkSecondRun(env, script)
	if n := len(s3.list()); n != 1 {
		t.Errorf("the second run downloaded the release again: %q", s3.list())
	}
	if n := agentInstalls(); n != 1 {
		t.Errorf("%d agent installs, want 1", n)
	}

	// One key less: the block is rewritten, admin's own key stays, and
	// Luna keeps running.
	before := a.startupState()
	out, err = a.ExecEnv(envWith(map[string]string{"LUNA_SSH_AUTHORIZED_KEYS": keys[1]}), script)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "wrote /home/admin/.ssh/authorized_keys (LUNA_SSH_AUTHORIZED_KEYS)") || strings.Contains(out, "restarting luna") {
		t.Errorf("run with other keys:\n%s", out)
	}
	wantKeys = ownKey + "\n# luna: keys from LUNA_SSH_AUTHORIZED_KEYS\n" + keys[1] + "\n# luna: end of keys from LUNA_SSH_AUTHORIZED_KEYS\n"
	if got := authorized(); got != wantKeys {
		t.Errorf("authorized_keys:\n%s\nwant:\n%s", got, wantKeys)
	}
	if after := a.startupState(); after.pid != before.pid {
		t.Errorf("changing the keys restarted luna (PID %s -> %s)", before.pid, after.pid)
	}
	// No keys: the block goes, admin's own key stays.
	if _, err := a.ExecEnv(envWith(map[string]string{"LUNA_SSH_AUTHORIZED_KEYS": "<unset>"}), script); err != nil {
		t.Fatal(err)
	}
	if got := authorized(); got != ownKey+"\n" {
		t.Errorf("authorized_keys without LUNA_SSH_AUTHORIZED_KEYS:\n%s", got)
	}
	// A login user the image lacks costs access, not the node.
	out, err = a.ExecEnv(envWith(map[string]string{"LUNA_SSH_USER": "ec2-user"}), script)
	if err != nil || !strings.Contains(out, "warning: no user ec2-user with a home directory: not adding LUNA_SSH_AUTHORIZED_KEYS (set LUNA_SSH_USER)") {
		t.Errorf("run with a missing login user: %v\n%s", err, out)
	}
}

// fakeSSMAgentDeb is a package named amazon-ssm-agent with a service that
// stays up, standing in for AWS's.
func fakeSSMAgentDeb(t *testing.T) []byte {
	t.Helper()
	needTools(t, "dpkg-deb")
	dir := t.TempDir()
	files := map[string]string{
		"DEBIAN/control": "Package: amazon-ssm-agent\nVersion: 3.3.0.0-test\nArchitecture: amd64\nMaintainer: Luna tests <tests@localhost>\n" +
			"Description: stands in for AWS's agent\n",
		"usr/lib/systemd/system/amazon-ssm-agent.service": "[Unit]\nDescription=amazon-ssm-agent stand-in\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, "root", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(dir, "amazon-ssm-agent.deb")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, stderr, err := run(ctx, "", "dpkg-deb", "--root-owner-group", "--build", filepath.Join(dir, "root"), deb); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, stderr)
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
