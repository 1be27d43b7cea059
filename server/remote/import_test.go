package remote

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/server/objstore"
)

// gatedBucket is a memBucket whose downloads each wait until want of them
// are in progress at once, and which records the most that ever were.
type gatedBucket struct {
	*memBucket
	want int

	mu      sync.Mutex
	running int
	most    int
	open    bool // reached is closed
	reached chan struct{}
}

func newGatedBucket(want int) *gatedBucket {
	return &gatedBucket{memBucket: newMemBucket(), want: want, reached: make(chan struct{})}
}

func (g *gatedBucket) Download(ctx context.Context, key string, w io.Writer) (objstore.Object, error) {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	if g.running == g.want && !g.open {
		g.open = true
		close(g.reached)
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	select {
	case <-g.reached:
	case <-time.After(10 * time.Second):
		return objstore.Object{}, errors.New("downloads did not overlap")
	case <-ctx.Done():
		return objstore.Object{}, ctx.Err()
	}
	// Holding on a little lets more downloads pile up if the limit
	// allowed them.
	time.Sleep(20 * time.Millisecond)
	return g.memBucket.Download(ctx, key, w)
}

func newGatedResolver(t *testing.T, b objstore.Bucket, workers int) *Resolver {
	t.Helper()
	r, err := New(Options{CacheDir: t.TempDir(), Workers: workers, Open: func(ctx context.Context, loc Location, sec *Secret) (objstore.Bucket, error) {
		return b, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The URLs of one statement download together: the statement below can
// only be prepared if its two objects are in flight at the same time.
// Sources stay in statement order.
func TestImportURLsOfAStatementDownloadTogether(t *testing.T) {
	b := newGatedBucket(2)
	b.put("a/1.csv", "one")
	b.put("b/2.csv", "two")
	r := newGatedResolver(t, b, 8)
	ctx := context.Background()
	st, err := r.Prepare(ctx, "SELECT * FROM 's3://bkt/a/1.csv' JOIN 's3://bkt/b/*.csv' USING (x)")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Finish(ctx, true)
	if len(st.Sources) != 2 || st.Sources[0].URL != "s3://bkt/a/1.csv" || st.Sources[1].URL != "s3://bkt/b/*.csv" {
		t.Fatalf("sources %+v", st.Sources)
	}
	if strings.Contains(st.SQL, "s3://") || !strings.Contains(st.SQL, "/s3/bkt/a/1.csv' JOIN '") || !strings.HasSuffix(st.SQL, "/s3/bkt/b/*.csv' USING (x)") {
		t.Fatalf("rewritten: %s", st.SQL)
	}
	if data, err := os.ReadFile(literal(t, st.SQL)); err != nil || string(data) != "one" {
		t.Fatalf("local copy: %q, %v", data, err)
	}
}

// However many URLs a statement names, its downloads together stay within
// the worker limit.
func TestImportDownloadsStayWithinTheWorkerLimit(t *testing.T) {
	b := newGatedBucket(2)
	for _, k := range []string{"a/1", "a/2", "a/3", "b/1", "b/2", "b/3", "c/1", "c/2", "c/3"} {
		b.put(k+".csv", k)
	}
	r := newGatedResolver(t, b, 2)
	ctx := context.Background()
	st, err := r.Prepare(ctx, "FROM read_csv(['s3://bkt/a/*.csv', 's3://bkt/b/*.csv', 's3://bkt/c/*.csv'])")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Finish(ctx, true)
	b.mu.Lock()
	most := b.most
	b.mu.Unlock()
	if most != 2 {
		t.Fatalf("at most %d downloads at once, want the limit of 2", most)
	}
	b.memBucket.mu.Lock()
	downloads := b.downloads
	b.memBucket.mu.Unlock()
	if downloads != 9 || len(st.Sources) != 3 {
		t.Fatalf("%d downloads, sources %+v", downloads, st.Sources)
	}
}

// One URL failing fails the statement with its own error, and what the
// others fetched is released: nothing stays in use, no view is left.
func TestImportOneFailingURLReleasesTheOthers(t *testing.T) {
	b := newMemBucket()
	b.put("a/1.csv", "one")
	r, _ := newTestResolver(t, b, 0)
	ctx := context.Background()
	_, err := r.Prepare(ctx, "SELECT * FROM 's3://bkt/a/1.csv', 's3://bkt/missing/*.csv'")
	if err == nil || !strings.Contains(err.Error(), `No files found that match the pattern "s3://bkt/missing/*.csv"`) {
		t.Fatalf("error %v", err)
	}
	r.cache.mu.Lock()
	for url, e := range r.cache.entries {
		if e.refs != 0 {
			t.Errorf("%s still has %d users", url, e.refs)
		}
	}
	r.cache.mu.Unlock()
	views, _ := os.ReadDir(r.cache.dir + "/views")
	if len(views) != 0 {
		t.Fatalf("views left: %v", views)
	}
}
