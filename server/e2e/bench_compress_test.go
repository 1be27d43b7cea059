//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
)

// tripsSQL is a deterministic 10M-row trips table: low-cardinality
// VARCHAR vendor and city, doubles, timestamps, all derived from hashes.
const tripsSQL = `CREATE OR REPLACE TABLE trips AS
SELECT range AS id,
  TIMESTAMP '2024-01-01' + to_seconds((hash(range) % 31536000)::BIGINT) AS ts,
  ['acme', 'blue', 'city', 'dash'][(hash(range, 1) % 4 + 1)::INT] AS vendor,
  ['tokyo', 'osaka', 'nagoya', 'sapporo', 'fukuoka', 'kobe', 'kyoto', 'sendai'][(hash(range, 2) % 8 + 1)::INT] AS city,
  (hash(range, 3) % 50000) / 1000.0 AS distance,
  (hash(range, 4) % 100000) / 100.0 AS fare,
  (hash(range, 5) % 2000) / 100.0 AS tip,
  (hash(range, 6) % 6 + 1)::INTEGER AS passengers
FROM range(10000000)`

const tripsQuery = "SELECT city, avg(tip) FROM trips GROUP BY city ORDER BY city"

// BenchmarkCompression loads the trips table with --memory-compression on
// and off and reports DuckDB's memory, the server's RSS, the load time
// (with compression, the checkpoint included) and the GROUP BY query time
// through Luna. Run with -benchtime 1x (make bench).
func BenchmarkCompression(b *testing.B) {
	var rep strings.Builder
	fmt.Fprintf(&rep, "== Luna memory compression report (10M-row trips table)\n")
	for range b.N {
		for _, mode := range []string{"on", "off"} {
			p := startLuna(b, false, nil, "--memory-compression", mode)
			c := p.dial(b, client.Options{})
			ctx := context.Background()
			start := time.Now()
			if err := c.Exec(ctx, tripsSQL); err != nil {
				b.Fatal(err)
			}
			load := time.Since(start)
			mem := tableMemory(b, c)
			total, _ := strconv.ParseInt(scalar(b, c, "SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory()"), 10, 64)
			var times []time.Duration
			for range 7 {
				st := time.Now()
				if err := drainRows(c, tripsQuery); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(st))
			}
			slices.Sort(times)
			rss := currentRSS(b, p.cmd.Process.Pid)
			fmt.Fprintf(&rep, "compression %-3s: load %v, duckdb_memory() total %.1f MiB (tables %.1f MiB), server RSS %.1f MiB, GROUP BY city avg(tip): median %v (min %v, max %v)\n",
				mode, load.Round(time.Millisecond), float64(total)/(1<<20), float64(mem)/(1<<20), rss,
				times[len(times)/2].Round(100*time.Microsecond), times[0].Round(100*time.Microsecond), times[len(times)-1].Round(100*time.Microsecond))
			b.ReportMetric(float64(total)/(1<<20), "MiB-"+mode)
			b.ReportMetric(rss, "RSS-MiB-"+mode)
			b.ReportMetric(load.Seconds(), "load-s-"+mode)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "query-ms-"+mode)
			c.Close()
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	b.Log("\n" + rep.String())
}

func drainRows(c *client.Conn, sql string) error {
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// currentRSS is the process's resident memory now, in MiB.
func currentRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}
