package objstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Request kinds that GCSServer.Counts reports.
const (
	GCSList   = "list"   // object listings (JSON or XML API)
	GCSGet    = "get"    // object media downloads
	GCSStat   = "stat"   // object metadata reads and HEADs
	GCSUpload = "upload" // object writes, including resumable-upload chunks
	GCSDelete = "delete" // object deletes
	GCSBucket = "bucket" // bucket creation, listing and metadata
	GCSOther  = "other"
)

// GCSServer is a fake-gcs-server on loopback behind a proxy that counts
// requests by kind.
type GCSServer struct {
	// Host is 127.0.0.1:port, the value for STORAGE_EMULATOR_HOST.
	Host string

	noCreds string // a credentials file that does not exist

	*counter
}

// StartFakeGCS runs fake-gcs-server (in memory) for the test's lifetime.
// Every request, including the download and resumable-upload URLs the
// emulator hands out, goes through the counting proxy at Host.
func StartFakeGCS(t testing.TB) *GCSServer {
	t.Helper()
	bin := ToolPath(t, "fake-gcs-server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &GCSServer{
		Host:    ln.Addr().String(),
		noCreds: filepath.Join(t.TempDir(), "no-such-credentials.json"),
	}
	emu := FreeAddr(t)
	emuHost, emuPort, _ := net.SplitHostPort(emu)
	// The emulator routes XML-API requests by the Host header and builds
	// media and upload URLs from these flags, so both name the proxy.
	StartProcess(t, emu, bin,
		"-scheme", "http",
		"-backend", "memory",
		"-host", emuHost,
		"-port", emuPort,
		"-public-host", s.Host,
		"-external-url", "http://"+s.Host,
	)

	// The emulator routes XML-API requests by the Host header.
	s.counter = startCounter(t, ln, emu, true, gcsRequestKind, GCSGet)
	return s
}

// Env is the environment for a process that should use this server: the
// emulator host, plus settings that make any attempt to find Google
// credentials fail on loopback instead of reaching the network.
func (s *GCSServer) Env() []string {
	return []string{
		"STORAGE_EMULATOR_HOST=" + s.Host,
		"GCE_METADATA_HOST=127.0.0.1:1",
		"GOOGLE_APPLICATION_CREDENTIALS=" + s.noCreds,
	}
}

// Setenv sets Env in the test's own environment.
func (s *GCSServer) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// CreateBucket makes an empty bucket through the JSON API.
func (s *GCSServer) CreateBucket(t testing.TB, name string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+s.Host+"/storage/v1/b?project=test", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("create bucket %s: %s: %s", name, resp.Status, msg)
	}
}

// gcsRequestKind classifies a request by the GCS API paths:
//
//	/storage/v1/b[/{bucket}]               buckets (JSON)
//	/storage/v1/b/{bucket}/o               list (JSON)
//	/storage/v1/b/{bucket}/o/{object}      metadata, or media with alt=media
//	/download/storage/v1/b/{bucket}/o/...  media
//	/upload/...                            writes
//	/{bucket}[/]                           list (XML)
//	/{bucket}/{object}                     media or writes (XML)
func gcsRequestKind(r *http.Request) string {
	// The escaped path keeps an object name's slashes (%2F in the JSON
	// API) inside one segment.
	p := r.URL.EscapedPath()
	get := r.Method == http.MethodGet
	switch {
	case strings.HasPrefix(p, "/upload/"):
		return GCSUpload
	case strings.HasPrefix(p, "/download/storage/v1/"):
		return GCSGet
	case strings.HasPrefix(p, "/storage/v1/"):
		seg := strings.Split(strings.Trim(strings.TrimPrefix(p, "/storage/v1/"), "/"), "/")
		switch {
		case seg[0] != "b":
			return GCSOther
		case len(seg) <= 2:
			return GCSBucket
		case seg[2] != "o":
			return GCSOther
		case len(seg) == 3 && get:
			return GCSList
		case len(seg) != 4:
			return GCSOther
		case r.Method == http.MethodDelete:
			return GCSDelete
		case get && r.URL.Query().Get("alt") == "media":
			return GCSGet
		case get || r.Method == http.MethodHead:
			return GCSStat
		default:
			return GCSUpload
		}
	case strings.HasPrefix(p, "/_internal/") || strings.HasPrefix(p, "/batch/"):
		return GCSOther
	}
	_, object, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	switch {
	case object == "" && get:
		return GCSList
	case object == "":
		return GCSOther
	case get:
		return GCSGet
	case r.Method == http.MethodHead:
		return GCSStat
	case r.Method == http.MethodDelete:
		return GCSDelete
	case r.Method == http.MethodPut || r.Method == http.MethodPost:
		return GCSUpload
	}
	return GCSOther
}
