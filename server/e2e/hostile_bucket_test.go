//go:build duckdb_arrow

package e2e

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// plantingProxy stands in front of a real versitygw and adds keys to its
// listings that versitygw itself cannot hold (its posix backend cleans
// ".." and "." out of keys, which real S3 keeps): a bucket written by an
// attacker. GETs of those keys are answered with body; everything else
// goes to versitygw unchanged.
type plantingProxy struct {
	addr   string
	bucket string
	keys   []string
	body   string
}

func startPlantingProxy(t *testing.T, target, bucket string, keys []string, body string) *plantingProxy {
	t.Helper()
	p := &plantingProxy{bucket: bucket, keys: keys, body: body}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	u := &url.URL{Scheme: "http", Host: target}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // signed
		},
		ModifyResponse: p.plant,
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The raw path: the SDK sends ".." segments as they are.
		raw := r.URL.EscapedPath()
		for _, k := range p.keys {
			if r.Method == http.MethodGet && (raw == "/"+bucket+"/"+k || r.URL.Path == "/"+bucket+"/"+k) {
				w.Header().Set("ETag", `"planted"`)
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
				io.WriteString(w, body)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// plant adds the planted keys under the listed prefix to a listing.
func (p *plantingProxy) plant(resp *http.Response) error {
	q := resp.Request.URL.Query()
	if resp.Request.Method != http.MethodGet || !q.Has("list-type") || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var add bytes.Buffer
	for _, k := range p.keys {
		if !strings.HasPrefix(k, q.Get("prefix")) {
			continue
		}
		add.WriteString("<Contents><Key>")
		xml.EscapeText(&add, []byte(k))
		fmt.Fprintf(&add, "</Key><LastModified>%s</LastModified><ETag>&#34;planted&#34;</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass></Contents>",
			time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), len(p.body))
	}
	body = bytes.Replace(body, []byte("</ListBucketResult>"), append(add.Bytes(), "</ListBucketResult>"...), 1)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// TestHostileBucketKeysStayInTheCache: a bucket holds keys meant to
// escape the object cache ("..", ".", empty segments, backslashes, a
// newline). A glob over it reads the ordinary objects only, logs a
// warning per skipped key, and creates no file outside the cache; naming
// one such key fails the statement.
func TestHostileBucketKeysStayInTheCache(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "hostile")
	put(t, b, "data/a.csv", "n\n1\n")
	put(t, b, "data/sub/b.csv", "n\n2\n")
	// Keys versitygw keeps as they are.
	put(t, b, "data/nl\nx.csv", "n\n100\n")
	put(t, b, `data/back\..\..\c.csv`, "n\n100\n")
	put(t, b, `data\..\c.csv`, "n\n100\n")

	root := t.TempDir()
	cache := filepath.Join(root, "cache")
	home := filepath.Join(root, "home")
	// From a view's data/ (cache/views/N/s3/hostile/data) six ".." reach
	// root.
	up := strings.Repeat("../", 6)
	planted := []string{
		"data/../../../x/evil.secret.json",
		"data/" + up + "planted/evil.secret.json",
		"data/" + up + "home/stored_secrets/evil.secret.json",
		"data/./a.csv",
		"data//b.csv",
	}
	proxy := startPlantingProxy(t, srv.DirectEndpoint, "hostile", planted, "n\n666\n")
	p := startLuna(t, true, nil, "--db-home-dir", home, "--object-cache-dir", cache)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	secret := fmt.Sprintf("CREATE SECRET (TYPE s3, KEY_ID '%s', SECRET '%s', REGION 'us-east-1', ENDPOINT '%s', URL_STYLE 'path', USE_SSL false)",
		srv.KeyID, srv.Secret, proxy.addr)
	if err := c.Exec(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, c, "SELECT count(*)::VARCHAR || '/' || sum(n)::VARCHAR FROM read_csv('s3://hostile/data/**')"); got != "2/3" {
		t.Errorf("glob over the hostile bucket read %s, want the 2 ordinary objects summing to 3", got)
	}
	if got := scalar(t, c, "SELECT count(*) FROM read_text('s3://hostile/data/**')"); got != "2" {
		t.Errorf("read_text over the hostile bucket: %s files", got)
	}
	for _, u := range []string{"s3://hostile/" + planted[1], "s3://hostile/data//b.csv", `s3://hostile/data/back\..\..\c.csv`} {
		err := c.Exec(ctx, "SELECT * FROM read_text('"+u+"')")
		if err == nil || !strings.Contains(err.Error(), "cannot be a local path") {
			t.Errorf("naming %q: %v", u, err)
		}
	}

	for _, pth := range []string{filepath.Join(root, "planted"), filepath.Join(home, "stored_secrets", "evil.secret.json"),
		filepath.Join(cache, "x"), filepath.Join(cache, "views", "x")} {
		if _, err := os.Lstat(pth); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v)", pth, err)
		}
	}
	// Everything on disk under root: the cache's own directories, DuckDB's
	// home, nothing planted.
	filepath.WalkDir(root, func(pth string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, pth)
		if strings.Contains(rel, "evil") || strings.Contains(rel, "\n") || strings.Contains(rel, `\`) {
			t.Errorf("planted file on disk: %q", rel)
		}
		if !strings.HasPrefix(rel, "cache/") && !strings.HasPrefix(rel, "home/") {
			t.Errorf("file outside the cache and home: %q", rel)
		}
		return nil
	})
	logs := p.logs.String()
	if n := strings.Count(logs, "skipping object whose key cannot be a local path"); n < len(planted)+1 {
		t.Errorf("%d skip warnings, want at least %d per glob", n, len(planted)+1)
	}
}

// TestSharedDownloadSurvivesTheFirstClientLeaving: two clients wait on
// one slow download; the one whose statement started it disconnects; the
// other's statement still completes, from that same download.
func TestSharedDownloadSurvivesTheFirstClientLeaving(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "shared")
	put(t, b, "big.csv", "n\n"+strings.Repeat("1\n", 1000))
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	srv.SlowGets(2 * time.Second)

	first, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	q := "q:SELECT count(*) FROM 's3://shared/big.csv'"
	fmt.Fprintf(first, "$%d\r\n%s\r\n", len(q), q)
	// The first statement's download is under way (held by the proxy)
	// before the second statement starts.
	for deadline := time.Now().Add(20 * time.Second); srv.Count("get") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first statement never started its download")
		}
	}
	got := make(chan string, 1)
	go func() {
		rows, err := c.Query(ctx, "SELECT count(*)::VARCHAR FROM 's3://shared/big.csv'")
		if err != nil {
			got <- err.Error()
			return
		}
		defer rows.Close()
		if !rows.Next() {
			got <- fmt.Sprint("no rows: ", rows.Err())
			return
		}
		got <- rows.RecordBatch().Column(0).ValueStr(0)
	}()
	time.Sleep(700 * time.Millisecond) // the second now waits on that download
	first.Close()
	select {
	case n := <-got:
		if n != "1000" {
			t.Fatalf("second statement: %s", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second statement did not finish")
	}
	if n := srv.Counts()["get"]; n != 1 {
		t.Fatalf("%d downloads, want 1 shared", n)
	}
}

// TestObjectCacheDirMustBePrivate: the server refuses a cache directory
// others can write to, or that is a symbolic link.
func TestObjectCacheDirMustBePrivate(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	link := filepath.Join(base, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{open: "writable by group or others", link: "symbolic link"} {
		p := launchLuna(t, true, nil, "--object-cache-dir", dir)
		select {
		case <-p.done:
		case addr := <-p.serving:
			t.Errorf("serving at %s with cache directory %s", addr, dir)
			continue
		case <-time.After(60 * time.Second):
			t.Fatal("luna neither served nor exited")
		}
		if code := p.cmd.ProcessState.ExitCode(); code == 0 {
			t.Errorf("%s: exit 0", dir)
		}
		if logs := p.logs.String(); !strings.Contains(logs, dir) || !strings.Contains(logs, want) {
			t.Errorf("%s: logs do not name the directory and %q:\n%s", dir, want, logs)
		}
	}
}
