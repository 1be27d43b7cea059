package tlsconf

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/internal/testpki"
)

// issue is a server certificate for localhost from ca, valid for serial
// hours: the tests tell renewals apart by serial and expiry.
func issue(t *testing.T, ca *testpki.CA, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	c := ca.Server(t, "x", serial, time.Now().Add(time.Duration(serial)*time.Hour), "localhost")
	return c.CertPEM, c.KeyPEM
}

// handshake connects a client trusting ca to a server using cfg over
// loopback and returns the serial it was shown, or the handshake error.
func handshake(t *testing.T, cfg *tls.Config, ca *testpki.CA, client []tls.Certificate) (int64, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer sc.Close()
		sc.SetDeadline(time.Now().Add(10 * time.Second))
		srvErr <- tls.Server(sc, cfg).Handshake()
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(cc, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: client})
	err = c.Handshake()
	if err == nil {
		// TLS 1.3 clients finish first: the server's verdict on a client
		// certificate arrives after.
		err = <-srvErr
	}
	if err != nil {
		return 0, err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

func TestReloadKeepsTheOldPairOnErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, "test CA")
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	c, k := issue(t, ca, 1)
	testpki.WriteFile(t, cf, c)
	testpki.WriteFile(t, kf, k)
	var logs testenv.SyncBuffer
	st, err := Load(Options{CertFile: cf, KeyFile: kf, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.Config()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x", cfg.MinVersion)
	}
	if got, err := handshake(t, cfg, ca, nil); err != nil || got != 1 {
		t.Fatalf("serial %d, err %v", got, err)
	}

	c2, k2 := issue(t, ca, 2)
	testpki.WriteFile(t, cf, c2)
	testpki.WriteFile(t, kf, k2)
	if err := st.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := handshake(t, cfg, ca, nil); got != 2 {
		t.Fatalf("after reload serial %d", got)
	}
	if want := time.Now().Add(2 * time.Hour); st.NotAfter().Sub(want).Abs() > time.Minute {
		t.Fatalf("NotAfter %v, want about %v", st.NotAfter(), want)
	}

	for name, files := range map[string][2][]byte{
		"mismatched key": {c, k2},
		"garbage":        {[]byte("garbage"), k2},
		"key only":       {k2, k2},
	} {
		testpki.WriteFile(t, cf, files[0])
		testpki.WriteFile(t, kf, files[1])
		if err := st.Reload(context.Background()); err == nil {
			t.Fatalf("%s: reload succeeded", name)
		}
		if got, _ := handshake(t, cfg, ca, nil); got != 2 {
			t.Fatalf("%s: serving serial %d", name, got)
		}
	}
	os.Remove(cf)
	if err := st.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "c.pem") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestPollNoticesReplacedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, "test CA")
	// One file holding both, as the startup scripts write it.
	f := filepath.Join(dir, "server.pem")
	c, k := issue(t, ca, 1)
	testpki.WriteFile(t, f, append(c, k...))
	var logs testenv.SyncBuffer
	st, err := Load(Options{CertFile: f, KeyFile: f, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.Watch(ctx, 10*time.Millisecond)

	await := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not seen; logs:\n%s", what, logs.String())
			}
		}
	}
	c2, k2 := issue(t, ca, 2)
	testpki.WriteFile(t, f, append(c2, k2...))
	await("serial 2", func() bool { return st.Leaf().SerialNumber.Int64() == 2 })

	// A bad version is reported once, not at every poll.
	testpki.WriteFile(t, f, c)
	await("the error", func() bool { return strings.Contains(logs.String(), "cannot be used") })
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 {
		t.Fatalf("error logged %d times", n)
	}
	if got, _ := handshake(t, st.Config(), ca, nil); got != 2 {
		t.Fatalf("serving serial %d", got)
	}
	c3, k3 := issue(t, ca, 3)
	testpki.WriteFile(t, f, append(c3, k3...))
	await("serial 3", func() bool { return st.Leaf().SerialNumber.Int64() == 3 })
}

func TestClientCA(t *testing.T) {
	dir := t.TempDir()
	// One name for both: the client then offers the other CA's
	// certificate, and only its signature can get it refused.
	ca, other := testpki.New(t, "test CA"), testpki.New(t, "test CA")
	cf, kf, caf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	c, k := issue(t, ca, 1)
	testpki.WriteFile(t, cf, c)
	testpki.WriteFile(t, kf, k)
	testpki.WriteFile(t, caf, ca.PEM())
	st, err := Load(Options{CertFile: cf, KeyFile: kf, ClientCAFile: caf})
	if err != nil {
		t.Fatal(err)
	}
	pair := func(s *testpki.CA) []tls.Certificate {
		return []tls.Certificate{s.Client(t, "x", 9, "localhost").TLS}
	}
	if _, err := handshake(t, st.Config(), ca, nil); err == nil {
		t.Fatal("no client certificate accepted")
	}
	if _, err := handshake(t, st.Config(), ca, pair(other)); err == nil {
		t.Fatal("a certificate of another CA accepted")
	}
	if _, err := handshake(t, st.Config(), ca, pair(ca)); err != nil {
		t.Fatalf("a certificate of the CA refused: %v", err)
	}
	// The CA file is reloaded too: now only the other CA's clients pass.
	testpki.WriteFile(t, caf, other.PEM())
	if err := st.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, st.Config(), ca, pair(ca)); err == nil {
		t.Fatal("a certificate of the removed CA accepted")
	}
	if _, err := handshake(t, st.Config(), ca, pair(other)); err != nil {
		t.Fatalf("a certificate of the new CA refused: %v", err)
	}
	testpki.WriteFile(t, caf, []byte("no pem here"))
	if err := st.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("garbage CA: %v", err)
	}
	if _, err := Load(Options{CertFile: cf}); err == nil {
		t.Fatal("a certificate without a key loaded")
	}
}
