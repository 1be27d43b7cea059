package infra

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
)

var (
	toolMu     sync.Mutex
	toolPaths  = map[string]string{}
	toolErrors = map[string]error{}
)

// tool builds NAME with scripts/infra-tools.sh (instant once cached) and
// returns the path that `infra-tools.sh path` prints for it. A tool that
// cannot be built fails the test with the script's output: a skipped test
// would hide that nothing was checked.
func tool(t *testing.T, install, name string) string {
	t.Helper()
	toolMu.Lock()
	defer toolMu.Unlock()
	key := install + "\x00" + name
	if err := toolErrors[key]; err != nil {
		t.Fatal(err)
	}
	if p, ok := toolPaths[key]; ok {
		return p
	}
	script := filepath.Join(testenv.RepoRoot(), "scripts", "infra-tools.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, script, "install", install).CombinedOutput(); err != nil {
		toolErrors[key] = fmt.Errorf("scripts/infra-tools.sh install %s: %v\n%s", install, err, out)
		t.Fatal(toolErrors[key])
	}
	out, err := exec.Command(script, "path", name).Output()
	if err != nil {
		toolErrors[key] = fmt.Errorf("scripts/infra-tools.sh path %s: %v", name, err)
		t.Fatal(toolErrors[key])
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(p); err != nil {
		toolErrors[key] = fmt.Errorf("%s after install: %v", name, err)
		t.Fatal(toolErrors[key])
	}
	toolPaths[key] = p
	return p
}

// tofuEnv is the environment of every tofu run: the CLI configuration is
// named explicitly (the machine's may point at a missing file) and only
// knows the local mirror, and nothing phones home.
func tofuEnv(t *testing.T) []string {
	t.Helper()
	rc := tool(t, "google-provider", "tofurc")
	return cleanEnv(
		"TF_CLI_CONFIG_FILE="+rc,
		"TF_IN_AUTOMATION=1",
		"TF_INPUT=0",
		"CHECKPOINT_DISABLE=1",
		"TF_REGISTRY_DISCOVERY_RETRY=0",
	)
}

// cleanEnv is the process environment without the tools' own variables,
// which could redirect them, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TF_") || strings.HasPrefix(name, "PACKER_") ||
			strings.HasPrefix(name, "TFLINT_") || name == "CHECKPOINT_DISABLE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("err: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

// run runs a tool in dir with env and a deadline.
func run(t *testing.T, env []string, dir, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return result{stdout.String(), stderr.String(), err}
}

// mustRun is run that fails the test unless the tool exits 0.
func mustRun(t *testing.T, env []string, dir, name string, args ...string) result {
	t.Helper()
	r := run(t, env, dir, name, args...)
	if r.err != nil {
		t.Fatalf("%s %s in %s:\n%s", filepath.Base(name), strings.Join(args, " "), dir, r)
	}
	return r
}

// workspace copies the given repository paths into a temporary tree of the
// same layout, so init's .terraform directories and lock files stay out of
// the repository while relative paths (modules, startup scripts) still
// resolve. It returns the tree's root.
func workspace(t *testing.T, paths ...string) string {
	t.Helper()
	dst := t.TempDir()
	for _, p := range paths {
		if err := copyPath(filepath.Join(testenv.RepoRoot(), p), filepath.Join(dst, p)); err != nil {
			t.Fatalf("copying %s: %v", p, err)
		}
	}
	return dst
}

func copyPath(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == ".terraform" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		if d.Name() == ".terraform.lock.hcl" || strings.HasSuffix(d.Name(), ".tfstate") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
}

// startupScripts are the repository files the modules wire into instances.
var startupScripts = []string{"scripts/startup-gcp-mig.sh", "scripts/startup-aws-asg.sh"}

// needStartupScripts fails the test when a startup script the modules read
// with file() is missing from the repository.
func needStartupScripts(t *testing.T) {
	t.Helper()
	for _, s := range startupScripts {
		if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), s)); err != nil {
			t.Fatalf("the modules read %s, which is missing: %v", s, err)
		}
	}
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testenv.SyncBuffer collects a process's output from its two pipes.
