package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lunadb/luna/internal/testpki"
)

// keyPair writes a client certificate of its own CA and its key, and
// returns their paths.
func keyPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	testpki.New(t, name).Client(t, name, 1).WriteFiles(t, certFile, keyFile)
	return certFile, keyFile
}

func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	crt, key := keyPair(t, dir, "a")
	_, otherKey := keyPair(t, dir, "b")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	missing := filepath.Join(dir, "missing.pem")

	if cfg, err := parseFlags([]string{"-p", "x"}, &bytes.Buffer{}); err != nil || cfg.tls != nil {
		t.Fatalf("no TLS flag: tls %v, err %v", cfg.tls, err)
	}
	cfg, err := parseFlags([]string{"-tls-ca-file", crt, "-tls-server-name", "db.internal", "-tls-cert-file", crt, "-tls-key-file", key}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.tls; c == nil || c.RootCAs == nil || c.ServerName != "db.internal" || len(c.Certificates) != 1 || c.InsecureSkipVerify {
		t.Fatalf("got %+v", cfg.tls)
	}
	if cfg, err := parseFlags([]string{"--tls-insecure-skip-verify"}, &bytes.Buffer{}); err != nil || cfg.tls == nil || !cfg.tls.InsecureSkipVerify {
		t.Fatalf("-tls-insecure-skip-verify: %+v %v", cfg, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-ca-file", missing}, "-tls-ca-file: open " + missing},
		{[]string{"-tls-ca-file", garbage}, "holds no PEM certificate"},
		{[]string{"-tls-cert-file", crt}, "-tls-cert-file needs -tls-key-file"},
		{[]string{"-tls-key-file", key}, "-tls-key-file needs -tls-cert-file"},
		{[]string{"-tls-cert-file", missing, "-tls-key-file", key}, "no such file"},
		{[]string{"-tls-cert-file", crt, "-tls-key-file", otherKey}, "private key does not match public key"},
		{[]string{"-tls-cert-file", garbage, "-tls-key-file", key}, "failed to find any PEM data"},
	} {
		var stderr bytes.Buffer
		e := env{stdin: strings.NewReader(""), stdinTTY: true, stdout: &bytes.Buffer{}, stderr: &stderr}
		args := append(tc.args, "-p", "SELECT 1")
		if code := run(context.Background(), args, e); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}
