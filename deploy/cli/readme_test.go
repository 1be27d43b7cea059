package cli

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeWalkthrough returns the luna-deploy command lines of README.md's
// step-by-step deployment, continuation lines joined and comments dropped.
func readmeWalkthrough(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "### From zero to a fleet, step by step")
	end := strings.Index(s, "### Reference")
	if start < 0 || end < start {
		t.Fatal("README.md has no step-by-step deployment section")
	}
	var cmds []string
	inBlock, cur := false, ""
	for _, line := range strings.Split(s[start:end], "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock
			continue
		case !inBlock:
			continue
		}
		if i := strings.Index(line, " # "); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, `\`) {
			cur += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line = cur + line
		cur = ""
		if strings.HasPrefix(line, "luna-deploy ") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// splitWords splits a command line as a POSIX shell would, for the quoting
// the README uses: single and double quotes, no expansions.
func splitWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestReadmeDeploying runs every luna-deploy command of the README's
// step-by-step deployment against the fake clouds: the real startup
// scripts go into the requests, logs and restarts reach a real SSH server
// through the tunnel commands (a stand-in for gcloud and the aws CLI on
// PATH) and ask /readyz over SSH. Only what a laptop cannot have is
// adapted: the key and known_hosts files, the health port, --settle.
func TestReadmeDeploying(t *testing.T) {
	cmds := readmeWalkthrough(t)
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands in the README walkthrough:\n%s", len(cmds), strings.Join(cmds, "\n"))
	}
	seen := map[string]bool{}
	for _, line := range cmds {
		args := splitWords(t, strings.TrimPrefix(line, "luna-deploy "))
		name := args[0] + " " + args[1]
		seen[name] = true
		t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) { runReadmeCommand(t, args) })
	}
	for _, want := range []string{"mig create", "mig status", "mig logs", "mig restart", "mig update", "asg create", "asg status", "asg logs", "asg restart", "asg update"} {
		if !seen[want] {
			t.Errorf("the walkthrough has no %s", want)
		}
	}
}

func runReadmeCommand(t *testing.T, args []string) {
	h := newHarness(t)
	f := newSSH(t, func(cmd string, out, _ io.Writer) int {
		if strings.Contains(cmd, "journalctl") {
			io.WriteString(out, journalLine("c1", "luna is serving"))
		}
		return 0
	})
	pub := filepath.Join(t.TempDir(), "id_ed25519.pub")
	os.WriteFile(pub, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb ops@example\n"), 0o644)
	for i, a := range args {
		// The fakes hold project proj.
		a = strings.ReplaceAll(a, "<sha256>", strings.Repeat("a", 64))
		if a == "my-proj" {
			a = "proj"
		}
		args[i] = a
		switch {
		case strings.HasPrefix(a, "scripts/"):
			args[i] = "../../" + a
		case a == "~/.ssh/id_ed25519":
			args[i] = f.key
		case a == "~/.ssh/id_ed25519.pub":
			args[i] = pub
		}
	}
	cloud, cmd := args[0], args[1]
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	port := strconv.Itoa(ready.Listener.Addr().(*net.TCPAddr).Port)
	switch cmd {
	case "logs", "restart":
		args = append(args, "--known-hosts", filepath.Join(t.TempDir(), "known_hosts"))
		if !contains(args, "-i") {
			args = append(args, "-i", f.key)
		}
		if cmd == "restart" {
			args = append(args, "--health-port", port, "--settle", "0s")
		}
		fakeTunnelCLI(t, map[string]string{"mig": "gcloud", "asg": "aws"}[cloud], f.srv.Addr)
	}
	switch cloud + " " + cmd {
	case "mig create":
		h.answerGroup()
	case "mig update":
		h.answerGroup()
	case "mig status", "mig logs", "mig restart":
		h.twoInstances("10.255.255.1")
	case "asg create", "asg status", "asg logs", "asg restart", "asg update":
		h.answerASG()
	}
	if cloud+" "+cmd == "asg update" {
		h.aws.Answer("CreateLaunchTemplateVersion", `<launchTemplateVersion><launchTemplateName>luna</launchTemplateName><versionNumber>2</versionNumber></launchTemplateVersion>`)
		h.aws.Answer("StartInstanceRefresh", `<InstanceRefreshId>ir-1</InstanceRefreshId>`)
		h.aws.Answer("DescribeInstanceRefreshes", `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Successful</Status><PercentageComplete>100</PercentageComplete></member></InstanceRefreshes>`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if contains(args, "--follow") {
		// Following goes on until Ctrl-C, which exits 0.
		ctx, cancel = context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
	}
	r := h.runCtx(ctx, "", args...)
	if r.code != 0 {
		t.Fatalf("luna-deploy %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	switch cmd {
	case "logs":
		if !strings.Contains(r.stdout, "luna is serving") {
			t.Errorf("logs showed:\n%s", r.stdout)
		}
	case "restart":
		if got := f.srv.Commands(); len(got) == 0 || got[0] != "sudo -n systemctl restart luna" {
			t.Errorf("restart ran %q", got)
		}
	case "create":
		if len(h.gcp.Mutations())+len(h.aws.Mutations()) == 0 {
			t.Error("create sent nothing")
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// answerASG makes the fake AWS hold group luna with one healthy instance
// at a private address and a launch template version made by create.
func (h *harness) answerASG() {
	h.aws.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><DesiredCapacity>3</DesiredCapacity><MaxSize>6</MaxSize>
		<LaunchTemplate><LaunchTemplateName>luna</LaunchTemplateName><Version>1</Version></LaunchTemplate><HealthCheckType>ELB</HealthCheckType><HealthCheckGracePeriod>600</HealthCheckGracePeriod>
		<TargetGroupARNs><member>`+targetGroup+`</member></TargetGroupARNs>
		<Instances>`+strings.Repeat(`<member><InstanceId>i-0abc</InstanceId><LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus><AvailabilityZone>eu-west-1a</AvailabilityZone>
		<LaunchTemplate><LaunchTemplateName>luna</LaunchTemplateName><Version>1</Version></LaunchTemplate></member>`, 3)+`</Instances></member></AutoScalingGroups>`)
	h.aws.Answer("DescribeInstances", `<reservationSet><item><instancesSet><item><instanceId>i-0abc</instanceId><privateIpAddress>10.255.255.1</privateIpAddress></item></instancesSet></item></reservationSet>`)
	ud := "#!/bin/bash\n# Settings added by luna-deploy.\nexport LUNA_PASSWD_FROM='aws-ssm:/luna/passwd'\nexport LUNA_RELEASE_URL='s3://my-luna-releases/luna_1.0.0_amd64.deb'\necho start\n"
	h.aws.Answer("DescribeLaunchTemplateVersions", `<launchTemplateVersionSet><item><launchTemplateName>luna</launchTemplateName><versionNumber>1</versionNumber><launchTemplateData>
		<imageId>ami-0123456789abcdef0</imageId><instanceType>r7i.2xlarge</instanceType><userData>`+base64.StdEncoding.EncodeToString([]byte(ud))+`</userData>
		</launchTemplateData></item></launchTemplateVersionSet>`)
}
