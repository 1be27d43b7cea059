package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/cli"
	"github.com/lunadb/luna/deploy/internal/cloudfake"
	"github.com/lunadb/luna/deploy/remote"
	"github.com/lunadb/luna/internal/nspawn"
)

// asgOf makes a fake Auto Scaling group of the containers, named by
// instance ID, at their addresses.
func asgOf(t *testing.T, cs map[string]*container) *cloudfake.AWS {
	// The SDK reads the process environment and shared files: keep the
	// operator's out.
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	fake := cloudfake.NewAWS(t)
	var members, vms strings.Builder
	for id, c := range cs {
		fmt.Fprintf(&members, `<member><InstanceId>%s</InstanceId><LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus></member>`, id)
		fmt.Fprintf(&vms, `<item><instanceId>%s</instanceId><privateIpAddress>%s</privateIpAddress></item>`, id, c.ip)
	}
	fake.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><Instances>`+members.String()+`</Instances></member></AutoScalingGroups>`)
	fake.Answer("DescribeInstances", `<reservationSet><item><instancesSet>`+vms.String()+`</instancesSet></item></reservationSet>`)
	return fake
}

// runCLI runs luna-deploy in-process against the fake.
func runCLI(fake *cloudfake.AWS, args ...string) (code int, stdout, stderr string) {
	var o, e nspawn.Buffer
	code = cli.Main(context.Background(), args, cli.Env{
		Stdout: &o, Stderr: &e,
		Getenv: func(string) string { return "" },
		AWSConfig: func(c *aws.Config) {
			c.BaseEndpoint = aws.String(fake.URL)
			c.Credentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret-key", "")
		},
	})
	return code, o.String(), e.String()
}

// testRestartInstance runs luna-deploy asg restart --instance against the
// containers listed by a fake Auto Scaling group: only the named one gets a
// new process; an unknown name restarts nothing.
func testRestartInstance(t *testing.T, key clientKey, knownHosts string, a, b *container) {
	fake := asgOf(t, map[string]*container{"i-0alpha": a, "i-0beta": b})
	flags := []string{"asg", "restart", "--region", "eu-west-1", "--user", "root", "-i", key.file, "--known-hosts", knownHosts,
		"--internal-ip", "--ssh-port", strconv.Itoa(a.ports.ssh), "--health-port", strconv.Itoa(a.ports.health)}
	beforeA, beforeB := a.mainPID(), b.mainPID()
	code, _, stderr := runCLI(fake, append(flags, "--instance", "i-0beta", "--settle", "1s")...)
	if code != 0 {
		t.Fatalf("restart --instance i-0beta: exit %d\n%s", code, stderr)
	}
	if got := a.mainPID(); got != beforeA {
		t.Errorf("alpha was restarted (MainPID %s -> %s)", beforeA, got)
	}
	if got := b.mainPID(); got == beforeB || got == "0" {
		t.Errorf("beta's MainPID %s -> %s: want a new process", beforeB, got)
	}
	for _, want := range []string{"restarting luna on i-0beta", "i-0beta is ready", "i-0beta stayed ready for 1s (--settle)", "restarted i-0beta (1 of 1)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "i-0alpha") {
		t.Errorf("stderr names alpha:\n%s", stderr)
	}

	beforeA, beforeB = a.mainPID(), b.mainPID()
	code, _, stderr = runCLI(fake, append(flags, "--instance", "i-0gone")...)
	if code != 1 || !strings.Contains(stderr, `--instance "i-0gone": no such instance in group luna (its instances: i-0alpha, i-0beta); nothing was restarted`) &&
		!strings.Contains(stderr, `--instance "i-0gone": no such instance in group luna (its instances: i-0beta, i-0alpha); nothing was restarted`) {
		t.Errorf("unknown --instance: exit %d\n%s", code, stderr)
	}
	if a.mainPID() != beforeA || b.mainPID() != beforeB {
		t.Error("an unknown --instance restarted something")
	}
}

// testLogsChurn follows the fleet's journals (Luna's and sshd's units)
// with an empty known_hosts under accept-new while beta goes through what
// a fleet does to a node: first listed without an address, then with one;
// replaced by beta-2 at the same address with a new host key; then
// recreated under the same name at another address with yet another key.
func testLogsChurn(t *testing.T, key clientKey, a, b *container, spareIP string) {
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	var out, notices nspawn.Buffer
	d, err := remote.NewDialer(remote.Options{User: "root", KeyFiles: []string{key.file}, KnownHosts: []string{kh}, InternalIP: true,
		KeepAlive: time.Second, Notices: &notices})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	g := &group{}
	g.set(a.instance("alpha"), deploy.Instance{Name: "beta", State: "PROVISIONING"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- remote.Tail(ctx, g, d, remote.LogOptions{
			Units: []string{"luna.service", "ssh.service"}, Follow: true, Lines: 20, Relist: 300 * time.Millisecond,
			MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second, Notices: &notices,
		}, &out)
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		if !nspawn.WaitFor(30*time.Second, 50*time.Millisecond, cond) {
			t.Fatalf("%s; output:\n%s\nnotices:\n%s", what, nspawn.Tail(out.String(), 30), notices.String())
		}
	}
	line := func(prefix, text string) func() bool {
		return func() bool {
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, prefix) && strings.Contains(l, text) {
					return true
				}
			}
			return false
		}
	}
	noticed := func(text string) func() bool { return func() bool { return strings.Contains(notices.String(), text) } }

	wait("no notice of beta without an address", noticed("instance beta has no internal IP: it may still be starting; following it once it has one"))
	a.journalMark("churn-a1")
	wait("alpha's entry", line("alpha | ", "]: churn-a1"))
	wait("alpha's key not recorded", noticed("alpha: recorded the host key of "+a.sshAddr()))

	// beta gets its address.
	g.set(a.instance("alpha"), b.instance("beta"))
	b.journalMark("churn-b1")
	wait("beta not tailed once it had an address", line("beta | ", "]: churn-b1"))

	// beta-2 replaces beta at the same address, with a key of its own.
	oldAddr := b.sshAddr()
	b.replaceSSH("")
	g.set(a.instance("alpha"), b.instance("beta-2"))
	wait("beta not let go", noticed("beta left the group"))
	wait("the replacement's key not accepted", noticed("known_hosts had it for instance beta, which beta-2 replaced at this address"))
	b.journalMark("churn-b2")
	wait("beta-2's entry", line("beta-2 | ", "]: churn-b2"))
	known := readFile(t, kh)
	if !strings.Contains(known, "luna-deploy-instance=beta-2") || strings.Contains(known, "luna-deploy-instance=beta\n") {
		t.Errorf("known_hosts after the replacement:\n%s", known)
	}

	// Autohealing recreates beta-2 under its name at another address.
	b.replaceSSH(spareIP)
	g.set(a.instance("alpha"), b.instance("beta-2"))
	wait("beta-2 not followed at its new address", noticed(fmt.Sprintf("beta-2 moved from %s to %s", oldAddr, b.sshAddr())))
	wait("the new address's key not recorded", noticed("beta-2: recorded the host key of "+b.sshAddr()))
	b.journalMark("churn-b3")
	wait("beta-2's entry at the new address", line("beta-2 | ", "]: churn-b3"))
	wait("sshd's unit not merged in", line("beta-2 | ", "Server listening on "+spareIP))
	a.journalMark("churn-a2")
	wait("alpha after the churn", line("alpha | ", "]: churn-a2"))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Tail: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not return after cancel")
	}
	text := out.String()
	// beta's successors are this same container, so their fresh streams
	// show its recent entries again; alpha's stream went on throughout.
	for _, mark := range []string{"churn-a1", "churn-a2"} {
		if n := strings.Count(text, "]: "+mark); n != 1 {
			t.Errorf("%s shown %d times, want once", mark, n)
		}
	}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if !strings.HasPrefix(l, "alpha | ") && !strings.HasPrefix(l, "beta | ") && !strings.HasPrefix(l, "beta-2 | ") {
			t.Errorf("line without an instance prefix: %q", l)
		}
	}
	t.Logf("notices:\n%s", notices.String())
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
