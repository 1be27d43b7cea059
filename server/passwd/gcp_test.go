package passwd

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	instancePath = "/computeMetadata/v1/instance/attributes/luna-passwd"
	projectPath  = "/computeMetadata/v1/project/attributes/luna-passwd"
)

// fakeGCE is a metadata server that, like the real one, refuses requests
// without Metadata-Flavor: Google.
type fakeGCE struct {
	mu     sync.Mutex
	values map[string]string // by URL path
	fail   int               // answer 503 to this many requests first
	status int               // if set, answer every request with it
	paths  []string
}

func startGCE(t *testing.T, f *fakeGCE) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.paths = append(f.paths, r.URL.Path)
		w.Header().Set("Metadata-Flavor", "Google")
		switch {
		case r.Header.Get("Metadata-Flavor") != "Google":
			http.Error(w, "Missing required header: Metadata-Flavor", http.StatusForbidden)
		case f.status != 0:
			http.Error(w, "answered by the test", f.status)
		case f.fail > 0:
			f.fail--
			http.Error(w, "try again", http.StatusServiceUnavailable)
		default:
			v, ok := f.values[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/text")
			w.Write([]byte(v))
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("GCE_METADATA_HOST", srv.Listener.Addr().String())
	return srv
}

func (f *fakeGCE) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}

var gceSource = Source{Kind: KindGCPMetadata, Name: "luna-passwd"}

func TestGCEFakeRequiresFlavorHeader(t *testing.T) {
	srv := startGCE(t, &fakeGCE{values: map[string]string{instancePath: "pw"}})
	resp, err := http.Get(srv.URL + instancePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("request without Metadata-Flavor: status %d, want 403", resp.StatusCode)
	}
}

func TestGCEFetch(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]string
		want   string
		paths  []string
	}{
		{
			name:   "instance attribute wins",
			values: map[string]string{instancePath: "instance pw", projectPath: "project pw"},
			want:   "instance pw",
			paths:  []string{instancePath},
		},
		{
			name:   "project attribute when the instance has none",
			values: map[string]string{projectPath: "project pw\n"},
			want:   "project pw",
			paths:  []string{instancePath, projectPath},
		},
		{
			name:   "trailing CRLF trimmed",
			values: map[string]string{instancePath: "pw \r\n"},
			want:   "pw ",
			paths:  []string{instancePath},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeGCE{values: tc.values}
			startGCE(t, f)
			opts, _ := testOptions(10 * time.Second)
			got, err := Fetch(context.Background(), gceSource, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Fetch = %q, want %q", got, tc.want)
			}
			if p := f.requests(); !slices.Equal(p, tc.paths) {
				t.Errorf("requests %q, want %q", p, tc.paths)
			}
		})
	}
}

func TestGCENotFoundIsFinal(t *testing.T) {
	f := &fakeGCE{values: map[string]string{}}
	startGCE(t, f)
	opts, _ := testOptions(30 * time.Second)
	start := time.Now()
	_, err := Fetch(context.Background(), gceSource, opts)
	checkFailure(t, err, ErrNotFound, "gcp-metadata:luna-passwd", "", nil)
	if !strings.Contains(err.Error(), `"luna-passwd"`) {
		t.Errorf("error %q does not name the attribute", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a missing attribute took %s to report; it should not be retried", d)
	}
	if p := f.requests(); !slices.Equal(p, []string{instancePath, projectPath}) {
		t.Errorf("requests %q", p)
	}
}

func TestGCEEmptyValue(t *testing.T) {
	for _, v := range []string{"", "\n"} {
		f := &fakeGCE{values: map[string]string{instancePath: v, projectPath: "project pw"}}
		startGCE(t, f)
		opts, _ := testOptions(30 * time.Second)
		_, err := Fetch(context.Background(), gceSource, opts)
		checkFailure(t, err, ErrEmpty, "gcp-metadata:luna-passwd", "", nil)
		// A set but empty instance attribute is a mistake to report, not a
		// reason to use the project's.
		if p := f.requests(); !slices.Equal(p, []string{instancePath}) {
			t.Errorf("requests %q", p)
		}
	}
}

func TestGCERetriesServerErrors(t *testing.T) {
	f := &fakeGCE{values: map[string]string{instancePath: "pw"}, fail: 2}
	startGCE(t, f)
	opts, logs := testOptions(30 * time.Second)
	got, err := Fetch(context.Background(), gceSource, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got != "pw" {
		t.Errorf("Fetch = %q", got)
	}
	if p := f.requests(); !slices.Equal(p, []string{instancePath, instancePath, instancePath}) {
		t.Errorf("requests %q, want the instance attribute three times", p)
	}
	if strings.Contains(logs.String(), "pw") {
		t.Errorf("log mentions the password:\n%s", logs)
	}
}

func TestGCEAccessDenied(t *testing.T) {
	f := &fakeGCE{status: http.StatusForbidden}
	startGCE(t, f)
	opts, _ := testOptions(30 * time.Second)
	start := time.Now()
	_, err := Fetch(context.Background(), gceSource, opts)
	checkFailure(t, err, ErrAccessDenied, "gcp-metadata:luna-passwd", "", nil)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a refusal took %s to report", d)
	}
}

func TestGCEUnreachable(t *testing.T) {
	t.Setenv("GCE_METADATA_HOST", closedAddr(t))
	opts, logs := testOptions(time.Second)
	start := time.Now()
	_, err := Fetch(context.Background(), gceSource, opts)
	d := time.Since(start)
	checkFailure(t, err, ErrUnreachable, "gcp-metadata:luna-passwd", "", nil)
	if !strings.Contains(err.Error(), "unreachable after 1s") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q should say unreachable after 1s and why", err)
	}
	if d < time.Second || d > 2500*time.Millisecond {
		t.Errorf("gave up after %s, want about 1s", d)
	}
	t.Logf("error: %v\nlog:\n%s", err, logs)
}

func TestFetchStopsWhenContextEnds(t *testing.T) {
	t.Setenv("GCE_METADATA_HOST", closedAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	opts, _ := testOptions(time.Minute)
	start := time.Now()
	_, err := Fetch(ctx, gceSource, opts)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("error = %v, want the context's", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("took %s after the context ended", d)
	}
}
