package systemd

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lunadb/luna/internal/testpki"
)

// testPKI is a CA that issues the server certificate a node fetches from
// its secret store, as an operator's CA or ACME client would.
type testPKI struct {
	ca     *testpki.CA
	caFile string // the CA certificate, PEM, for clients to trust
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := testpki.New(t, "luna test CA")
	return &testPKI{ca: ca, caFile: ca.WritePEM(t, filepath.Join(t.TempDir(), "ca.pem"))}
}

// serverBundle is a server certificate for addr's host with the given
// serial and its key, both PEM in one value: what the startup scripts
// expect in luna-tls-from / LUNA_TLS_FROM.
func (p *testPKI) serverBundle(t *testing.T, addr string, serial int64) string {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return string(p.ca.Server(t, "luna node", serial, time.Now().Add(24*time.Hour), host).Bundle())
}

// servedSerial is the serial of the certificate addr presents.
func (p *testPKI) servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// usersFile is a users file line as `luna user add` writes it.
func usersLine(t *testing.T, name, password, role string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join([]string{name, string(h), role}, ":") + "\n"
}
