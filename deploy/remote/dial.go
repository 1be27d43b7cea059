// Package remote reaches the instances of a Luna fleet over SSH: it tails
// and merges their journals (journalctl -u luna), reconnecting when a
// connection drops and picking up instances that join the group, and it
// restarts the service on one instance after another, waiting for /readyz
// before moving on. Authentication is by key files and ssh-agent; host keys
// are checked against known_hosts unless the operator opts out, and under
// the accept-new policy the keys of new instances are recorded there; a
// bastion (jump host) can stand between the operator and the instances.
package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lunadb/luna/deploy"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Options say how to reach the instances.
type Options struct {
	// User to log in as; empty: the local user name.
	User string
	// KeyFiles are private keys (unencrypted; passphrase-protected keys
	// belong in ssh-agent).
	KeyFiles []string
	// AgentSocket is ssh-agent's socket (SSH_AUTH_SOCK); empty: no agent.
	AgentSocket string
	// KnownHosts files; empty: ~/.ssh/known_hosts. Under AcceptNew, new
	// keys are recorded in the first.
	KnownHosts []string
	// HostKeyPolicy says what to do with hosts known_hosts does not
	// vouch for; empty: AcceptNew.
	HostKeyPolicy HostKeyPolicy
	// InsecureIgnoreHostKey accepts any host key.
	InsecureIgnoreHostKey bool
	// Notices receives a line for each host key recorded or replaced
	// (stderr).
	Notices io.Writer
	// Jump is a bastion, [user@]host[:port], that connections go through.
	Jump string
	// ProxyCommand, instead of a TCP connection, carries each SSH
	// connection over a command's standard input and output (see
	// ViaCommand and the tokens in proxy.go). Instances are then known by
	// name in known_hosts, and need no address.
	ProxyCommand string
	// Port is the SSH port of the instances (22).
	Port int
	// InternalIP selects the instances' internal addresses.
	InternalIP bool
	// ConnectTimeout bounds the TCP connection and SSH handshake.
	ConnectTimeout time.Duration
	// KeepAlive is how often an idle connection is probed, so that a dead
	// peer is noticed while following.
	KeepAlive time.Duration
}

// Dialer opens SSH connections to instances.
type Dialer struct {
	opts      Options
	auth      []ssh.AuthMethod
	hostKeys  *knownHosts // nil: any key is accepted
	agentConn net.Conn
}

// NewDialer checks the options and loads keys, the agent and known_hosts;
// it fails early, with the file at fault, on anything unusable.
func NewDialer(opts Options) (*Dialer, error) {
	if opts.Port == 0 {
		opts.Port = 22
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, fmt.Errorf("--ssh-port %d: not a TCP port", opts.Port)
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 15 * time.Second
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.HostKeyPolicy == "" {
		opts.HostKeyPolicy = AcceptNew
	}
	if _, err := ParseHostKeyPolicy(string(opts.HostKeyPolicy)); err != nil {
		return nil, err
	}
	if opts.ProxyCommand != "" {
		if opts.Jump != "" {
			return nil, errors.New("--jump and --via/--proxy-command are two ways to reach the instances: pass one")
		}
		if err := checkProxyCommand(opts.ProxyCommand); err != nil {
			return nil, err
		}
	}
	if opts.User == "" {
		if u, err := user.Current(); err == nil {
			opts.User = u.Username
		}
	}
	if opts.User == "" {
		return nil, errors.New("--user is required: the local user name is unknown")
	}
	d := &Dialer{opts: opts}
	var signers []ssh.Signer
	for _, f := range opts.KeyFiles {
		s, err := loadKey(f)
		if err != nil {
			return nil, err
		}
		signers = append(signers, s)
	}
	if len(signers) > 0 {
		d.auth = append(d.auth, ssh.PublicKeys(signers...))
	}
	if opts.AgentSocket != "" {
		conn, err := net.Dial("unix", opts.AgentSocket)
		if err != nil {
			return nil, fmt.Errorf("connecting to ssh-agent at %s (SSH_AUTH_SOCK): %w", opts.AgentSocket, err)
		}
		d.agentConn = conn
		d.auth = append(d.auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	if len(d.auth) == 0 {
		return nil, errors.New("no SSH credentials: pass a key file with -i, or run ssh-agent (SSH_AUTH_SOCK)")
	}
	if opts.InsecureIgnoreHostKey {
		return d, nil
	}
	files := opts.KnownHosts
	if len(files) == 0 {
		home, err := os.UserHomeDir()
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("finding ~/.ssh/known_hosts: %w (pass --known-hosts)", err)
		}
		files = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	k, err := newKnownHosts(files, opts.HostKeyPolicy, opts.Notices)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.hostKeys = k
	return d, nil
}

// loadKey reads a private key file.
func loadKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pp *ssh.PassphraseMissingError
	if errors.As(err, &pp) {
		return nil, fmt.Errorf("key file %s is protected by a passphrase: add it to ssh-agent (ssh-add %s) and leave out -i", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s is not a private key: %w", path, err)
	}
	return s, nil
}

// Close releases the agent connection.
func (d *Dialer) Close() {
	if d.agentConn != nil {
		d.agentConn.Close()
	}
}

// Client is an SSH connection to an instance, possibly through a bastion.
type Client struct {
	*ssh.Client
	jump *ssh.Client
	stop chan struct{}
	once sync.Once
}

// Close closes the connection and the bastion's.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.stop) })
	err := c.Client.Close()
	if c.jump != nil {
		c.jump.Close()
	}
	return err
}

// Target returns the host and SSH port of an instance: its address, or,
// through a proxy command, its name (the host known_hosts records it
// under; the command finds the instance itself).
func (d *Dialer) Target(in deploy.Instance) (string, error) {
	port := d.port(in)
	if d.opts.ProxyCommand != "" {
		if in.Name == "" {
			return "", errors.New("an instance without a name cannot be reached through a proxy command")
		}
		return net.JoinHostPort(in.Name, strconv.Itoa(port)), nil
	}
	ip, err := in.Address(d.opts.InternalIP)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(ip, strconv.Itoa(port)), nil
}

func (d *Dialer) port(in deploy.Instance) int {
	if in.SSHPort != 0 {
		return in.SSHPort
	}
	return d.opts.Port
}

// Proxied reports whether connections go through a proxy command.
func (d *Dialer) Proxied() bool { return d.opts.ProxyCommand != "" }

// Dial connects to an instance; ctx bounds the connection, not its use.
func (d *Dialer) Dial(ctx context.Context, in deploy.Instance) (*Client, error) {
	addr, err := d.Target(in)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	c := &Client{stop: make(chan struct{})}
	var conn net.Conn
	if d.opts.ProxyCommand != "" {
		if conn, err = d.dialProxy(ctx, in, d.port(in)); err != nil {
			return nil, err
		}
	} else if d.opts.Jump != "" {
		juser, jaddr := splitJump(d.opts.Jump, d.opts.User)
		jconn, err := (&net.Dialer{}).DialContext(ctx, "tcp", jaddr)
		if err != nil {
			return nil, fmt.Errorf("connecting to the jump host %s: %w", jaddr, err)
		}
		jc, err := d.handshake(ctx, jconn, jaddr, juser, "")
		if err != nil {
			return nil, fmt.Errorf("jump host %s: %w", jaddr, err)
		}
		c.jump = jc
		conn, err = jc.DialContext(ctx, "tcp", addr)
		if err != nil {
			jc.Close()
			return nil, fmt.Errorf("connecting to %s (%s) through the jump host %s: %w", in.Name, addr, jaddr, err)
		}
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s (%s): %w", in.Name, addr, err)
		}
	}
	cl, err := d.handshake(ctx, conn, addr, d.opts.User, in.Identity())
	if err != nil {
		if c.jump != nil {
			c.jump.Close()
		}
		return nil, fmt.Errorf("%s (%s): %w", in.Name, addr, err)
	}
	c.Client = cl
	go c.keepAlive(d.opts.KeepAlive)
	return c, nil
}

// keepAlive closes a connection whose peer stops answering, so that a
// reader blocked on it returns and the caller can reconnect.
func (c *Client) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			done := make(chan error, 1)
			go func() {
				_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					c.Close()
					return
				}
			case <-time.After(2 * every):
				c.Close()
				return
			case <-c.stop:
				return
			}
		}
	}
}

// handshake runs the SSH handshake on conn, giving up when ctx ends;
// instance names the instance dialled ("" for the jump host).
func (d *Dialer) handshake(ctx context.Context, conn net.Conn, addr, user, instance string) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              d.auth,
		HostKeyCallback:   ssh.InsecureIgnoreHostKey(),
		HostKeyAlgorithms: d.knownAlgorithms(addr),
		Timeout:           d.opts.ConnectTimeout,
	}
	if d.hostKeys != nil {
		cfg.HostKeyCallback = func(host string, remote net.Addr, key ssh.PublicKey) error {
			return d.hostKeys.check(host, instance, remote, key)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, &AuthError{User: user, Err: err}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("SSH handshake: %w", ctx.Err())
		}
		return nil, fmt.Errorf("SSH handshake: %w", err)
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// knownAlgorithms returns the host key algorithms known_hosts holds for
// addr, so that the server is asked for a key that can be checked; nil
// means the defaults.
func (d *Dialer) knownAlgorithms(addr string) []string {
	if d.hostKeys == nil {
		return nil
	}
	// Asking about a throwaway key makes the callback list the known ones.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := d.hostKeys.lookup(addr, &net.TCPAddr{}, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(t)
		default:
			add(t)
		}
	}
	return algos
}

// HostKeyError is a host key that known_hosts does not vouch for.
type HostKeyError struct {
	Host     string
	Key      ssh.PublicKey
	Mismatch bool   // known_hosts has other keys for the host
	Where    string // file:line of a known key, on a mismatch
	Files    string
	// Recorded is the instance luna-deploy recorded the known key for,
	// when that is the instance dialled: its key changed though it was
	// not replaced.
	Recorded string
}

func (e *HostKeyError) Error() string {
	fp := ssh.FingerprintSHA256(e.Key)
	if e.Mismatch && e.Recorded != "" {
		return fmt.Sprintf("host key mismatch for %s: it offers %s key %s, but known_hosts (%s) has a different key recorded for the same instance %s, so this is no replaced node. "+
			"Someone may be intercepting the connection; if the instance's key was changed on purpose, remove the old key (ssh-keygen -R '%s')",
			e.Host, e.Key.Type(), fp, e.Where, e.Recorded, knownhosts.Normalize(e.Host))
	}
	if e.Mismatch {
		return fmt.Sprintf("host key mismatch for %s: it offers %s key %s, but known_hosts has a different key (%s). "+
			"If the instance was replaced, remove the old key (ssh-keygen -R '%s') and add the new one; otherwise someone may be intercepting the connection",
			e.Host, e.Key.Type(), fp, e.Where, knownhosts.Normalize(e.Host))
	}
	return fmt.Sprintf("host %s is not in known_hosts (%s): it offers %s key %s; add it (ssh-keyscan), pass --host-key-policy accept-new to record it, or --insecure-ignore-host-key",
		e.Host, e.Files, e.Key.Type(), fp)
}

// AuthError is a login that the server refused.
type AuthError struct {
	User string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("login as %s refused: %v (check --user, the key file (-i) or the keys in ssh-agent, and the instance's authorized keys)", e.User, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// splitJump parses [user@]host[:port].
func splitJump(jump, defUser string) (user, addr string) {
	user = defUser
	if u, h, ok := strings.Cut(jump, "@"); ok {
		user, jump = u, h
	}
	if _, _, err := net.SplitHostPort(jump); err != nil {
		jump = net.JoinHostPort(jump, "22")
	}
	return user, jump
}

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	var hk *HostKeyError
	var ae *AuthError
	var ce *commandError
	return errors.As(err, &hk) || errors.As(err, &ae) || errors.As(err, &ce)
}
