// Package tlsconf serves the API port's TLS configuration from certificate
// files that may change while the server runs: an ACME client or a secret
// store renews them in place. Each handshake takes the configuration
// loaded last, so open connections keep theirs and the next one presents
// the new certificate; a bad new version is refused and the old one kept.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lunadb/luna/server/filestamp"
)

// DefaultInterval is how often the files are checked for a change.
const DefaultInterval = 2 * time.Second

// Options name the files to serve.
type Options struct {
	// CertFile holds the certificate chain, leaf first, in PEM.
	CertFile string
	// KeyFile holds the leaf's private key in PEM; it may be CertFile.
	KeyFile string
	// ClientCAFile, when set, holds the CA certificates that sign client
	// certificates, and every client must present one (mutual TLS).
	ClientCAFile string
	// Log receives reloads and their failures; nil discards them.
	Log *slog.Logger
}

// Store holds the configuration loaded last and reloads it.
type Store struct {
	opts Options
	log  *slog.Logger
	// mu serializes reloads; handshakes read cur without it.
	mu  sync.Mutex
	cur atomic.Pointer[loaded]
	// seen is the file stamps of the last reload attempt, good or bad, so
	// that polling retries a bad version only once it changes again.
	seen filestamp.Stamps
}

// loaded is one consistent version of the files.
type loaded struct {
	cfg  *tls.Config
	leaf *x509.Certificate
}

// stamp identifies a version of a file: a rename over it changes the
// inode, an edit in place the size or modification time.

// Load reads the files, failing when they do not hold a usable
// certificate, key and (when asked for) client CA.
func Load(opts Options) (*Store, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("a TLS certificate needs both a certificate file and a key file")
	}
	s := &Store{opts: opts, log: opts.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.seen = s.stamps()
	if err := s.swap(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config is the configuration to serve: each handshake picks up the
// version loaded last.
func (s *Store) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().cfg, nil
		},
	}
}

// NotAfter is when the served certificate expires.
func (s *Store) NotAfter() time.Time { return s.cur.Load().leaf.NotAfter }

// Leaf is the served certificate.
func (s *Store) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// Reload re-reads the files now. On an error the previous version stays
// in use.
func (s *Store) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = s.stamps()
	return s.swap()
}

// Watch polls the files every interval (DefaultInterval when zero or
// less) until ctx ends, reloading them when one changed.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	filestamp.Every(ctx, interval, s.poll)
}

// poll reloads when a file changed since the last attempt. The stamps are
// taken before reading, so a file written while it is read is read again
// at the next poll.
func (s *Store) poll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.stamps()
	if now.Equal(s.seen) {
		return
	}
	s.seen = now
	if err := s.swap(); err != nil {
		s.log.Error("TLS certificate files changed but cannot be used; keeping the previous certificate", "err", err)
	}
}

// swap reads the files and serves them; s.mu is held.
func (s *Store) swap() error {
	l, err := s.read()
	if err != nil {
		return err
	}
	attrs := []any{"subject", l.leaf.Subject.String(), "serial", l.leaf.SerialNumber.String(), "not_after", l.leaf.NotAfter}
	if old := s.cur.Swap(l); old != nil {
		attrs = append(attrs, "previous_serial", old.leaf.SerialNumber.String())
	}
	s.log.Info("TLS certificate loaded", attrs...)
	return nil
}

func (s *Store) read() (*loaded, error) {
	o := s.opts
	certPEM, err := os.ReadFile(o.CertFile)
	if err != nil {
		return nil, fmt.Errorf("reading the TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading the TLS key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", o.CertFile, o.KeyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing the TLS certificate %s: %w", o.CertFile, err)
		}
	}
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		// Served anyway: refusing to start would not make clients trust
		// it either, and a renewal may be on its way.
		s.log.Warn("the TLS certificate is not valid now", "file", o.CertFile, "not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
	}
	if o.ClientCAFile != "" {
		caPEM, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("TLS client CA %s holds no PEM certificate", o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		// A resumed session skips verifying the client's certificate:
		// without tickets, a CA taken out of the file takes effect at
		// the next connection.
		cfg.SessionTicketsDisabled = true
	}
	return &loaded{cfg: cfg, leaf: leaf}, nil
}

func (s *Store) stamps() filestamp.Stamps {
	return filestamp.Of(s.opts.CertFile, s.opts.KeyFile, s.opts.ClientCAFile)
}
