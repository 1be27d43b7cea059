//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/objstore/abs"
	"github.com/lunadb/luna/server/objstore/gcs"
	"github.com/lunadb/luna/server/objstore/objstoretest"
	"github.com/lunadb/luna/server/objstore/s3"
)

// seedCSV writes n daily CSV files shaped like the original README's
// billing exports, plus one that the seed's glob must not match.
func seedCSV(t *testing.T, b objstore.Bucket, prefix string, days, rows int) int {
	t.Helper()
	total := 0
	for d := 1; d <= days; d++ {
		var sb strings.Builder
		sb.WriteString("uuid,date,payer\n")
		for r := range rows {
			fmt.Fprintf(&sb, "u-%d-%d,2025-08-%02d,%d\n", d, r, d, 987368816909)
			total++
		}
		put(t, b, fmt.Sprintf("%s987368816909_2025-08-%02d.csv", prefix, d), sb.String())
	}
	put(t, b, prefix+"987368816909_2025-09-01.csv", "uuid,date,payer\nx,2025-09-01,1\n")
	return total
}

func put(t *testing.T, b objstore.Bucket, key, data string) {
	t.Helper()
	if err := b.Upload(context.Background(), key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func s3Bucket(t *testing.T, srv *objstoretest.S3Server, name string) objstore.Bucket {
	t.Helper()
	srv.CreateBucket(t, name)
	b, err := s3.New(context.Background(), s3.Config{Bucket: name, Region: srv.Region, KeyID: srv.KeyID, Secret: srv.Secret,
		Endpoint: srv.DirectEndpoint, URLStyle: "path", UseSSL: false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lunactlRun runs bin/lunactl against p and fails the test on an error.
func lunactlRun(t *testing.T, p *proc, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, "", nil, binary(t, "lunactl", false), append([]string{"-addr", p.addr}, args...)...)
	if code != 0 {
		t.Fatalf("lunactl %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

func s3Secret(srv *objstoretest.S3Server) string {
	// The seed README's statement, plus where the local server is.
	return fmt.Sprintf("CREATE OR REPLACE SECRET (\nTYPE s3, PROVIDER config, KEY_ID '%s', SECRET '%s', REGION 'us-east-1', ENDPOINT '%s', URL_STYLE 'path', USE_SSL false);",
		srv.KeyID, srv.Secret, srv.Endpoint)
}

const seedLoad = `CREATE TABLE tmpcur AS FROM read_csv('%s://%s/987368816909_2025-08*.csv',
header = true,
union_by_name = true,
files_to_sniff = -1);`

func TestSeedStatementsS3(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "bucket")
	want := seedCSV(t, b, "", 5, 200)
	p := startLuna(t, true, nil)
	lunactlRun(t, p, "-x", "-p", s3Secret(srv))
	lunactlRun(t, p, "-x", "-p", fmt.Sprintf(seedLoad, "s3", "bucket"))
	out := lunactlRun(t, p, "-p", "DESCRIBE tmpcur;")
	if !strings.Contains(out, "uuid") || !strings.Contains(out, "payer") {
		t.Fatalf("DESCRIBE:\n%s", out)
	}
	out = lunactlRun(t, p, "--format", "csv", "-p", "SELECT count(*) FROM tmpcur;")
	if got := strings.TrimSpace(strings.Split(out, "\n")[1]); got != strconv.Itoa(want) {
		t.Fatalf("count = %s, want %d", got, want)
	}
	// Secrets are listed without their values.
	out = lunactlRun(t, p, "--format", "csv", "-p", "SELECT name, type, secret_string FROM duckdb_secrets()")
	if !strings.Contains(out, "__default_s3,s3,") || strings.Contains(out, srv.Secret) || !strings.Contains(out, "secret=redacted") {
		t.Fatalf("duckdb_secrets():\n%s", out)
	}
}

func TestObjectChangesAndRequestCounts(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "data")
	put(t, b, "t/a.csv", "k,v\n1,a\n")
	put(t, b, "t/b.csv", "k,v\n2,b\n")
	put(t, b, "t/c.csv", "k,v\n3,c\n")
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	sum := func() string {
		return scalar(t, c, "SELECT sum(k)::VARCHAR || ':' || string_agg(v, '' ORDER BY k) FROM 's3://data/t/*.csv'")
	}
	if got := sum(); got != "6:abc" {
		t.Fatalf("first read %s", got)
	}
	srv.Reset()
	if got := sum(); got != "6:abc" {
		t.Fatalf("warm read %s", got)
	}
	if n := srv.Counts()["get"]; n != 0 {
		t.Fatalf("warm, unchanged re-read downloaded %d objects (counts %v)", n, srv.Counts())
	}
	// A changed object is downloaded again, a deleted one never read.
	put(t, b, "t/b.csv", "k,v\n20,B\n")
	if err := srv.DeleteObject("data", "t/c.csv"); err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	if got := sum(); got != "21:aB" {
		t.Fatalf("after change and delete: %s", got)
	}
	if n := srv.Counts()["get"]; n != 1 {
		t.Fatalf("downloaded %d objects after one changed (counts %v)", n, srv.Counts())
	}
	if err := c.Exec(ctx, "SELECT * FROM 's3://data/t/c.csv'"); err == nil || !strings.Contains(err.Error(), "No files found") {
		t.Fatalf("deleted object: %v", err)
	}
}

func TestHivePartitionsAndCopyTo(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "lake")
	for y := 2023; y <= 2025; y++ {
		for m := 1; m <= 2; m++ {
			put(t, b, fmt.Sprintf("sales/year=%d/month=%d/part.csv", y, m), fmt.Sprintf("amount\n%d\n", y*10+m))
		}
	}
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	got := scalar(t, c, "SELECT count(*)::VARCHAR || '/' || sum(amount)::VARCHAR || '/' || max(year)::VARCHAR FROM read_csv('s3://lake/sales/**/*.csv', hive_partitioning = true) WHERE month = 2")
	if got != "3/60726/2025" {
		t.Fatalf("hive read: %s", got)
	}
	// COPY TO with PARTITION_BY writes a directory of objects.
	if err := c.Exec(ctx, "COPY (SELECT range AS id, range % 3 AS g FROM range(30)) TO 's3://lake/export/out' (FORMAT csv, PARTITION_BY (g))"); err != nil {
		t.Fatal(err)
	}
	objs, err := b.List(ctx, "export/out/")
	if err != nil || len(objs) != 3 || !strings.HasPrefix(objs[0].Key, "export/out/g=0/") {
		t.Fatalf("exported objects %v, %v", objs, err)
	}
	if got := scalar(t, c, "SELECT count(*) FROM read_csv('s3://lake/export/out/*/*.csv', hive_partitioning = true)"); got != "30" {
		t.Fatalf("read back %s rows", got)
	}
	// A failing COPY uploads nothing.
	err = c.Exec(ctx, "COPY (SELECT CASE WHEN range < 5 THEN range ELSE error('stop') END FROM range(10)) TO 's3://lake/failed.csv'")
	if err == nil || !strings.Contains(err.Error(), "stop") {
		t.Fatalf("failing COPY: %v", err)
	}
	if objs, _ := b.List(ctx, "failed"); len(objs) != 0 {
		t.Fatalf("failed COPY uploaded %v", objs)
	}
}

func TestAmbientAWSCredentials(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "amb")
	put(t, b, "x.csv", "n\n1\n2\n")
	p := startLuna(t, true, []string{
		"AWS_ACCESS_KEY_ID=" + srv.KeyID, "AWS_SECRET_ACCESS_KEY=" + srv.Secret, "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_S3=http://" + srv.Endpoint, "AWS_EC2_METADATA_DISABLED=true",
	})
	c := p.dial(t, client.Options{})
	if got := scalar(t, c, "SELECT sum(n) FROM 's3://amb/x.csv'"); got != "3" {
		t.Fatalf("sum %s", got)
	}
}

func TestSecretScopesPickTheLongestMatch(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "scoped")
	put(t, b, "ok/x.csv", "n\n7\n")
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	wrong := fmt.Sprintf("CREATE SECRET wrong (TYPE s3, KEY_ID '%s', SECRET 'not-it', ENDPOINT '%s', URL_STYLE 'path', USE_SSL false)", srv.KeyID, srv.Endpoint)
	right := fmt.Sprintf("CREATE SECRET right (TYPE s3, KEY_ID '%s', SECRET '%s', ENDPOINT '%s', URL_STYLE 'path', USE_SSL false, SCOPE 's3://scoped/ok')", srv.KeyID, srv.Secret, srv.Endpoint)
	if err := c.Exec(ctx, wrong+"; "+right); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, c, "SELECT n FROM 's3://scoped/ok/x.csv'"); got != "7" {
		t.Fatalf("got %s", got)
	}
	if err := c.Exec(ctx, "DROP SECRET right"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "SELECT n FROM 's3://scoped/ok/x.csv'"); err == nil {
		t.Fatal("read with the wrong secret succeeded")
	}
}

func TestSeedStatementsGCS(t *testing.T) {
	// Ambient: the VM's identity, here the emulator's STORAGE_EMULATOR_HOST.
	gsrv := objstoretest.StartFakeGCS(t)
	gsrv.CreateBucket(t, "gbucket")
	gsrv.Setenv(t)
	gb, err := gcs.New(context.Background(), gcs.Config{Bucket: "gbucket"})
	if err != nil {
		t.Fatal(err)
	}
	want := seedCSV(t, gb, "", 3, 50)
	p := startLuna(t, true, gsrv.Env())
	lunactlRun(t, p, "-x", "-p", fmt.Sprintf(seedLoad, "gs", "gbucket"))
	out := lunactlRun(t, p, "--format", "csv", "-p", "SELECT count(*) FROM tmpcur;")
	if got := strings.TrimSpace(strings.Split(out, "\n")[1]); got != strconv.Itoa(want) {
		t.Fatalf("count = %s, want %d", got, want)
	}

	// HMAC keys: the seed's gcs secret goes through GCS's S3-compatible
	// API; here an S3-compatible server stands in for it.
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "hmacbucket")
	want = seedCSV(t, b, "", 2, 10)
	p = startLuna(t, true, nil)
	lunactlRun(t, p, "-x", "-p", fmt.Sprintf("CREATE OR REPLACE SECRET (TYPE gcs, KEY_ID '%s', SECRET '%s', ENDPOINT '%s', USE_SSL false);", srv.KeyID, srv.Secret, srv.Endpoint))
	lunactlRun(t, p, "-x", "-p", fmt.Sprintf(seedLoad, "gs", "hmacbucket"))
	out = lunactlRun(t, p, "--format", "csv", "-p", "SELECT count(*) FROM tmpcur;")
	if got := strings.TrimSpace(strings.Split(out, "\n")[1]); got != strconv.Itoa(want) {
		t.Fatalf("hmac count = %s, want %d", got, want)
	}
}

func TestSeedStatementsAzure(t *testing.T) {
	asrv := objstoretest.StartAzurite(t)
	asrv.CreateContainer(t, "ctr")
	ab, err := abs.New(context.Background(), abs.Config{Container: "ctr", ConnectionString: asrv.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	want := seedCSV(t, ab, "exports/", 3, 40)
	p := startLuna(t, true, nil)
	lunactlRun(t, p, "-x", "-p", fmt.Sprintf("CREATE OR REPLACE SECRET (TYPE azure, CONNECTION_STRING '%s');", asrv.ConnectionString))
	lunactlRun(t, p, "-x", "-p", fmt.Sprintf(seedLoad, "az", "ctr/exports"))
	out := lunactlRun(t, p, "--format", "csv", "-p", "SELECT count(*) FROM tmpcur;")
	if got := strings.TrimSpace(strings.Split(out, "\n")[1]); got != strconv.Itoa(want) {
		t.Fatalf("count = %s, want %d", got, want)
	}
	if got := scalar(t, p.dial(t, client.Options{}), "SELECT count(*) FROM read_csv('azure://ctr/exports/*.csv')"); got != strconv.Itoa(want+1) {
		t.Fatalf("azure:// count %s", got)
	}
}

func TestObjectCacheEviction(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "evict")
	for i := range 8 {
		put(t, b, fmt.Sprintf("f%d.csv", i), "n\n"+strings.Repeat("1\n", 50000)) // ~100 KB each
	}
	haddr := freePort(t)
	p := startLuna(t, true, nil, "--object-cache-max-bytes", "300KB", "--health-host-port", haddr)
	c := p.dial(t, client.Options{})
	if err := c.Exec(context.Background(), s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if got := scalar(t, c, fmt.Sprintf("SELECT count(*) FROM 's3://evict/f%d.csv'", i)); got != "50000" {
			t.Fatalf("f%d: %s", i, got)
		}
	}
	// One statement may use more than the cap while it runs.
	if got := scalar(t, c, "SELECT count(*) FROM 's3://evict/*.csv'"); got != "400000" {
		t.Fatalf("all: %s", got)
	}
	resp, err := http.Get("http://" + haddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`luna_object_cache_bytes (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no luna_object_cache_bytes metric")
	}
	if n, _ := strconv.Atoi(string(m[1])); n > 300_000 || n == 0 {
		t.Fatalf("cache holds %d bytes after eviction, cap 300KB", n)
	}
}

func TestPersistentSecretSurvivesARestart(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "kept")
	put(t, b, "x.csv", "n\n5\n6\n")
	home := t.TempDir()
	p := startLuna(t, true, nil, "--db-home-dir", home)
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	stmt := strings.Replace(s3Secret(srv), "CREATE OR REPLACE SECRET (", "CREATE OR REPLACE PERSISTENT SECRET kept (", 1)
	if err := c.Exec(ctx, stmt); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	p = startLuna(t, true, nil, "--db-home-dir", home)
	c = p.dial(t, client.Options{})
	if got := scalar(t, c, "SELECT sum(n) FROM 's3://kept/x.csv'"); got != "11" {
		t.Fatalf("sum %s", got)
	}
	if got := scalar(t, c, "SELECT name || ':' || persistent || ':' || storage FROM duckdb_secrets()"); got != "kept:true:local_file" {
		t.Fatalf("duckdb_secrets() %s", got)
	}
	if err := c.Exec(ctx, "DROP SECRET kept"); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(home, "stored_secrets", "*")); len(files) != 0 {
		t.Fatalf("dropped secret still stored: %v", files)
	}
	// Without a home directory there is nowhere to keep one.
	p2 := startLuna(t, true, nil)
	c2 := p2.dial(t, client.Options{})
	if err := c2.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "--db-home-dir") {
		t.Fatalf("PERSISTENT without a home: %v", err)
	}
}

// TestDuckDBObjectStoreModePassesThrough: with --object-store duckdb, URLs
// and secrets reach DuckDB untouched (whose httpfs extension this build
// lacks and cannot download), and Luna fetches nothing.
func TestDuckDBObjectStoreModePassesThrough(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "pass")
	put(t, b, "x.csv", "n\n1\n")
	srv.Reset()
	p := startLuna(t, true, nil, "--object-store", "duckdb", "--db-home-dir", t.TempDir())
	c := p.dial(t, client.Options{})
	ctx := context.Background()
	for _, sql := range []string{s3Secret(srv), "SELECT * FROM 's3://pass/x.csv'"} {
		err := c.Exec(ctx, sql)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "httpfs") {
			t.Errorf("%s: err = %v, want DuckDB's own error naming httpfs", sql, err)
		}
	}
	if n := srv.Counts()["get"] + srv.Counts()["list"]; n != 0 {
		t.Fatalf("Luna reached the bucket in duckdb mode: %v", srv.Counts())
	}
	// duckdb_secrets() is DuckDB's own.
	if got := scalar(t, c, "SELECT count(*) FROM duckdb_secrets()"); got != "0" {
		t.Fatalf("duckdb_secrets() = %s", got)
	}
}

// TestClientDisconnectCancelsDownloads: a client that goes away while its
// statement is still downloading stops the downloads.
func TestClientDisconnectCancelsDownloads(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "slow")
	for i := range 40 {
		put(t, b, fmt.Sprintf("d/%02d.csv", i), "n\n1\n")
	}
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	if err := c.Exec(context.Background(), s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	srv.SlowGets(400 * time.Millisecond) // 40 objects, 8 at a time: 2s in all

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	q := "q:SELECT count(*) FROM 's3://slow/d/*.csv'"
	fmt.Fprintf(conn, "$%d\r\n%s\r\n", len(q), q)
	// Leave once the downloads have begun (the listing comes first, and
	// takes longer on a busy machine).
	for deadline := time.Now().Add(15 * time.Second); srv.Counts()["get"] == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no download began")
		}
	}
	conn.Close()
	time.Sleep(3 * time.Second)
	if n := srv.Counts()["get"]; n == 0 || n > 16 {
		t.Fatalf("%d downloads after the client left early (of 40; at most 2 rounds of 8 expected)", n)
	}
	// The server is fine, and the next statement completes the cache.
	srv.SlowGets(0)
	if got := scalar(t, c, "SELECT count(*) FROM 's3://slow/d/*.csv'"); got != "40" {
		t.Fatalf("count %s", got)
	}
}

// While a statement downloads, luna_sessions() shows the bytes fetched so
// far (the shell's progress line reads it), object by object.
func TestSessionsShowBytesDownloaded(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "progress")
	obj := "n\n" + strings.Repeat("1\n", 5000) // 10,002 bytes
	for i := range 16 {
		put(t, b, fmt.Sprintf("d/%02d.csv", i), obj)
	}
	p := startLuna(t, false, nil)
	c := p.dial(t, client.Options{})
	if err := c.Exec(context.Background(), s3Secret(srv)); err != nil {
		t.Fatal(err)
	}
	watcher := p.dial(t, client.Options{})
	id := sessRows(t, watcher, "SELECT id FROM luna_sessions() WHERE NOT this_session")[0]["id"]
	srv.SlowGets(500 * time.Millisecond) // 16 objects, 8 at a time: two rounds

	done := make(chan string, 1)
	go func() { done <- scalar(t, c, "SELECT count(*) FROM 's3://progress/d/*.csv'") }()
	total := int64(16 * len(obj))
	var partial int64
	for deadline := time.Now().Add(30 * time.Second); partial == 0; time.Sleep(20 * time.Millisecond) {
		rows := sessRows(t, watcher, "SELECT bytes_downloaded FROM luna_sessions() WHERE id = "+id)
		if n, err := strconv.ParseInt(rows[0]["bytes_downloaded"], 10, 64); err == nil && n > 0 {
			if n%int64(len(obj)) != 0 || n > total {
				t.Fatalf("bytes_downloaded %d: not whole objects of %d bytes", n, len(obj))
			}
			partial = n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no download shown: %v", rows)
		}
	}
	if got := <-done; got != "80000" {
		t.Fatalf("count %s", got)
	}
	if partial >= total {
		t.Errorf("saw only the finished figure, %d bytes, not the first round's", partial)
	}
	if rows := sessRows(t, watcher, "SELECT bytes_downloaded FROM luna_sessions() WHERE id = "+id); rows[0]["bytes_downloaded"] != "NULL" {
		t.Fatalf("an idle session's bytes_downloaded: %v", rows)
	}
}
