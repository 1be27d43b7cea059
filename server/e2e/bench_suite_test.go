//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// suiteTripsSQL makes the analytic suite's table: 10M rows derived from
// hashes of the row number, so every side and every run holds the same
// data, with about 50 cities, 5 vendors and a year of timestamps.
const suiteTripsSQL = `CREATE OR REPLACE TABLE trips AS
SELECT range AS id,
  TIMESTAMP '2024-01-01' + to_seconds((hash(range) % 31622400)::BIGINT) AS ts,
  ['acme', 'bluecab', 'citylink', 'dashride', 'expressway'][(hash(range, 1) % 5 + 1)::INTEGER] AS vendor,
  ['tokyo', 'delhi', 'shanghai', 'sao paulo', 'mexico city', 'cairo', 'mumbai', 'beijing', 'dhaka', 'osaka',
   'new york', 'karachi', 'buenos aires', 'chongqing', 'istanbul', 'kolkata', 'manila', 'lagos', 'rio de janeiro', 'tianjin',
   'kinshasa', 'guangzhou', 'los angeles', 'moscow', 'shenzhen', 'lahore', 'bangalore', 'paris', 'bogota', 'jakarta',
   'chennai', 'lima', 'bangkok', 'seoul', 'nagoya', 'hyderabad', 'london', 'tehran', 'chicago', 'chengdu',
   'nanjing', 'wuhan', 'ho chi minh city', 'luanda', 'ahmedabad', 'kuala lumpur', 'xian', 'hong kong', 'dongguan', 'hangzhou'
  ][(hash(range, 2) % 50 + 1)::INTEGER] AS city,
  ((hash(range, 3) % 40000) / 1000.0)::DOUBLE AS distance,
  ((hash(range, 4) % 100000) / 100.0)::DOUBLE AS fare,
  ((hash(range, 5) % 2000) / 100.0)::DOUBLE AS tip,
  (hash(range, 6) % 6 + 1)::INTEGER AS passengers
FROM range(10000000)`

// suiteQueries are the analytic suite.
var suiteQueries = []struct{ name, sql string }{
	{"count(*)", "SELECT count(*) FROM trips"},
	{"top-10 city by avg tip", "SELECT city, avg(tip) AS avg_tip FROM trips GROUP BY city ORDER BY avg_tip DESC LIMIT 10"},
	{"fetch ~500k rows (id, fare, city)", "SELECT id, fare, city FROM trips WHERE fare < 50"},
	{"GROUP BY day, sums", "SELECT date_trunc('day', ts) AS day, count(*) AS n, sum(fare) AS fare, sum(tip) AS tip FROM trips GROUP BY day ORDER BY day"},
	{"filter + aggregate distance/fare", "SELECT count(*) AS n, sum(fare) AS fare, avg(fare / distance) AS per_km FROM trips WHERE distance BETWEEN 2 AND 10 AND fare > 20"},
	{"GROUP BY vendor x passengers", "SELECT vendor, passengers, count(*) AS n, sum(fare) AS fare, avg(tip) AS tip FROM trips GROUP BY vendor, passengers ORDER BY vendor, passengers"},
}

// cityQuery is the concurrency curve's query: a parallel GROUP BY on a
// VARCHAR column.
var cityQuery = suiteQueries[1].sql

const suiteRounds = 7

// benchSuite loads the trips table into a server and into the in-process
// databases, then runs the analytic suite, the mixed load and the
// concurrency curve.
func benchSuite(b *testing.B, rep *strings.Builder) {
	p := startLuna(b, false, nil)
	luna := lunaSide(p)
	eng, _ := engineSide(b, 0)
	dgo, _ := duckdbGoSide(b, 0, true)
	sides := []benchSide{eng, dgo, luna}
	conns := make([]benchConn, len(sides))
	fmt.Fprintf(rep, "\nanalytic suite: trips, 10M rows (id, ts, vendor, 50 cities, distance, fare, tip, passengers), compressed in-memory storage on every side\n")
	for i, s := range sides {
		conns[i] = s.dial(b)
		start := time.Now()
		if err := conns[i].exec(context.Background(), suiteTripsSQL); err != nil {
			b.Fatalf("%s: load trips: %v", s.name, err)
		}
		if i == 1 {
			// The engine and the server checkpoint after a load; duckdb-go
			// is told to.
			if err := conns[i].exec(context.Background(), "CHECKPOINT packed"); err != nil {
				b.Fatalf("%s: checkpoint: %v", s.name, err)
			}
		}
		load := time.Since(start)
		mem := scalarInt(b, conns[i], "SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory() WHERE tag IN ('BASE_TABLE', 'IN_MEMORY_TABLE')")
		fmt.Fprintf(rep, "  load, checkpoint included: %-38s %6v, table memory %6.1f MiB\n", s.name+":", load.Round(10*time.Millisecond), float64(mem)/(1<<20))
	}
	if n := scalarInt(b, conns[2], "SELECT count(DISTINCT city) FROM trips"); n != 50 {
		b.Fatalf("trips has %d cities, want 50", n)
	}
	analyticSuite(b, rep, sides, conns)
	mixedLoad(b, rep, p)
	concurrencyCurve(b, rep, p, eng)
}

// analyticSuite runs every query once per side and round, the sides back
// to back, and reports the medians.
func analyticSuite(b *testing.B, rep *strings.Builder, sides []benchSide, conns []benchConn) {
	ctx := context.Background()
	times := make([][][]time.Duration, len(suiteQueries)) // query, side, run
	for q := range suiteQueries {
		times[q] = make([][]time.Duration, len(sides))
	}
	for round := range suiteRounds + 1 {
		for q, sq := range suiteQueries {
			var want checksum
			for s, c := range conns {
				var got checksum
				var decodeErr error
				start := time.Now()
				err := c.query(ctx, sq.sql, func(rec arrow.RecordBatch) {
					if err := got.add(rec); err != nil && decodeErr == nil {
						decodeErr = err
					}
				})
				d := time.Since(start)
				if err == nil {
					err = decodeErr
				}
				if err != nil {
					b.Fatalf("%s, %s: %v", sides[s].name, sq.name, err)
				}
				if s == 0 {
					want = got
				} else if !got.matches(want) {
					b.Fatalf("%s, %s: decoded %+v, in-process engine %+v", sides[s].name, sq.name, got, want)
				}
				if round > 0 { // round 0 warms up
					times[q][s] = append(times[q][s], d)
				}
			}
		}
	}
	fmt.Fprintf(rep, "  every value of every result decoded on every side; median of %d interleaved runs, ms:\n", suiteRounds)
	fmt.Fprintf(rep, "  %-36s %9s %9s %9s %7s %10s\n", "query", "engine", "duckdb-go", "luna", "ratio", "vs engine")
	var sumBest, sumLuna, sumEng time.Duration
	worst := 0.0
	for q, sq := range suiteQueries {
		e, d, l := pct(times[q][0], 50), pct(times[q][1], 50), pct(times[q][2], 50)
		best := min(e, d)
		ratio := l.Seconds() / best.Seconds()
		worst = max(worst, ratio)
		sumBest, sumLuna, sumEng = sumBest+best, sumLuna+l, sumEng+e
		fmt.Fprintf(rep, "  %-36s %9.1f %9.1f %9.1f %6.2fx %9.2fx\n", sq.name, ms(e), ms(d), ms(l), ratio, l.Seconds()/e.Seconds())
		b.ReportMetric(ratio, fmt.Sprintf("ratio-q%d", q+1))
	}
	total := sumLuna.Seconds() / sumBest.Seconds()
	fmt.Fprintf(rep, "  %-36s %9.1f %9s %9.1f %6.2fx %9.2fx (target <= 1.15 against the fastest in-process path per query)\n",
		"sum of medians", ms(sumEng), "", ms(sumLuna), total, sumLuna.Seconds()/sumEng.Seconds())
	fmt.Fprintf(rep, "  (ratio: luna / the faster in-process path; vs engine: luna / the same streaming path in-process, the cost of the wire alone)\n")
	fmt.Fprintf(rep, "  worst single query: %.2fx (target <= 1.50)\n", worst)
	b.ReportMetric(total, "suite-ratio")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// msRound rounds a latency for a table: to 0.1 ms, or to 1 ms from 100 ms.
func msRound(d time.Duration) time.Duration {
	if d >= 100*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}

// mixedLoad runs 16 clients cycling through the analytic suite for a
// while alone, then again while one more client streams the 10M-row
// result over and over.
func mixedLoad(b *testing.B, rep *strings.Builder, p *proc) {
	const clients = 16
	var analytic []benchConn
	for range clients {
		analytic = append(analytic, lunaSide(p).dial(b))
	}
	queries := make([]string, len(suiteQueries))
	for i, q := range suiteQueries {
		queries[i] = q.sql
	}
	alone := drive(b, analytic, queries, 0, time.Now().Add(10*time.Second))

	streamer := []benchConn{lunaSide(p).dial(b)}
	var stream loadResult
	var wg sync.WaitGroup
	until := time.Now().Add(20 * time.Second)
	wg.Go(func() { stream = drive(b, streamer, []string{streamSQL}, 0, until) })
	mixed := drive(b, analytic, queries, 0, until)
	wg.Wait()

	fmt.Fprintf(rep, "\nmixed load through luna: %d clients cycling through the six suite queries, decoding everything\n", clients)
	fmt.Fprintf(rep, "  analytic alone (10 s):            p50 %9v  p99 %9v  %5.1f q/s (%d queries)\n",
		msRound(pct(alone.lat, 50)), msRound(pct(alone.lat, 99)), alone.rate(), len(alone.lat))
	fmt.Fprintf(rep, "  analytic, with 1 stream (20 s):   p50 %9v  p99 %9v  %5.1f q/s (%d queries)\n",
		msRound(pct(mixed.lat, 50)), msRound(pct(mixed.lat, 99)), mixed.rate(), len(mixed.lat))
	fmt.Fprintf(rep, "  stream 10M x 4 BIGINT meanwhile:  p50 %9v  p99 %9v  (%d streams, %.1f M rows/s at the median)\n",
		msRound(pct(stream.lat, 50)), msRound(pct(stream.lat, 99)), len(stream.lat), streamRows/pct(stream.lat, 50).Seconds()/1e6)
	b.ReportMetric(float64(pct(mixed.lat, 99).Milliseconds()), "mixed-analytic-p99-ms")
	b.ReportMetric(float64(pct(stream.lat, 50).Milliseconds()), "mixed-stream-p50-ms")
}

// curveLevels are the concurrency curve's client counts.
var curveLevels = []int{1, 4, 16, 64}

// curveTime bounds each level of the concurrency curve on each side.
const curveTime = 6 * time.Second

// concurrencyCurve runs the GROUP BY-city query from 1, 4, 16 and 64
// clients at once, through luna and on in-process connections, and, when
// the server has --max-concurrent-queries, the 64-client level again with
// admission control.
func concurrencyCurve(b *testing.B, rep *strings.Builder, p *proc, eng benchSide) {
	fmt.Fprintf(rep, "\nconcurrency curve: N clients each running the top-10 city query in a loop, %v per level and side\n", curveTime)
	fmt.Fprintf(rep, "  %7s | %-38s | %s\n", "clients", "in-process engine", "luna")
	var lunaConns, engConns []benchConn
	for _, n := range curveLevels {
		for len(lunaConns) < n {
			lunaConns = append(lunaConns, lunaSide(p).dial(b))
			engConns = append(engConns, eng.dial(b))
		}
		e := drive(b, engConns[:n], []string{cityQuery}, 0, time.Now().Add(curveTime))
		l, before, peak := measurePeak(b, p, func() loadResult {
			return drive(b, lunaConns[:n], []string{cityQuery}, 0, time.Now().Add(curveTime))
		})
		fmt.Fprintf(rep, "  %7d | %6.1f q/s p50 %9v p99 %9v | %6.1f q/s p50 %9v p99 %9v RSS %4.0f -> peak %4.0f MiB (%+.0f)\n",
			n, e.rate(), msRound(pct(e.lat, 50)), msRound(pct(e.lat, 99)), l.rate(), msRound(pct(l.lat, 50)), msRound(pct(l.lat, 99)), before, peak, peak-before)
		b.ReportMetric(l.rate(), fmt.Sprintf("curve-qps-%dc", n))
		b.ReportMetric(float64(pct(l.lat, 99).Milliseconds()), fmt.Sprintf("curve-p99-ms-%dc", n))
	}
	const flag = "--max-concurrent-queries"
	if !lunaHasFlag(b, flag) {
		fmt.Fprintf(rep, "  (luna has no %s: the admission-controlled run is skipped)\n", flag)
		return
	}
	// One query per core: each of DuckDB's parallel queries wants them all.
	limit := strconv.Itoa(runtime.NumCPU())
	pq := startLuna(b, false, nil, flag, limit)
	lc := lunaSide(pq).dial(b)
	if err := lc.exec(context.Background(), suiteTripsSQL); err != nil {
		b.Fatalf("load trips with %s: %v", flag, err)
	}
	var conns []benchConn
	for range 64 {
		conns = append(conns, lunaSide(pq).dial(b))
	}
	l, before, peak := measurePeak(b, pq, func() loadResult {
		return drive(b, conns, []string{cityQuery}, 0, time.Now().Add(curveTime))
	})
	fmt.Fprintf(rep, "  %7d | %-38s | %6.1f q/s p50 %9v p99 %9v RSS %4.0f -> peak %4.0f MiB (%+.0f)  (%s %s; a fresh server, its RSS still holding the load)\n",
		64, "", l.rate(), msRound(pct(l.lat, 50)), msRound(pct(l.lat, 99)), before, peak, peak-before, flag, limit)
	b.ReportMetric(l.rate(), "curve-qps-64c-admission")
	b.ReportMetric(float64(pct(l.lat, 99).Milliseconds()), "curve-p99-ms-64c-admission")
}

// measurePeak runs fn and returns the server's RSS before it and its peak
// meanwhile, in MiB. Linux resets a process's high-water mark on a write
// of 5 to its clear_refs; where that fails, RSS is sampled instead.
func measurePeak(b *testing.B, p *proc, fn func() loadResult) (r loadResult, before, peak float64) {
	pid := p.cmd.Process.Pid
	before = currentRSS(b, pid)
	if os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil {
		r = fn()
		return r, before, peakRSS(b, pid)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, currentRSS(b, pid))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	r = fn()
	close(stop)
	wg.Wait()
	return r, before, peak
}

// lunaHasFlag reports whether luna --help lists flag.
func lunaHasFlag(b *testing.B, flag string) bool {
	out, _ := exec.Command(binary(b, "luna", false), "--help").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == flag {
			return true
		}
	}
	return false
}

// scalarInt runs a query returning one integer.
func scalarInt(tb testing.TB, c benchConn, sql string) int64 {
	var v int64
	var got bool
	err := c.query(context.Background(), sql, func(rec arrow.RecordBatch) {
		if rec.NumRows() == 0 || got {
			return
		}
		switch a := rec.Column(0).(type) {
		case *array.Int64:
			v, got = a.Value(0), true
		case *array.Uint64:
			v, got = int64(a.Value(0)), true
		}
	})
	if err != nil || !got {
		tb.Fatalf("%s: %v (integer found: %v)", sql, err, got)
	}
	return v
}
