package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/nspawn"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nspawn.RemoveBinaries()
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// binaries builds bin/luna and bin/lunactl as shipped (they run inside the
// containers) once per test binary.
func binaries(t *testing.T) (luna, lunactl string) {
	t.Helper()
	return nspawn.Binaries(t, repoRoot())
}

// needs fails (rather than skips: a skipped test would hide that nothing
// was checked) without root or the container tools.
func needs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (it boots root file systems with systemd-nspawn)")
	}
	for _, name := range []string{"systemd-nspawn", "nsenter", "debootstrap", "flock"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s not found in PATH: run make tools (scripts/test-deps.sh installs it)", name)
		}
	}
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String(), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// applianceRootfs returns the cached Debian root file system (with systemd,
// curl and openssh-server), building it first when needed.
func applianceRootfs(t *testing.T) string {
	t.Helper()
	dir := nspawn.Rootfs(t, repoRoot())
	if _, err := os.Stat(filepath.Join(dir, "usr/sbin/sshd")); err != nil {
		t.Fatalf("the appliance root file system %s holds no sshd: %v", dir, err)
	}
	return dir
}

// clientKey is the test's SSH identity.
type clientKey struct {
	file       string // private key, OpenSSH format
	authorized []byte // authorized_keys line
}

func newClientKey(t *testing.T) clientKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "luna-deploy test")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{file: file, authorized: ssh.MarshalAuthorizedKey(sp)}
}

// container is a throwaway copy of the root file system with Luna and sshd
// enabled, booted with systemd-nspawn on the host's network.
type container struct {
	*nspawn.Machine
	t                *testing.T
	sshPort, apiPort int
	healthPort       int
}

func newContainer(t *testing.T, rootfs, luna, lunactl string, key clientKey) *container {
	t.Helper()
	c := &container{
		Machine: nspawn.Copy(t, rootfs, "luna-deploy"),
		t:       t,
		sshPort: freePort(t), apiPort: freePort(t), healthPort: freePort(t),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := run(ctx, filepath.Join(repoRoot(), "scripts", "install.sh"), "--prefix", c.Root, "--bin", luna, "--lunactl", lunactl, "--enable"); err != nil {
		t.Fatal(err)
	}
	env := c.Read("etc/luna/luna.env")
	for name, port := range map[string]int{"LUNA_API_HOST_PORT": c.apiPort, "LUNA_HEALTH_HOST_PORT": c.healthPort} {
		line := fmt.Sprintf("%s=127.0.0.1:%d", name, port)
		if !strings.Contains(env, "\n"+name+"=") {
			t.Fatalf("the installed luna.env does not set %s", name)
		}
		var lines []string
		for _, l := range strings.Split(env, "\n") {
			if strings.HasPrefix(l, name+"=") {
				l = line
			}
			lines = append(lines, l)
		}
		env = strings.Join(lines, "\n")
	}
	c.Write("etc/luna/luna.env", env, 0o600)

	// sshd: unmasked, enabled, on a loopback port of its own.
	if err := os.Remove(filepath.Join(c.Root, "etc/systemd/system/ssh.service")); err != nil {
		t.Fatalf("unmasking ssh.service: %v", err)
	}
	wants := filepath.Join(c.Root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	// The package enabled it before the rootfs masked it; make sure.
	link := filepath.Join(wants, "ssh.service")
	os.Remove(link)
	if err := os.Symlink("/lib/systemd/system/ssh.service", link); err != nil {
		t.Fatal(err)
	}
	c.Write("etc/ssh/sshd_config.d/luna-test.conf",
		fmt.Sprintf("Port %d\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\nUseDNS no\n", c.sshPort), 0o644)
	if err := os.MkdirAll(filepath.Join(c.Root, "root/.ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	c.Write("root/.ssh/authorized_keys", string(key.authorized), 0o600)
	return c
}

// hostKeyLine is the known_hosts line for the container's ed25519 host key.
func (c *container) hostKeyLine() string {
	c.t.Helper()
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.Read("etc/ssh/ssh_host_ed25519_key.pub")))
	if err != nil {
		c.t.Fatal(err)
	}
	return knownhosts.Line([]string{net.JoinHostPort("127.0.0.1", strconv.Itoa(c.sshPort))}, key)
}

// boot starts the container and waits until sshd accepts connections and
// Luna's /readyz answers 200.
func (c *container) boot() {
	t := c.t
	t.Helper()
	c.Machine.Boot()
	hc := &http.Client{Timeout: 2 * time.Second}
	if !nspawn.WaitFor(3*time.Minute, 200*time.Millisecond, func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.sshPort), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", c.healthPort))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		out, _ := c.Exec("systemctl", "status", "--no-pager", "ssh.service", "luna.service")
		t.Fatalf("sshd or Luna did not come up in the container:\n%s\n%s", out, nspawn.Tail(c.Console.String(), 40))
	}
}

// mainPID is luna.service's main process ID inside the container.
func (c *container) mainPID() string {
	c.t.Helper()
	out, err := c.Exec("systemctl", "show", "-p", "MainPID", "--value", "luna.service")
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// journalMark writes an entry that journalctl -u luna shows: root's entries
// about the unit (OBJECT_SYSTEMD_UNIT) belong to it.
func (c *container) journalMark(msg string) {
	c.t.Helper()
	c.Write("root/mark.txt", "MESSAGE="+msg+"\nSYSLOG_IDENTIFIER=deploy-test\nOBJECT_SYSTEMD_UNIT=luna.service\n", 0o644)
	if _, err := c.Exec("logger", "--journald=/root/mark.txt"); err != nil {
		c.t.Fatal(err)
	}
}
