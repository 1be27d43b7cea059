//go:build duckdb_arrow

package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/lunadb/luna/client"
)

// streamSQL is the 10M-row, 4-column result both sides produce.
const streamSQL = "SELECT range AS a, range + 1 AS b, range * 2 AS c, range % 1000 AS d FROM range(10000000)"

const streamRows = 10_000_000

// BenchmarkReport measures the server against in-process DuckDB in one
// run and prints a report: result streaming throughput, SELECT 1 latency
// with 1 and 16 clients, and the server's peak RSS. Run with -benchtime 1x
// (make bench).
func BenchmarkReport(b *testing.B) {
	p := startLuna(b, false, nil)
	ctx := context.Background()
	local := openInProcess(b, 0)

	var rep strings.Builder
	fmt.Fprintf(&rep, "== Luna benchmark report\nmachine: %s, %d cores, %s RAM, %s/%s, %s\n",
		cpuModel(), runtime.NumCPU(), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version())

	for range b.N {
		// Both sides with DuckDB's default of one thread per core, then
		// both with one thread: on a small machine that also runs the
		// client, DuckDB's background thread competes with the socket
		// and the client for the same cores.
		ratio := throughput(b, &rep, "DuckDB threads = cores", p, local)
		b.ReportMetric(ratio, "ratio")
		p1 := startLuna(b, false, nil, "--threads", "1")
		ratio1 := throughput(b, &rep, "DuckDB threads = 1 on both sides", p1, openInProcess(b, 1))
		b.ReportMetric(ratio1, "ratio-1-thread")
		peak := peakRSS(b, p.cmd.Process.Pid)
		fmt.Fprintf(&rep, "\nserver peak RSS after streaming 10M rows 7 times: %.1f MiB (target < 300 MiB)\n", peak)
		b.ReportMetric(peak, "peak-RSS-MiB")

		// Latency of SELECT 1.
		localLat := latencies(b, 1, 2000, func() func() error {
			return func() error { return drain(local.QueryContext(ctx, "SELECT 1")) }
		})
		fmt.Fprintf(&rep, "\nSELECT 1 latency:\n  in-process DuckDB Arrow:  p50 %8v  p99 %8v\n", pct(localLat, 50), pct(localLat, 99))
		for _, clients := range []int{1, 16} {
			lat := latencies(b, clients, 2000, func() func() error {
				c := p.dial(b, client.Options{})
				return func() error { return drain(c.Query(ctx, "SELECT 1")) }
			})
			fmt.Fprintf(&rep, "  luna, %2d client(s):       p50 %8v  p99 %8v  (%.0f req/s)\n",
				clients, pct(lat, 50), pct(lat, 99), float64(len(lat))/sum(lat).Seconds()*float64(clients))
			b.ReportMetric(float64(pct(lat, 50).Microseconds()), fmt.Sprintf("p50-us-%dc", clients))
			b.ReportMetric(float64(pct(lat, 99).Microseconds()), fmt.Sprintf("p99-us-%dc", clients))
		}
	}
	b.StopTimer()
	fmt.Println()
	fmt.Print(rep.String())
}

// throughput streams the 10M-row result seven times from each side,
// interleaved, reports the medians (a shared machine's noise hits both
// sides) and returns the ratio luna/in-process.
func throughput(b *testing.B, rep *strings.Builder, label string, p *proc, local *inProcess) float64 {
	ctx := context.Background()
	var localRuns, serverRuns, serverCPU, clientCPU []time.Duration
	for range 7 {
		localRuns = append(localRuns, timeRows(b, func() (array.RecordReader, error) { return local.QueryContext(ctx, streamSQL) }))
		c := p.dial(b, client.Options{})
		s0, c0 := procCPU(b, p.cmd.Process.Pid), procCPU(b, os.Getpid())
		serverRuns = append(serverRuns, timeRows(b, func() (array.RecordReader, error) { return c.Query(ctx, streamSQL) }))
		serverCPU = append(serverCPU, procCPU(b, p.cmd.Process.Pid)-s0)
		clientCPU = append(clientCPU, procCPU(b, os.Getpid())-c0)
		c.Close()
	}
	medLocal, medServer := pct(localRuns, 50), pct(serverRuns, 50)
	localRate := streamRows / medLocal.Seconds()
	serverRate := streamRows / medServer.Seconds()
	ratio := serverRate / localRate
	fmt.Fprintf(rep, "\nstream 10M rows x 4 BIGINT columns, %s (median of 7 runs each):\n", label)
	fmt.Fprintf(rep, "  in-process DuckDB Arrow: %6.1f M rows/s (%v)\n", localRate/1e6, medLocal.Round(time.Millisecond))
	fmt.Fprintf(rep, "  through luna over TCP:   %6.1f M rows/s (%v)\n", serverRate/1e6, medServer.Round(time.Millisecond))
	fmt.Fprintf(rep, "  CPU per luna run:        server %v, client %v (medians), on %d cores\n",
		pct(serverCPU, 50).Round(10*time.Millisecond), pct(clientCPU, 50).Round(10*time.Millisecond), runtime.NumCPU())
	fmt.Fprintf(rep, "  ratio luna/in-process:   %6.2f (target >= 0.80)\n", ratio)
	return ratio
}

// inProcess is DuckDB's Arrow interface on an in-process connection.
type inProcess struct {
	mu    sync.Mutex
	arrow *duckdb.Arrow
}

// openInProcess opens an in-memory database in the benchmark's process;
// threads > 0 sets DuckDB's thread count.
func openInProcess(b *testing.B, threads int) *inProcess {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		b.Fatal(err)
	}
	if threads > 0 {
		if _, err := db.Exec(fmt.Sprintf("SET threads = %d", threads)); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); db.Close() })
	ip := &inProcess{}
	err = conn.Raw(func(dc any) error {
		ip.arrow, err = duckdb.NewArrowFromConn(dc.(driver.Conn))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return ip
}

func (ip *inProcess) QueryContext(ctx context.Context, q string) (array.RecordReader, error) {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	return ip.arrow.QueryContext(ctx, q)
}

func drain(r array.RecordReader, err error) error {
	if err != nil {
		return err
	}
	defer r.Release()
	for r.Next() {
	}
	return r.Err()
}

// timeRows times reading every batch of a result and checks the row count.
func timeRows(b *testing.B, query func() (array.RecordReader, error)) time.Duration {
	start := time.Now()
	r, err := query()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	if err := r.Err(); err != nil {
		b.Fatal(err)
	}
	r.Release()
	d := time.Since(start)
	if n != streamRows {
		b.Fatalf("read %d rows, want %d", n, streamRows)
	}
	return d
}

// latencies runs n requests spread over clients goroutines and returns
// every request's latency.
func latencies(b *testing.B, clients, n int, newClient func() func() error) []time.Duration {
	per := n / clients
	out := make([][]time.Duration, clients)
	fns := make([]func() error, clients)
	for i := range fns {
		fns[i] = newClient()
	}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				start := time.Now()
				if err := fns[i](); err != nil {
					b.Error(err)
					return
				}
				out[i] = append(out[i], time.Since(start))
			}
		}()
	}
	wg.Wait()
	return slices.Concat(out...)
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Microsecond)
}

func sum(d []time.Duration) (t time.Duration) {
	for _, x := range d {
		t += x
	}
	return t
}

// peakRSS is the process's high-water resident set size in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

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
