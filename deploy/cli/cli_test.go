package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
	"github.com/lunadb/luna/internal/testenv"
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
	var stdout, stderr testenv.SyncBuffer
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

var gcpFlags = []string{"--project", "proj", "--region", "europe-west1"}

const targetGroup = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/luna/0123456789abcdef"

// asgCreate is a valid asg create command line to add a bad flag to.
func asgCreate(h *harness) []string {
	return []string{"asg", "create", "--region", "eu-west-1", "--ami", "ami-0123456789abcdef0", "--subnet", "subnet-a",
		"--target-group-arn", targetGroup, "--startup-script", h.script}
}

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
		// Rollout settings.
		{mig("create", "--no-startup-script", "--initial-delay", "2h"), 2, "--initial-delay 7200s: must be from 0s to 1h"},
		{mig("create", "--no-startup-script", "--initial-delay", "soon"), 2, `invalid value "soon" for flag -initial-delay: "soon" is not a duration`},
		{mig("create", "--no-startup-script", "--initial-delay", "1.5s"), 2, `"1.5s" is not a whole number of seconds`},
		{mig("create", "--no-startup-script", "--initial-delay", "-5m"), 2, `"-5m" must not be negative`},
		{mig("create", "--no-startup-script", "--max-surge", "150%"), 2, `"150%": a percentage is at most 100%`},
		{mig("create", "--no-startup-script", "--max-surge", "many"), 2, `"many" is not a number of instances (3) or a percentage (50%)`},
		{mig("create", "--no-startup-script", "--max-surge", "2"), 2, "--max-surge 2 needs --zone"},
		{mig("create", "--no-startup-script", "--zone", "europe-west1-b,europe-west1-c,europe-west1-d", "--max-surge", "2"), 2, "at least its number of zones (3)"},
		{mig("create", "--no-startup-script", "--max-unavailable", "20%"), 2, "only for groups of 10 or more instances (this one has 2)"},
		{mig("create", "--no-startup-script", "--max-surge", "0"), 2, "no instance could be replaced"},
		{mig("update", "--passwd-attribute", "pw2"), 2, "--passwd-attribute on update needs --passwd-file"},
		{mig("update", "--zone", "europe-west1-b"), 2, "flag provided but not defined: -zone"},
		{mig("update", "--health-port", "9000"), 2, "flag provided but not defined: -health-port"},
		{append(asgCreate(h), "--max-surge", "2"), 2, "--max-surge 2: an instance refresh takes a percentage of the group, e.g. 50%"},
		{append(asgCreate(h), "--max-surge", "100%", "--max-unavailable", "50%"), 2, "at most 100 points between its minimum and maximum healthy percentages"},
		{[]string{"asg", "update", "--region", "eu-west-1", "--checkpoints", "50"}, 2, "--checkpoints 50: the last must be 100"},
		{[]string{"asg", "update", "--region", "eu-west-1", "--checkpoints", "half"}, 2, `"half" is not a list of percentages`},
		{[]string{"asg", "update", "--region", "eu-west-1", "--checkpoint-delay", "49h"}, 2, "--checkpoint-delay 176400s: must be from 0s to 48h"},
		{[]string{"asg", "update", "--region", "eu-west-1", "--max-unavailable", "120%"}, 2, `"120%": a percentage is at most 100%`},
		{append(asgCreate(h), "--checkpoints", "50,100"), 2, "flag provided but not defined: -checkpoints"},
		{append(asgCreate(h), "--warmup", "3h"), 2, "--warmup 10800s: must be from 0s to 2h"},
		{append(asgCreate(h), "--initial-delay", "-1"), 2, `"-1" must not be negative`},
		{append(asgCreate(h), "--target-group-arn", "luna-tg"), 2, `--target-group-arn "luna-tg": a target group ARN looks like`},
		{append(asgCreate(h), "--setting", "LUNA_INIT_SQL_B64="+incompressibleB64(20000)), 2, "and 20000 bytes of startup SQL in LUNA_INIT_SQL_B64); EC2 takes at most 16384 bytes of user data"},
		{append(asgCreate(h), "--ssh-authorized-key", "/nonexistent/id_ed25519.pub"), 2, "reading --ssh-authorized-key: open /nonexistent/id_ed25519.pub"},
		{[]string{"asg", "create", "--region", "eu-west-1", "--ami", "ami-0123456789abcdef0", "--subnet", "subnet-a", "--no-startup-script"}, 2,
			"--target-group-arn is required: a target group whose health check is HTTP /readyz on port 7689"},
		{[]string{"asg", "update", "--region", "eu-west-1", "--no-target-group"}, 2, "flag provided but not defined: -no-target-group"},
		{[]string{"asg", "update", "--region", "eu-west-1", "--key-name", ""}, 2, "cannot remove them"},
		{[]string{"asg", "update", "--region", "eu-west-1", "--subnet", "subnet-a"}, 2, "flag provided but not defined: -subnet"},
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

// incompressibleB64 is base64 of n bytes that gzip cannot shrink, as user
// data whose compressed size is over EC2's limit needs.
func incompressibleB64(n int) string {
	b := make([]byte, n)
	for i, x := 0, uint32(1); i < n; i++ {
		x = x*1664525 + 1013904223
		b[i] = byte(' ' + (x>>24)%95)
	}
	return base64.StdEncoding.EncodeToString(b)
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

// TestDryRun: create and delete print their requests and send none (and
// need no credentials).
func TestDryRun(t *testing.T) {
	h := newHarness(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	key := filepath.Join(t.TempDir(), "id_ed25519.pub")
	os.WriteFile(key, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeTMeXba6g45lEQlFJurzL44thKbnq+UbtlraoSfw0G alice@laptop\n"), 0o644)
	asg := []string{"--region", "eu-west-1", "--ami", "ami-0123456789abcdef0", "--subnet", "subnet-a,subnet-b", "--security-group", "sg-1",
		"--instance-profile", "luna-node", "--key-name", "ops", "--passwd-from", "aws-ssm:/luna/passwd", "--startup-script", h.script,
		"--setting", "LUNA_RELEASE_URL=https://example.com/luna.deb", "--target-group-arn", targetGroup, "--initial-delay", "10m", "--ssh-authorized-key", key}
	migRecipe := append(append([]string{}, gcpFlags...), "--zone", "europe-west1-b,europe-west1-c", "--passwd-file", pw, "--startup-script", h.script, "--tags", "luna",
		"--initial-delay", "10m", "--max-surge", "2")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"mig-create", append([]string{"mig", "create", "--dry-run"}, migRecipe...)},
		{"mig-delete", append([]string{"mig", "delete", "--dry-run"}, gcpFlags...)},
		{"asg-create", append([]string{"asg", "create", "--dry-run"}, asg...)},
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
    "id": "i-1",
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
	r = h.run("", "asg", "create", "--region", "eu-west-1", "--ami", "ami-0123456789abcdef0", "--subnet", "subnet-a", "--no-startup-script", "--no-target-group")
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
	// Luna's unit and the startup script's, merged.
	wantCmd := "sudo -n journalctl -u luna.service -u google-startup-scripts.service --no-pager -o json --output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM --since='1 hour ago' -n 5"
	if got := f.srv.Commands(); len(got) != 2 || got[0] != wantCmd || got[1] != wantCmd {
		t.Errorf("remote commands:\n%q\nwant twice:\n%q", got, wantCmd)
	}
}

// TestLogsUnits: --unit replaces the default units; on AWS the startup
// script runs in cloud-init's final stage.
func TestLogsUnits(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("127.0.0.1")
	f := newSSH(t, func(cmd string, out, _ io.Writer) int { return 0 })
	r := h.run("", append(append([]string{"mig", "logs", "--user", "root", "--unit", "luna.service", "--unit", "ssh.service,cron.service"}, gcpFlags...), f.flags()...)...)
	if r.code != 0 {
		t.Fatalf("logs: exit %d\n%s", r.code, r.stderr)
	}
	if got := f.srv.Commands(); len(got) != 2 || !strings.HasPrefix(got[0], "journalctl -u luna.service -u ssh.service -u cron.service --no-pager ") {
		t.Errorf("remote commands: %q", got)
	}

	h = newHarness(t)
	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><Instances><member><InstanceId>i-1</InstanceId>
		<LifecycleState>InService</LifecycleState></member></Instances></member></AutoScalingGroups>`)
	h.aws.Answer("DescribeInstances", `<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><privateIpAddress>127.0.0.1</privateIpAddress></item></instancesSet></item></reservationSet>`)
	f = newSSH(t, func(cmd string, out, _ io.Writer) int { return 0 })
	r = h.run("", append([]string{"asg", "logs", "--region", "eu-west-1", "--user", "root"}, f.flags()...)...)
	if got := f.srv.Commands(); r.code != 0 || len(got) != 1 || !strings.HasPrefix(got[0], "journalctl -u luna.service -u cloud-final.service --no-pager ") {
		t.Errorf("asg logs: exit %d, commands %q\n%s", r.code, got, r.stderr)
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
	var stdout, stderr testenv.SyncBuffer
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
	r := h.run("", append(append([]string{"mig", "restart", "--user", "admin", "--health-port", port, "--settle", "0"}, gcpFlags...), f.flags()...)...)
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

	// An unknown host, under strict.
	os.WriteFile(f.known, nil, 0o600)
	h.twoInstances("127.0.0.1")
	r = h.run("", append(append([]string{"mig", "logs", "--host-key-policy", "strict"}, gcpFlags...), f.flags()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "is not in known_hosts") || !strings.Contains(r.stderr, "--insecure-ignore-host-key") {
		t.Errorf("unknown host, strict: exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(f.known); len(b) != 0 {
		t.Errorf("strict wrote known_hosts: %s", b)
	}

	// By default (accept-new) it is recorded, with a notice, in the
	// known_hosts file given, which need not exist yet.
	fresh := filepath.Join(t.TempDir(), "new", "known_hosts")
	args := append(append([]string{"mig", "logs"}, gcpFlags...), f.flags()...)
	args[len(args)-4] = fresh // the --known-hosts value
	r = h.run("", args...)
	if b, _ := os.ReadFile(fresh); r.code != 0 || !strings.HasPrefix(string(b), knownhosts.Line([]string{f.srv.Addr}, f.srv.HostKey)+" luna-deploy-instance=luna-") ||
		!strings.Contains(r.stderr, "recorded the host key of "+f.srv.Addr) {
		t.Errorf("unknown host, accept-new: exit %d, known_hosts %q\n%s", r.code, b, r.stderr)
	}

	r = h.run("", append(append([]string{"mig", "logs", "--host-key-policy", "ask"}, gcpFlags...), f.flags()...)...)
	if r.code != 2 || !strings.Contains(r.stderr, `--host-key-policy "ask": use accept-new or strict`) {
		t.Errorf("bad policy: exit %d\n%s", r.code, r.stderr)
	}

	// The opt-out.
	r = h.run("", append(append([]string{"mig", "logs", "--insecure-ignore-host-key"}, gcpFlags...), f.flags()...)...)
	if r.code != 0 {
		t.Errorf("--insecure-ignore-host-key: exit %d\n%s", r.code, r.stderr)
	}

	// A refused login: the server knows another client key.
	key2, _ := sshtest.ClientKey(t)
	os.WriteFile(f.known, []byte(knownhosts.Line([]string{f.srv.Addr}, f.srv.HostKey)+"\n"), 0o600)
	args = append(append([]string{"mig", "logs"}, gcpFlags...), f.flags()...)
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

const migPath = "/compute/v1/projects/proj/regions/europe-west1/instanceGroupManagers/luna"

// answerGroup makes the fake GCP hold group luna on template luna-v1, made
// by create with a password and a release.
func (h *harness) answerGroup() {
	h.gcp.Answer("GET "+migPath, `{"name":"luna","targetSize":2,
		"versions":[{"name":"v1","instanceTemplate":"https://www.googleapis.com/compute/v1/projects/proj/global/instanceTemplates/luna-v1"}],
		"distributionPolicy":{"zones":[{"zone":"zones/europe-west1-b"},{"zone":"zones/europe-west1-c"},{"zone":"zones/europe-west1-d"}]},
		"autoHealingPolicies":[{"healthCheck":"projects/proj/global/healthChecks/luna-healthz","initialDelaySec":300}],
		"updatePolicy":{"type":"PROACTIVE","minimalAction":"REPLACE","maxSurge":{"calculated":3},"maxUnavailable":{"fixed":0}},
		"status":{"isStable":true,"versionTarget":{"isReached":true}}}`)
	h.gcp.Answer("GET /compute/v1/projects/proj/global/instanceTemplates/luna-v1", `{"name":"luna-v1","id":"7","properties":{
		"machineType":"e2-standard-4","labels":{"luna-deploy-group":"luna"},"tags":{"items":["luna"]},
		"disks":[{"boot":true,"autoDelete":true,"type":"PERSISTENT","initializeParams":{"sourceImage":"projects/debian-cloud/global/images/family/debian-12","diskSizeGb":"20"}}],
		"networkInterfaces":[{"network":"projects/proj/global/networks/default"}],
		"metadata":{"items":[{"key":"luna-release-url","value":"https://example.com/luna_1.0.0_amd64.deb"},{"key":"luna-release-sha256","value":"`+strings.Repeat("a", 64)+`"},
		 {"key":"startup-script","value":"#!/bin/sh\necho start\n"},{"key":"luna-passwd","value":"s3cret"},{"key":"luna-passwd-from","value":"gcp-metadata:luna-passwd"}]}}}`)
}

// TestMigUpdateHelpExample: the update in mig update --help (a Luna image
// instead of Debian plus the startup script) keeps the password and the
// release metadata, drops only the startup script and changes only the
// image.
func TestMigUpdateHelpExample(t *testing.T) {
	h := newHarness(t)
	h.answerGroup()
	r := h.run("", "mig", "update", "--project", "proj", "--region", "europe-west1", "--template-version", "v2",
		"--image-family", "luna", "--image-project", "my-images", "--no-startup-script")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var insert, patch cloudfake.Request
	for _, q := range h.gcp.Requests() {
		switch {
		case q.Method == "POST" && strings.HasSuffix(q.Path, "/global/instanceTemplates"):
			insert = q
		case q.Method == "PATCH":
			patch = q
		}
	}
	var tmpl struct {
		Name       string
		Properties struct {
			Disks []struct {
				InitializeParams struct{ SourceImage string }
			}
			Metadata struct{ Items []struct{ Key, Value string } }
		}
	}
	if err := json.Unmarshal(insert.Body, &tmpl); err != nil {
		t.Fatalf("template insert %s: %v", insert.Body, err)
	}
	if tmpl.Name != "luna-v2" || tmpl.Properties.Disks[0].InitializeParams.SourceImage != "projects/my-images/global/images/family/luna" {
		t.Errorf("template: %s", insert.Body)
	}
	md := map[string]string{}
	for _, it := range tmpl.Properties.Metadata.Items {
		md[it.Key] = it.Value
	}
	want := map[string]string{"luna-release-url": "https://example.com/luna_1.0.0_amd64.deb", "luna-release-sha256": strings.Repeat("a", 64),
		"luna-passwd": "s3cret", "luna-passwd-from": "gcp-metadata:luna-passwd"}
	if !reflect.DeepEqual(md, want) {
		t.Errorf("metadata %v, want %v", md, want)
	}
	// The surge Compute Engine chose (calculated) is not a setting; the
	// patch leaves it out, so the default (the number of zones) stays.
	var body map[string]any
	json.Unmarshal(patch.Body, &body)
	if got, _ := json.Marshal(body["updatePolicy"]); string(got) != `{"maxUnavailable":{"fixed":0},"minimalAction":"REPLACE","type":"PROACTIVE"}` {
		t.Errorf("patch: %s", patch.Body)
	}
	for _, w := range []string{"metadata.startup-script: <21 bytes, sha256 bdd721eb…> → (none)", "disks.0.initializeParams.sourceImage: projects/debian-cloud/global/images/family/debian-12 → projects/my-images/global/images/family/luna"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
		}
	}
}

// TestUpdateDryRun: update --dry-run reads the group and its template (or
// launch template version), prints the requests with their changes, and
// sends nothing that changes anything.
func TestUpdateDryRun(t *testing.T) {
	h := newHarness(t)
	h.answerGroup()
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("n3w-secret\n"), 0o600)
	r := h.run("", append([]string{"mig", "update", "--dry-run", "--template-version", "v2", "--machine-type", "n2-highmem-8", "--passwd-file", pw,
		"--metadata", "luna-release-url=https://example.com/luna_1.1.0_amd64.deb", "--size", "3", "--max-surge", "3", "--initial-delay", "15m"}, gcpFlags...)...)
	if r.code != 0 {
		t.Fatalf("mig update --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	if m := h.gcp.Mutations(); len(m) != 0 {
		t.Errorf("mig update --dry-run sent %d changes: %v", len(m), m[0].Method+" "+m[0].Path)
	}
	if strings.Contains(r.stdout, "s3cret") || strings.Contains(r.stdout, "n3w-secret") {
		t.Errorf("the dry run shows a password")
	}
	cloudfake.Golden(t, filepath.Join("testdata", "dry-run-mig-update.json"), r.stdout, *update)

	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><DesiredCapacity>2</DesiredCapacity><MaxSize>4</MaxSize>
		<LaunchTemplate><LaunchTemplateName>luna</LaunchTemplateName><Version>1</Version></LaunchTemplate><HealthCheckType>ELB</HealthCheckType><HealthCheckGracePeriod>300</HealthCheckGracePeriod>
		<TargetGroupARNs><member>`+targetGroup+`</member></TargetGroupARNs></member></AutoScalingGroups>`)
	ud := "#!/bin/sh\n# Settings added by luna-deploy.\nexport LUNA_PASSWD_FROM='aws-ssm:/luna/passwd'\nexport LUNA_RELEASE_URL='https://example.com/luna_1.0.0_amd64.deb'\necho start\n"
	h.aws.Answer("DescribeLaunchTemplateVersions", `<launchTemplateVersionSet><item><launchTemplateName>luna</launchTemplateName><versionNumber>1</versionNumber><launchTemplateData>
		<imageId>ami-0123456789abcdef0</imageId><instanceType>m7i.xlarge</instanceType><userData>`+base64.StdEncoding.EncodeToString([]byte(ud))+`</userData>
		<tagSpecificationSet><item><resourceType>instance</resourceType><tagSet><item><key>luna-passwd-from</key><value>aws-ssm:/luna/passwd</value></item></tagSet></item></tagSpecificationSet>
		</launchTemplateData></item></launchTemplateVersionSet>`)
	r = h.run("", "asg", "update", "--dry-run", "--region", "eu-west-1", "--template-version", "v2", "--ami", "ami-0fedcba9876543210",
		"--setting", "LUNA_RELEASE_URL=https://example.com/luna_1.1.0_amd64.deb", "--initial-delay", "10m")
	if r.code != 0 {
		t.Fatalf("asg update --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	if m := h.aws.Mutations(); len(m) != 0 {
		t.Errorf("asg update --dry-run sent %v", m)
	}
	if got := h.aws.Actions(); !reflect.DeepEqual(got, []string{"DescribeAutoScalingGroups", "DescribeLaunchTemplateVersions"}) {
		t.Errorf("asg update --dry-run called %v", got)
	}
	cloudfake.Golden(t, filepath.Join("testdata", "dry-run-asg-update.json"), r.stdout, *update)
}

// TestUpdateNothingToChange: flags naming what the group has send no
// change; the dry run prints an empty list and says so.
func TestUpdateNothingToChange(t *testing.T) {
	h := newHarness(t)
	h.answerGroup()
	r := h.run("", append([]string{"mig", "update", "--dry-run", "--machine-type", "e2-standard-4", "--size", "2"}, gcpFlags...)...)
	if r.code != 0 || r.stdout != "[]\n" || !strings.Contains(r.stderr, "nothing to change: group luna already has what the flags name") {
		t.Errorf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = h.run("", append([]string{"mig", "update", "--machine-type", "e2-standard-4"}, gcpFlags...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to change") {
		t.Errorf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if m := h.gcp.Mutations(); len(m) != 0 {
		t.Errorf("sent %d changes", len(m))
	}
}
