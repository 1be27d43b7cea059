package gcs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

const testBucket = "luna-test"

// start runs an emulator with one empty bucket and opens it.
func start(t *testing.T) (*objstoretest.GCSServer, *Bucket) {
	t.Helper()
	srv := objstoretest.StartFakeGCS(t)
	srv.Setenv(t)
	srv.CreateBucket(t, testBucket)
	return srv, open(t, testBucket)
}

func open(t *testing.T, name string) *Bucket {
	t.Helper()
	b, err := New(context.Background(), Config{Bucket: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func put(t *testing.T, b *Bucket, key, data string) {
	t.Helper()
	if err := b.Upload(context.Background(), key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// noGoogle points every credential lookup at loopback or nowhere, for
// tests that set STORAGE_EMULATOR_HOST themselves.
func noGoogle(t *testing.T) {
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "none.json"))
}

func TestConformance(t *testing.T) {
	_, b := start(t)
	objstoretest.Run(t, b, func(key string) error {
		return b.bucket.Object(key).Delete(context.Background())
	})
}

func TestVersionIsGeneration(t *testing.T) {
	_, b := start(t)
	ctx := context.Background()
	generation := func() string {
		t.Helper()
		a, err := b.bucket.Object("g.csv").Attrs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(a.Generation, 10)
	}
	check := func(want string) {
		t.Helper()
		o, err := b.Download(ctx, "g.csv", io.Discard)
		if err != nil || o.Version != want {
			t.Fatalf("download: version %q, want %q (%v)", o.Version, want, err)
		}
		objs, err := b.List(ctx, "g.")
		if err != nil || len(objs) != 1 || objs[0].Version != want {
			t.Fatalf("list: %+v, want version %q (%v)", objs, want, err)
		}
	}
	put(t, b, "g.csv", "a\n1\n")
	g1 := generation()
	check(g1)
	put(t, b, "g.csv", "a\n2\n")
	g2 := generation()
	if g1 == g2 {
		t.Fatalf("overwrite kept generation %s", g1)
	}
	check(g2)
}

func TestNotFound(t *testing.T) {
	srv, b := start(t)
	ctx := context.Background()
	_, err := b.Download(ctx, "no/such.csv", io.Discard)
	if !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "gs://"+testBucket+"/no/such.csv") {
		t.Fatalf("missing object: %v", err)
	}

	nb := open(t, "no-such-bucket")
	srv.Reset()
	if _, err := nb.List(ctx, "x/"); !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "gs://no-such-bucket/x/") {
		t.Fatalf("list of a missing bucket: %v", err)
	}
	if _, err := nb.Download(ctx, "k", io.Discard); !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "gs://no-such-bucket/k") {
		t.Fatalf("download from a missing bucket: %v", err)
	}
	if err := nb.Upload(ctx, "k", strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("upload into a missing bucket: %v", err)
	}
	// A 404 is final: no retries.
	if c := srv.Counts(); c[objstoretest.GCSList] != 1 || c[objstoretest.GCSGet] != 1 {
		t.Fatalf("requests for a missing bucket: %v", c)
	}
}

func TestEmulatorDown(t *testing.T) {
	noGoogle(t)
	t.Setenv("STORAGE_EMULATOR_HOST", objstoretest.FreeAddr(t))
	b := open(t, testBucket)
	const deadline = 2 * time.Second
	for name, call := range map[string]func(context.Context) error{
		"list": func(ctx context.Context) error { _, err := b.List(ctx, ""); return err },
		"download": func(ctx context.Context) error {
			_, err := b.Download(ctx, "k", io.Discard)
			return err
		},
		"upload": func(ctx context.Context) error { return b.Upload(ctx, "k", strings.NewReader("x"), 1) },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		began := time.Now()
		err := call(ctx)
		cancel()
		if err == nil || errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("%s: err = %v", name, err)
		}
		if d := time.Since(began); d > deadline+time.Second {
			t.Errorf("%s took %v, past its %v deadline", name, d, deadline)
		}
	}
}

func TestConfig(t *testing.T) {
	noGoogle(t)
	t.Setenv("STORAGE_EMULATOR_HOST", objstoretest.FreeAddr(t))
	for _, name := range []string{"", "gs://b", "b/dir"} {
		if b, err := New(context.Background(), Config{Bucket: name}); err == nil {
			b.Close()
			t.Errorf("bucket %q: no error", name)
		} else if !strings.HasPrefix(err.Error(), "gcs: config:") {
			t.Errorf("bucket %q: %v", name, err)
		}
	}
}

func TestRequestCounts(t *testing.T) {
	srv, b := start(t)
	ctx := context.Background()
	put(t, b, "d/a.csv", "1")
	put(t, b, "d/b.csv", "2")
	put(t, b, "d/c.csv", "3")
	if c := srv.Count(objstoretest.GCSUpload); c != 3 {
		t.Fatalf("uploads counted: %d (%v)", c, srv.Counts())
	}
	defer func(n int) { listPageSize = n }(listPageSize)
	listPageSize = 2
	srv.Reset()
	objs, err := b.List(ctx, "d/")
	if err != nil || len(objs) != 3 || objs[2].Key != "d/c.csv" {
		t.Fatalf("list: %+v, %v", objs, err)
	}
	if c := srv.Counts(); len(c) != 1 || c[objstoretest.GCSList] != 2 {
		t.Fatalf("after listing two pages: %v", c)
	}
	srv.Reset()
	for _, k := range []string{"d/a.csv", "d/b.csv"} {
		if _, err := b.Download(ctx, k, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	// One media GET per download: no metadata request beside it.
	if c := srv.Counts(); len(c) != 1 || c[objstoretest.GCSGet] != 2 {
		t.Fatalf("after two downloads: %v", c)
	}
}

// Objects past the client's 16 MiB chunk go up in a resumable session,
// whose URL the emulator makes: it must lead through the proxy too.
func TestResumableUpload(t *testing.T) {
	srv, b := start(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 20<<16) // 20 MiB
	if err := b.Upload(ctx, "big.bin", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if c := srv.Count(objstoretest.GCSUpload); c < 3 {
		t.Fatalf("a resumable upload took %d requests through the proxy (%v)", c, srv.Counts())
	}
	var buf bytes.Buffer
	o, err := b.Download(ctx, "big.bin", &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), data) || o.Size != int64(len(data)) {
		t.Fatalf("read back %d bytes, %+v, %v", buf.Len(), o, err)
	}
}

// A short or failing source must not leave a truncated object behind.
func TestUploadAborts(t *testing.T) {
	_, b := start(t)
	ctx := context.Background()
	if err := b.Upload(ctx, "short", strings.NewReader("12345"), 10); err == nil {
		t.Fatal("short upload succeeded")
	}
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("12345"), iotest.ErrReader(boom))
	if err := b.Upload(ctx, "failing", src, 10); !errors.Is(err, boom) {
		t.Fatalf("failing source: %v", err)
	}
	objs, err := b.List(ctx, "")
	if err != nil || len(objs) != 0 {
		t.Fatalf("left behind: %+v, %v", objs, err)
	}
}

func TestCanceledContext(t *testing.T) {
	_, b := start(t)
	put(t, b, "k", "data")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	if _, err := b.Download(ctx, "k", &buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("download: %v", err)
	}
	if err := b.Upload(ctx, "k2", strings.NewReader("x"), 1); err == nil {
		t.Fatal("upload with a canceled context succeeded")
	}
	if _, err := b.Download(context.Background(), "k2", io.Discard); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("canceled upload stored something: %v", err)
	}
}
