package testpki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca := New(t, "test CA")
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	srv := ca.Server(t, "srv", 100, notAfter, "127.0.0.1", "localhost")
	leaf := srv.TLS.Leaf
	if leaf.SerialNumber.Int64() != 100 || leaf.Subject.CommonName != "srv" || !leaf.NotAfter.Equal(notAfter) {
		t.Fatalf("serial %v, CN %q, NotAfter %v", leaf.SerialNumber, leaf.Subject.CommonName, leaf.NotAfter)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" {
		t.Fatalf("SANs %v %v", leaf.IPAddresses, leaf.DNSNames)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host}); err != nil {
			t.Fatalf("verifying for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: New(t, "other").Pool()}); err == nil {
		t.Fatal("verified by another CA")
	}
	if d := time.Until(ca.Server(t, "srv", 1, time.Time{}).TLS.Leaf.NotAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("default server validity %v", d)
	}

	cli := ca.Client(t, "alice", 7)
	if _, err := cli.TLS.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verifying the client certificate: %v", err)
	}
	// The PEM forms load to the same pair.
	for name, c := range map[string]*Cert{"server": srv, "client": cli} {
		pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(pair.Certificate[0], c.TLS.Certificate[0]) {
			t.Fatalf("%s: PEM and tls.Certificate differ", name)
		}
		if _, err := tls.X509KeyPair(c.Bundle(), c.Bundle()); err != nil {
			t.Fatalf("%s bundle: %v", name, err)
		}
	}
}

func TestMutualHandshake(t *testing.T) {
	ca := New(t, "test CA")
	srv, cli := ca.Server(t, "srv", 2, time.Time{}, "127.0.0.1"), ca.Client(t, "bob", 3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer sc.Close()
		sc.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{srv.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cli.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Fatalf("server serial %d", got)
	}
	if got := <-peer; got != "bob" {
		t.Fatalf("server saw %q", got)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	ca := New(t, "test CA")
	caFile := ca.WritePEM(t, filepath.Join(dir, "ca.pem"))
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	ca.Server(t, "srv", 1, time.Time{}, "localhost").WriteFiles(t, cf, kf)
	c := ca.Server(t, "srv", 2, time.Time{}, "localhost")
	c.WriteFiles(t, cf, kf)
	pair, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pair.Certificate[0], c.TLS.Certificate[0]) {
		t.Fatal("the files do not hold the last certificate written")
	}
	if got, err := os.ReadFile(caFile); err != nil || !bytes.Equal(got, ca.PEM()) {
		t.Fatalf("CA file: %v", err)
	}
	fi, err := os.Stat(kf)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.new")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
