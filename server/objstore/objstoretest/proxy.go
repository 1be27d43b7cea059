package objstoretest

import (
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// counter is a reverse proxy in front of an emulator that counts the
// requests reaching it by kind, so tests can prove what a read cost (a
// warm re-read downloads nothing), and can slow downloads down.
type counter struct {
	kind func(*http.Request) string

	mu       sync.Mutex
	counts   map[string]int
	requests []string
	getDelay time.Duration
	getKind  string // the kind SlowGets delays
}

// startCounter serves the proxy to target (host:port) on ln. keepHost
// forwards the client's Host header, for emulators that route or sign by
// it.
func startCounter(t testing.TB, ln net.Listener, target string, keepHost bool, kind func(*http.Request) string, getKind string) *counter {
	t.Helper()
	c := &counter{kind: kind, counts: map[string]int{}, getKind: getKind}
	u := &url.URL{Scheme: "http", Host: target}
	// Its own transport: the proxy must never follow HTTP_PROXY, nor add
	// or decode a content encoding.
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 32,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			if keepHost {
				r.Out.Host = r.In.Host
			}
		},
		Transport: transport,
		// Clients that give up mid-request are routine in tests.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := c.count(r); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
			proxy.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		transport.CloseIdleConnections()
	})
	return c
}

// count records r and returns how long to hold it.
func (c *counter) count(r *http.Request) time.Duration {
	kind := c.kind(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[kind]++
	c.requests = append(c.requests, kind+" "+r.Method+" "+r.URL.RequestURI())
	if kind == c.getKind {
		return c.getDelay
	}
	return 0
}

// Counts returns how many requests of each kind reached the proxy since
// the start or the last Reset.
func (c *counter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// Count is one kind's count, for terse assertions.
func (c *counter) Count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[kind]
}

// Requests lists the requests behind Counts, one "kind METHOD /path?query"
// line each, for a failing test to show.
func (c *counter) Requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.requests)
}

// Reset zeroes the counts.
func (c *counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
	c.requests = nil
}

// SlowGets makes every object download through the proxy wait d first,
// like a far-away bucket; 0 restores full speed.
func (c *counter) SlowGets(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.getDelay = d
}
