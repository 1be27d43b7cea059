// Package sshtest is a small in-process SSH server on loopback for tests
// of the command line: it accepts one client key, records the commands it
// is asked to run and answers them with a handler. A server can be closed
// and another started on its address with a new host key, as when a node
// is replaced. The tests against a real OpenSSH server live in deploy/e2e.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Handler runs a command, writing its output, and returns its exit status;
// a negative status closes the session without one, as a dropped
// connection does.
type Handler func(cmd string, stdout, stderr io.Writer) int

// Server is a running test SSH server.
type Server struct {
	Addr    string
	Port    int
	HostKey ssh.PublicKey

	ln    net.Listener
	mu    sync.Mutex
	cmds  []string
	fwds  []string
	conns map[net.Conn]bool
	done  bool
	wg    sync.WaitGroup
}

// Config says where and as whom a server runs.
type Config struct {
	// Addr to listen on; empty: a free port on 127.0.0.1.
	Addr string
	// HostKey; nil: a new ed25519 key.
	HostKey ssh.Signer
}

// NewHostKey returns a new ed25519 host key.
func NewHostKey(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Close stops the server and drops its connections, as a node that goes
// away does. The test's end closes it too.
func (s *Server) Close() {
	s.mu.Lock()
	s.done = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Forwards returns the addresses that clients had the server connect to
// (as a jump host).
func (s *Server) Forwards() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fwds...)
}

// forward serves a direct-tcpip channel (ssh -J, ssh -L): it connects to
// the requested address and copies both ways.
func (s *Server) forward(nc ssh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	s.mu.Lock()
	s.fwds = append(s.fwds, addr)
	s.mu.Unlock()
	go ssh.DiscardRequests(reqs)
	go func() {
		io.Copy(ch, conn)
		ch.CloseWrite()
		ch.Close()
	}()
	go func() {
		io.Copy(conn, ch)
		conn.Close()
	}()
}

// Commands returns the commands run so far.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

// ClientKey writes a new private key file and returns it with its public
// key.
func ClientKey(t testing.TB) (file string, pub ssh.PublicKey) {
	t.Helper()
	p, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err = ssh.NewPublicKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return file, pub
}

// Start serves on a free port of 127.0.0.1 until the test ends.
func Start(t testing.TB, authorized ssh.PublicKey, h Handler) *Server {
	t.Helper()
	return StartConfig(t, Config{}, authorized, h)
}

// StartConfig serves as c says until the test ends or Close.
func StartConfig(t testing.TB, c Config, authorized ssh.PublicKey, h Handler) *Server {
	t.Helper()
	signer := c.HostKey
	if signer == nil {
		signer = NewHostKey(t)
	}
	addr := c.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(authorized.Marshal()) {
				return nil, nil
			}
			return nil, errUnauthorized
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port, HostKey: signer.PublicKey(), ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(s.Close)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.done {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = true
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				s.serve(c, cfg, h)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s
}

type authError struct{}

func (authError) Error() string { return "unauthorized" }

var errUnauthorized = authError{}

func (s *Server) serve(c net.Conn, cfg *ssh.ServerConfig, h Handler) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() == "direct-tcpip" {
			s.forward(nc)
			continue
		}
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions and forwarding only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range creqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var p struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				s.mu.Lock()
				s.cmds = append(s.cmds, p.Command)
				s.mu.Unlock()
				code := h(p.Command, ch, ch.Stderr())
				if code < 0 {
					return
				}
				status := make([]byte, 4)
				binary.BigEndian.PutUint32(status, uint32(code))
				ch.SendRequest("exit-status", false, status)
				return
			}
		}()
	}
}
