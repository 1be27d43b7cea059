// Package testpki is a throwaway certificate authority for tests: it
// issues server and client certificates with ECDSA P-256 keys and hands
// them out as PEM, as tls.Certificate values or as files, the forms the
// code under test reads them in.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// A CA signs the certificates of one test.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// New returns a CA whose certificate is named name and valid from an hour
// ago for a day.
func New(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating the test CA %q: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing the test CA %q: %v", name, err)
	}
	return &CA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Certificate is the CA's own certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// PEM is the CA certificate, PEM-encoded.
func (ca *CA) PEM() []byte { return ca.pem }

// Pool is a new pool trusting only this CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// WritePEM writes the CA certificate to path, readable by all as a CA
// certificate may be, and returns path.
func (ca *CA) WritePEM(t testing.TB, path string) string {
	t.Helper()
	writeFile(t, path, ca.pem, 0o644)
	return path
}

// Server issues a server certificate named cn for hosts, each an IP
// address or a DNS name. A zero notAfter means a day from now.
func (ca *CA) Server(t testing.TB, cn string, serial int64, notAfter time.Time, hosts ...string) *Cert {
	t.Helper()
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	return ca.issue(t, cn, serial, notAfter, x509.ExtKeyUsageServerAuth, hosts)
}

// Client issues a client certificate named cn, valid for an hour, with
// sans (IP addresses or DNS names) as its subject alternative names.
func (ca *CA) Client(t testing.TB, cn string, serial int64, sans ...string) *Cert {
	t.Helper()
	return ca.issue(t, cn, serial, time.Now().Add(time.Hour), x509.ExtKeyUsageClientAuth, sans)
}

func (ca *CA) issue(t testing.TB, cn string, serial int64, notAfter time.Time, usage x509.ExtKeyUsage, hosts []string) *Cert {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issuing certificate %q serial %d: %v", cn, serial, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing certificate %q serial %d: %v", cn, serial, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("encoding the key of certificate %q: %v", cn, err)
	}
	return &Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
	}
}

// A Cert is an issued certificate and its key.
type Cert struct {
	CertPEM []byte // the certificate
	KeyPEM  []byte // its key, PKCS #8
	TLS     tls.Certificate
}

// Bundle is the certificate followed by its key, both PEM, the one-file
// form servers also accept.
func (c *Cert) Bundle() []byte {
	return append(append([]byte{}, c.CertPEM...), c.KeyPEM...)
}

// WriteFiles replaces keyFile and then certFile with the key and the
// certificate, each atomically, as renewal tools do.
func (c *Cert) WriteFiles(t testing.TB, certFile, keyFile string) {
	t.Helper()
	WriteFile(t, keyFile, c.KeyPEM)
	WriteFile(t, certFile, c.CertPEM)
}

// WriteFile replaces path with data, readable by its owner only, as
// renewal tools do: a new file renamed over the old one, so a reader never
// sees half of it.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	writeFile(t, path, data, 0o600)
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatalf("writing %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("replacing %s: %v", path, err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating a key: %v", err)
	}
	return key
}
