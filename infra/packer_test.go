package infra

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lunadb/luna/internal/testenv"
)

// packerEnv points Packer at the locally built plugins and keeps its
// configuration and cache in the test's temporary directories.
func packerEnv(t *testing.T) (bin string, env []string) {
	t.Helper()
	bin = tool(t, "packer", "packer")
	plugins := tool(t, "packer-plugins", "packer-plugins")
	return bin, cleanEnv(
		"PACKER_PLUGIN_PATH="+plugins,
		"PACKER_CONFIG_DIR="+t.TempDir(),
		"PACKER_CACHE_DIR="+t.TempDir(),
		"CHECKPOINT_DISABLE=1",
		"PACKER_NO_COLOR=1",
	)
}

func TestPackerFmt(t *testing.T) {
	bin, env := packerEnv(t)
	r := run(t, env, testenv.RepoRoot(), bin, "fmt", "-check", "-diff", "packer")
	if r.err != nil {
		t.Fatalf("packer/ is not formatted (run packer fmt packer):\n%s", r)
	}
}

// packerValidate runs init and validate on a copy of packer/ with the given
// extra -var arguments and a dummy .deb.
func packerValidate(t *testing.T, vars ...string) result {
	t.Helper()
	bin, env := packerEnv(t)
	root := workspace(t, "packer")
	dir := filepath.Join(root, "packer")
	deb := filepath.Join(t.TempDir(), "luna_1.2.3_amd64.deb")
	if err := os.WriteFile(deb, []byte("not really a package"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, env, dir, bin, "init", ".")
	if strings.Contains(r.stdout+r.stderr, "Installed plugin") {
		t.Fatalf("packer init downloaded a plugin instead of using the local ones:\n%s", r)
	}
	args := []string{"validate", "-var", "luna_version=1.2.3", "-var", "deb_path=" + deb, "-var", "gcp_project_id=luna-test-project"}
	for _, v := range vars {
		args = append(args, "-var", v)
	}
	return run(t, env, dir, bin, append(args, ".")...)
}

func TestPackerValidate(t *testing.T) {
	r := packerValidate(t)
	if r.err != nil || !strings.Contains(r.stdout, "The configuration is valid.") {
		t.Fatalf("packer validate:\n%s", r)
	}
	// The example variables file must be accepted too.
	r = packerValidate(t, `bake_extensions=["httpfs","spatial"]`)
	if r.err != nil {
		t.Fatalf("packer validate with bake_extensions:\n%s", r)
	}
}

func TestPackerValidateExampleVarFile(t *testing.T) {
	bin, env := packerEnv(t)
	root := workspace(t, "packer")
	dir := filepath.Join(root, "packer")
	deb := filepath.Join(t.TempDir(), "luna.deb")
	if err := os.WriteFile(deb, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, dir, bin, "init", ".")
	mustRun(t, env, dir, bin, "validate", "-var-file=example.pkrvars.hcl", "-var", "luna_version=1.2.3", "-var", "deb_path="+deb, ".")
}

func TestPackerRejectsBadInput(t *testing.T) {
	cases := []struct {
		name, v, want string
	}{
		{"version with a space", "luna_version=1.2 beta", "luna_version must be a Debian version"},
		{"empty version", "luna_version=", "luna_version must be a Debian version"},
		{"extension name", `bake_extensions=["httpfs; rm -rf /"]`, "bake_extensions entries must be extension names"},
		{"missing package", "deb_path=/nonexistent/luna.deb", "/nonexistent/luna.deb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := packerValidate(t, c.v)
			if r.err == nil {
				t.Fatalf("packer validate accepted %s:\n%s", c.v, r)
			}
			if !strings.Contains(r.stdout+r.stderr, c.want) {
				t.Fatalf("packer validate with %s did not say %q:\n%s", c.v, c.want, r)
			}
		})
	}
}

// The provisioning scripts the template runs must exist and pass shellcheck
// (scripts/test-deps.sh installs it).
func TestPackerScriptsShellcheck(t *testing.T) {
	sc := "shellcheck"
	for _, s := range []string{"packer/provision.sh", "packer/cleanup.sh", "scripts/infra-tools.sh"} {
		r := run(t, os.Environ(), testenv.RepoRoot(), sc, s)
		if r.err != nil {
			t.Errorf("shellcheck %s:\n%s", s, r)
		}
	}
}
