//go:build duckdb_arrow

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// Import benchmark shape: importObjects CSV files of about importObjMiB MiB
// each in the local S3 server.
const (
	importObjects = 16
	importObjMiB  = 8
	importRuns    = 3
)

// BenchmarkImport measures loading objects from the local S3 server
// (versitygw) into a table through Luna, against downloading the same
// objects with the AWS SDK alone, in the same run, and prints a report:
//
//   - SDK download: GetObject of every object to local files, 8 at a time
//     (Luna's worker count): the floor for any import.
//   - Luna, cold: CREATE TABLE … AS FROM read_csv('s3://…') with an empty
//     object cache: listing, downloading, validating and parsing. Luna's
//     own download time, from its "objects fetched" log, is reported too.
//   - Luna, warm: the same statement again, the objects unchanged: only a
//     listing, then DuckDB parses the cached copies.
//   - Luna, local files: the same statement on a local copy: the parse
//     cost alone.
//
// The first load in a fresh server costs more than later ones (DuckDB
// grows its buffer pool from nothing), so the cold import and the local
// load it is compared with each run first in a server of their own, in
// alternating order; warm is compared with a second local load.
func BenchmarkImport(b *testing.B) {
	srv := objstoretest.StartVersityGW(b)
	srv.CreateBucket(b, "bench")
	var total int64
	var rows int
	for i := range importObjects {
		data := importCSV(i, importObjMiB<<20)
		rows += strings.Count(data, "\n") - 1
		total += int64(len(data))
		srv.PutObject(b, "bench", fmt.Sprintf("events/part-%02d.csv", i), []byte(data))
	}
	local := b.TempDir()
	secret := fmt.Sprintf("CREATE SECRET (TYPE s3, KEY_ID '%s', SECRET '%s', REGION 'us-east-1', ENDPOINT '%s', URL_STYLE 'path', USE_SSL false)",
		srv.KeyID, srv.Secret, srv.DirectEndpoint)
	load := "CREATE OR REPLACE TABLE events AS FROM read_csv('%s')"
	ctx := context.Background()
	remote := "s3://bench/events/*.csv"
	localGlob := filepath.Join(local, "events", "*.csv")

	// loads runs each statement in turn in a fresh server, whose object
	// cache starts empty, and returns their times and the server's log.
	loads := func(urls ...string) ([]time.Duration, string) {
		p := startLuna(b, false, nil, "--object-cache-dir", b.TempDir())
		c := p.dial(b, client.Options{})
		if err := c.Exec(ctx, secret); err != nil {
			b.Fatal(err)
		}
		var ds []time.Duration
		for _, u := range urls {
			start := time.Now()
			if err := c.Exec(ctx, fmt.Sprintf(load, u)); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
			if got := scalar(b, c, "SELECT count(*) FROM events"); got != fmt.Sprint(rows) {
				b.Fatalf("imported %s rows, want %d", got, rows)
			}
		}
		c.Close()
		p.signal(syscall.SIGTERM)
		p.wait(30 * time.Second)
		return ds, p.logs.String()
	}

	var sdk, fetch, cold, warm, parse, parse2 []time.Duration
	for run := range b.N * importRuns {
		dir := b.TempDir()
		start := time.Now()
		sdkDownload(b, srv.Client(), "bench", "events/", dir)
		sdk = append(sdk, time.Since(start))
		os.RemoveAll(filepath.Join(local, "events"))
		if err := os.Rename(dir, filepath.Join(local, "events")); err != nil {
			b.Fatal(err)
		}
		for turn := range 2 {
			if (run+turn)%2 == 0 {
				ds, log := loads(remote, remote)
				cold, warm = append(cold, ds[0]), append(warm, ds[1])
				if d, ok := fetchDuration(log); ok {
					fetch = append(fetch, d)
				}
			} else {
				ds, _ := loads(localGlob, localGlob)
				parse, parse2 = append(parse, ds[0]), append(parse2, ds[1])
			}
		}
	}
	b.StopTimer()

	mib := float64(total) / (1 << 20)
	rate := func(d time.Duration) string {
		return fmt.Sprintf("%7.1f MiB/s  %6.2f M rows/s  (%v)", mib/d.Seconds(), float64(rows)/d.Seconds()/1e6, d.Round(time.Millisecond))
	}
	// The runs behind each median: the machine is shared and noisy.
	spread := func(ds []time.Duration) string {
		var parts []string
		for _, d := range ds {
			parts = append(parts, d.Round(10*time.Millisecond).String())
		}
		return strings.Join(parts, " ")
	}
	medSDK, medCold, medWarm, medParse, medParse2 := pct(sdk, 50), pct(cold, 50), pct(warm, 50), pct(parse, 50), pct(parse2, 50)
	var rep strings.Builder
	fmt.Fprintf(&rep, "\n== Import from the local S3 server (versitygw): %d objects, %.0f MiB, %d rows; median of %d runs\n",
		importObjects, mib, rows, len(sdk))
	fmt.Fprintf(&rep, "  AWS SDK download only:                 %s\n", rate(medSDK))
	if len(fetch) > 0 {
		fmt.Fprintf(&rep, "  luna download within the cold import:  %s\n", rate(pct(fetch, 50)))
	}
	fmt.Fprintf(&rep, "  luna CREATE TABLE, cold cache:         %s\n", rate(medCold))
	fmt.Fprintf(&rep, "  luna CREATE TABLE, local files, first: %s\n", rate(medParse))
	fmt.Fprintf(&rep, "  luna CREATE TABLE, warm cache:         %s\n", rate(medWarm))
	fmt.Fprintf(&rep, "  luna CREATE TABLE, local files, again: %s\n", rate(medParse2))
	// Throughput ratios: 1.00 means the cold import costs exactly a
	// download with the SDK followed by a load of the local files.
	fmt.Fprintf(&rep, "  throughput, cold import vs SDK download then local load: %.2f\n", (medSDK+medParse).Seconds()/medCold.Seconds())
	fmt.Fprintf(&rep, "  throughput, cold import vs local load alone:             %.2f\n", medParse.Seconds()/medCold.Seconds())
	fmt.Fprintf(&rep, "  throughput, warm import vs local load (both second):     %.2f\n", medParse2.Seconds()/medWarm.Seconds())
	fmt.Fprintf(&rep, "  throughput, cold import vs SDK download alone:           %.2f\n", medSDK.Seconds()/medCold.Seconds())
	fmt.Fprintf(&rep, "  runs: cold %s | local first %s | warm %s | local again %s\n", spread(cold), spread(parse), spread(warm), spread(parse2))
	b.ReportMetric(mib/medCold.Seconds(), "cold-MiB/s")
	b.ReportMetric(mib/medSDK.Seconds(), "sdk-MiB/s")
	fmt.Print(rep.String())
}

// fetchDuration is the download time of the last "objects fetched" line
// in a server's JSON log.
func fetchDuration(log string) (time.Duration, bool) {
	var d time.Duration
	ok := false
	for _, line := range strings.Split(log, "\n") {
		var ev struct {
			Msg      string        `json:"msg"`
			Duration time.Duration `json:"duration"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "objects fetched" {
			d, ok = ev.Duration, true
		}
	}
	return d, ok
}

// importCSV is about size bytes of CSV: an id, a timestamp, a category,
// an amount and a note.
func importCSV(part, size int) string {
	var sb strings.Builder
	sb.Grow(size + 128)
	sb.WriteString("id,ts,category,amount,note\n")
	for i := 0; sb.Len() < size; i++ {
		fmt.Fprintf(&sb, "%d,2025-08-%02d %02d:%02d:%02d,cat-%d,%d.%02d,note %d of part %d\n",
			part*10_000_000+i, i%28+1, i%24, i%60, (i*7)%60, i%37, i%100000, i%100, i, part)
	}
	return sb.String()
}

// sdkDownload gets every object under prefix into dir with the AWS SDK, 8
// at a time.
func sdkDownload(b *testing.B, c *awss3.Client, bucket, prefix, dir string) {
	ctx := context.Background()
	out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		b.Fatal(err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, o := range out.Contents {
		g.Go(func() error {
			obj, err := c.GetObject(gctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return err
			}
			defer obj.Body.Close()
			f, err := os.Create(filepath.Join(dir, filepath.Base(*o.Key)))
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, obj.Body); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
