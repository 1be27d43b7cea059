package systemd

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/nspawn"
	"github.com/lunadb/luna/internal/testenv"
)

const maxExposure = 2.5

// TestUnitVerify runs systemd-analyze verify on the unit. It checks that the
// ExecStart binary exists, so the unit is verified as a copy whose ExecStart
// names the freshly built server; nothing else is changed. verify exits 0
// even on bad values, so the test insists on an empty stderr.
func TestUnitVerify(t *testing.T) {
	needTools(t, "systemd-analyze")
	luna, _ := binaries(t)
	unit, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "systemd", "luna.service"))
	if err != nil {
		t.Fatal(err)
	}
	const execStart = "\nExecStart=/usr/bin/luna\n"
	if strings.Count(string(unit), execStart) != 1 {
		t.Fatalf("luna.service must have exactly one line %q", strings.TrimSpace(execStart))
	}
	copy := filepath.Join(t.TempDir(), "luna.service")
	rewritten := strings.Replace(string(unit), execStart, "\nExecStart="+luna+"\n", 1)
	if err := os.WriteFile(copy, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, err := run(ctx, "", "systemd-analyze", "verify", copy)
	if err != nil {
		t.Fatal(err)
	}
	if stderr != "" || stdout != "" {
		t.Fatalf("systemd-analyze verify reported problems:\n%s%s", stdout, stderr)
	}
}

// TestUnitSecurity scores the unit's sandbox offline.
func TestUnitSecurity(t *testing.T) {
	needTools(t, "systemd-analyze")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	unit := filepath.Join(testenv.RepoRoot(), "systemd", "luna.service")
	stdout, stderr, err := run(ctx, "", "systemd-analyze", "security", "--offline=yes", unit)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Overall exposure level for luna\.service: ([0-9]+(?:\.[0-9]+)?)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no overall exposure level in the output:\n%s%s", stdout, stderr)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("overall exposure level: %.1f", score)
	if score > maxExposure {
		t.Fatalf("exposure level %.1f is above %.1f:\n%s", score, maxExposure, stdout)
	}
	if stderr != "" {
		t.Fatalf("systemd-analyze security complained:\n%s", stderr)
	}
}

// envLine is one LUNA_* assignment in luna.env, set or commented out.
type envLine struct {
	name, value string
	set         bool
	line        int
}

var envLineRE = regexp.MustCompile(`^(#?)(LUNA_[A-Z0-9_]+)=(.*)$`)

func readEnvFile(t *testing.T) []envLine {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "systemd", "luna.env"))
	if err != nil {
		t.Fatal(err)
	}
	var out []envLine
	var prev string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := envLineRE.FindStringSubmatch(line); m != nil {
			if !strings.HasPrefix(prev, "#") || envLineRE.MatchString(prev) {
				t.Errorf("luna.env:%d: %s has no explanation on the line above", n, m[2])
			}
			out = append(out, envLine{name: m[2], value: m[3], set: m[1] == "", line: n})
		}
		prev = line
	}
	return out
}

// helpVariables lists the variables `luna --help` documents.
func helpVariables(t *testing.T, luna string) []string {
	t.Helper()
	out, err := exec.Command(luna, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("luna --help: %v\n%s", err, out)
	}
	var names []string
	for _, m := range regexp.MustCompile(`\(env (LUNA_[A-Z0-9_]+)`).FindAllStringSubmatch(string(out), -1) {
		// --version is a command, not configuration.
		if m[1] != "LUNA_VERSION" {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatalf("luna --help lists no environment variables:\n%s", out)
	}
	sort.Strings(names)
	return names
}

// TestEnvFile checks that luna.env documents every variable the server reads,
// only those, and sets exactly the appliance defaults.
func TestEnvFile(t *testing.T) {
	luna, _ := binaries(t)
	lines := readEnvFile(t)
	documented := map[string]envLine{}
	for _, l := range lines {
		if _, dup := documented[l.name]; dup {
			t.Errorf("luna.env:%d: %s appears twice", l.line, l.name)
		}
		documented[l.name] = l
	}
	known := map[string]bool{}
	for _, name := range helpVariables(t, luna) {
		known[name] = true
		if _, ok := documented[name]; !ok {
			t.Errorf("luna.env does not document %s", name)
		}
	}
	for _, l := range lines {
		if !known[l.name] {
			t.Errorf("luna.env:%d: %s is not a variable luna reads (see luna --help)", l.line, l.name)
		}
	}
	want := map[string]string{
		"LUNA_API_HOST_PORT":       "0.0.0.0:7688",
		"LUNA_HEALTH_HOST_PORT":    "0.0.0.0:7689",
		"LUNA_INIT_SQL":            "/etc/luna/init.d",
		"LUNA_DB_HOME_DIR":         "/var/lib/luna-home",
		"LUNA_OBJECT_CACHE_DIR":    "/var/lib/luna/object-cache",
		"LUNA_ALLOWED_DIRECTORIES": "/var/lib/luna",
		"LUNA_TEMP_DIR":            "/var/lib/luna/tmp",
		"LUNA_LOG_FORMAT":          "json",
		"LUNA_IDLE_TIMEOUT":        "15m",
		"LUNA_DRAIN_DELAY":         "40s",
		"LUNA_QUERY_LOG":           "all",
	}
	for _, l := range lines {
		if w, ok := want[l.name]; ok && (!l.set || l.value != w) {
			t.Errorf("luna.env:%d: want %s=%s set", l.line, l.name, w)
		} else if !ok && l.set {
			t.Errorf("luna.env:%d: %s should be commented out (only the appliance defaults are set)", l.line, l.name)
		}
	}
}

// TestEnvFileValues starts the server with every value luna.env shows,
// commented out or not, so the documented defaults are ones the server
// accepts. Addresses and directories are moved to loopback and temp dirs.
func TestEnvFileValues(t *testing.T) {
	luna, _ := binaries(t)
	dir := t.TempDir()
	initDir := filepath.Join(dir, "init.d")
	if err := os.Mkdir(initDir, 0o755); err != nil {
		t.Fatal(err)
	}
	local := map[string]string{
		"LUNA_API_HOST_PORT":    "127.0.0.1:0",
		"LUNA_HEALTH_HOST_PORT": "127.0.0.1:0",
		"LUNA_INIT_SQL":         initDir,
		"LUNA_DB_HOME_DIR":      dir,
		"LUNA_TEMP_DIR":         filepath.Join(dir, "tmp"),
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, l := range readEnvFile(t) {
		v := unquote(l.value)
		if lv, ok := local[l.name]; ok {
			v = lv
		}
		if v != "" {
			env = append(env, l.name+"="+v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, luna)
	cmd.Env = env
	var logs nspawn.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	serving := nspawn.WaitFor(30*time.Second, 50*time.Millisecond, func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		return strings.Contains(logs.String(), `"msg":"luna is serving"`)
	})
	if !serving || !strings.Contains(logs.String(), `"msg":"luna is serving"`) {
		cmd.Process.Kill()
		t.Fatalf("luna did not serve with luna.env's values (env %q):\n%s", env, logs.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("luna did not stop cleanly: %v\n%s", err, logs.String())
	}
}

// unquote undoes the double quotes systemd's environment files allow.
func unquote(v string) string {
	if s, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
		return s
	}
	return v
}

// TestShellcheck lints every script.
func TestShellcheck(t *testing.T) {
	needTools(t, "shellcheck")
	scripts, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "scripts", "*.sh"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "shellcheck", scripts...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}
