package systemd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/nspawn"
	"github.com/lunadb/luna/internal/testenv"
)

// The startup SQL of the appliance test: a statement that keeps DuckDB busy
// for a few seconds (so the unit is seen activating while it runs), then
// the table the test queries.
const (
	slowSQL    = "SELECT sum(hash(range)) FROM range(300000000);\n"
	preloadSQL = "CREATE TABLE preload AS SELECT range AS i FROM range(1000);\n"
)

// TestAppliance boots a Debian root file system with Luna installed by
// scripts/install.sh under a real systemd (systemd-nspawn) and checks the
// service's life: activating until the startup SQL is done, serving clients
// on the host's loopback, restarted by the watchdog when it hangs, a clean
// stop, and JSON logs in the journal.
func TestAppliance(t *testing.T) {
	needRoot(t)
	needTools(t, "systemd-nspawn", "nsenter", "debootstrap", "flock")
	luna, lunactl := binaries(t)
	a := newAppliance(t, applianceRootfs(t), luna, lunactl)
	a.Boot()

	if out, err := a.Exec("systemd-analyze", "verify", "/etc/systemd/system/luna.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify inside the appliance: %v\n%s", err, out)
	}

	first := a.waitStarted(0)
	t.Logf("first start: activating for %v while the startup SQL ran", first)

	if got := a.query("SELECT count(*) FROM preload"); got != "1000" {
		t.Errorf("preload has %q rows, want 1000", got)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := a.get(path); code != http.StatusOK {
			t.Errorf("%s answered %d, want 200", path, code)
		}
	}
	if code, body := a.get("/metrics"); code != http.StatusOK {
		t.Errorf("/metrics answered %d, want 200", code)
	} else {
		// process_start_time_seconds needs /proc/stat: it shows that the
		// sandbox leaves the process collector what it reads.
		for _, m := range []string{"luna_build_info", "luna_connections_open", "process_start_time_seconds"} {
			if !strings.Contains(body, "\n"+m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	}

	// A hung server: the watchdog kills it and systemd starts a new one,
	// which runs the startup SQL again.
	pid := a.show("MainPID")["MainPID"]
	if _, err := a.Exec("sh", "-c", "kill -STOP "+pid); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	a.waitStarted(1)
	t.Logf("watchdog restart: serving again %v after SIGSTOP", time.Since(hung).Round(time.Millisecond))
	if newPID := a.show("MainPID")["MainPID"]; newPID == pid {
		t.Errorf("MainPID is still %s after the watchdog restart", pid)
	}
	if j := a.journal(); !strings.Contains(j, "Watchdog timeout") {
		t.Errorf("the journal does not show a watchdog timeout:\n%s", nspawn.Tail(j, 40))
	}
	if got := a.query("SELECT count(*) FROM preload"); got != "1000" {
		t.Errorf("after the restart, preload has %q rows, want 1000", got)
	}

	// The sandbox: larger-than-memory work spills into the state directory
	// (DuckDB creates the temp dir there, private to the service), and the
	// rest of the file system is read-only.
	if got := a.query("SELECT max(i) FROM (SELECT range AS i FROM range(10000000) ORDER BY range DESC OFFSET 1)"); got != "9999998" {
		t.Errorf("spilling sort answered %q, want 9999998", got)
	}
	if out, err := a.Exec("stat", "-c", "%F %a", "/var/lib/luna/tmp"); err != nil || strings.TrimSpace(out) != "directory 700" {
		t.Errorf("the spill directory /var/lib/luna/tmp: %q %v; want a directory with mode 700", out, err)
	}
	// The file lockdown (LUNA_ALLOWED_DIRECTORIES=/var/lib/luna) refuses
	// first; the read-only file system stands behind it.
	if err := a.tryExecSQL("COPY (SELECT 1) TO '/etc/luna/escape.csv'"); err == nil || !strings.Contains(err.Error(), "Permission Error") {
		t.Errorf("writing to /etc/luna: %v; want the lockdown's Permission Error", err)
	}
	if err := a.tryExecSQL("SELECT * FROM read_text('/etc/passwd')"); err == nil || !strings.Contains(err.Error(), "Permission Error") {
		t.Errorf("reading /etc/passwd: %v; want the lockdown's Permission Error", err)
	}
	if err := a.tryExecSQL("SET memory_limit = '1GB'"); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("a client's SET: %v; want it refused (lock_configuration)", err)
	}

	if _, err := a.Exec("systemctl", "stop", "luna.service"); err != nil {
		t.Fatal(err)
	}
	st := a.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
	if st["ActiveState"] != "inactive" || st["Result"] != "success" || st["ExecMainCode"] != "1" || st["ExecMainStatus"] != "0" {
		t.Errorf("after systemctl stop: %v; want inactive, Result=success, exited (ExecMainCode=1) with status 0", st)
	}

	// Luna's log records are JSON lines; journald keeps each as a message.
	var serving, stopped int
	for _, line := range strings.Split(a.journalMessages(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev struct {
			Time  time.Time `json:"time"`
			Level string    `json:"level"`
			Msg   string    `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Time.IsZero() || ev.Level == "" {
			t.Errorf("journal line is not a structured log record: %s", line)
			continue
		}
		switch ev.Msg {
		case "luna is serving":
			serving++
		case "stopped":
			stopped++
		}
	}
	if serving != 2 || stopped != 1 {
		t.Errorf(`journal has %d "luna is serving" and %d "stopped" records, want 2 and 1:%s`, serving, stopped, nspawn.Tail(a.journal(), 40))
	}

	// install.sh on the live system: it reloads systemd, enables the unit
	// and (re)starts it, returning once Luna is ready, and keeps the edited
	// configuration.
	out, err := a.Exec("/root/luna-src/scripts/install.sh", "--bin", "/root/luna-src/bin/luna",
		"--lunactl", "/root/luna-src/bin/lunactl", "--enable", "--start")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kept /etc/luna/luna.env") {
		t.Errorf("install.sh did not keep the edited luna.env:\n%s", out)
	}
	if st := a.show("ActiveState", "UnitFileState"); st["ActiveState"] != "active" || st["UnitFileState"] != "enabled" {
		t.Errorf("after install.sh --enable --start: %v; want active and enabled", st)
	}
	if got := a.query("SELECT count(*) FROM preload"); got != "1000" {
		t.Errorf("after install.sh --start, preload has %q rows, want 1000", got)
	}
}

// applianceRootfs returns the cached Debian root file system, building it
// first when needed (about a minute or two).
func applianceRootfs(t *testing.T) string {
	t.Helper()
	return nspawn.Rootfs(t, testenv.RepoRoot())
}

// appliance is a throwaway copy of the root file system, booted with
// systemd-nspawn. The container shares the host's network, so Luna inside
// listens on the host's loopback.
type appliance struct {
	*nspawn.Machine
	t          *testing.T
	lunactl    string
	api        string
	health     string
	passwd     string // the password clients send, once one is set
	httpClient *http.Client
}

// copyAppliance is a fresh copy of rootfs with free loopback ports picked
// for Luna's API and health port.
func copyAppliance(t *testing.T, rootfs, lunactl string) *appliance {
	t.Helper()
	return &appliance{
		Machine:    nspawn.Copy(t, rootfs, "luna-test"),
		t:          t,
		lunactl:    lunactl,
		api:        fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		health:     fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		httpClient: &http.Client{Timeout: 5 * time.Second},
	}
}

func newAppliance(t *testing.T, rootfs, luna, lunactl string) *appliance {
	t.Helper()
	a := copyAppliance(t, rootfs, lunactl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	installInto(t, a.Root, luna, lunactl, "--enable")
	// What install.sh needs to run again inside, on the live system.
	for src, dst := range map[string]string{
		filepath.Join(testenv.RepoRoot(), "scripts", "install.sh"):   "scripts/install.sh",
		filepath.Join(testenv.RepoRoot(), "systemd", "luna.service"): "systemd/luna.service",
		filepath.Join(testenv.RepoRoot(), "systemd", "luna.env"):     "systemd/luna.env",
		luna:    "bin/luna",
		lunactl: "bin/lunactl",
	} {
		dst = filepath.Join(a.Root, "root", "luna-src", dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, _, err := run(ctx, "", "cp", "-p", src, dst); err != nil {
			t.Fatal(err)
		}
	}

	a.write("etc/luna/init.d/05-slow.sql", slowSQL)
	// Clients cannot SET anything under the appliance's lockdown: the
	// memory limit for the spill check below comes with the startup SQL.
	a.write("etc/luna/init.d/01-memory.sql", "SET memory_limit = '64MB';\n")
	a.write("etc/luna/init.d/10-tables.sql", preloadSQL)
	env := a.Read("etc/luna/luna.env")
	for name, value := range map[string]string{"LUNA_API_HOST_PORT": a.api, "LUNA_HEALTH_HOST_PORT": a.health} {
		var ok bool
		env, ok = setEnv(env, name, value)
		if !ok {
			t.Fatalf("the installed luna.env does not set %s", name)
		}
	}
	a.write("etc/luna/luna.env", env)

	// A short watchdog, so the test sees a hung server restarted quickly.
	a.write("etc/systemd/system/luna.service.d/test.conf", "[Service]\nWatchdogSec=3s\n")
	return a
}

// setEnv replaces the line setting name in an environment file.
func setEnv(env, name, value string) (string, bool) {
	lines := strings.Split(env, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, name+"=") {
			lines[i] = name + "=" + value
			return strings.Join(lines, "\n"), true
		}
	}
	return env, false
}

// write writes a file inside the copy, 0644: the service runs as an
// unprivileged dynamic user.
func (a *appliance) write(rel, content string) { a.Write(rel, content, 0o644) }

// show reads properties of luna.service.
func (a *appliance) show(props ...string) map[string]string {
	a.t.Helper()
	out, err := a.Exec("systemctl", "show", "--timestamp=us+utc", "luna.service", "-p", strings.Join(props, ","))
	if err != nil {
		a.t.Fatal(err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

// waitStarted follows luna.service through a start until it is active and
// checks that it was activating, not ready, while the startup SQL ran. It
// returns how long the startup SQL kept it activating.
func (a *appliance) waitStarted(restarts int) time.Duration {
	t := a.t
	t.Helper()
	var seen []string
	var slowSeen int
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st := a.show("ActiveState", "SubState", "StatusText", "NRestarts", "Result")
		desc := fmt.Sprintf("%s/%s %q", st["ActiveState"], st["SubState"], st["StatusText"])
		if len(seen) == 0 || seen[len(seen)-1] != desc {
			seen = append(seen, desc)
		}
		n, _ := strconv.Atoi(st["NRestarts"])
		switch {
		case st["ActiveState"] == "failed":
			t.Fatalf("luna.service failed (%s); states seen: %q\n%s", st["Result"], seen, nspawn.Tail(a.journal(), 60))
		case n < restarts:
			// The old process has not been replaced yet.
		case st["ActiveState"] == "activating" && st["SubState"] == "start":
			if strings.Contains(st["StatusText"], "05-slow.sql") {
				slowSeen++
			}
			// The state was read before the request: a 200 is wrong only
			// if the unit is still activating well after it (startup SQL
			// still running), not if startup just ended in between.
			if code, _ := a.get("/readyz"); code == http.StatusOK && !nspawn.WaitFor(time.Second, 50*time.Millisecond, func() bool {
				return a.show("ActiveState")["ActiveState"] == "active"
			}) {
				t.Fatalf("/readyz answered 200 while the unit was activating (%s)", desc)
			}
		case st["ActiveState"] == "active" && st["SubState"] == "running":
			if n != restarts {
				t.Fatalf("NRestarts is %d, want %d", n, restarts)
			}
			if slowSeen < 2 {
				t.Fatalf("luna.service was not seen activating while the slow startup SQL ran; states seen: %q", seen)
			}
			return a.checkReadyAfterInitSQL()
		}
		if time.Now().After(deadline) {
			t.Fatalf("luna.service did not start; states seen: %q\n%s", seen, nspawn.Tail(a.journal(), 60))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkReadyAfterInitSQL compares systemd's record of when the unit became
// active with Luna's log of when the startup SQL finished, for the current
// invocation, and returns how long that SQL ran.
func (a *appliance) checkReadyAfterInitSQL() time.Duration {
	t := a.t
	t.Helper()
	st := a.show("ActiveEnterTimestamp", "InvocationID")
	active, err := time.Parse("Mon 2006-01-02 15:04:05.000000 MST", st["ActiveEnterTimestamp"])
	if err != nil {
		t.Fatalf("ActiveEnterTimestamp: %v", err)
	}
	out, err := a.Exec("journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_INVOCATION_ID="+st["InvocationID"])
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		var ev struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			Duration int64     `json:"duration"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Msg != "startup SQL finished" {
			continue
		}
		if active.Before(ev.Time) {
			t.Fatalf("luna.service became active at %v, before the startup SQL finished at %v", active, ev.Time)
		}
		return time.Duration(ev.Duration)
	}
	t.Fatalf("no \"startup SQL finished\" record in this invocation's journal:\n%s", nspawn.Tail(out, 40))
	return 0
}

// query runs one query with lunactl on the host and returns the single
// value it answers.
func (a *appliance) query(sql string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdout, _, err := run(ctx, "", a.lunactl, "-addr", a.api, "-p", sql, "--format", "csv")
	if err != nil {
		a.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		a.t.Fatalf("lunactl -p %q: want a header and one row, got:\n%s", sql, stdout)
	}
	return lines[1]
}

// tryExecSQL runs statements with lunactl -x on the host.
func (a *appliance) tryExecSQL(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := run(ctx, "", a.lunactl, "-addr", a.api, "-x", "-p", sql)
	return err
}

// get fetches a path from the health port; code 0 means no answer.
func (a *appliance) get(path string) (int, string) {
	resp, err := a.httpClient.Get("http://" + a.health + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// journal is luna.service's journal, systemd's own lines included.
func (a *appliance) journal() string {
	out, _ := a.Exec("journalctl", "--no-pager", "-o", "short-precise", "-u", "luna.service")
	return out
}

// journalMessages is what Luna itself wrote (stdout, stderr) this boot.
func (a *appliance) journalMessages() string {
	a.t.Helper()
	out, err := a.Exec("journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_UNIT=luna.service", "_TRANSPORT=stdout")
	if err != nil {
		a.t.Fatal(err)
	}
	return out
}
