package cli

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeTunnelCLI puts a program called name first on PATH that records its
// arguments and then carries the connection to addr, as `aws ssm
// start-session` and `gcloud compute start-iap-tunnel --listen-on-stdin`
// do with the instance's SSH port. It returns the file the arguments go to.
//
// The command lines asserted below are the clouds' documented ones: AWS's
// "Allow and control permissions for SSH connections through Session
// Manager" (ProxyCommand aws ssm start-session --target %h --document-name
// AWS-StartSSHSession --parameters 'portNumber=%p') and gcloud's
// start-iap-tunnel reference (INSTANCE_NAME INSTANCE_PORT --listen-on-stdin
// --zone, used as ProxyCommand).
func fakeTunnelCLI(t *testing.T, name, addr string) string {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, name+".args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + log + "'\n" + proxyToEnv + "=" + addr + " exec '" + exe + "'\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return log
}

func readArgs(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestViaSSM: asg restart --via ssm reaches an instance that has no address
// the operator can route to, by instance ID through Session Manager, and
// asks its /readyz over the same SSH connection.
func TestViaSSM(t *testing.T) {
	h := newHarness(t)
	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><Instances><member><InstanceId>i-0abc</InstanceId>
		<LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus><AvailabilityZone>eu-west-1a</AvailabilityZone></member></Instances></member></AutoScalingGroups>`)
	// A private address nothing here routes to: only the tunnel reaches it.
	h.aws.Answer("DescribeInstances", `<reservationSet><item><instancesSet><item><instanceId>i-0abc</instanceId><privateIpAddress>10.255.255.1</privateIpAddress></item></instancesSet></item></reservationSet>`)
	f := newSSH(t, func(string, io.Writer, io.Writer) int { return 0 })
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	healthPort := ready.Listener.Addr().(*net.TCPAddr).Port
	args := fakeTunnelCLI(t, "aws", f.srv.Addr)
	known := filepath.Join(t.TempDir(), "known_hosts")
	r := h.run("", "asg", "restart", "--region", "eu-west-1", "--user", "admin", "-i", f.key,
		"--known-hosts", known, "--via", "ssm", "--health-port", strconv.Itoa(healthPort), "--settle", "0s")
	if r.code != 0 {
		t.Fatalf("restart --via ssm: exit %d\n%s", r.code, r.stderr)
	}
	if got, want := readArgs(t, args), "ssm start-session --target i-0abc --document-name AWS-StartSSHSession --parameters portNumber=22 --region eu-west-1"; got != want {
		t.Errorf("aws ran with\n%s\nwant\n%s", got, want)
	}
	if got := f.srv.Commands(); len(got) != 1 || got[0] != "sudo -n systemctl restart luna" {
		t.Errorf("instance ran %q", got)
	}
	if got := f.srv.Forwards(); len(got) != 1 || got[0] != "127.0.0.1:"+strconv.Itoa(healthPort) {
		t.Errorf("readiness asked through %q", got)
	}
	if !strings.Contains(readArgs(t, known), "i-0abc ssh-ed25519 ") {
		t.Errorf("known_hosts does not name the instance:\n%s", readArgs(t, known))
	}
}

// TestViaIAP: mig logs --via iap tails instances by name and zone through
// IAP TCP forwarding.
func TestViaIAP(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("10.255.255.1")
	f := newSSH(t, func(cmd string, out, _ io.Writer) int {
		io.WriteString(out, journalLine("c1", "hello"))
		return 0
	})
	args := fakeTunnelCLI(t, "gcloud", f.srv.Addr)
	known := filepath.Join(t.TempDir(), "known_hosts")
	r := h.run("", append([]string{"mig", "logs", "--user", "admin", "-i", f.key, "--known-hosts", known, "--via", "iap"}, gcpFlags...)...)
	if r.code != 0 {
		t.Fatalf("logs --via iap: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "luna-a | ") || !strings.Contains(r.stdout, "luna-b | ") {
		t.Errorf("logs:\n%s", r.stdout)
	}
	got := strings.Split(readArgs(t, args), "\n")
	want := map[string]bool{
		"compute start-iap-tunnel luna-a 22 --listen-on-stdin --zone europe-west1-b --verbosity warning --project proj": true,
		"compute start-iap-tunnel luna-b 22 --listen-on-stdin --zone europe-west1-c --verbosity warning --project proj": true,
	}
	if len(got) != 2 || !want[got[0]] || !want[got[1]] || got[0] == got[1] {
		t.Errorf("gcloud ran with\n%s", strings.Join(got, "\n"))
	}
}

func TestViaBadInput(t *testing.T) {
	h := newHarness(t)
	key := newSSH(t, func(string, io.Writer, io.Writer) int { return 0 }).key
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"asg", "logs", "--region", "eu-west-1", "-i", key, "--via", "iap"}, 2, `--via "iap": asg instances are reached --via ssm`},
		{append([]string{"mig", "logs", "-i", key, "--via", "ssm"}, gcpFlags...), 2, `--via "ssm": mig instances are reached --via iap`},
		{[]string{"asg", "logs", "--region", "eu-west-1", "-i", key, "--via", "ssm", "--proxy-command", "nc %h %p"}, 2, "--via and --proxy-command contradict each other"},
		{[]string{"asg", "restart", "--region", "eu-west-1", "-i", key, "--via", "ssm", "--jump", "bastion"}, 1, "--jump and --via/--proxy-command are two ways"},
		{[]string{"asg", "logs", "--region", "eu-west-1", "-i", key, "--proxy-command", "nc %h %x"}, 1, "unknown token"},
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
