package passwd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"
)

const (
	tokenPath     = "/computeMetadata/v1/instance/service-accounts/default/token"
	projectIDPath = "/computeMetadata/v1/project/project-id"
	// The access token the fake metadata server hands out.
	gsmToken = "ya29.luna-test-token"
)

// gsmReply is one canned answer of the fake Secret Manager.
type gsmReply struct {
	status int
	data   string // the payload, for a 200
	badCRC bool   // send a checksum that does not match data
	reason string // the error status (NOT_FOUND, ...), for others
}

// fakeGSM is Secret Manager's REST API for AccessSecretVersion: it records
// each request's path and Authorization header and answers with replies in
// turn (the last one repeats).
type fakeGSM struct {
	replies []gsmReply

	mu   sync.Mutex
	reqs []string
}

func (f *fakeGSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
	f.mu.Unlock()
	rep := f.replies[min(n, len(f.replies)-1)]
	w.Header().Set("Content-Type", "application/json")
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/"), ":access")
	if r.Method != http.MethodGet || !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"code":404,"message":"test server: unexpected %s %s","status":"NOT_FOUND"}}`, r.Method, r.URL.Path)
		return
	}
	if rep.status != http.StatusOK {
		w.WriteHeader(rep.status)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"answered by the test for %s","status":%q}}`, rep.status, name, rep.reason)
		return
	}
	sum := int64(crc32.Checksum([]byte(rep.data), crc32.MakeTable(crc32.Castagnoli)))
	if rep.badCRC {
		sum++
	}
	json.NewEncoder(w).Encode(map[string]any{
		"name": name,
		"payload": map[string]string{
			"data":       base64.StdEncoding.EncodeToString([]byte(rep.data)),
			"dataCrc32c": fmt.Sprint(sum),
		},
	})
}

func (f *fakeGSM) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// startGSM serves a fake Secret Manager and a metadata server that hands
// out the test's access token and project ID, and points the client at them.
func startGSM(t *testing.T, replies ...gsmReply) (*fakeGSM, *fakeGCE) {
	t.Helper()
	f := &fakeGSM{replies: replies}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	old := gsmClientOptions
	gsmClientOptions = []option.ClientOption{option.WithEndpoint(srv.URL)}
	t.Cleanup(func() { gsmClientOptions = old })
	md := &fakeGCE{values: map[string]string{
		tokenPath:     `{"access_token":"` + gsmToken + `","expires_in":3599,"token_type":"Bearer"}`,
		projectIDPath: "luna-vm-project",
	}}
	startGCE(t, md)
	return f, md
}

func gsmSource(name string) Source { return Source{Kind: KindGCPSecretManager, Name: name} }

func TestGSMParseSource(t *testing.T) {
	for _, in := range []string{
		"luna-passwd",
		"luna_passwd/versions/3",
		"luna-passwd/versions/latest",
		"projects/luna-prod/secrets/luna-passwd",
		"projects/123456789012/secrets/luna-passwd/versions/7",
		"projects/luna-prod/secrets/luna-passwd/versions/current-alias",
	} {
		if _, err := ParseSource("gcp-secretmanager:" + in); err != nil {
			t.Errorf("ParseSource(gcp-secretmanager:%s): %v", in, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"gcp-secretmanager:", "empty name"},
		{"gcp-secretmanager:projects/luna-prod/secrets/", "want projects/<project>/secrets/<secret>"},
		{"gcp-secretmanager:projects/luna-prod/secrets/pw/versions/", "want projects/<project>/secrets/<secret>"},
		{"gcp-secretmanager:projects/Luna_Prod/secrets/pw", "want projects/<project>/secrets/<secret>"},
		{"gcp-secretmanager:projects/luna-prod/locations/eu/secrets/pw", "want projects/<project>/secrets/<secret>"},
		{"gcp-secretmanager:pw/versions/3/extra", "want <secret>[/versions/<version>]"},
		{"gcp-secretmanager:pw?x=1", "want <secret>[/versions/<version>]"},
		{"gcp-secretmanager:../pw", "want <secret>[/versions/<version>]"},
		{"gcp-secretmanager:pw/versions/1:access", "want <secret>[/versions/<version>]"},
		{"gcp-secretmanager:" + strings.Repeat("x", 256), "want <secret>[/versions/<version>]"},
	} {
		_, err := ParseSource(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSource(%q) error = %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func TestGSMFetch(t *testing.T) {
	cases := []struct {
		name, source, resource string
		askProject             bool
	}{
		{"full name and version", "projects/luna-prod/secrets/luna-passwd/versions/3",
			"projects/luna-prod/secrets/luna-passwd/versions/3", false},
		{"full name, latest version", "projects/123456789012/secrets/luna-passwd",
			"projects/123456789012/secrets/luna-passwd/versions/latest", false},
		{"short name in the VM's project", "luna-passwd",
			"projects/luna-vm-project/secrets/luna-passwd/versions/latest", true},
		{"short name with a version", "luna-passwd/versions/2",
			"projects/luna-vm-project/secrets/luna-passwd/versions/2", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const pw = "gsm pw \t with spaces"
			f, md := startGSM(t, gsmReply{status: http.StatusOK, data: pw + "\n"})
			opts, logs := testOptions(10 * time.Second)
			got, err := Fetch(context.Background(), gsmSource(tc.source), opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != pw {
				t.Errorf("Fetch = %q, want %q", got, pw)
			}
			want := []string{"GET /v1/" + tc.resource + ":access auth=Bearer " + gsmToken}
			if reqs := f.requests(); !slices.Equal(reqs, want) {
				t.Errorf("Secret Manager requests %q, want %q", reqs, want)
			}
			mdReqs := md.requests()
			if !slices.Contains(mdReqs, tokenPath) {
				t.Errorf("the token did not come from the metadata server: %q", mdReqs)
			}
			// The metadata library caches the project ID, so only a
			// full name is sure to be seen not asking for it.
			if !tc.askProject && slices.Contains(mdReqs, projectIDPath) {
				t.Errorf("metadata requests %q: a full name needs no project ID", mdReqs)
			}
			if strings.Contains(logs.String(), pw) {
				t.Errorf("log mentions the password:\n%s", logs)
			}
		})
	}
}

func TestGSMFailures(t *testing.T) {
	const name = "projects/luna-prod/secrets/luna-passwd"
	src := "gcp-secretmanager:" + name
	for _, tc := range []struct {
		name  string
		reply gsmReply
		want  error
	}{
		{"not found", gsmReply{status: http.StatusNotFound, reason: "NOT_FOUND"}, ErrNotFound},
		{"permission denied", gsmReply{status: http.StatusForbidden, reason: "PERMISSION_DENIED"}, ErrAccessDenied},
		{"unauthenticated", gsmReply{status: http.StatusUnauthorized, reason: "UNAUTHENTICATED"}, ErrAccessDenied},
		{"empty payload", gsmReply{status: http.StatusOK, data: "\r\n"}, ErrEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := startGSM(t, tc.reply)
			opts, logs := testOptions(30 * time.Second)
			start := time.Now()
			_, err := Fetch(context.Background(), gsmSource(name), opts)
			checkFailure(t, err, tc.want, src, "", logs)
			t.Logf("error: %v", err)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s: a final answer must not be retried", d)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if tc.want != ErrEmpty && !strings.Contains(err.Error(), name+"/versions/latest") {
				t.Errorf("error %q does not name the secret version", err)
			}
		})
	}

	t.Run("disabled version is final", func(t *testing.T) {
		f, _ := startGSM(t, gsmReply{status: http.StatusBadRequest, reason: "FAILED_PRECONDITION"})
		opts, _ := testOptions(30 * time.Second)
		_, err := Fetch(context.Background(), gsmSource(name), opts)
		if err == nil || errors.Is(err, ErrUnreachable) || len(f.requests()) != 1 {
			t.Fatalf("error %v after %d requests, want one final failure", err, len(f.requests()))
		}
	})
}

func TestGSMRetries(t *testing.T) {
	const pw = "retried-pw"
	f, _ := startGSM(t,
		gsmReply{status: http.StatusServiceUnavailable, reason: "UNAVAILABLE"},
		gsmReply{status: http.StatusTooManyRequests, reason: "RESOURCE_EXHAUSTED"},
		gsmReply{status: http.StatusOK, data: pw, badCRC: true},
		gsmReply{status: http.StatusOK, data: pw},
	)
	opts, logs := testOptions(30 * time.Second)
	got, err := Fetch(context.Background(), gsmSource("luna-passwd"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got != pw {
		t.Errorf("Fetch = %q", got)
	}
	if n := len(f.requests()); n != 4 {
		t.Errorf("%d requests, want 4 (503, 429, a bad checksum, then the answer)", n)
	}
	if !strings.Contains(logs.String(), "CRC32C") {
		t.Errorf("the log does not mention the checksum mismatch:\n%s", logs)
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("log mentions the password:\n%s", logs)
	}
}

// Without a metadata server there is neither a project nor a token: the
// source is retried until the timeout, then reported unreachable.
func TestGSMNoMetadataServer(t *testing.T) {
	f, _ := startGSM(t, gsmReply{status: http.StatusOK, data: "pw"})
	for _, name := range []string{"luna-passwd", "projects/luna-prod/secrets/luna-passwd"} {
		t.Setenv("GCE_METADATA_HOST", closedAddr(t))
		opts, _ := testOptions(time.Second)
		_, err := Fetch(context.Background(), gsmSource(name), opts)
		checkFailure(t, err, ErrUnreachable, "gcp-secretmanager:"+name, "", nil)
		t.Logf("error: %v", err)
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("Secret Manager was asked without a token: %q", reqs)
	}
}
