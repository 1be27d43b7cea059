package infra

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lunadb/luna/internal/testenv"
)

func tofu(t *testing.T) string { return tool(t, "tofu", "tofu") }

func TestTofuFmt(t *testing.T) {
	bin := tofu(t)
	// fmt needs no providers: an empty CLI configuration will do.
	rc := filepath.Join(t.TempDir(), "tofurc")
	if err := os.WriteFile(rc, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, cleanEnv("TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1"), testenv.RepoRoot(), bin, "fmt", "-check", "-recursive", "-diff", "terraform")
	if r.err != nil {
		t.Fatalf("terraform/ is not formatted (run tofu fmt -recursive terraform):\n%s", r)
	}
}

// tofuInit initialises dir (relative to the workspace root) offline: the
// google provider can only come from the mirror, the module from disk.
func tofuInit(t *testing.T, root, dir string) string {
	t.Helper()
	bin := tofu(t)
	wd := filepath.Join(root, dir)
	r := mustRun(t, tofuEnv(t), wd, bin, "init", "-backend=false", "-input=false", "-no-color")
	want := "Installing hashicorp/google v" + providerVersion(t)
	if !strings.Contains(r.stdout, want) {
		t.Fatalf("tofu init in %s did not install the mirrored provider (%q):\n%s", dir, want, r)
	}
	return bin
}

// providerVersion is the version the mirror offers the google provider as.
func providerVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(testenv.RepoRoot(), "scripts", "infra-tools.sh"), "path", "google-provider-version").Output()
	if err != nil {
		t.Fatalf("scripts/infra-tools.sh path google-provider-version: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestTofuValidateGCP(t *testing.T) {
	needStartupScripts(t)
	root := workspace(t, "terraform", "scripts")
	for _, dir := range []string{"terraform/modules/gcp-mig", "terraform/examples/gcp"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			bin := tofuInit(t, root, dir)
			r := mustRun(t, tofuEnv(t), filepath.Join(root, dir), bin, "validate", "-no-color")
			if !strings.Contains(r.stdout, "The configuration is valid.") {
				t.Fatalf("tofu validate %s:\n%s", dir, r)
			}
		})
	}
}

// The init must not reach any registry: with the mirror left out of the CLI
// configuration, the same init fails instead of downloading.
func TestTofuInitIsOffline(t *testing.T) {
	bin := tofu(t)
	root := workspace(t, "terraform/modules/gcp-mig")
	rc := filepath.Join(t.TempDir(), "tofurc")
	cfg := "provider_installation {\n  direct {\n    exclude = [\"registry.opentofu.org/*/*\"]\n  }\n}\n"
	if err := os.WriteFile(rc, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	r := run(t, env, filepath.Join(root, "terraform/modules/gcp-mig"), bin, "init", "-backend=false", "-input=false", "-no-color")
	if r.err == nil {
		t.Fatalf("tofu init succeeded without the mirror, so it can fetch providers:\n%s", r)
	}
	if !strings.Contains(r.stdout+r.stderr, "hashicorp/google") {
		t.Fatalf("tofu init without the mirror failed for another reason than the provider:\n%s", r)
	}
}

func TestTofuTestGCP(t *testing.T) {
	needStartupScripts(t)
	root := workspace(t, "terraform", "scripts")
	dir := "terraform/modules/gcp-mig"
	bin := tofuInit(t, root, dir)
	r := run(t, tofuEnv(t), filepath.Join(root, dir), bin, "test", "-no-color")
	if r.err != nil {
		t.Fatalf("tofu test:\n%s", r)
	}
	// Every run block must have passed: count them in the files and in the
	// summary, so a run that silently stops being executed is noticed.
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), dir, "tests", "*.tftest.hcl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s/tests: %v", dir, err)
	}
	runs := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		runs += len(regexp.MustCompile(`(?m)^run "`).FindAll(b, -1))
	}
	m := regexp.MustCompile(`Success! (\d+) passed, 0 failed`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("tofu test did not report success:\n%s", r)
	}
	if n, _ := strconv.Atoi(m[1]); n != runs {
		t.Fatalf("tofu test passed %d runs, the files have %d:\n%s", n, runs, r)
	}
	t.Logf("tofu test: %d runs passed", runs)
}

// tflint with the bundled terraform ruleset only: TFLINT_PLUGIN_DIR is an
// empty directory, so a configuration that needed a plugin would fail.
func TestTflint(t *testing.T) {
	bin := tool(t, "tflint", "tflint")
	config := filepath.Join(testenv.RepoRoot(), "terraform", ".tflint.hcl")
	env := cleanEnv("TFLINT_PLUGIN_DIR="+t.TempDir(), "CHECKPOINT_DISABLE=1")
	for _, dir := range []string{"modules/gcp-mig", "modules/aws-asg", "examples/gcp", "examples/aws"} {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			r := run(t, env, testenv.RepoRoot(), bin, "--chdir=terraform/"+dir, "--config="+config, "--format=compact", "--no-color")
			if r.err != nil || strings.TrimSpace(r.stdout) != "" {
				t.Fatalf("tflint terraform/%s:\n%s", dir, r)
			}
		})
	}
}

// A lint finding must fail the lint: a module with an untyped, undocumented
// variable is reported.
func TestTflintReportsFindings(t *testing.T) {
	bin := tool(t, "tflint", "tflint")
	config := filepath.Join(testenv.RepoRoot(), "terraform", ".tflint.hcl")
	dir := t.TempDir()
	src := "terraform {\n  required_version = \">= 1.8.0\"\n}\n\nvariable \"x\" {}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("TFLINT_PLUGIN_DIR="+t.TempDir(), "CHECKPOINT_DISABLE=1")
	r := run(t, env, dir, bin, "--config="+config, "--format=compact", "--no-color")
	if r.err == nil {
		t.Fatalf("tflint passed a module with an untyped variable:\n%s", r)
	}
	for _, rule := range []string{"terraform_typed_variables", "terraform_documented_variables"} {
		if !strings.Contains(r.stdout, rule) {
			t.Errorf("tflint did not report %s:\n%s", rule, r)
		}
	}
}
