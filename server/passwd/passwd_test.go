package passwd

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain points every metadata and AWS endpoint at a closed loopback port
// before any test runs, so that a test that forgets to set one fails on
// 127.0.0.1 instead of reaching a real service. Tests set what they use with
// t.Setenv on top of this.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "passwd-test-")
	if err != nil {
		panic(err)
	}
	for k, v := range map[string]string{
		"GCE_METADATA_HOST":                 "127.0.0.1:1",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1",
		"AWS_EC2_METADATA_DISABLED":         "true",
		"AWS_ENDPOINT_URL":                  "http://127.0.0.1:1",
		"AWS_ACCESS_KEY_ID":                 testKeyID,
		"AWS_SECRET_ACCESS_KEY":             testSecretKey,
		"AWS_REGION":                        testRegion,
		"AWS_CONFIG_FILE":                   filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":       filepath.Join(dir, "credentials"),
		// Google's default credentials: none from gcloud or a key file,
		// so the metadata server (GCE_METADATA_HOST) is the only source.
		"CLOUDSDK_CONFIG": filepath.Join(dir, "gcloud"),
	} {
		os.Setenv(k, v)
	}
	for _, k := range []string{
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
		"AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
		"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_UNIVERSE_DOMAIN",
	} {
		os.Unsetenv(k)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testKeyID     = "AKIDLUNATEST0000"
	testSecretKey = "luna-test-secret-key"
	testRegion    = "us-east-1"
)

func TestParseSource(t *testing.T) {
	good := []struct {
		in   string
		want Source
	}{
		{"gcp-metadata:luna-passwd", Source{KindGCPMetadata, "luna-passwd"}},
		{"aws-imds:luna-passwd", Source{KindAWSIMDS, "luna-passwd"}},
		{"aws-ssm:/luna/passwd", Source{KindAWSSSM, "/luna/passwd"}},
		{"aws-secretsmanager:luna/passwd", Source{KindAWSSecretsManager, "luna/passwd"}},
		{
			"aws-secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:luna/passwd-AbCdEf",
			Source{KindAWSSecretsManager, "arn:aws:secretsmanager:us-east-1:123456789012:secret:luna/passwd-AbCdEf"},
		},
	}
	for _, tc := range good {
		got, err := ParseSource(tc.in)
		if err != nil {
			t.Errorf("ParseSource(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSource(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("ParseSource(%q).String() = %q", tc.in, got.String())
		}
	}

	bad := []struct{ in, wantErr string }{
		{"", "want KIND:NAME"},
		{"gcp-metadata", "want KIND:NAME"},
		{"gcp:luna-passwd", `unknown kind "gcp"`},
		{"GCP-METADATA:luna-passwd", "unknown kind"},
		{":luna-passwd", `unknown kind ""`},
		{"vault:secret/luna", "gcp-metadata, gcp-secretmanager, aws-imds, aws-ssm, aws-secretsmanager"},
		{"gcp-metadata:", "empty name"},
		{"aws-ssm:", "empty name"},
		{"aws-imds:a/b", "cannot contain"},
		{"gcp-metadata:luna?recursive=true", "cannot contain"},
	}
	for _, tc := range bad {
		_, err := ParseSource(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseSource(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestFetchRejectsBadSource(t *testing.T) {
	_, err := Fetch(context.Background(), Source{Kind: "vault", Name: "x"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("Fetch with unknown kind: %v", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := []struct{ content, want string }{
		{"K6K8bvyD2u", "K6K8bvyD2u"},
		{"K6K8bvyD2u\n", "K6K8bvyD2u"},
		{"K6K8bvyD2u\r\n", "K6K8bvyD2u"},
		{"K6K8bvyD2u\n\n", "K6K8bvyD2u"},
		{"correct horse battery\n", "correct horse battery"},
		{" lead and trail \t\n", " lead and trail \t"},
	}
	for i, tc := range good {
		path := filepath.Join(dir, "good"+string(rune('a'+i)))
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(path)
		if err != nil {
			t.Errorf("ReadFile(%q): %v", tc.content, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ReadFile(%q) = %q, want %q", tc.content, got, tc.want)
		}
	}

	for i, content := range []string{"", "\n", "\r\n", "\n\n"} {
		path := filepath.Join(dir, "empty"+string(rune('a'+i)))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(path)
		if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), path) {
			t.Errorf("ReadFile of %q: error %v, want ErrEmpty naming %s", content, err, path)
		}
	}

	missing := filepath.Join(dir, "missing")
	_, err := ReadFile(missing)
	if !errors.Is(err, fs.ErrNotExist) || strings.Count(err.Error(), missing) != 1 {
		t.Errorf("ReadFile(missing): %v, want not-exist naming the path once", err)
	}

	_, err = ReadFile(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("ReadFile(directory): %v, want an error naming %s", err, dir)
	}

	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(big)
	if err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "larger") {
		t.Errorf("ReadFile(big): %v", err)
	}
}

// closedAddr returns a loopback host:port nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// logBuffer collects Fetch's log output, safe for the concurrent writes an
// SDK may make.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testOptions(timeout time.Duration) (Options, *logBuffer) {
	lb := &logBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return Options{Timeout: timeout, Log: log}, lb
}

// checkFailure asserts that err wraps want and names the source, and that
// neither err nor the log mentions secret.
func checkFailure(t *testing.T, err error, want error, src, secret string, logs *logBuffer) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	if !strings.HasPrefix(err.Error(), src+": ") {
		t.Errorf("error %q does not start with the source %q", err, src)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error %q contains the password", err)
	}
	if secret != "" && logs != nil && strings.Contains(logs.String(), secret) {
		t.Errorf("log contains the password:\n%s", logs)
	}
}
