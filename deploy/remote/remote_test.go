package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/internal/sshtest"
	"github.com/lunadb/luna/internal/testenv"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestJournalctlCommand(t *testing.T) {
	for _, tc := range []struct {
		opts   LogOptions
		cursor string
		want   string
	}{
		{LogOptions{Units: []string{"luna"}, Lines: 100}, "", "journalctl -u luna --no-pager -o json --output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM -n 100"},
		{LogOptions{Units: []string{"luna"}, Lines: -1, Since: "2026-01-01 10:00", Follow: true}, "",
			"journalctl -u luna --no-pager -o json --output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM --since='2026-01-01 10:00' --follow"},
		// A reconnection resumes after the cursor, with neither -n nor --since.
		{LogOptions{Units: []string{"luna"}, Lines: 5, Since: "today", Follow: true}, "s=ab;i=1c;b=x'y", "journalctl -u luna --no-pager -o json --output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM --after-cursor='s=ab;i=1c;b=x'\\''y' --follow"},
		// Several units are merged by journalctl itself.
		{LogOptions{Units: []string{"luna.service", "google-startup-scripts.service"}, Lines: 10}, "",
			"journalctl -u luna.service -u google-startup-scripts.service --no-pager -o json --output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM -n 10"},
	} {
		if got := journalctlCommand(tc.opts, tc.cursor); got != tc.want {
			t.Errorf("journalctlCommand:\n got %s\nwant %s", got, tc.want)
		}
	}
}

func TestEntryFormat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"__REALTIME_TIMESTAMP":"1767323045123456","SYSLOG_IDENTIFIER":"luna","_PID":"7","MESSAGE":"hello\n"}`, "2026-01-02T03:04:05.123Z luna[7]: hello"},
		{`{"__REALTIME_TIMESTAMP":"1767323045000000","_COMM":"sshd","MESSAGE":[104,105,255]}`, "2026-01-02T03:04:05.000Z sshd: hi\uFFFD"},
		{`{"MESSAGE":null}`, ""},
	} {
		var e entry
		if err := json.Unmarshal([]byte(tc.in), &e); err != nil {
			t.Fatal(err)
		}
		if got := e.format(); got != tc.want {
			t.Errorf("format(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNewDialerErrors(t *testing.T) {
	key, _ := sshtest.ClientKey(t)
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(enc, pem.EncodeToMemory(block), 0o600)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{User: "u"}, "no SSH credentials: pass a key file with -i, or run ssh-agent"},
		{Options{User: "u", KeyFiles: []string{filepath.Join(dir, "missing")}}, "reading key file"},
		{Options{User: "u", KeyFiles: []string{enc}}, "is protected by a passphrase: add it to ssh-agent"},
		{Options{User: "u", KeyFiles: []string{key}, KnownHosts: []string{filepath.Join(dir, "kh")}, HostKeyPolicy: Strict}, "known_hosts file " + filepath.Join(dir, "kh")},
		{Options{User: "u", KeyFiles: []string{key}, HostKeyPolicy: "ask"}, `--host-key-policy "ask": use accept-new or strict`},
		{Options{User: "u", KeyFiles: []string{key}, AgentSocket: filepath.Join(dir, "agent.sock")}, "connecting to ssh-agent"},
		{Options{User: "u", KeyFiles: []string{key}, Port: -1}, "--ssh-port -1"},
	} {
		if _, err := NewDialer(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDialer(%+v): %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// TestTailReconnects: a stream that breaks off is resumed after the last
// entry shown; a failing journalctl is not retried.
func TestTailReconnects(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	var calls atomic.Int32
	srv := sshtest.Start(t, pub, func(cmd string, out, errw io.Writer) int {
		switch calls.Add(1) {
		case 1:
			io.WriteString(out, `{"__CURSOR":"c1","MESSAGE":"one"}`+"\n")
			return -1 // the connection drops
		case 2:
			io.WriteString(out, `{"__CURSOR":"c2","MESSAGE":"two"}`+"\n")
			return 0
		default:
			io.WriteString(errw, "Failed to open journal\n")
			return 1
		}
	})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line([]string{srv.Addr}, srv.HostKey)+"\n"), 0o600)
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, KnownHosts: []string{kh}, InternalIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	lister := deploy.ListerFunc(func(context.Context) ([]deploy.Instance, error) {
		return []deploy.Instance{{Name: "n1", InternalIP: "127.0.0.1", SSHPort: srv.Port}}, nil
	})
	var out, notices strings.Builder
	if err := Tail(context.Background(), lister, d, LogOptions{MinBackoff: time.Millisecond, Lines: 3, Notices: &notices}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "n1 | one\nn1 | two\n" {
		t.Errorf("output %q", out.String())
	}
	cmds := srv.Commands()
	if len(cmds) != 2 || !strings.HasSuffix(cmds[0], " -n 3") || !strings.HasSuffix(cmds[1], " --after-cursor=c1") {
		t.Errorf("commands %q", cmds)
	}
	if !strings.Contains(notices.String(), "n1: connection lost") {
		t.Errorf("notices %q", notices.String())
	}

	out.Reset()
	err = Tail(context.Background(), lister, d, LogOptions{MinBackoff: time.Millisecond}, &out)
	var ce *commandError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "n1: journalctl exited with status 1: Failed to open journal") {
		t.Errorf("failing journalctl: %v", err)
	}
	if n := len(srv.Commands()); n != 3 {
		t.Errorf("%d commands, want 3 (no retry of a failing journalctl)", n)
	}
}

// TestTailColor: on a terminal each instance's prefix gets its own colour.
func TestTailColor(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	srv := sshtest.Start(t, pub, func(cmd string, out, _ io.Writer) int {
		io.WriteString(out, `{"__CURSOR":"c1","MESSAGE":"one"}`+"\n")
		return 0
	})
	d, err := NewDialer(Options{User: "root", KeyFiles: []string{key}, InsecureIgnoreHostKey: true, InternalIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	lister := deploy.ListerFunc(func(context.Context) ([]deploy.Instance, error) {
		return []deploy.Instance{{Name: "a", InternalIP: "127.0.0.1", SSHPort: srv.Port}, {Name: "b", InternalIP: "127.0.0.1", SSHPort: srv.Port}}, nil
	})
	var out testenv.SyncBuffer
	if err := Tail(context.Background(), lister, d, LogOptions{Color: true}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\x1b[31ma\x1b[0m | one\n", "\x1b[32mb\x1b[0m | one\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

// TestJump: connections and the /readyz polls of a restart go through the
// bastion.
func TestJump(t *testing.T) {
	key, pub := sshtest.ClientKey(t)
	bastion := sshtest.Start(t, pub, func(string, io.Writer, io.Writer) int { return 0 })
	target := sshtest.Start(t, pub, func(string, io.Writer, io.Writer) int { return 0 })
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line([]string{bastion.Addr}, bastion.HostKey)+"\n"+knownhosts.Line([]string{target.Addr}, target.HostKey)+"\n"), 0o600)
	d, err := NewDialer(Options{User: "admin", KeyFiles: []string{key}, KnownHosts: []string{kh}, Jump: "ops@" + bastion.Addr, InternalIP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	port := ready.Listener.Addr().(*net.TCPAddr).Port
	var progress strings.Builder
	in := deploy.Instance{Name: "n1", InternalIP: "127.0.0.1", SSHPort: target.Port, HealthPort: port}
	if err := RollingRestart(context.Background(), []deploy.Instance{in}, d, RestartOptions{Progress: &deploy.Progress{W: &progress}}); err != nil {
		t.Fatal(err)
	}
	if got := target.Commands(); len(got) != 1 || got[0] != "sudo -n systemctl restart luna" {
		t.Errorf("target ran %q", got)
	}
	if got := bastion.Commands(); len(got) != 0 {
		t.Errorf("bastion ran %q", got)
	}
	want := []string{target.Addr, ready.Listener.Addr().String()}
	if got := bastion.Forwards(); !reflect.DeepEqual(got, want) {
		t.Errorf("bastion forwarded to %q, want %q", got, want)
	}
}
