//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// streamSQL is the 10M-row, 4-column result both sides produce.
const streamSQL = "SELECT range AS a, range + 1 AS b, range * 2 AS c, range % 1000 AS d FROM range(10000000)"

const streamRows = 10_000_000

// BenchmarkReport measures the server against in-process DuckDB in one
// run and prints a report. The in-process baseline is the fastest path
// there is at the same DuckDB thread count, Luna's own engine streaming
// DuckDB's Arrow chunks with no socket in between; duckdb-go's Arrow API
// is reported beside it, and every ratio is luna over the faster of the
// two. Sections: result streaming throughput and the server's RSS,
// SELECT 1 with 1, 16 and 64 clients, the analytic suite on a 10M-row
// table, a mixed load and a concurrency curve. Run with -benchtime 1x
// (make bench).
func BenchmarkReport(b *testing.B) {
	var rep strings.Builder
	fmt.Fprintf(&rep, "== Luna benchmark report\nmachine: %s, %d cores, %s RAM, %s/%s, %s; %s\n",
		cpuModel(), runtime.NumCPU(), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version(), loadAvg())
	fmt.Fprintf(&rep, "in-process baseline: Luna's engine package in this process (DuckDB's streaming Arrow export, as the server runs it); duckdb-go's Arrow API beside it; ratios are luna / the faster one\n")
	// Each section is a sub-benchmark, so its servers and databases are
	// gone before the next one measures.
	b.Run("stream", func(b *testing.B) { benchStream(b, &rep) })
	b.Run("select1", func(b *testing.B) { benchSelectOne(b, &rep) })
	b.Run("suite", func(b *testing.B) { benchSuite(b, &rep) })
	fmt.Fprintf(&rep, "\nload average at the end: %s\n", loadAvg())
	fmt.Println()
	fmt.Print(rep.String())
}

// benchStream streams the 10M-row result with DuckDB's default of one
// thread per core on both sides, then with one thread: on a small machine
// that also runs the client, DuckDB's threads compete with the socket and
// the client for the same cores.
func benchStream(b *testing.B, rep *strings.Builder) {
	for _, threads := range []int{0, 1} {
		label, args := "DuckDB threads = cores", []string(nil)
		if threads == 1 {
			label, args = "DuckDB threads = 1 on both sides", []string{"--threads", "1"}
		}
		p := startLuna(b, false, nil, args...)
		startRSS := currentRSS(b, p.cmd.Process.Pid)
		eng, _ := engineSide(b, threads)
		dgo, _ := duckdbGoSide(b, threads, false)
		ratio := throughput(b, rep, label, p, eng, dgo)
		suffix := ""
		if threads == 1 {
			suffix = "-1-thread"
		}
		b.ReportMetric(ratio, "ratio"+suffix)
		if threads == 0 {
			peak := peakRSS(b, p.cmd.Process.Pid)
			fmt.Fprintf(rep, "  server RSS: %.1f MiB before, peak %.1f MiB after 8 streams: growth %.1f MiB (target <= 300 MiB)\n",
				startRSS, peak, peak-startRSS)
			b.ReportMetric(peak, "peak-RSS-MiB")
			b.ReportMetric(peak-startRSS, "RSS-growth-MiB")
		}
	}
}

// throughput streams the 10M-row result seven times from each side,
// interleaved after one warm-up each, reports the medians (a shared
// machine's noise hits all sides) and returns luna over the faster
// in-process path. Batches are counted, not decoded: this measures how
// fast a result gets to the client.
func throughput(b *testing.B, rep *strings.Builder, label string, p *proc, eng, dgo benchSide) float64 {
	ctx := context.Background()
	ec, dc := eng.dial(b), dgo.dial(b)
	var engRuns, dgoRuns, serverRuns, engCPU, serverCPU, clientCPU []time.Duration
	for i := range 8 {
		self := os.Getpid()
		c0 := procCPU(b, self)
		e := timeRows(b, ctx, ec)
		e1 := procCPU(b, self)
		d := timeRows(b, ctx, dc)
		lc := lunaSide(p).dial(b)
		s0, c1 := procCPU(b, p.cmd.Process.Pid), procCPU(b, self)
		l := timeRows(b, ctx, lc)
		s1, c2 := procCPU(b, p.cmd.Process.Pid), procCPU(b, self)
		lc.close()
		if i == 0 {
			continue // warm-up
		}
		engRuns, dgoRuns, serverRuns = append(engRuns, e), append(dgoRuns, d), append(serverRuns, l)
		engCPU = append(engCPU, e1-c0)
		serverCPU, clientCPU = append(serverCPU, s1-s0), append(clientCPU, c2-c1)
	}
	rate := func(d time.Duration) float64 { return streamRows / d.Seconds() / 1e6 }
	medEng, medDgo, medServer := pct(engRuns, 50), pct(dgoRuns, 50), pct(serverRuns, 50)
	fastest := min(medEng, medDgo)
	ratio := rate(medServer) / rate(fastest)
	fmt.Fprintf(rep, "\nstream 10M rows x 4 BIGINT columns, %s (median of 7 runs each):\n", label)
	fmt.Fprintf(rep, "  %-40s %6.1f M rows/s (%v, CPU %v)\n", eng.name+":", rate(medEng), medEng.Round(time.Millisecond), pct(engCPU, 50).Round(10*time.Millisecond))
	fmt.Fprintf(rep, "  %-40s %6.1f M rows/s (%v)\n", dgo.name+":", rate(medDgo), medDgo.Round(time.Millisecond))
	fmt.Fprintf(rep, "  %-40s %6.1f M rows/s (%v)\n", "through luna over TCP:", rate(medServer), medServer.Round(time.Millisecond))
	fmt.Fprintf(rep, "  CPU per luna run: server %v, client %v (medians), on %d cores\n",
		pct(serverCPU, 50).Round(10*time.Millisecond), pct(clientCPU, 50).Round(10*time.Millisecond), runtime.NumCPU())
	fmt.Fprintf(rep, "  ratio luna / fastest in-process: %.2f (target >= 0.90)\n", ratio)
	return ratio
}

// timeRows times reading every batch of the stream and checks the row
// count.
func timeRows(b *testing.B, ctx context.Context, c benchConn) time.Duration {
	var n int64
	start := time.Now()
	if err := c.query(ctx, streamSQL, func(rec arrow.RecordBatch) { n += rec.NumRows() }); err != nil {
		b.Fatalf("stream: %v", err)
	}
	d := time.Since(start)
	if n != streamRows {
		b.Fatalf("read %d rows, want %d", n, streamRows)
	}
	return d
}

// benchSelectOne measures SELECT 1 with 1, 16 and 64 concurrent clients,
// each on a connection of its own, against in-process connections of the
// same database at the same concurrency.
func benchSelectOne(b *testing.B, rep *strings.Builder) {
	p := startLuna(b, false, nil)
	eng, _ := engineSide(b, 0)
	dgo, _ := duckdbGoSide(b, 0, false)
	sides := []benchSide{eng, dgo, lunaSide(p)}
	fmt.Fprintf(rep, "\nSELECT 1, each client on its own connection, decoded (3 interleaved rounds per level):\n")
	for _, clients := range []int{1, 16, 64} {
		conns := make([][]benchConn, len(sides))
		for i, s := range sides {
			for range clients {
				conns[i] = append(conns[i], s.dial(b))
			}
			drive(b, conns[i], []string{"SELECT 1"}, 20, time.Time{}) // warm-up
		}
		perClient := max(1000/clients, 50)
		res := make([]loadResult, len(sides))
		for range 3 {
			for i := range sides {
				res[i].merge(drive(b, conns[i], []string{"SELECT 1"}, perClient, time.Time{}))
			}
		}
		for i, s := range sides {
			fmt.Fprintf(rep, "  %2d client(s), %-38s p50 %8v  p99 %8v  %7.0f req/s\n",
				clients, s.name+":", pct(res[i].lat, 50), pct(res[i].lat, 99), res[i].rate())
		}
		best := 0
		if res[1].rate() > res[0].rate() {
			best = 1
		}
		luna := res[2]
		target := "target >= 0.80 at 16 clients"
		if clients == 1 {
			target = fmt.Sprintf("target: luna p50 <= in-process p50 + 60us = %v", pct(res[best].lat, 50)+60*time.Microsecond)
		}
		fmt.Fprintf(rep, "      luna p50 - in-process p50: %v; throughput luna / fastest in-process: %.2f (%s)\n",
			pct(luna.lat, 50)-pct(res[best].lat, 50), luna.rate()/res[best].rate(), target)
		b.ReportMetric(float64(pct(luna.lat, 50).Microseconds()), fmt.Sprintf("p50-us-%dc", clients))
		b.ReportMetric(float64(pct(luna.lat, 99).Microseconds()), fmt.Sprintf("p99-us-%dc", clients))
		b.ReportMetric(luna.rate()/res[best].rate(), fmt.Sprintf("req-ratio-%dc", clients))
		for _, cs := range conns {
			for _, c := range cs {
				c.close()
			}
		}
	}
}

// loadResult is what one run of clients saw.
type loadResult struct {
	lat  []time.Duration // every request's latency
	wall time.Duration   // first start to last end
	sum  checksum        // over all requests
}

func (r *loadResult) merge(o loadResult) {
	r.lat = append(r.lat, o.lat...)
	r.wall += o.wall
	r.sum.rows += o.sum.rows
}

// rate is requests per second of wall time.
func (r loadResult) rate() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(len(r.lat)) / r.wall.Seconds()
}

// drive runs one goroutine per connection, each issuing queries in turn
// (client i starting at queries[i % len]) and decoding every result, until
// it has made perClient requests (0: no bound) or until passes (zero: no
// bound). A request under way at the deadline finishes and counts.
func drive(tb testing.TB, conns []benchConn, queries []string, perClient int, until time.Time) loadResult {
	ctx := context.Background()
	lats := make([][]time.Duration, len(conns))
	sums := make([]checksum, len(conns))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		wg.Go(func() {
			for k := 0; perClient == 0 || k < perClient; k++ {
				if !until.IsZero() && !time.Now().Before(until) {
					return
				}
				q := queries[(i+k)%len(queries)]
				var decodeErr error
				t0 := time.Now()
				err := c.query(ctx, q, func(rec arrow.RecordBatch) {
					if err := sums[i].add(rec); err != nil && decodeErr == nil {
						decodeErr = err
					}
				})
				lats[i] = append(lats[i], time.Since(t0))
				if err == nil {
					err = decodeErr
				}
				if err != nil {
					tb.Errorf("%s: %v", q, err)
					return
				}
			}
		})
	}
	wg.Wait()
	res := loadResult{lat: slices.Concat(lats...), wall: time.Since(start)}
	for _, s := range sums {
		res.sum.rows += s.rows
	}
	return res
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Microsecond)
}

// procStatus is a field of /proc/<pid>/status in MiB, e.g. VmHWM.
func procStatus(tb testing.TB, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	tb.Fatalf("no %s in /proc status", field)
	return 0
}

// peakRSS is the process's high-water resident set size in MiB.
func peakRSS(b *testing.B, pid int) float64 { return procStatus(b, pid, "VmHWM") }

// procCPU is a process's user+system CPU time so far.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return fmt.Sprintf("%.0f GiB", kb/1024/1024)
		}
	}
	return "unknown"
}

// loadAvg is the machine's load average: the machine may be shared, and
// the figures mean little without it.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}
