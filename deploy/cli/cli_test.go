package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/lunadb/luna/deploy/internal/cloudfake"
	"github.com/lunadb/luna/deploy/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"google.golang.org/api/option"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// harness runs the command line against fake clouds.
type harness struct {
	t      *testing.T
	gcp    *cloudfake.GCP
	aws    *cloudfake.AWS
	env    map[string]string
	script string
}

func newHarness(t *testing.T) *harness {
	// The AWS SDK reads the process environment and shared files: keep
	// the operator's out of the tests.
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	script := filepath.Join(t.TempDir(), "startup.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho start\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, gcp: cloudfake.NewGCP(t), aws: cloudfake.NewAWS(t), env: map[string]string{}, script: script}
}

type result struct {
	code           int
	stdout, stderr string
}

func (h *harness) run(stdin string, args ...string) result {
	return h.runCtx(context.Background(), stdin, args...)
}

func (h *harness) runCtx(ctx context.Context, stdin string, args ...string) result {
	h.t.Helper()
	var stdout, stderr syncBuffer
	code := Main(ctx, args, h.envFor(stdin, &stdout, &stderr))
	return result{code, stdout.String(), stderr.String()}
}

func (h *harness) envFor(stdin string, stdout, stderr io.Writer) Env {
	return Env{
		Stdin: strings.NewReader(stdin), Stdout: stdout, Stderr: stderr,
		Getenv:     func(k string) string { return h.env[k] },
		GCPOptions: []option.ClientOption{option.WithEndpoint(h.gcp.URL), option.WithoutAuthentication()},
		AWSConfig: func(c *aws.Config) {
			c.BaseEndpoint = aws.String(h.aws.URL)
			c.Credentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret-key", "")
		},
		Now:          func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		PollInterval: time.Millisecond,
	}
}

func (h *harness) requests() int { return len(h.gcp.Requests()) + len(h.aws.Requests()) }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var gcpFlags = []string{"--project", "proj", "--region", "europe-west1"}

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	mig := func(args ...string) []string {
		return append([]string{"mig", args[0]}, append(gcpFlags, args[1:]...)...)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage: luna-deploy <mig|asg>"},
		{[]string{"foo"}, 2, `unknown command "foo": use mig (GCP) or asg (AWS)`},
		{[]string{"mig"}, 2, "missing subcommand"},
		{[]string{"mig", "frob"}, 2, `unknown subcommand "frob": one of create, update, status, restart, logs, delete`},
		{[]string{"asg", "status", "--region", "eu-west-1", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"mig", "status", "--region", "europe-west1"}, 2, "--project is required"},
		{[]string{"mig", "status", "--project", "proj"}, 2, "--region is required"},
		{[]string{"asg", "status"}, 2, "--region is required"},
		{mig("status", "--format", "xml"), 2, `--format "xml": use table or json`},
		{mig("status", "extra"), 2, `unexpected argument "extra"`},
		{mig("create"), 2, "reading the startup script: open scripts/startup-gcp-mig.sh: no such file or directory (pass --startup-script PATH, or --no-startup-script for a Luna image)"},
		{mig("create", "--no-startup-script", "--passwd-file", "/nonexistent/pw"), 2, "reading --passwd-file: open /nonexistent/pw"},
		{mig("create", "--no-startup-script", "--zone", "us-east1-b"), 2, "--zone us-east1-b is not in region europe-west1"},
		{mig("create", "--no-startup-script", "--size", "-1"), 2, "--size -1"},
		{[]string{"asg", "create", "--region", "eu-west-1", "--subnet", "subnet-a", "--startup-script", h.script}, 2, "--ami is required"},
		{[]string{"asg", "create", "--region", "eu-west-1", "--ami", "ami-0123456789abcdef0", "--startup-script", h.script}, 2, "--subnet or --zone is required"},
		{mig("logs", "-i", "/nonexistent/key"), 1, "reading key file /nonexistent/key: open /nonexistent/key: no such file or directory"},
		{mig("logs", "-i", garbage), 1, "key file " + garbage + " is not a private key"},
		{mig("logs", "--lines", "-5"), 2, "--lines -5"},
		{mig("restart", "--ssh-port", "70000", "-i", garbage), 1, "--ssh-port 70000: not a TCP port"},
	} {
		r := h.run("", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("luna-deploy %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
	if n := h.requests(); n != 0 {
		t.Errorf("bad input reached the cloud: %d requests", n)
	}
}

func TestEnvironment(t *testing.T) {
	h := newHarness(t)
	h.env["CLOUDSDK_CORE_PROJECT"] = "proj"
	h.env["CLOUDSDK_COMPUTE_REGION"] = "europe-west1"
	h.gcp.Answer("POST /compute/v1/projects/proj/regions/europe-west1/instanceGroupManagers/luna/listManagedInstances", `{}`)
	if r := h.run("", "mig", "status"); r.code != 0 {
		t.Errorf("mig status from the environment: %d\n%s", r.code, r.stderr)
	}
	h.env["AWS_REGION"] = "eu-west-1"
	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName></member></AutoScalingGroups>`)
	if r := h.run("", "asg", "status"); r.code != 0 {
		t.Errorf("asg status with AWS_REGION: %d\n%s", r.code, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	h := newHarness(t)
	for _, cloud := range []string{"mig", "asg"} {
		for _, cmd := range commands {
			r := h.run("", cloud, cmd, "--help")
			if r.code != 0 || !strings.Contains(r.stdout, "Example:\n  luna-deploy "+cloud+" "+cmd+" ") || !strings.Contains(r.stdout, "Flags:") {
				t.Errorf("%s %s --help: exit %d\n%s%s", cloud, cmd, r.code, r.stdout, r.stderr)
			}
		}
	}
	if r := h.run("", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
		t.Errorf("--help: %d\n%s", r.code, r.stdout)
	}
}

// TestDryRun: every mutating command prints its requests and sends none.
func TestDryRun(t *testing.T) {
	h := newHarness(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	asg := []string{"--region", "eu-west-1", "--ami", "ami-0123456789abcdef0", "--subnet", "subnet-a,subnet-b", "--security-group", "sg-1",
		"--instance-profile", "luna-node", "--key-name", "ops", "--passwd-from", "aws-ssm:/luna/passwd", "--startup-script", h.script,
		"--setting", "LUNA_RELEASE_URL=https://example.com/luna.deb"}
	migRecipe := append(append([]string{}, gcpFlags...), "--zone", "europe-west1-b,europe-west1-c", "--passwd-file", pw, "--startup-script", h.script, "--tags", "luna")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"mig-create", append([]string{"mig", "create", "--dry-run"}, migRecipe...)},
		{"mig-update", append([]string{"mig", "update", "--dry-run", "--template-version", "v2", "--startup-script", h.script, "--passwd-file", pw}, gcpFlags...)},
		{"mig-delete", append([]string{"mig", "delete", "--dry-run"}, gcpFlags...)},
		{"asg-create", append([]string{"asg", "create", "--dry-run"}, asg...)},
		{"asg-update", append([]string{"asg", "update", "--dry-run", "--template-version", "v2"}, asg...)},
		{"asg-delete", []string{"asg", "delete", "--dry-run", "--region", "eu-west-1"}},
	} {
		r := h.run("", tc.args...)
		if r.code != 0 {
			t.Errorf("%s: exit %d\n%s", tc.name, r.code, r.stderr)
			continue
		}
		if strings.Contains(r.stdout, "s3cret") {
			t.Errorf("%s: the dry run shows the password", tc.name)
		}
		cloudfake.Golden(t, filepath.Join("testdata", "dry-run-"+tc.name+".json"), r.stdout, *update)
	}
	if n := h.requests(); n != 0 {
		t.Errorf("dry runs sent %d requests, want 0", n)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	for _, answer := range []string{"n\n", "", "maybe\n"} {
		h := newHarness(t)
		r := h.run(answer, append([]string{"mig", "delete"}, gcpFlags...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "Delete managed instance group luna and its templates, terminating its instances? [y/N]") ||
			!strings.Contains(r.stderr, "aborted: nothing was changed") {
			t.Errorf("answer %q: exit %d\n%s", answer, r.code, r.stderr)
		}
		if n := h.requests(); n != 0 {
			t.Errorf("answer %q: %d requests, want 0", answer, n)
		}
	}

	h := newHarness(t)
	h.gcp.Answer("GET /compute/v1/projects/proj/global/instanceTemplates", `{}`)
	r := h.run("y\n", append([]string{"mig", "delete"}, gcpFlags...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "deleted managed instance group luna") {
		t.Errorf("answer y: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := h.gcp.Requests(); len(got) == 0 || got[0].Method != "DELETE" || got[0].Path != "/compute/v1/projects/proj/regions/europe-west1/instanceGroupManagers/luna" {
		t.Errorf("answer y: requests %v", got)
	}

	h = newHarness(t)
	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups></AutoScalingGroups>`)
	r = h.run("", "asg", "delete", "--region", "eu-west-1", "--yes")
	if r.code != 0 || strings.Contains(r.stderr, "[y/N]") {
		t.Errorf("--yes: exit %d\n%s", r.code, r.stderr)
	}
	if got := h.aws.Actions(); !reflect.DeepEqual(got, []string{"DeleteAutoScalingGroup", "DescribeAutoScalingGroups", "DeleteLaunchTemplate"}) {
		t.Errorf("--yes: actions %v", got)
	}
}

const listPath = "/compute/v1/projects/proj/regions/europe-west1/instanceGroupManagers/luna/listManagedInstances"

// twoInstances makes the fake GCP group hold luna-a and luna-b at ip.
func (h *harness) twoInstances(ip string) {
	h.gcp.Answer("POST "+listPath, `{"managedInstances":[
		{"instance":"projects/proj/zones/europe-west1-b/instances/luna-a","instanceStatus":"RUNNING","instanceHealth":[{"detailedHealthState":"HEALTHY"}],"version":{"name":"v1"}},
		{"instance":"projects/proj/zones/europe-west1-c/instances/luna-b","instanceStatus":"RUNNING","instanceHealth":[{"detailedHealthState":"HEALTHY"}],"version":{"name":"v1"}}]}`)
	for _, n := range []string{"b/instances/luna-a", "c/instances/luna-b"} {
		h.gcp.Answer("GET /compute/v1/projects/proj/zones/europe-west1-"+n, `{"networkInterfaces":[{"networkIP":"`+ip+`","accessConfigs":[{"natIP":"`+ip+`"}]}]}`)
	}
}

func (h *harness) checkListing() {
	h.t.Helper()
	var got []string
	for _, r := range h.gcp.Requests() {
		got = append(got, r.Method+" "+r.Path)
	}
	want := []string{"POST " + listPath, "GET /compute/v1/projects/proj/zones/europe-west1-b/instances/luna-a", "GET /compute/v1/projects/proj/zones/europe-west1-c/instances/luna-b"}
	if !reflect.DeepEqual(got, want) {
		h.t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("10.0.0.7")
	r := h.run("", append([]string{"mig", "status"}, gcpFlags...)...)
	want := "NAME    STATE    HEALTH   ZONE            INTERNAL IP  VERSION\n" +
		"luna-a  RUNNING  HEALTHY  europe-west1-b  10.0.0.7     v1\n" +
		"luna-b  RUNNING  HEALTHY  europe-west1-c  10.0.0.7     v1\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("mig status: exit %d\n%s\nwant:\n%s\n%s", r.code, r.stdout, want, r.stderr)
	}
	h.checkListing()

	h = newHarness(t)
	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><Instances><member><InstanceId>i-1</InstanceId>
		<LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus><AvailabilityZone>eu-west-1a</AvailabilityZone></member></Instances></member></AutoScalingGroups>`)
	h.aws.Answer("DescribeInstances", `<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><privateIpAddress>10.1.0.5</privateIpAddress>
		<tagSet><item><key>aws:ec2launchtemplate:version</key><value>4</value></item></tagSet></item></instancesSet></item></reservationSet>`)
	r = h.run("", "asg", "status", "--region", "eu-west-1", "--format", "json")
	wantJSON := `[
  {
    "name": "i-1",
    "state": "InService",
    "health": "Healthy",
    "zone": "eu-west-1a",
    "internal_ip": "10.1.0.5",
    "version": "4"
  }
]
`
	if r.code != 0 || r.stdout != wantJSON {
		t.Errorf("asg status --format json: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := h.aws.Actions(); !reflect.DeepEqual(got, []string{"DescribeAutoScalingGroups", "DescribeInstances"}) {
		t.Errorf("asg status actions: %v", got)
	}
}

func TestCloudErrors(t *testing.T) {
	h := newHarness(t)
	h.gcp.Fail("POST "+listPath, 403, "forbidden", "Required 'compute.instanceGroupManagers.get' permission")
	r := h.run("", append([]string{"mig", "status"}, gcpFlags...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "luna-deploy mig status: listing the instances of group luna: googleapi: Error 403") ||
		!strings.Contains(r.stderr, "check: the credentials lack a permission") {
		t.Errorf("403: exit %d\n%s", r.code, r.stderr)
	}
	h.aws.Fail("CreateLaunchTemplate", 400, "InvalidAMIID.NotFound", "The image id '[ami-0123456789abcdef0]' does not exist")
	r = h.run("", "asg", "create", "--region", "eu-west-1", "--ami", "ami-0123456789abcdef0", "--subnet", "subnet-a", "--no-startup-script")
	if r.code != 1 || !strings.Contains(r.stderr, "creating launch template luna") || !strings.Contains(r.stderr, "check: the image is missing") {
		t.Errorf("missing AMI: exit %d\n%s", r.code, r.stderr)
	}
}

// sshFixture is a loopback SSH server posing as both instances, its
// known_hosts file, and the client key.
type sshFixture struct {
	srv        *sshtest.Server
	key, known string
}

func newSSH(t *testing.T, h sshtest.Handler) sshFixture {
	key, pub := sshtest.ClientKey(t)
	srv := sshtest.Start(t, pub, h)
	known := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(known, []byte(knownhosts.Line([]string{srv.Addr}, srv.HostKey)+"\n"), 0o600)
	return sshFixture{srv, key, known}
}

func (f sshFixture) flags() []string {
	return []string{"-i", f.key, "--known-hosts", f.known, "--ssh-port", strconv.Itoa(f.srv.Port), "--internal-ip"}
}

func journalLine(cursor, msg string) string {
	return fmt.Sprintf(`{"__CURSOR":"%s","__REALTIME_TIMESTAMP":"1767323045000000","SYSLOG_IDENTIFIER":"luna","_PID":"7","MESSAGE":"%s"}`+"\n", cursor, msg)
}

func TestLogs(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("127.0.0.1")
	f := newSSH(t, func(cmd string, out, _ io.Writer) int {
		io.WriteString(out, journalLine("c1", "hello"))
		io.WriteString(out, journalLine("c2", "world"))
		return 0
	})
	r := h.run("", append(append([]string{"mig", "logs", "--user", "admin", "--since", "1 hour ago", "-n", "5"}, gcpFlags...), f.flags()...)...)
	if r.code != 0 {
		t.Fatalf("logs: exit %d\n%s", r.code, r.stderr)
	}
	h.checkListing()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var a, b []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "luna-a | "):
			a = append(a, strings.TrimPrefix(l, "luna-a | "))
		case strings.HasPrefix(l, "luna-b | "):
			b = append(b, strings.TrimPrefix(l, "luna-b | "))
		default:
			t.Errorf("line without a prefix: %q", l)
		}
	}
	want := []string{"2026-01-02T03:04:05.000Z luna[7]: hello", "2026-01-02T03:04:05.000Z luna[7]: world"}
	if !reflect.DeepEqual(a, want) || !reflect.DeepEqual(b, want) {
		t.Errorf("logs:\n%s", r.stdout)
	}
	wantCmd := "sudo -n journalctl -u luna --no-pager -o json --output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM --since='1 hour ago' -n 5"
	if got := f.srv.Commands(); len(got) != 2 || got[0] != wantCmd || got[1] != wantCmd {
		t.Errorf("remote commands:\n%q\nwant twice:\n%q", got, wantCmd)
	}
}

// TestLogsFollowInterrupt: Ctrl-C (a cancelled context) ends a follow with
// exit status 0.
func TestLogsFollowInterrupt(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("127.0.0.1")
	f := newSSH(t, func(cmd string, out, _ io.Writer) int {
		for i := 0; ; i++ {
			if _, err := io.WriteString(out, journalLine(fmt.Sprint("c", i), fmt.Sprint("tick ", i))); err != nil {
				return 0
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	args := append(append([]string{"mig", "logs", "--user", "root", "--follow"}, gcpFlags...), f.flags()...)
	go func() { done <- Main(ctx, args, h.envFor("", &stdout, &stderr)) }()
	deadline := time.Now().Add(10 * time.Second)
	for !(strings.Contains(stdout.String(), "luna-a | ") && strings.Contains(stdout.String(), "luna-b | ")) {
		if time.Now().After(deadline) {
			t.Fatalf("no lines from both instances:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after Ctrl-C\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs --follow did not stop after Ctrl-C")
	}
	if got := f.srv.Commands(); len(got) < 2 || !strings.HasSuffix(got[0], " -n 100 --follow") || strings.HasPrefix(got[0], "sudo") {
		t.Errorf("remote commands: %q", got)
	}
}

func TestRestart(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("127.0.0.1")
	var mu sync.Mutex
	var order []string
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, "readyz")
		mu.Unlock()
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ready.Close()
	f := newSSH(t, func(cmd string, out, _ io.Writer) int {
		mu.Lock()
		order = append(order, cmd)
		mu.Unlock()
		return 0
	})
	_, port, _ := net.SplitHostPort(ready.Listener.Addr().String())
	r := h.run("", append(append([]string{"mig", "restart", "--user", "admin", "--health-port", port}, gcpFlags...), f.flags()...)...)
	if r.code != 0 {
		t.Fatalf("restart: exit %d\n%s", r.code, r.stderr)
	}
	h.checkListing()
	want := []string{"sudo -n systemctl restart luna", "readyz", "sudo -n systemctl restart luna", "readyz"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("restart order %q, want %q", order, want)
	}
	for _, w := range []string{"restarted luna-a (1 of 2)", "restarted luna-b (2 of 2)"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}

	// A failing systemctl stops the roll at the first instance.
	h = newHarness(t)
	h.twoInstances("127.0.0.1")
	f = newSSH(t, func(cmd string, _, errw io.Writer) int {
		io.WriteString(errw, "Failed to restart luna.service: Unit luna.service not found.\n")
		return 5
	})
	r = h.run("", append(append([]string{"mig", "restart", "--user", "root", "--health-port", port}, gcpFlags...), f.flags()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "rolling restart stopped at luna-a (1 of 2); not restarted: luna-b") ||
		!strings.Contains(r.stderr, "exited with status 5: Failed to restart luna.service: Unit luna.service not found.") {
		t.Errorf("failing restart: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(f.srv.Commands()); n != 1 {
		t.Errorf("%d restarts after the failure, want 1", n)
	}
}

func TestHostKeys(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("127.0.0.1")
	f := newSSH(t, func(string, io.Writer, io.Writer) int { return 0 })
	// known_hosts holds another key for the server's address.
	_, other := sshtest.ClientKey(t)
	os.WriteFile(f.known, []byte(knownhosts.Line([]string{f.srv.Addr}, other)+"\n"), 0o600)
	r := h.run("", append(append([]string{"mig", "logs"}, gcpFlags...), f.flags()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "host key mismatch for "+f.srv.Addr) || !strings.Contains(r.stderr, "ssh-keygen -R") {
		t.Errorf("mismatch: exit %d\n%s", r.code, r.stderr)
	}
	if n := len(f.srv.Commands()); n != 0 {
		t.Errorf("ran %d commands on a host with the wrong key", n)
	}

	// An unknown host.
	os.WriteFile(f.known, nil, 0o600)
	h.twoInstances("127.0.0.1")
	r = h.run("", append(append([]string{"mig", "logs"}, gcpFlags...), f.flags()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "is not in known_hosts") || !strings.Contains(r.stderr, "--insecure-ignore-host-key") {
		t.Errorf("unknown host: exit %d\n%s", r.code, r.stderr)
	}

	// The opt-out.
	r = h.run("", append(append([]string{"mig", "logs", "--insecure-ignore-host-key"}, gcpFlags...), f.flags()...)...)
	if r.code != 0 {
		t.Errorf("--insecure-ignore-host-key: exit %d\n%s", r.code, r.stderr)
	}

	// A refused login: the server knows another client key.
	key2, _ := sshtest.ClientKey(t)
	os.WriteFile(f.known, []byte(knownhosts.Line([]string{f.srv.Addr}, f.srv.HostKey)+"\n"), 0o600)
	args := append(append([]string{"mig", "logs"}, gcpFlags...), f.flags()...)
	args[len(args)-6] = key2 // the -i value
	r = h.run("", args...)
	if r.code != 1 || !strings.Contains(r.stderr, "login as") || !strings.Contains(r.stderr, "refused") {
		t.Errorf("refused login: exit %d\n%s", r.code, r.stderr)
	}
}

// TestASGLogsListing: asg logs lists through Auto Scaling and EC2 and
// connects to the external IPs by default.
func TestASGLogsListing(t *testing.T) {
	h := newHarness(t)
	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><Instances><member><InstanceId>i-1</InstanceId>
		<LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus><AvailabilityZone>eu-west-1a</AvailabilityZone></member></Instances></member></AutoScalingGroups>`)
	h.aws.Answer("DescribeInstances", `<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><privateIpAddress>10.9.9.9</privateIpAddress><ipAddress>127.0.0.1</ipAddress></item></instancesSet></item></reservationSet>`)
	f := newSSH(t, func(cmd string, out, _ io.Writer) int {
		io.WriteString(out, journalLine("c1", "hello"))
		return 0
	})
	flags := f.flags()[:len(f.flags())-1] // not --internal-ip
	r := h.run("", append([]string{"asg", "logs", "--region", "eu-west-1", "--user", "root"}, flags...)...)
	if r.code != 0 || r.stdout != "i-1 | 2026-01-02T03:04:05.000Z luna[7]: hello\n" {
		t.Errorf("asg logs: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := h.aws.Actions(); !reflect.DeepEqual(got, []string{"DescribeAutoScalingGroups", "DescribeInstances"}) {
		t.Errorf("actions %v", got)
	}
	_ = ssh.KeyAlgoED25519
}
