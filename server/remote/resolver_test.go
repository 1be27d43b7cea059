package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/sqltext"
)

// memBucket is an in-memory bucket that counts its calls, for the unit
// tests of the rewriting and caching logic; the backends themselves are
// tested against real servers in their packages.
type memBucket struct {
	mu        sync.Mutex
	objs      map[string]string
	ver       map[string]int
	lists     int
	downloads int
	uploads   map[string]string
	delay     time.Duration // per download
}

func newMemBucket() *memBucket {
	return &memBucket{objs: map[string]string{}, ver: map[string]int{}, uploads: map[string]string{}}
}

func (b *memBucket) put(key, data string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objs[key] = data
	b.ver[key]++
}

func (b *memBucket) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lists++
	var out []objstore.Object
	for k, v := range b.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, objstore.Object{Key: k, Size: int64(len(v)), Version: fmt.Sprint(b.ver[k])})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (b *memBucket) Download(ctx context.Context, key string, w io.Writer) (objstore.Object, error) {
	b.mu.Lock()
	data, ok := b.objs[key]
	v := b.ver[key]
	b.downloads++
	delay := b.delay
	b.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return objstore.Object{}, ctx.Err()
		}
	}
	if !ok {
		return objstore.Object{}, objstore.ErrNotFound
	}
	_, err := io.WriteString(w, data)
	return objstore.Object{Key: key, Size: int64(len(data)), Version: fmt.Sprint(v)}, err
}

func (b *memBucket) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	var buf bytes.Buffer
	io.Copy(&buf, r)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.uploads[key] = buf.String()
	return nil
}

func newTestResolver(t *testing.T, b *memBucket, max int64) (*Resolver, *[]*Secret) {
	t.Helper()
	var used []*Secret
	r, err := New(Options{CacheDir: t.TempDir(), CacheMaxBytes: max, Open: func(ctx context.Context, loc Location, sec *Secret) (objstore.Bucket, error) {
		used = append(used, sec)
		return b, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r, &used
}

// literal returns the only string literal of sql.
func literal(t *testing.T, sql string) string {
	t.Helper()
	for _, tk := range sqltext.Tokens(sql) {
		if tk.Kind == sqltext.String {
			return tk.Value
		}
	}
	t.Fatalf("no literal in %s", sql)
	return ""
}

func TestGlobIsLaidOutLocally(t *testing.T) {
	b := newMemBucket()
	b.put("d/a.csv", "a")
	b.put("d/b.csv", "bb")
	b.put("d/sub/c.csv", "ccc")
	b.put("e/x.csv", "x")
	r, _ := newTestResolver(t, b, 0)
	ctx := context.Background()
	st, err := r.Prepare(ctx, "CREATE TABLE t AS FROM read_csv('s3://bkt/d/*.csv', header = true) -- 's3://bkt/e/x.csv'")
	if err != nil {
		t.Fatal(err)
	}
	local := literal(t, st.SQL)
	if !strings.HasSuffix(local, "/s3/bkt/d/*.csv") || strings.Contains(st.SQL, "s3://bkt/d") || !strings.Contains(st.SQL, "-- 's3://bkt/e/x.csv'") {
		t.Fatalf("rewritten: %s", st.SQL)
	}
	matches, _ := filepath.Glob(local)
	if len(matches) != 2 {
		t.Fatalf("local glob matches %v", matches)
	}
	if data, _ := os.ReadFile(matches[1]); string(data) != "bb" {
		t.Fatalf("content %q", data)
	}
	if len(st.Sources) != 1 || len(st.Sources[0].Versions) != 2 {
		t.Fatalf("sources %+v", st.Sources)
	}
	st.Finish(ctx, true)
	if _, err := os.Stat(local[:strings.Index(local, "/s3/")]); !os.IsNotExist(err) {
		t.Fatal("view directory kept after Finish")
	}
}

func TestWarmReadDownloadsNothingAndChangesAreSeen(t *testing.T) {
	b := newMemBucket()
	b.put("k/1.csv", "one")
	b.put("k/2.csv", "two")
	r, _ := newTestResolver(t, b, 0)
	ctx := context.Background()
	read := func() map[string]string {
		st, err := r.Prepare(ctx, "SELECT * FROM 's3://bkt/k/*.csv'")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Finish(ctx, true)
		files, _ := filepath.Glob(literal(t, st.SQL))
		out := map[string]string{}
		for _, f := range files {
			data, _ := os.ReadFile(f)
			out[filepath.Base(f)] = string(data)
		}
		return out
	}
	read()
	if b.downloads != 2 {
		t.Fatalf("cold read: %d downloads", b.downloads)
	}
	read()
	if b.downloads != 2 {
		t.Fatalf("warm unchanged read downloaded %d more", b.downloads-2)
	}
	b.put("k/2.csv", "TWO")
	delete(b.objs, "k/1.csv")
	got := read()
	if b.downloads != 3 || len(got) != 1 || got["2.csv"] != "TWO" {
		t.Fatalf("after change: %v, %d downloads", got, b.downloads)
	}
	// A deleted object that was named directly is an error, not old data.
	if _, err := r.Prepare(ctx, "SELECT * FROM 's3://bkt/k/1.csv'"); err == nil || !strings.Contains(err.Error(), "No files found") {
		t.Fatalf("deleted object: %v", err)
	}
}

func TestEvictionKeepsFilesInUse(t *testing.T) {
	b := newMemBucket()
	for i := range 5 {
		b.put(fmt.Sprintf("f%d", i), strings.Repeat("x", 100))
	}
	r, _ := newTestResolver(t, b, 250)
	ctx := context.Background()
	held, err := r.Prepare(ctx, "SELECT * FROM 's3://bkt/f0'")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 5; i++ {
		st, err := r.Prepare(ctx, fmt.Sprintf("SELECT * FROM 's3://bkt/f%d'", i))
		if err != nil {
			t.Fatal(err)
		}
		st.Finish(ctx, true)
	}
	if u := r.CacheBytes(); u > 250 {
		t.Fatalf("cache holds %d bytes, limit 250", u)
	}
	if data, err := os.ReadFile(literal(t, held.SQL)); err != nil || len(data) != 100 {
		t.Fatalf("file in use was evicted: %v", err)
	}
	held.Finish(ctx, true)
	before := b.downloads
	st, _ := r.Prepare(ctx, "SELECT * FROM 's3://bkt/f4'")
	st.Finish(ctx, true)
	if b.downloads != before {
		t.Fatal("most recent file was evicted first")
	}
}

func TestCopyToUploadsOnlyOnSuccess(t *testing.T) {
	b := newMemBucket()
	r, _ := newTestResolver(t, b, 0)
	ctx := context.Background()
	write := func(ok bool) {
		st, err := r.Prepare(ctx, "COPY (SELECT 1) TO 's3://bkt/out/data' (FORMAT csv, PARTITION_BY (k))")
		if err != nil {
			t.Fatal(err)
		}
		local := literal(t, st.SQL)
		os.MkdirAll(filepath.Join(local, "k=1"), 0o700)
		os.WriteFile(filepath.Join(local, "k=1", "data_0.csv"), []byte("1\n"), 0o600)
		if err := st.Finish(ctx, ok); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(local); !os.IsNotExist(err) {
			t.Fatal("staging kept")
		}
	}
	write(false)
	if len(b.uploads) != 0 {
		t.Fatalf("failed COPY uploaded %v", b.uploads)
	}
	write(true)
	if b.uploads["out/data/k=1/data_0.csv"] != "1\n" || len(b.uploads) != 1 {
		t.Fatalf("uploads %v", b.uploads)
	}
}

func TestSecretsAndScopes(t *testing.T) {
	b := newMemBucket()
	b.put("x", "1")
	r, used := newTestResolver(t, b, 0)
	ctx := context.Background()
	run := func(sql string) error {
		st, err := r.Prepare(ctx, sql)
		if err == nil {
			st.Finish(ctx, true)
		}
		return err
	}
	for _, sql := range []string{
		"CREATE OR REPLACE SECRET (\nTYPE s3, PROVIDER config, KEY_ID 'some-key', SECRET 'some-secret', REGION 'us-east-1')",
		"CREATE SECRET narrow (TYPE s3, KEY_ID 'k2', SECRET 's2', SCOPE 's3://bkt/x')",
		"CREATE TEMPORARY SECRET other (TYPE s3, KEY_ID 'k3', SECRET 's3', SCOPE ['s3://zzz', 's3://bkt'])",
	} {
		st, err := r.Prepare(ctx, sql)
		if err != nil || st.SQL != "" {
			t.Fatalf("%s: %v %q", sql, err, st.SQL)
		}
	}
	if err := run("SELECT * FROM 's3://bkt/x'"); err != nil {
		t.Fatal(err)
	}
	if sec := (*used)[len(*used)-1]; sec == nil || sec.Name != "narrow" || sec.Options["KEY_ID"] != "k2" {
		t.Fatalf("chose %+v", sec)
	}
	if err := run("CREATE SECRET narrow (TYPE s3, KEY_ID 'k')"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate: %v", err)
	}
	for _, bad := range []string{"CREATE SECRET (TYPE s3, KEYID 'x')", "CREATE SECRET (TYPE s3, PROVIDER magic)", "CREATE PERSISTENT SECRET p (TYPE gcs, KEY_ID 'k')", "CREATE SECRET (TYPE s3, KEY_ID 'a', KEY_ID 'b')"} {
		if err := run(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// Other secret types go to DuckDB untouched.
	st, err := r.Prepare(ctx, "CREATE SECRET h (TYPE http, BEARER_TOKEN 'x')")
	if err != nil || st.SQL == "" {
		t.Fatalf("http secret: %v", err)
	}
	// Listing shows secrets without their values.
	st, err = r.Prepare(ctx, "SELECT name, secret_string FROM duckdb_secrets() ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(st.SQL, "duckdb_secrets") || strings.Contains(st.SQL, "some-secret") || !strings.Contains(st.SQL, "secret=redacted") || !strings.Contains(st.SQL, "key_id=some-key") {
		t.Fatalf("listing SQL: %s", st.SQL)
	}
	if err := run("DROP SECRET narrow"); err != nil {
		t.Fatal(err)
	}
	if err := run("DROP SECRET narrow"); err == nil {
		t.Fatal("dropping twice worked")
	}
	if err := run("DROP SECRET IF EXISTS narrow"); err != nil {
		t.Fatal(err)
	}
	run("SELECT * FROM 's3://bkt/x'")
	if sec := (*used)[len(*used)-1]; sec == nil || sec.Name != "other" {
		t.Fatalf("after drop chose %+v", sec)
	}
}

func TestNotObjectURLsAreLeftAlone(t *testing.T) {
	r, _ := newTestResolver(t, newMemBucket(), 0)
	sql := "SELECT 'http://x/y', \"s3://col\", $$s3 text$$ -- s3://b/k\nFROM t"
	st, err := r.Prepare(context.Background(), sql)
	if err != nil || st.SQL != sql {
		t.Fatalf("%v %q", err, st.SQL)
	}
	if !Involved("SELECT 'gs://b/k'") || Involved("SELECT 1") {
		t.Fatal("Involved")
	}
}

func TestPersistentSecretsSurviveARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stored_secrets")
	ctx := context.Background()
	open := func() *Resolver {
		r, err := New(Options{CacheDir: t.TempDir(), SecretDir: dir, Open: func(ctx context.Context, loc Location, sec *Secret) (objstore.Bucket, error) {
			return newMemBucket(), nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	exec := func(r *Resolver, sql string) {
		t.Helper()
		st, err := r.Prepare(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		st.Finish(ctx, true)
	}
	r := open()
	exec(r, "CREATE PERSISTENT SECRET keep (TYPE s3, KEY_ID 'k1', SECRET 'sec1', SCOPE 's3://keep')")
	exec(r, "CREATE PERSISTENT SECRET gone (TYPE gcs, KEY_ID 'k2', SECRET 'sec2')")
	exec(r, "CREATE SECRET temp (TYPE s3, KEY_ID 'k3', SECRET 'sec3')")
	exec(r, "CREATE OR REPLACE PERSISTENT SECRET flip (TYPE azure, CONNECTION_STRING 'cs')")
	exec(r, "CREATE OR REPLACE SECRET flip (TYPE azure, CONNECTION_STRING 'cs2')") // now temporary
	exec(r, "DROP SECRET gone")
	st, _ := os.Stat(dir)
	if st == nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("secret directory mode: %v", st)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 || !strings.HasSuffix(files[0], "keep"+secretExt) {
		t.Fatalf("stored files %v", files)
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v", fi.Mode())
	}

	// A file that is not a secret is skipped, not fatal.
	os.WriteFile(filepath.Join(dir, "junk"+secretExt), []byte("{not json"), 0o600)
	r2 := open()
	if sec := r2.secrets.lookup("s3://keep/x", S3); sec == nil || sec.Name != "keep" || sec.Options["SECRET"] != "sec1" || !sec.Persistent {
		t.Fatalf("after restart: %+v", sec)
	}
	if len(r2.secrets.m) != 1 {
		t.Fatalf("after restart: %d secrets", len(r2.secrets.m))
	}
	listing, err := r2.Prepare(ctx, "SELECT * FROM duckdb_secrets()")
	if err != nil || !strings.Contains(listing.SQL, "true, 'local_file'") || strings.Contains(listing.SQL, "sec1") {
		t.Fatalf("listing: %v %s", err, listing.SQL)
	}
}

func TestChangesComparesListingsWithWhatWasRead(t *testing.T) {
	b := newMemBucket()
	b.put("c/1.csv", "a")
	b.put("c/2.csv", "b")
	b.put("c/3.csv", "c")
	r, _ := newTestResolver(t, b, 0)
	ctx := context.Background()
	st, err := r.Prepare(ctx, "SELECT * FROM 's3://bkt/c/*.csv'")
	if err != nil {
		t.Fatal(err)
	}
	st.Finish(ctx, true)
	downloads := b.downloads
	if c, err := r.Changes(ctx, st.Sources); err != nil || c.Any() {
		t.Fatalf("unchanged: %v %v", c, err)
	}
	b.put("c/2.csv", "B")
	delete(b.objs, "c/3.csv")
	b.put("c/4.csv", "d")
	b.put("other/5.csv", "e")
	c, err := r.Changes(ctx, st.Sources)
	if err != nil || c != (Change{New: 1, Changed: 1, Deleted: 1}) {
		t.Fatalf("changes %v %v", c, err)
	}
	if b.downloads != downloads {
		t.Fatal("Changes downloaded objects")
	}
	if _, err := r.Changes(ctx, []Source{{URL: "/local/file.csv"}}); err == nil {
		t.Fatal("a local path was accepted as a source")
	}
}

func TestLargeTransfersLogProgress(t *testing.T) {
	b := newMemBucket()
	for i := range 8 {
		b.put(fmt.Sprintf("p/%d.csv", i), strings.Repeat("x", 1000))
	}
	b.delay = 60 * time.Millisecond
	var logs testenv.SyncBuffer
	r, err := New(Options{CacheDir: t.TempDir(), Workers: 2, ProgressInterval: 40 * time.Millisecond,
		Log:  slog.New(slog.NewTextHandler(&logs, nil)),
		Open: func(ctx context.Context, loc Location, sec *Secret) (objstore.Bucket, error) { return b, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := r.Prepare(ctx, "SELECT * FROM 's3://bkt/p/*.csv'")
	if err != nil {
		t.Fatal(err)
	}
	st.Finish(ctx, true)
	out := logs.String()
	for _, want := range []string{"msg=\"fetching objects\"", "objects=8", "bytes_total=8000", "mib_per_s=", "msg=\"objects fetched\""} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}

	// A cancelled statement stops its downloads.
	for i := range 8 {
		b.put(fmt.Sprintf("p/%d.csv", i), strings.Repeat("y", 1000))
	}
	before := b.downloads
	cctx, cancel := context.WithTimeout(ctx, 90*time.Millisecond)
	defer cancel()
	if _, err := r.Prepare(cctx, "SELECT * FROM 's3://bkt/p/*.csv'"); err == nil {
		t.Fatal("a cancelled statement finished its downloads")
	}
	time.Sleep(200 * time.Millisecond)
	if n := b.downloads - before; n > 4 {
		t.Fatalf("%d downloads started after cancellation (2 workers, 90ms of 60ms downloads)", n)
	}
}

func TestViewsOverObjectsAreRefusedBeforeDownloading(t *testing.T) {
	b := newMemBucket()
	b.put("v/x.csv", "n\n1\n")
	r, _ := newTestResolver(t, b, 0)
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE VIEW v AS FROM 's3://bkt/v/x.csv'",
		"create or replace temp view v as select * from read_csv('s3://bkt/v/*.csv')",
		"CREATE MACRO m() AS TABLE FROM 's3://bkt/v/x.csv'",
		"CREATE VIEW v AS FROM read_xlsx('s3://bkt/v/x.xlsx')",
	} {
		if _, err := r.Prepare(ctx, sql); err == nil || !strings.Contains(err.Error(), "CREATE TABLE … AS") {
			t.Errorf("%s: %v", sql, err)
		}
	}
	if b.downloads != 0 || b.lists != 0 {
		t.Fatalf("refused statements reached the bucket: %d lists, %d downloads", b.lists, b.downloads)
	}
	// A view over local files is DuckDB's business.
	if st, err := r.Prepare(ctx, "CREATE VIEW v AS FROM 'local.csv'"); err != nil || st.SQL != "CREATE VIEW v AS FROM 'local.csv'" {
		t.Fatalf("local view: %v", err)
	}
}
