// Package cloudfake holds stand-ins for the GCP Compute Engine and AWS
// EC2/Auto Scaling control planes, which have no local emulator. Each is an
// httptest server that the real SDK clients talk to: it records every
// request (method, path, query, body) so that tests can assert exactly what
// was sent, and answers the way the real APIs do where the clients depend
// on it: GCP operations are RUNNING on their first poll and DONE after, and
// AWS list calls page with NextToken.
package cloudfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
	// Form is the parsed body of AWS query-protocol requests.
	Form url.Values
}

// JSON decodes the body into a generic value (nil for an empty body).
func (r Request) JSON() map[string]any {
	if len(r.Body) == 0 {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return map[string]any{"<invalid json>": string(r.Body)}
	}
	return v
}

// Response is a canned answer.
type Response struct {
	Status int
	Body   string
	// ContentType defaults to application/json.
	ContentType string
}

// recorder is the request log shared by both fakes.
type recorder struct {
	mu   sync.Mutex
	reqs []Request
}

func (r *recorder) record(req *http.Request) Request {
	b, _ := io.ReadAll(req.Body)
	rec := Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Body: b}
	if req.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
		rec.Form, _ = url.ParseQuery(string(b))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return rec
}

// Requests returns the requests seen so far.
func (r *recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

func write(w http.ResponseWriter, resp Response) {
	ct := resp.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	if resp.Status == 0 {
		resp.Status = http.StatusOK
	}
	w.WriteHeader(resp.Status)
	io.WriteString(w, resp.Body)
}

func start(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// Golden compares got with the golden file, first rewriting the file when
// update is set (go test -update).
func Golden(t testing.TB, file, got string, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs; got:\n%s", file, got)
	}
}
