package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testpki"
)

// testCertificate is a server certificate for host and a pool trusting
// its CA.
func testCertificate(t *testing.T, host string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testpki.New(t, "test CA")
	return ca.Server(t, host, 1, time.Now().Add(time.Hour), host).TLS, ca.Pool()
}

func TestDialTLS(t *testing.T) {
	cert, pool := testCertificate(t, "luna.internal")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var sni string
	serve := make(chan struct{})
	go func() {
		defer close(serve)
		for {
			sc, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{cert}})
			if err := tc.Handshake(); err != nil {
				sc.Close()
				continue
			}
			sni = tc.ConnectionState().ServerName
			s := &fakeServer{t: t, nc: tc, br: bufio.NewReader(tc)}
			s.expect("AUTH pw")
			s.write(statusStream(t, "AUTH", "OK", true))
			s.br.ReadByte()
			sc.Close()
		}
	}()
	// Every address leads to the test's listener.
	dialer := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ln.Addr().String())
	}
	// The certificate is checked against the host of the address.
	c, err := Dial(testContext(t), "luna.internal:7688", Options{Password: "pw", Dialer: dialer, TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = Dial(testContext(t), "other.host:7688", Options{Password: "pw", Dialer: dialer, TLS: &tls.Config{RootCAs: pool}})
	if err == nil || !strings.Contains(err.Error(), "TLS handshake with other.host:7688") {
		t.Fatalf("wrong host: %v", err)
	}
	_, err = Dial(testContext(t), "luna.internal:7688", Options{Password: "pw", Dialer: dialer, TLS: &tls.Config{}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unknown CA: %v", err)
	}
	ln.Close()
	<-serve
	if sni != "luna.internal" {
		t.Fatalf("server name %q", sni)
	}
}
