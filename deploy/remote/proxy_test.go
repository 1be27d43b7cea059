package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/internal/sshtest"
	"github.com/lunadb/luna/internal/testenv"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The test binary doubles as a proxy command, the role that `aws ssm
// start-session` or `gcloud compute start-iap-tunnel` plays for real: with
// LUNA_TEST_PROXY_TO set it writes its arguments and PID to
// LUNA_TEST_PROXY_LOG, connects there and copies standard input and output.
func TestMain(m *testing.M) {
	if to := os.Getenv("LUNA_TEST_PROXY_TO"); to != "" {
		os.Exit(proxyMain(to, os.Getenv("LUNA_TEST_PROXY_LOG"), os.Args[1:]))
	}
	os.Exit(m.Run())
}

func proxyMain(to, logFile string, args []string) int {
	if logFile != "" {
		line := fmt.Sprintf("%d %s\n", os.Getpid(), strings.Join(args, "|"))
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			f.WriteString(line)
			f.Close()
		}
	}
	return sshtest.ProxyMain(to)
}

// proxyCommand returns a command line running the test binary as a proxy
// to addr, given the tokens as arguments, and the file it logs to.
func proxyCommand(t *testing.T, addr string) (cmd, log string) {
	t.Helper()
	log = filepath.Join(t.TempDir(), "proxy.log")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("LUNA_TEST_PROXY_TO=%s LUNA_TEST_PROXY_LOG=%s %s %%n %%i %%z %%p %%r %%h 100%%%%", addr, shellQuote(log), shellQuote(exe)), log
}

// proxyRuns reads the log: one entry per command started, PID and
// arguments.
func proxyRuns(t *testing.T, log string) (pids []int, args []string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pid, a, _ := strings.Cut(l, " ")
		n, _ := strconv.Atoi(pid)
		pids = append(pids, n)
		args = append(args, a)
	}
	return pids, args
}

// A restart through a proxy command: the instance has no address at all
// (a private node reached by name, as Session Manager and IAP do), /readyz
// is asked over the SSH connection from the instance itself, its host key
// is recorded under its name and ID, and the command ends with the
// connection.
func TestProxyCommandRestart(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	target := sshtest.Start(t, pub, func(string, io.Writer, io.Writer) int { return 0 })
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	healthPort := ready.Listener.Addr().(*net.TCPAddr).Port
	kh := filepath.Join(t.TempDir(), "known_hosts")
	cmd, log := proxyCommand(t, target.Addr)
	var notices testenv.SyncBuffer
	d, err := NewDialer(Options{User: "admin", KeyFiles: []string{key}, KnownHosts: []string{kh}, ProxyCommand: cmd, Notices: &notices})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := deploy.Instance{Name: "luna-x1z2", ID: "4711", Zone: "europe-west1-b", HealthPort: healthPort}
	var progress strings.Builder
	if err := RollingRestart(context.Background(), []deploy.Instance{in}, d, RestartOptions{Progress: &deploy.Progress{W: &progress}}); err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if got := target.Commands(); len(got) != 1 || got[0] != "sudo -n systemctl restart luna" {
		t.Errorf("target ran %q", got)
	}
	wantFwd := "127.0.0.1:" + strconv.Itoa(healthPort)
	if got := target.Forwards(); len(got) != 1 || got[0] != wantFwd {
		t.Errorf("target forwarded to %q, want [%s]: /readyz must be asked on the instance", got, wantFwd)
	}
	pids, args := proxyRuns(t, log)
	// %h is empty (no address), quoted as ''; %% is a literal percent.
	if want := "luna-x1z2|4711|europe-west1-b|22|admin||100%"; len(args) != 1 || args[0] != want {
		t.Errorf("proxy command got %q, want %q", args, want)
	}
	if got, want := readFile(t, kh), knownhosts.Line([]string{"luna-x1z2"}, target.HostKey)+" luna-deploy-instance=luna-x1z2/4711\n"; got != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", got, want)
	}
	waitGone(t, pids[0])
}

// waitGone fails unless the process exits within a few seconds.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("proxy command %d still runs after its connection closed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Autohealing on GCP recreates a node under the same name, often at the
// same address, with a new host key: the new instance ID is what tells a
// replacement from an attack. The same name and ID with another key is
// refused.
func TestHostKeyReplacedNodeSameName(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	answer := func(string, io.Writer, io.Writer) int { return 0 }
	first := sshtest.Start(t, pub, answer)
	addr := first.Addr
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var notices testenv.SyncBuffer
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, KnownHosts: []string{kh}, InternalIP: true, Notices: &notices})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	node := func(id string, srv *sshtest.Server) deploy.Instance {
		in := at("luna-x1z2", srv)
		in.ID = id
		return in
	}
	dial := func(in deploy.Instance) error {
		c, err := d.Dial(context.Background(), in)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(node("111", first)); err != nil {
		t.Fatal(err)
	}
	first.Close()

	// The same name and address, a new machine (ID) and key.
	second := sshtest.StartConfig(t, sshtest.Config{Addr: addr}, pub, answer)
	if err := dial(node("222", second)); err != nil {
		t.Fatalf("replaced node refused: %v\n%s", err, notices.String())
	}
	if got, want := readFile(t, kh), knownhosts.Line([]string{addr}, second.HostKey)+" luna-deploy-instance=luna-x1z2/222\n"; got != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(notices.String(), "known_hosts had it for instance luna-x1z2/111, which luna-x1z2/222 replaced") {
		t.Errorf("notices:\n%s", notices.String())
	}
	second.Close()

	// Same name, same ID, another key: not a replacement. Refused, and the
	// record stays.
	third := sshtest.StartConfig(t, sshtest.Config{Addr: addr}, pub, answer)
	before := readFile(t, kh)
	err = dial(node("222", third))
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Mismatch {
		t.Fatalf("a changed key on the same instance: %v", err)
	}
	if readFile(t, kh) != before {
		t.Error("known_hosts changed after a refused key")
	}
	// A record without an ID (older luna-deploy) counts as the same
	// machine: refused rather than guessed.
	os.WriteFile(kh, []byte(knownhosts.Line([]string{addr}, second.HostKey)+" luna-deploy-instance=luna-x1z2\n"), 0o600)
	if err := dial(node("333", third)); !errors.As(err, &hk) {
		t.Errorf("an ID-less record replaced on a guess: %v", err)
	}
}

func TestProxyCommandErrors(t *testing.T) {
	key, _ := sshtest.ClientKey(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{ProxyCommand: "nc %h %q"}, "unknown token"},
		{Options{ProxyCommand: "nc %h %"}, "unknown token"},
		{Options{ProxyCommand: "  "}, "empty"},
		{Options{ProxyCommand: "nc %h %p", Jump: "bastion"}, "pass one"},
	} {
		tc.opts.User, tc.opts.KeyFiles, tc.opts.InsecureIgnoreHostKey = "admin", []string{key}, true
		if _, err := NewDialer(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := ViaCommand("ssh", "", ""); err == nil || !strings.Contains(err.Error(), "use ssm") {
		t.Errorf("--via ssh: %v", err)
	}

	// A command that fails says so with its own words.
	d, err := NewDialer(Options{User: "admin", KeyFiles: []string{key}, InsecureIgnoreHostKey: true,
		ProxyCommand: "echo 'TargetNotConnected: %i is not connected' >&2; exit 254"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.Dial(context.Background(), deploy.Instance{Name: "i-0abc"})
	if err == nil || !strings.Contains(err.Error(), "TargetNotConnected: i-0abc is not connected") || !strings.Contains(err.Error(), "exit status 254") {
		t.Errorf("failing proxy command: %v", err)
	}
}

// Names and zones come from the cloud's API: a hostile one is an
// argument, never shell syntax.
func TestProxyCommandQuotes(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	key, _ := sshtest.ClientKey(t)
	out := filepath.Join(dir, "args")
	d, err := NewDialer(Options{User: "admin", KeyFiles: []string{key}, InsecureIgnoreHostKey: true, ConnectTimeout: 2 * time.Second,
		ProxyCommand: "printf '%%s\\n' %n %z > " + shellQuote(out)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	evil := "x$(touch " + marker + ");`touch " + marker + "`'\"; touch " + marker
	d.Dial(context.Background(), deploy.Instance{Name: evil, Zone: "z 1"})
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("an instance name ran as shell")
	}
	if got := readFile(t, out); got != evil+"\nz 1\n" {
		t.Errorf("arguments: %q", got)
	}
}

func TestViaCommand(t *testing.T) {
	for via, want := range map[[3]string]string{
		{"ssm", "eu-west-1", "prod"}: "aws ssm start-session --target %i --document-name AWS-StartSSHSession --parameters portNumber=%p --region eu-west-1 --profile prod",
		{"ssm", "", ""}:              "aws ssm start-session --target %i --document-name AWS-StartSSHSession --parameters portNumber=%p",
		{"iap", "my-proj", ""}:       "gcloud compute start-iap-tunnel %n %p --listen-on-stdin --zone %z --verbosity warning --project my-proj",
		{"iap", "it's a proj", ""}:   `gcloud compute start-iap-tunnel %n %p --listen-on-stdin --zone %z --verbosity warning --project 'it'\''s a proj'`,
	} {
		got, err := ViaCommand(via[0], via[1], via[2])
		if err != nil || got != want {
			t.Errorf("ViaCommand(%q) = %q, %v; want %q", via, got, err, want)
		}
		if err := checkProxyCommand(got); err != nil {
			t.Errorf("%s: %v", got, err)
		}
	}
}

// A name with a line break would add an entry of its own to known_hosts:
// nothing is recorded, and the connection is refused.
func TestHostKeyHostileName(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	target := sshtest.Start(t, pub, func(string, io.Writer, io.Writer) int { return 0 })
	cmd, _ := proxyCommand(t, target.Addr)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	d, err := NewDialer(Options{User: "admin", KeyFiles: []string{key}, KnownHosts: []string{kh}, ProxyCommand: cmd})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.Dial(context.Background(), deploy.Instance{Name: "n1\n* ssh-ed25519 AAAA"})
	if err == nil || !strings.Contains(err.Error(), "space or control character") {
		t.Errorf("hostile name: %v", err)
	}
	if b, _ := os.ReadFile(kh); len(b) != 0 {
		t.Errorf("known_hosts written:\n%s", b)
	}
}
