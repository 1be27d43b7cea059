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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/nspawn"
	"github.com/lunadb/luna/internal/testenv"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nspawn.RemoveBinaries()
	os.Exit(code)
}

// binaries builds bin/luna and bin/lunactl as shipped (they run inside the
// containers) once per test binary.
func binaries(t *testing.T) (luna, lunactl string) {
	t.Helper()
	return nspawn.Binaries(t, testenv.RepoRoot())
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
	cmd.Dir = testenv.RepoRoot()
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
	dir := nspawn.Rootfs(t, testenv.RepoRoot())
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

// ports are the loopback ports a fleet's containers serve on, the same for
// each, as on a cloud where every node has an address of its own.
type ports struct {
	ssh, api, health int
}

// loopbackIPs returns n addresses of 127.0.0.0/8 (all of it is the
// loopback interface on Linux) for n containers: a random /24 so that
// tests running at once stay apart.
func loopbackIPs(t *testing.T, n int) []string {
	t.Helper()
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	var ips []string
	for i := range n {
		ips = append(ips, fmt.Sprintf("127.%d.%d.%d", 100+int(b[0])%100, b[1], 10+i))
	}
	return ips
}

// fleetPorts picks ports free on every one of ips.
func fleetPorts(t *testing.T, ips ...string) ports {
	t.Helper()
	pick := func() int {
		for range 50 {
			p := freePort(t)
			free := true
			for _, ip := range ips {
				ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
				if err != nil {
					free = false
					break
				}
				ln.Close()
			}
			if free {
				return p
			}
		}
		t.Fatal("no port free on all the addresses")
		return 0
	}
	return ports{ssh: pick(), api: pick(), health: pick()}
}

// container is a throwaway copy of the root file system with Luna and sshd
// enabled, booted with systemd-nspawn on the host's network: sshd, the API
// and the health port listen on the container's own loopback address.
type container struct {
	*nspawn.Machine
	t  *testing.T
	ip string
	ports
}

// newContainer makes a container at ip; env overrides settings of the
// installed luna.env (NAME=value lines).
func newContainer(t *testing.T, rootfs, luna, lunactl string, key clientKey, ip string, p ports, env ...string) *container {
	t.Helper()
	c := &container{
		Machine: nspawn.Copy(t, rootfs, "luna-deploy"),
		t:       t,
		ip:      ip,
		ports:   p,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := run(ctx, filepath.Join(testenv.RepoRoot(), "scripts", "install.sh"), "--prefix", c.Root, "--bin", luna, "--lunactl", lunactl, "--enable"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"LUNA_API_HOST_PORT", "LUNA_HEALTH_HOST_PORT"} {
		if !strings.Contains(c.Read("etc/luna/luna.env"), "\n"+name+"=") {
			t.Fatalf("the installed luna.env does not set %s", name)
		}
	}
	c.setEnv(append([]string{
		fmt.Sprintf("LUNA_API_HOST_PORT=%s:%d", ip, p.api),
		fmt.Sprintf("LUNA_HEALTH_HOST_PORT=%s:%d", ip, p.health),
	}, env...)...)

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
	c.sshdConfig(ip, p.ssh)
	if err := os.MkdirAll(filepath.Join(c.Root, "root/.ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	c.Write("root/.ssh/authorized_keys", string(key.authorized), 0o600)
	return c
}

// setEnv sets NAME=value lines of luna.env, replacing a line that sets the
// name, commented out or not, and adding the others.
func (c *container) setEnv(settings ...string) {
	c.t.Helper()
	lines := strings.Split(c.Read("etc/luna/luna.env"), "\n")
	for _, kv := range settings {
		name, _, _ := strings.Cut(kv, "=")
		done := false
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimPrefix(l, "#"), name+"=") {
				lines[i], done = kv, true
			}
		}
		if !done {
			lines = append(lines, kv)
		}
	}
	c.Write("etc/luna/luna.env", strings.Join(lines, "\n")+"\n", 0o600)
}

func (c *container) sshdConfig(ip string, port int) {
	c.Write("etc/ssh/sshd_config.d/luna-test.conf",
		fmt.Sprintf("Port %d\nListenAddress %s\nPermitRootLogin prohibit-password\nUseDNS no\n", port, ip), 0o644)
}

// sshAddr is where the container's sshd listens.
func (c *container) sshAddr() string { return net.JoinHostPort(c.ip, strconv.Itoa(c.ports.ssh)) }

// replaceSSH makes the container look like another machine to SSH: a new
// host key and, when ip is set, another address (sshd restarted; the
// sessions it serves go on).
func (c *container) replaceSSH(ip string) {
	c.t.Helper()
	if ip != "" {
		c.ip = ip
		c.sshdConfig(ip, c.ports.ssh)
	}
	if _, err := c.Exec("sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh.service"); err != nil {
		c.t.Fatal(err)
	}
	if !nspawn.WaitFor(30*time.Second, 50*time.Millisecond, func() bool {
		conn, err := net.DialTimeout("tcp", c.sshAddr(), time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}) {
		c.t.Fatalf("sshd does not listen on %s after the change", c.sshAddr())
	}
}

// hostKeyLine is the known_hosts line for the container's ed25519 host key.
func (c *container) hostKeyLine() string {
	c.t.Helper()
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.Read("etc/ssh/ssh_host_ed25519_key.pub")))
	if err != nil {
		c.t.Fatal(err)
	}
	return knownhosts.Line([]string{c.sshAddr()}, key)
}

// boot starts the containers and waits until each one's sshd accepts
// connections and its Luna's /readyz answers 200; they boot side by side.
func boot(cs ...*container) {
	for _, c := range cs {
		c.t.Helper()
		c.Machine.Boot()
	}
	for _, c := range cs {
		c.waitUp()
	}
}

// readyURL is the container's /readyz.
func (c *container) readyURL() string {
	return fmt.Sprintf("http://%s/readyz", net.JoinHostPort(c.ip, strconv.Itoa(c.ports.health)))
}

func (c *container) waitUp() {
	t := c.t
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	if !nspawn.WaitFor(3*time.Minute, 200*time.Millisecond, func() bool {
		conn, err := net.DialTimeout("tcp", c.sshAddr(), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		resp, err := hc.Get(c.readyURL())
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
