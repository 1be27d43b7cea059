package infra

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
)

func TestInfraToolsUsage(t *testing.T) {
	script := filepath.Join(testenv.RepoRoot(), "scripts", "infra-tools.sh")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "usage:"},
		{[]string{"path", "terraform"}, "unknown tool: terraform"},
		{[]string{"install", "terraform"}, "unknown tool: terraform"},
	} {
		cmd := exec.Command(script, c.args...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("infra-tools.sh %s: exit %v, want 2\n%s", strings.Join(c.args, " "), err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("infra-tools.sh %s said %q, want %q", strings.Join(c.args, " "), out, c.want)
		}
	}
}

// Once built, the tools are found in the cache: a second install builds
// nothing and takes no time.
func TestInfraToolsWarmInstall(t *testing.T) {
	for _, name := range []string{"tofu", "google-provider", "tflint", "packer", "packer-plugins"} {
		tool(t, name, name)
	}
	script := filepath.Join(testenv.RepoRoot(), "scripts", "infra-tools.sh")
	start := time.Now()
	out, err := exec.Command(script, "install").CombinedOutput()
	if err != nil {
		t.Fatalf("infra-tools.sh install: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a warm install took %v", d)
	}
	if len(out) != 0 {
		t.Errorf("a warm install did work:\n%s", out)
	}
}
