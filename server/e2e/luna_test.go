//go:build duckdb_arrow

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/server/config"
)

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	out, errOut, code := run(t, "", nil, binary(t, "luna", true), "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	help := out + errOut
	for _, f := range []string{"api-host-port", "passwd", "db-home-dir", "memory-limit", "threads", "temp-dir",
		"max-temp-dir-size", "max-request-bytes", "max-connections", "query-timeout", "shutdown-timeout",
		"log-level", "log-format", "version", "auth-timeout", "idle-timeout", "write-timeout",
		"max-unauthenticated-connections", "allowed-directories"} {
		if !strings.Contains(help, "--"+f+"\n") || !strings.Contains(help, config.EnvName(f)) {
			t.Errorf("--help lacks --%s or %s", f, config.EnvName(f))
		}
	}
	if !strings.Contains(help, "default 0.0.0.0:7688") || !strings.Contains(help, "default 67108864") {
		t.Errorf("--help lacks defaults:\n%s", help)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "", nil, binary(t, "luna", true), "--version")
	if code != 0 || !strings.HasPrefix(out, "luna ") || !strings.Contains(out, "DuckDB v1.5.6") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

func TestBadFlagsExitNamingTheFlag(t *testing.T) {
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--threads", "many"}, "-threads"},
		{nil, []string{"--threads", "-2"}, "--threads"},
		{nil, []string{"--api-host-port", "7688"}, "--api-host-port"},
		{nil, []string{"--api-host-port", "127.0.0.1:99999"}, "--api-host-port"},
		{nil, []string{"--max-request-bytes", "64XB"}, "-max-request-bytes"},
		{nil, []string{"--max-request-bytes", "3"}, "--max-request-bytes"},
		{nil, []string{"--memory-limit", "lots"}, "--memory-limit"},
		{nil, []string{"--query-timeout", "5"}, "-query-timeout"},
		{nil, []string{"--shutdown-timeout", "-1s"}, "--shutdown-timeout"},
		{nil, []string{"--log-level", "loud"}, "--log-level"},
		{nil, []string{"--log-format", "xml"}, "--log-format"},
		{nil, []string{"--no-such-flag"}, "no-such-flag"},
		{nil, []string{"stray"}, "unexpected argument"},
		{[]string{"LUNA_MAX_CONNECTIONS=ten"}, nil, "LUNA_MAX_CONNECTIONS (--max-connections)"},
		{[]string{"LUNA_QUERY_TIMEOUT=soon"}, nil, "LUNA_QUERY_TIMEOUT"},
	}
	bin := binary(t, "luna", true)
	for _, c := range cases {
		_, errOut, code := run(t, "", c.env, bin, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit 2 naming %q", c.env, c.args, code, errOut, c.want)
		}
	}
	// A value DuckDB itself rejects is reported against the flag too.
	_, errOut, code := run(t, "", nil, bin, "--api-host-port", "127.0.0.1:0", "--memory-limit", "5%%")
	if code == 0 || !strings.Contains(errOut, "memory-limit") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, errOut, code := run(t, "", nil, binary(t, "luna", true), "--api-host-port", ln.Addr().String())
	if code != 1 || !strings.Contains(errOut, "cannot listen") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestEnvironmentConfiguresServer(t *testing.T) {
	p := startLuna(t, true, []string{"LUNA_PASSWD=from-env", "LUNA_QUERY_TIMEOUT=200ms"})
	ctx := context.Background()
	anon := p.dial(t, client.Options{})
	if err := anon.Exec(ctx, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("no AUTH: err = %v", err)
	}
	c := p.dial(t, client.Options{Password: "from-env"})
	if err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "SELECT count(*) FROM range(100000000000)"); err == nil || !strings.Contains(err.Error(), "query timeout") {
		t.Fatalf("LUNA_QUERY_TIMEOUT ignored: %v", err)
	}
	if strings.Contains(p.logs.String(), "from-env") {
		t.Fatal("password reached the logs")
	}
}

func TestSIGTERMLetsRunningQueryFinish(t *testing.T) {
	p := startLuna(t, true, nil, "--shutdown-timeout", "60s")
	c := p.dial(t, client.Options{})
	type result struct {
		val string
		err error
	}
	got := make(chan result, 1)
	go func() {
		rows, err := c.Query(context.Background(), "SELECT count(*) FROM range(1000000000) WHERE range % 7 = 3")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer rows.Close()
		if !rows.Next() {
			got <- result{err: rows.Err()}
			return
		}
		got <- result{val: rows.RecordBatch().Column(0).ValueStr(0)}
	}()
	time.Sleep(300 * time.Millisecond)
	p.signal(syscall.SIGTERM)
	r := <-got
	if r.err != nil || r.val != "142857143" {
		t.Fatalf("query during shutdown: %q, %v", r.val, r.err)
	}
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if _, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
	for _, want := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !p.logs.Await(want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

// With --drain-delay, SIGTERM first turns /readyz to 503 while the server
// goes on serving new connections, so a load balancer's health check
// takes the node out before it stops accepting.
func TestSIGTERMDrainDelay(t *testing.T) {
	haddr := freePort(t)
	p := startLuna(t, true, nil, "--drain-delay", "3s", "--health-host-port", haddr)
	status := func(path string) int {
		resp, err := http.Get("http://" + haddr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d", got)
	}
	p.signal(syscall.SIGTERM)
	if !p.logs.Await(`"msg":"unready"`) {
		t.Fatal("no unready log after SIGTERM")
	}
	start := time.Now()
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the drain delay: %d, want 503", got)
	}
	if got := status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz during the drain delay: %d, want 200 (the node is not broken)", got)
	}
	// New connections are still served.
	if got := scalar(t, p.dial(t, client.Options{}), "SELECT 40 + 2"); got != "42" {
		t.Fatalf("query on a new connection during the drain delay: %s", got)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the checks took too long to prove anything about the delay")
	}
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("stopped %v after unready, before the 3s drain delay", d)
	}
	logs := p.logs.String()
	u, d, s := strings.Index(logs, `"msg":"unready"`), strings.Index(logs, `"msg":"draining"`), strings.Index(logs, `"msg":"stopped"`)
	if u < 0 || d < u || s < d {
		t.Errorf("want unready, draining, stopped in that order; offsets %d, %d, %d", u, d, s)
	}
}

func TestSIGTERMInterruptsQueryAfterDeadline(t *testing.T) {
	p := startLuna(t, true, nil, "--shutdown-timeout", "500ms")
	c := p.dial(t, client.Options{})
	idle := p.dial(t, client.Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Query(context.Background(), "SELECT count(*) FROM range(100000000000)")
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	p.signal(syscall.SIGTERM)
	err := <-errc
	var e *client.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "server is shutting down") {
		t.Fatalf("err = %v", err)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	// The idle connection was closed, not left hanging.
	if err := idle.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("idle connection still served after shutdown")
	}
}

func TestLunactlWalkthrough(t *testing.T) {
	p := startLuna(t, true, nil, "--passwd", "K6K8bvyD2u")
	ctl := binary(t, "lunactl", false)
	csv, err := filepath.Abs(filepath.Join(testenv.RepoRoot(), "testdata", "customers-1000.csv"))
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"-addr", p.addr, "--pass", "K6K8bvyD2u"}
	lunactl := func(args ...string) (string, string, int) {
		return run(t, "", nil, ctl, append(append([]string{}, base...), args...)...)
	}
	out, errOut, code := lunactl("-x", "-p", "CREATE TABLE customers AS FROM read_csv(\n'"+csv+"', header = true);")
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("create: exit %d\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = lunactl("-p", "DESCRIBE customers;")
	if code != 0 || !strings.Contains(out, "CustomerId") || !strings.Contains(out, "column_name") {
		t.Fatalf("describe: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = lunactl("-p", "SELECT CustomerId, Email FROM customers LIMIT 5;")
	if code != 0 || !strings.Contains(out, "linda73@vega.com") || !strings.Contains(out, "5 rows") {
		t.Fatalf("select: exit %d\n%s", code, out)
	}
	out, _, code = lunactl("-p", "SELECT count(Index) FROM customers;")
	if code != 0 || !strings.Contains(out, "1000") {
		t.Fatalf("count: exit %d\n%s", code, out)
	}
	out, _, code = lunactl("--format", "csv", "-p", "SELECT Index, FirstName FROM customers ORDER BY Index LIMIT 2")
	if code != 0 || out != "Index,FirstName\n1,Linda\n2,Sheryl\n" {
		t.Fatalf("csv: exit %d\n%q", code, out)
	}
	// A table spanning many batches keeps every cell intact.
	out, _, code = lunactl("-p", "SELECT 'row-' || range AS r FROM range(20000) ORDER BY range")
	if code != 0 || !strings.Contains(out, "| row-0     |") || !strings.Contains(out, "| row-19999 |") || !strings.Contains(out, "(20000 rows") {
		t.Fatalf("multi-batch table: exit %d, %d bytes", code, len(out))
	}
	for i, line := range strings.Split(out, "\n")[3:20003] {
		if want := fmt.Sprintf("row-%d ", i); !strings.Contains(line, want) {
			t.Fatalf("line %d = %q, want %q", i, line, want)
		}
	}
	_, errOut, code = lunactl("-p", "SELECT * FROM nope")
	if code != 1 || !strings.Contains(errOut, "nope") {
		t.Fatalf("error: exit %d\n%s", code, errOut)
	}
	_, _, code = run(t, "", nil, ctl, "-addr", p.addr, "--pass", "wrong", "-p", "SELECT 1")
	if code != 1 {
		t.Fatalf("wrong password: exit %d", code)
	}
}
