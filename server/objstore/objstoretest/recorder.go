package objstoretest

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recorder is a third-party endpoint that keeps every request's method,
// URI and headers, so a test can prove which credentials left the server.
// It forwards to an emulator, or answers with its own handler.
type Recorder struct {
	Addr string // 127.0.0.1:port

	mu   sync.Mutex
	reqs []Recorded
}

// Recorded is one request as it reached the Recorder.
type Recorded struct {
	Method string
	URI    string // path and query, as sent
	Header http.Header
}

// StartRecorder serves on loopback for the test's lifetime. With a
// target (host:port) it forwards there keeping the Host header, which S3
// signatures cover; otherwise h answers.
func StartRecorder(t testing.TB, target string, h http.Handler) *Recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Addr: ln.Addr().String()}
	if target != "" {
		u := &url.URL{Scheme: "http", Host: target}
		transport := &http.Transport{DisableCompression: true}
		t.Cleanup(transport.CloseIdleConnections)
		h = &httputil.ReverseProxy{
			Rewrite: func(p *httputil.ProxyRequest) {
				p.SetURL(u)
				p.Out.Host = p.In.Host
			},
			Transport: transport,
			ErrorLog:  log.New(io.Discard, "", 0),
		}
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.reqs = append(r.reqs, Recorded{Method: req.Method, URI: req.URL.RequestURI(), Header: req.Header.Clone()})
			r.mu.Unlock()
			h.ServeHTTP(w, req)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

// Requests returns what reached the Recorder since the start or Reset.
func (r *Recorder) Requests() []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// Reset forgets the requests seen so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

// credentialHeaders and credentialParams carry credentials in S3 (SigV4,
// presigned URLs, SigV2), GCS and Azure requests.
var (
	credentialHeaders = []string{"Authorization", "X-Amz-Security-Token", "X-Goog-Api-Key", "X-Ms-Authorization-Auxiliary"}
	credentialParams  = []string{"X-Amz-Credential", "X-Amz-Signature", "X-Amz-Security-Token", "AWSAccessKeyId", "Signature", "sig", "access_token", "key"}
)

// Credentials lists every credential-carrying header or query parameter
// seen, and every place one of the given values (key IDs, tokens)
// appears in a URI or in any header, one "METHOD URI: where" line each.
func (r *Recorder) Credentials(values ...string) []string {
	var found []string
	for _, q := range r.Requests() {
		where := func(s string) { found = append(found, q.Method+" "+q.URI+": "+s) }
		for _, h := range credentialHeaders {
			if v := q.Header.Values(h); len(v) > 0 {
				where("header " + h + ": " + strings.Join(v, ","))
			}
		}
		if u, err := url.ParseRequestURI(q.URI); err == nil {
			for k := range u.Query() {
				for _, p := range credentialParams {
					if strings.EqualFold(k, p) {
						where("query parameter " + k)
					}
				}
			}
		}
		for _, v := range values {
			if v == "" {
				continue
			}
			if strings.Contains(q.URI, v) || strings.Contains(q.URI, url.QueryEscape(v)) {
				where("URI holds " + v)
			}
			for k, hv := range q.Header {
				if strings.Contains(strings.Join(hv, "\n"), v) {
					where("header " + k + " holds " + v)
				}
			}
		}
	}
	return found
}
