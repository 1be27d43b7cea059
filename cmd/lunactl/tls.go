package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"os"
)

// tlsFlags are the command line's TLS settings.
type tlsFlags struct {
	on         bool
	caFile     string
	serverName string
	certFile   string
	keyFile    string
	insecure   bool
}

func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&t.on, "tls", false, "connect with TLS (implied by the other -tls-* flags)")
	fs.StringVar(&t.caFile, "tls-ca-file", "", "PEM `file` of the CA certificates to trust (default: the system's)")
	fs.StringVar(&t.serverName, "tls-server-name", "", "`name` the server's certificate must carry (default: the host of -addr)")
	fs.StringVar(&t.certFile, "tls-cert-file", "", "PEM `file` of a client certificate, for servers that require one (mutual TLS)")
	fs.StringVar(&t.keyFile, "tls-key-file", "", "PEM `file` of the client certificate's key (may be the -tls-cert-file)")
	fs.BoolVar(&t.insecure, "tls-insecure-skip-verify", false, "accept any server certificate: encrypts, but does not know who it talks to")
}

// config builds the TLS configuration, nil when TLS is off. Unusable
// files are usage errors, named by their flag.
func (t *tlsFlags) config() (*tls.Config, error) {
	if !t.on && t.caFile == "" && t.serverName == "" && t.certFile == "" && t.keyFile == "" && !t.insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.serverName, InsecureSkipVerify: t.insecure}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, usagef("-tls-ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("-tls-ca-file: %s holds no PEM certificate", t.caFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.certFile != "" && t.keyFile == "":
		return nil, usagef("-tls-cert-file needs -tls-key-file")
	case t.keyFile != "" && t.certFile == "":
		return nil, usagef("-tls-key-file needs -tls-cert-file")
	case t.certFile != "":
		pair, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
		if err != nil {
			return nil, usagef("-tls-cert-file/-tls-key-file: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
