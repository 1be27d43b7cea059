//go:build duckdb_arrow

package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A metadata server with one instance attribute, for the gcp-metadata
// source; the other sources have their own tests in server/passwd.
func serveMetadata(t *testing.T, attrs map[string]string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Metadata-Flavor", "Google")
		v, ok := attrs[strings.TrimPrefix(r.URL.Path, "/computeMetadata/v1/instance/attributes/")]
		if r.Header.Get("Metadata-Flavor") != "Google" || !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(v))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("GCE_METADATA_HOST", srv.Listener.Addr().String())
}

func TestFetchSecret(t *testing.T) {
	serveMetadata(t, map[string]string{"luna-init-secret": "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v');\n\n"})
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, want string
	}{
		{[]string{"gcp-metadata:luna-init-secret"}, 0, "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v');\n", ""},
		{[]string{"--timeout", "5s", "gcp-metadata:luna-init-secret"}, 0, "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v');\n", ""},
		{[]string{"gcp-metadata:missing"}, 1, "", `luna fetch-secret: gcp-metadata:missing: not found`},
		{nil, 2, "", "Usage: luna fetch-secret"},
		{[]string{"a:b", "c:d"}, 2, "", "Usage: luna fetch-secret"},
		{[]string{"vault:x"}, 2, "", `unknown kind "vault"`},
		{[]string{"gcp-secretmanager:projects/p/secrets/"}, 2, "", "want projects/<project>/secrets/<secret>"},
		{[]string{"--timeout", "soon", "gcp-metadata:x"}, 2, "", "invalid value"},
	} {
		var stdout, stderr bytes.Buffer
		code := fetchSecret(tc.args, &stdout, &stderr)
		if code != tc.code || stdout.String() != tc.stdout || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("luna fetch-secret %q: exit %d, stdout %q, stderr %q; want %d, %q and a message with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.want)
		}
	}
}

func TestSubcommandDispatch(t *testing.T) {
	if _, ok := runSubcommand([]string{"--api-host-port", ":1"}); ok {
		t.Error("server flags were taken for a subcommand")
	}
	if _, ok := runSubcommand(nil); ok {
		t.Error("no arguments were taken for a subcommand")
	}
}
