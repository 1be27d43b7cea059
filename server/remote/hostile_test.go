package remote

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/server/objstore"
)

// TestHostileKeysStayInTheView: a bucket holding keys with "..", ".",
// empty segments, backslashes and control characters. A glob skips them
// with a warning and reads the rest; naming one fails; nothing is created
// outside the cache directory.
func TestHostileKeysStayInTheView(t *testing.T) {
	base := t.TempDir()
	cacheDir := filepath.Join(base, "cache")
	b := newMemBucket()
	// The view root is cache/views/N/s3/bkt; from its data/ six ".." reach
	// base.
	up := strings.Repeat("../", 6)
	evil := []string{
		"data/" + up + "outside/evil.secret.json",
		"data/" + up + "stored_secrets/evil.secret.json",
		"data/../../../views/evil.csv",
		"data/./a.csv",
		"data//b.csv",
		`data\..\c.csv`,
		"data/nl\nx.csv",
		"data/sub/..",
	}
	for _, k := range evil {
		b.put(k, "n\n666\n")
	}
	b.put("data/ok.csv", "n\n1\n")
	b.put("data/sub/ok2.csv", "n\n2\n")
	b.put("data/folder/", "") // a console's folder marker: skipped quietly
	var logs testenv.SyncBuffer
	r, err := New(Options{CacheDir: cacheDir, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Open: func(context.Context, Location, *Secret) (objstore.Bucket, error) { return b, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	s, err := r.Prepare(ctx, "SELECT * FROM read_text('s3://bkt/data/**')")
	if err != nil {
		t.Fatal(err)
	}
	view := filepath.Join(cacheDir, "views")
	var files []string
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		if !strings.HasPrefix(f, view+string(filepath.Separator)) && !strings.HasPrefix(f, filepath.Join(cacheDir, "objects")+string(filepath.Separator)) {
			t.Errorf("file outside the cache's objects and views: %s", f)
		}
		if strings.HasPrefix(f, view) && !strings.HasSuffix(f, "/data/ok.csv") && !strings.HasSuffix(f, "/data/sub/ok2.csv") {
			t.Errorf("unexpected file in the view: %q", f)
		}
	}
	for _, p := range []string{filepath.Join(base, "outside"), filepath.Join(base, "stored_secrets"), filepath.Join(cacheDir, "views", "evil.csv")} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v)", p, err)
		}
	}
	if got := len(s.Sources[0].Versions); got != 2 {
		t.Errorf("glob read %d objects, want the 2 safe ones: %v", got, s.Sources[0].Versions)
	}
	s.Finish(ctx, true)
	warnings := strings.Count(logs.String(), "skipping object whose key cannot be a local path")
	// data\..\c.csv is not under data/; the marker is quiet.
	if want := len(evil) - 1; warnings != want {
		t.Errorf("%d warnings, want %d:\n%s", warnings, want, logs.String())
	}
	if strings.Contains(logs.String(), "\n666") || strings.Contains(logs.String(), "nl\nx") {
		t.Errorf("a key reached the log unescaped:\n%s", logs.String())
	}
	// The watcher sees what the statement read: no change.
	if c, err := r.Changes(ctx, []Source{{URL: "s3://bkt/data/**", Versions: map[string]string{"data/ok.csv": "1", "data/sub/ok2.csv": "1"}}}); err != nil || c.Any() {
		t.Errorf("Changes = %+v, %v", c, err)
	}

	// Naming one such key fails, before anything is laid out.
	for _, u := range []string{"s3://bkt/data/" + up + "outside/evil.secret.json", "s3://bkt/data//b.csv", "s3://bkt/data/./a.csv"} {
		s, err := r.Prepare(ctx, "SELECT * FROM read_text('"+u+"')")
		if err == nil {
			s.Finish(ctx, false)
			t.Errorf("%s: no error", u)
		} else if !strings.Contains(err.Error(), "cannot be a local path") {
			t.Errorf("%s: %v", u, err)
		}
	}
	// A pattern that itself leaves the view matches nothing.
	if s, err := r.Prepare(ctx, "SELECT * FROM read_text('s3://bkt/data/"+up+"*/*.json')"); err == nil {
		s.Finish(ctx, false)
		t.Error("a '..' pattern matched")
	}
	if _, err := os.Lstat(filepath.Join(base, "outside")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("outside exists (%v)", err)
	}
}

func TestGlobsDoNotMatchDotSegments(t *testing.T) {
	for _, c := range []struct {
		pat, key string
		want     bool
	}{
		{"data/**", "data/a/b.csv", true},
		{"data/**", "data/../x", false},
		{"data/*/x", "data/../x", false},
		{"data/?/x", "data/./x", false},
		{"data/**/x", "data//x", false},
		{"data/*", "data/..", false},
		{"data/.*", "data/..", false},
		{"data/*", "data/.hidden", true},
		{"*", `a\..\b`, false},
		{"data/../*", "data/../x", false}, // even spelled out
	} {
		if got := matchKey(c.pat, c.key); got != c.want {
			t.Errorf("matchKey(%q, %q) = %v", c.pat, c.key, got)
		}
	}
}

// gateBucket serves one object whose download waits for release (or its
// context), and records how each download ended.
type gateBucket struct {
	release chan struct{}

	mu        sync.Mutex
	started   int
	cancelled int
}

func (g *gateBucket) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	return []objstore.Object{{Key: "big.csv", Size: 4, Version: "v1"}}, nil
}

func (g *gateBucket) Download(ctx context.Context, key string, w io.Writer) (objstore.Object, error) {
	g.mu.Lock()
	g.started++
	g.mu.Unlock()
	select {
	case <-g.release:
	case <-ctx.Done():
		g.mu.Lock()
		g.cancelled++
		g.mu.Unlock()
		return objstore.Object{}, ctx.Err()
	}
	io.WriteString(w, "n\n1\n")
	return objstore.Object{Key: key, Size: 4, Version: "v1"}, nil
}

func (g *gateBucket) Upload(context.Context, string, io.Reader, int64) error { return nil }

func (g *gateBucket) counts() (started, cancelled int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started, g.cancelled
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedDownloadOutlivesTheFirstWaiter: two statements wait on one
// download; the one that started it goes away; the other still gets the
// file. Only when every waiter has gone is the download cancelled.
func TestSharedDownloadOutlivesTheFirstWaiter(t *testing.T) {
	c, err := newCache(t.TempDir(), 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g := &gateBucket{release: make(chan struct{})}
	obj := objstore.Object{Key: "big.csv", Size: 4, Version: "v1"}
	const url = "s3://b/big.csv"

	firstCtx, firstGone := context.WithCancelCause(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.acquire(firstCtx, g, url, obj, &stats{})
		firstErr <- err
	}()
	waitFor(t, "the download to start", func() bool { s, _ := g.counts(); return s == 1 })
	type result struct {
		e   *entry
		err error
	}
	second := make(chan result, 1)
	go func() {
		e, err := c.acquire(context.Background(), g, url, obj, &stats{})
		second <- result{e, err}
	}()
	waitFor(t, "the second waiter", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, d := range c.inflight {
			return d.waiters == 2
		}
		return false
	})
	firstGone(errors.New("connection closed by client"))
	if err := <-firstErr; err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Fatalf("first waiter: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // a cancelled download would end now
	close(g.release)
	r := <-second
	if r.err != nil {
		t.Fatalf("second waiter failed after the first left: %v", r.err)
	}
	if b, err := os.ReadFile(r.e.path); err != nil || string(b) != "n\n1\n" {
		t.Fatalf("second waiter's file: %q %v", b, err)
	}
	if started, cancelled := g.counts(); started != 1 || cancelled != 0 {
		t.Fatalf("downloads started %d, cancelled %d; want 1, 0", started, cancelled)
	}
	c.mu.Lock()
	refs := r.e.refs
	c.mu.Unlock()
	if refs != 1 {
		t.Fatalf("entry refs %d, want 1 (the second waiter's)", refs)
	}
	c.release(r.e)
}

func TestSharedDownloadStopsWhenEveryWaiterLeft(t *testing.T) {
	c, err := newCache(t.TempDir(), 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g := &gateBucket{release: make(chan struct{})}
	obj := objstore.Object{Key: "big.csv", Size: 4, Version: "v1"}
	const url = "s3://b/big.csv"
	var wg sync.WaitGroup
	var cancels []context.CancelFunc
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		wg.Go(func() {
			if _, err := c.acquire(ctx, g, url, obj, &stats{}); err == nil {
				t.Error("a cancelled waiter got the file")
			}
		})
	}
	waitFor(t, "three waiters", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, d := range c.inflight {
			return d.waiters == 3
		}
		return false
	})
	for _, cancel := range cancels[:2] {
		cancel()
	}
	time.Sleep(50 * time.Millisecond)
	if _, cancelled := g.counts(); cancelled != 0 {
		t.Fatal("download cancelled while a waiter was left")
	}
	cancels[2]()
	wg.Wait()
	waitFor(t, "the download to be cancelled", func() bool { _, n := g.counts(); return n == 1 })
	// The next statement starts afresh and succeeds.
	close(g.release)
	e, err := c.acquire(context.Background(), g, url, obj, &stats{})
	if err != nil {
		t.Fatal(err)
	}
	if started, _ := g.counts(); started != 2 {
		t.Fatalf("%d downloads started, want 2", started)
	}
	c.release(e)
}

func TestCacheDirMustBePrivate(t *testing.T) {
	base := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	// Made fresh: 0700.
	fresh := filepath.Join(base, "fresh", "cache")
	if _, err := newCache(fresh, 0, log); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(fresh); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("fresh cache dir: %v %v", st.Mode(), err)
	}
	// An existing private one is reused.
	if _, err := newCache(fresh, 0, log); err != nil {
		t.Fatal(err)
	}

	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if _, err := newCache(open, 0, log); err == nil || !strings.Contains(err.Error(), open) || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("world-writable dir: %v", err)
	}
	groupw := filepath.Join(base, "groupw")
	os.Mkdir(groupw, 0o700)
	os.Chmod(groupw, 0o770)
	if _, err := newCache(groupw, 0, log); err == nil {
		t.Fatal("group-writable dir accepted")
	}

	link := filepath.Join(base, "link")
	if err := os.Symlink(fresh, link); err != nil {
		t.Fatal(err)
	}
	if _, err := newCache(link, 0, log); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("symlinked dir: %v", err)
	}

	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := newCache(file, 0, log); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file: %v", err)
	}

	if os.Getuid() != 0 {
		t.Log("not root: cannot make a directory owned by another user")
		return
	}
	theirs := filepath.Join(base, "theirs")
	os.Mkdir(theirs, 0o700)
	if err := os.Chown(theirs, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err := newCache(theirs, 0, log); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Fatalf("someone else's dir: %v", err)
	}
}

// TestIcebergRemotePathsStayInTheView: a manifest may name any data file;
// one whose path leaves the view fails the read and creates nothing.
func TestIcebergRemotePathsStayInTheView(t *testing.T) {
	base := t.TempDir()
	b := newMemBucket()
	evil := "wh/t/data/" + strings.Repeat("../", 8) + "planted/evil.secret.json"
	b.put(evil, "bytes")
	b.put("wh/t/data/ok.parquet", "ok")
	r, err := New(Options{CacheDir: filepath.Join(base, "cache"),
		Open: func(context.Context, Location, *Secret) (objstore.Bucket, error) { return b, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := &Statement{r: r}
	defer s.Finish(ctx, false)
	files := tableFiles{s}
	if _, err := files.LocalAll(ctx, []string{"s3://bkt/wh/t/data/ok.parquet", "s3://bkt/" + evil}); err == nil || !strings.Contains(err.Error(), "cannot be a local path") {
		t.Fatalf("manifest path with '..': %v", err)
	}
	if _, err := os.Lstat(filepath.Join(base, "planted")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("planted exists (%v)", err)
	}
	if p, err := files.Local(ctx, "s3://bkt/wh/t/data/ok.parquet"); err != nil || !strings.HasPrefix(p, filepath.Join(base, "cache", "views")) {
		t.Fatalf("ordinary data file: %q %v", p, err)
	}
}
