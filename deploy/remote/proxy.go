package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lunadb/luna/deploy"
)

// A proxy command carries the SSH connection to an instance over its
// standard input and output, as OpenSSH's ProxyCommand does. It is how a
// fleet without public addresses is reached without a bastion: AWS Session
// Manager (the AWS-StartSSHSession document) and Google's IAP TCP
// forwarding both provide such a command, and both find the instance by
// its name or ID, not by an address.
//
// Tokens, each replaced by its shell-quoted value:
//
//	%h  the instance's address (internal with InternalIP, else external)
//	%p  the SSH port
//	%n  the instance name
//	%i  the instance ID (the name when the cloud gives none)
//	%z  the zone
//	%r  the SSH user
//	%%  a literal %
const proxyTokens = "hpnizr%"

// ViaCommand returns the proxy command of a named path: "ssm" (AWS Session
// Manager, through the aws CLI and its session-manager-plugin) or "iap"
// (Google's IAP TCP forwarding, through gcloud). scope is the region (AWS)
// or project (GCP) the instances are in, and profile the AWS CLI profile;
// empty leaves them to the CLI's own configuration.
func ViaCommand(via, scope, profile string) (string, error) {
	switch via {
	case "ssm":
		cmd := "aws ssm start-session --target %i --document-name AWS-StartSSHSession --parameters portNumber=%p"
		if scope != "" {
			cmd += " --region " + shellQuote(scope)
		}
		if profile != "" {
			cmd += " --profile " + shellQuote(profile)
		}
		return cmd, nil
	case "iap":
		cmd := "gcloud compute start-iap-tunnel %n %p --listen-on-stdin --zone %z --verbosity warning"
		if scope != "" {
			cmd += " --project " + shellQuote(scope)
		}
		return cmd, nil
	}
	return "", fmt.Errorf("--via %q: use ssm (AWS Session Manager) or iap (Google IAP TCP forwarding)", via)
}

// checkProxyCommand rejects an empty command and unknown tokens up front,
// before any instance is listed.
func checkProxyCommand(cmd string) error {
	if strings.TrimSpace(cmd) == "" {
		return errors.New("--proxy-command is empty")
	}
	for i := 0; i < len(cmd); i++ {
		if cmd[i] != '%' {
			continue
		}
		if i+1 == len(cmd) || !strings.ContainsRune(proxyTokens, rune(cmd[i+1])) {
			return fmt.Errorf("--proxy-command %q: unknown token at byte %d (use %%h %%p %%n %%i %%z %%r or %%%%)", cmd, i)
		}
		i++
	}
	return nil
}

// expandProxyCommand fills in the tokens for one instance. Every value is
// shell-quoted: names and zones come from the cloud's API, not from the
// operator, and must never be read as shell syntax.
func (d *Dialer) expandProxyCommand(in deploy.Instance, port int) string {
	id := in.ID
	if id == "" {
		id = in.Name
	}
	addr, _ := in.Address(d.opts.InternalIP)
	cmd := d.opts.ProxyCommand
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] != '%' || i+1 == len(cmd) {
			b.WriteByte(cmd[i])
			continue
		}
		i++
		var v string
		switch cmd[i] {
		case '%':
			b.WriteByte('%')
			continue
		case 'h':
			v = addr
		case 'p':
			v = strconv.Itoa(port)
		case 'n':
			v = in.Name
		case 'i':
			v = id
		case 'z':
			v = in.Zone
		case 'r':
			v = d.opts.User
		}
		if v == "" {
			v = "''"
		} else {
			v = shellQuote(v)
		}
		b.WriteString(v)
	}
	return b.String()
}

// dialProxy starts the proxy command for an instance and returns its
// standard input and output as a connection. Closing the connection ends
// the command (and its process group: the aws CLI starts a plugin).
func (d *Dialer) dialProxy(ctx context.Context, in deploy.Instance, port int) (net.Conn, error) {
	line := d.expandProxyCommand(in, port)
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	pc := &proxyConn{cmd: cmd, in: stdin, out: stdout, name: in.Name, port: port, done: make(chan struct{})}
	cmd.Stderr = &pc.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the proxy command for %s (%s): %w", in.Name, line, err)
	}
	go func() {
		pc.waitErr = cmd.Wait()
		close(pc.done)
	}()
	// The command fails fast when its CLI is missing or refuses the
	// target; say so with its own words instead of an SSH handshake error.
	select {
	case <-pc.done:
		if err := pc.exitError(line); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the proxy command for %s (%s) exited before carrying a connection", in.Name, line)
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		pc.Close()
		return nil, ctx.Err()
	}
	pc.line = line
	return pc, nil
}

// proxyConn is a proxy command's standard input and output.
type proxyConn struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    io.ReadCloser
	stderr limitedBuffer
	name   string
	port   int
	line   string

	done    chan struct{} // closed when the command exits
	waitErr error
	once    sync.Once
}

func (c *proxyConn) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err != nil && n == 0 {
		// EOF on its output: the command ended (or is ending); give its
		// own explanation where there is one.
		select {
		case <-c.done:
			if e := c.exitError(c.line); e != nil {
				return 0, e
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	return n, err
}

func (c *proxyConn) Write(p []byte) (int, error) { return c.in.Write(p) }

// Close ends the command: stdin first, then SIGTERM to its process group,
// then SIGKILL if it lingers.
func (c *proxyConn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		if c.cmd.Process != nil {
			pgid := -c.cmd.Process.Pid
			_ = syscall.Kill(pgid, syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(2 * time.Second):
				_ = syscall.Kill(pgid, syscall.SIGKILL)
				<-c.done
			}
		}
	})
	return nil
}

// exitError explains why the command ended; nil if it exited 0 or was
// stopped by Close.
func (c *proxyConn) exitError(line string) error {
	if c.waitErr == nil {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(c.waitErr, &exit) && !exit.Exited() {
		return nil // killed by a signal: Close
	}
	msg := strings.TrimSpace(c.stderr.String())
	if msg == "" {
		msg = "no output"
	}
	return fmt.Errorf("the proxy command for %s (%s) failed: %v: %s", c.name, line, c.waitErr, msg)
}

// The addresses are the instance's name and port, the form known_hosts
// checking expects of a remote address.
func (c *proxyConn) LocalAddr() net.Addr { return proxyAddr{"localhost:0"} }
func (c *proxyConn) RemoteAddr() net.Addr {
	return proxyAddr{net.JoinHostPort(c.name, strconv.Itoa(c.port))}
}
func (c *proxyConn) SetDeadline(t time.Time) error      { return nil }
func (c *proxyConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *proxyConn) SetWriteDeadline(t time.Time) error { return nil }

type proxyAddr struct{ name string }

func (proxyAddr) Network() string  { return "proxy" }
func (a proxyAddr) String() string { return a.name }
