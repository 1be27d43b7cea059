//go:build duckdb_arrow

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
)

// notifySocket plays systemd's side of NOTIFY_SOCKET.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at   time.Time
	line string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// Unix socket paths are short; t.TempDir can be too long.
	dir, err := os.MkdirTemp("", "luna-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			ns.mu.Lock()
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line != "" {
					ns.msgs = append(ns.msgs, notifyMsg{now, line})
				}
			}
			ns.mu.Unlock()
		}
	}()
	return ns
}

// since returns the messages received at or after t.
func (ns *notifySocket) since(t time.Time) []notifyMsg {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var out []notifyMsg
	for _, m := range ns.msgs {
		if !m.at.Before(t) {
			out = append(out, m)
		}
	}
	return out
}

func count(msgs []notifyMsg, line string) int {
	n := 0
	for _, m := range msgs {
		if m.line == line {
			n++
		}
	}
	return n
}

func (ns *notifySocket) waitFor(t *testing.T, line string, d time.Duration) notifyMsg {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, m := range ns.since(time.Time{}) {
			if strings.HasPrefix(m.line, line) {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q notification within %v; got %v", line, d, ns.since(time.Time{}))
	return notifyMsg{}
}

// scalar runs a query and returns its first value as text.
func scalar(t testing.TB, c *client.Conn, sql string) string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatalf("%s: no rows (%v)", sql, rows.Err())
	}
	return rows.RecordBatch().Column(0).ValueStr(0)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const wedgeProbe = "SELECT count(*) FROM wedge, range(wedge.n)"

func TestSystemdNotifications(t *testing.T) {
	ns := listenNotify(t)
	dir := t.TempDir()
	writeFile(t, dir, "10-wedge.sql", "CREATE TABLE wedge AS SELECT 1::BIGINT AS n;\n")
	writeFile(t, dir, "20-slow.sql", "-- takes a while\nCREATE TABLE preload AS\n  SELECT count(*) AS c FROM range(1500000000);\n")
	p := startLuna(t, true, []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=1000000"},
		"--init-sql", dir, "--health-probe-sql", wedgeProbe, "--health-probe-timeout", "300ms")

	ready := ns.waitFor(t, "READY=1", 30*time.Second)
	// READY came after every startup statement: the preload is complete
	// the moment it arrives.
	c := p.dial(t, client.Options{})
	if got := scalar(t, c, "SELECT c FROM preload"); got != "1500000000" {
		t.Fatalf("preload = %s", got)
	}
	before := ns.since(time.Time{})
	var sawStatus, sawExtend bool
	for _, m := range before {
		if m.at.After(ready.at) {
			break
		}
		sawStatus = sawStatus || strings.HasPrefix(m.line, "STATUS=running startup SQL: "+filepath.Join(dir, "20-slow.sql")+":2")
		sawExtend = sawExtend || strings.HasPrefix(m.line, "EXTEND_TIMEOUT_USEC=")
		if m.line == "WATCHDOG=1" {
			t.Fatal("watchdog fed before READY")
		}
	}
	if !sawStatus || !sawExtend {
		t.Fatalf("before READY: status line %v, timeout extension %v; got %v", sawStatus, sawExtend, before)
	}

	// Fed every half interval while healthy.
	time.Sleep(1600 * time.Millisecond)
	if n := count(ns.since(time.Now().Add(-1500*time.Millisecond)), "WATCHDOG=1"); n < 2 {
		t.Fatalf("%d watchdog pings in 1.5s, want >= 2", n)
	}

	// Wedge the engine: the probe query now outlasts its deadline.
	if err := c.Exec(context.Background(), "UPDATE wedge SET n = 100000000000"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // a ping in flight may still land
	wedged := time.Now()
	time.Sleep(2 * time.Second)
	if n := count(ns.since(wedged), "WATCHDOG=1"); n != 0 {
		t.Fatalf("%d watchdog pings while the engine was wedged", n)
	}
	if !p.logs.Await("health probe failed") {
		t.Fatal("no log line for the failing probe")
	}
	// Unwedged, the pings come back.
	if err := c.Exec(context.Background(), "UPDATE wedge SET n = 1"); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	time.Sleep(1500 * time.Millisecond)
	if n := count(ns.since(healed), "WATCHDOG=1"); n == 0 {
		t.Fatal("no watchdog pings after the engine recovered")
	}

	stopAt := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if count(ns.since(stopAt), "STOPPING=1") != 1 {
		t.Fatalf("no STOPPING=1 after SIGTERM: %v", ns.since(stopAt))
	}
}

func TestWithoutNotifySocketNothingIsSent(t *testing.T) {
	// With WATCHDOG_USEC but no NOTIFY_SOCKET the server runs as usual.
	p := startLuna(t, true, []string{"WATCHDOG_USEC=1000000"})
	c := p.dial(t, client.Options{})
	if err := c.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.logs.String(), "notification failed") {
		t.Fatalf("notification errors without NOTIFY_SOCKET:\n%s", p.logs)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestHealthEndpointsAndMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "slow.sql", "CREATE TABLE preload AS SELECT count(*) AS c FROM range(2000000000);")
	haddr := freePort(t)
	base := "http://" + haddr
	p := launchLuna(t, true, nil, "--init-sql", dir, "--health-host-port", haddr)

	// While the startup SQL runs: alive, not ready.
	deadline := time.Now().Add(30 * time.Second)
	var code int
	var body string
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "startup SQL") {
		t.Fatalf("/readyz during startup SQL: %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz during startup: %d", code)
	}
	p.waitServing()
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz when serving: %d", code)
	}

	c := p.dial(t, client.Options{})
	ctx := context.Background()
	rows, err := c.Query(ctx, "SELECT range FROM range(5000)")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	rows.Close()
	c.Exec(ctx, "SELECT * FROM nope")
	c.Exec(ctx, "SET memory_limit = '1GB'; SET temp_directory = '"+t.TempDir()+"'")
	c.Exec(ctx, "CREATE TABLE big AS SELECT range AS i FROM range(20000000)")

	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`luna_requests_total{kind="query",outcome="ok"} 1`,
		`luna_requests_total{kind="exec",outcome="error"} 1`,
		`luna_result_rows_total 5000`,
		`luna_request_duration_seconds_bucket{kind="query"`,
		`luna_connections_open 1`,
		`luna_auth_failures_total 0`,
		`luna_build_info{duckdb="v1.5.6"`,
		`luna_duckdb_memory_bytes{tag="`,
		`luna_duckdb_spill_bytes{tag="`,
		`luna_duckdb_memory_scrape_ok 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(metrics, "luna_result_bytes_total") || strings.Contains(metrics, "luna_result_bytes_total 0\n") {
		t.Error("/metrics lacks streamed bytes")
	}

	// Draining: not ready while a request finishes.
	go c.Exec(ctx, "SELECT count(*) FROM range(3000000000)")
	time.Sleep(200 * time.Millisecond)
	p.signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("/readyz while draining: %d %q", code, body)
	}
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestInitSQLDirectoryRunsInOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "20-second.sql", "INSERT INTO t SELECT max(x) + 1 FROM t;")
	writeFile(t, dir, "10-first.sql", "CREATE TABLE t (x INT);\nINSERT INTO t VALUES (1); -- a ; in a comment\nINSERT INTO t VALUES (((';'::VARCHAR = ';') AND true)::INT + 1);")
	writeFile(t, dir, "notes.txt", "not SQL")
	extra := writeFile(t, t.TempDir(), "30.sql", "INSERT INTO t VALUES (100);")
	p := startLuna(t, true, nil, "--init-sql", dir+":"+extra)
	c := p.dial(t, client.Options{})
	if got := scalar(t, c, "SELECT string_agg(x::VARCHAR, ',' ORDER BY x) FROM t"); got != "1,2,3,100" {
		t.Fatalf("t = %s", got)
	}
	if !p.logs.Await(`"msg":"startup SQL finished"`) {
		t.Fatal("no progress logs")
	}
}

func TestInitSQLErrorNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "broken.sql", "CREATE TABLE ok AS SELECT 1 AS x;\n\nSELECT * FROM missing_table;\nCREATE TABLE after AS SELECT 2 AS y;")
	_, errOut, code := run(t, "", nil, binary(t, "luna", true), "--api-host-port", "127.0.0.1:0", "--init-sql", f)
	if code != 1 || !strings.Contains(errOut, f+":3") || !strings.Contains(errOut, "missing_table") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = run(t, "", nil, binary(t, "luna", true), "--api-host-port", "127.0.0.1:0", "--init-sql", filepath.Join(dir, "absent.sql"))
	if code != 1 || !strings.Contains(errOut, "absent.sql") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	// With continue, the failure is logged and the rest runs.
	p := startLuna(t, true, nil, "--init-sql", f, "--init-sql-on-error", "continue")
	c := p.dial(t, client.Options{})
	if err := c.Exec(context.Background(), "SELECT * FROM ok, after"); err != nil {
		t.Fatal(err)
	}
	if !p.logs.Await("startup statement failed; continuing") {
		t.Fatal("failure not logged")
	}
}

func TestPasswordSources(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "pw", "from-file\n")
	ctx := context.Background()
	authWith := func(p *proc, pw string) error {
		c, err := client.Dial(ctx, p.addr, client.Options{Password: pw})
		if err == nil {
			c.Close()
		}
		return err
	}
	// --passwd-file wins over LUNA_PASSWD; --passwd wins over both.
	p := startLuna(t, true, []string{"LUNA_PASSWD=from-env"}, "--passwd-file", file)
	if authWith(p, "from-file") != nil || authWith(p, "from-env") == nil {
		t.Fatal("--passwd-file did not win over LUNA_PASSWD")
	}
	p = startLuna(t, true, []string{"LUNA_PASSWD=from-env", "LUNA_PASSWD_FILE=" + file}, "--passwd", "from-flag")
	if authWith(p, "from-flag") != nil {
		t.Fatal("--passwd did not win")
	}

	// GCE metadata: instance attribute first, project attribute second.
	var mu sync.Mutex
	var paths []string
	gce := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/computeMetadata/v1/project/attributes/luna-passwd":
			io.WriteString(w, "from-metadata\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer gce.Close()
	host := strings.TrimPrefix(gce.URL, "http://")
	p = startLuna(t, true, []string{"GCE_METADATA_HOST=" + host}, "--passwd-from", "gcp-metadata:luna-passwd")
	if err := authWith(p, "from-metadata"); err != nil {
		t.Fatalf("metadata password refused: %v", err)
	}
	mu.Lock()
	got := strings.Join(paths, " ")
	mu.Unlock()
	if !strings.Contains(got, "/computeMetadata/v1/instance/attributes/luna-passwd") {
		t.Fatalf("instance attribute not tried first: %s", got)
	}
	if strings.Contains(p.logs.String(), "from-metadata") {
		t.Fatal("password reached the logs")
	}

	// A configured source that yields nothing stops the server.
	bin := binary(t, "luna", true)
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"GCE_METADATA_HOST=" + host}, []string{"--passwd-from", "gcp-metadata:absent"}, "gcp-metadata:absent"},
		{nil, []string{"--passwd-file", filepath.Join(dir, "none")}, "--passwd-file"},
		{nil, []string{"--passwd-file", writeFile(t, dir, "empty", "\n")}, "--passwd-file"},
		{nil, []string{"--passwd-from", "vault:x"}, "--passwd-from"},
	} {
		_, errOut, code := run(t, "", c.env, bin, append([]string{"--api-host-port", "127.0.0.1:0", "--passwd-timeout", "2s"}, c.args...)...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errOut)
		}
	}
}
