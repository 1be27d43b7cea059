//go:build duckdb_arrow

package engine

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// benchTripsSQL is the columns of the analytic suite's trips table that
// the selective fetch reads, with the same values.
const benchTripsSQL = `CREATE TABLE trips AS
SELECT range AS id,
  ['tokyo', 'delhi', 'shanghai', 'sao paulo', 'mexico city', 'cairo', 'mumbai', 'beijing', 'dhaka', 'osaka',
   'new york', 'karachi', 'buenos aires', 'chongqing', 'istanbul', 'kolkata', 'manila', 'lagos', 'rio de janeiro', 'tianjin',
   'kinshasa', 'guangzhou', 'los angeles', 'moscow', 'shenzhen', 'lahore', 'bangalore', 'paris', 'bogota', 'jakarta',
   'chennai', 'lima', 'bangkok', 'seoul', 'nagoya', 'hyderabad', 'london', 'tehran', 'chicago', 'chengdu',
   'nanjing', 'wuhan', 'ho chi minh city', 'luanda', 'ahmedabad', 'kuala lumpur', 'xian', 'hong kong', 'dongguan', 'hangzhou'
  ][(hash(range, 2) % 50 + 1)::INTEGER] AS city,
  ((hash(range, 4) % 100000) / 100.0)::DOUBLE AS fare
FROM range(10000000)`

// benchResults are the shapes whose speed the streaming path is tuned
// for: a selective filter, whose chunks DuckDB emits nearly empty, a wide
// result of full chunks, a sorted one and a one-row one.
var benchResults = []struct{ name, sql string }{
	{"filter-500k", "SELECT id, fare, city FROM trips WHERE fare < 50"},
	{"filter-500k-sorted", "SELECT id, fare, city FROM trips WHERE fare < 50 ORDER BY id"},
	{"range-10M-x4", "SELECT range AS a, range + 1 AS b, range * 2 AS c, range % 1000 AS d FROM range(10000000)"},
	{"select-1", "SELECT 1"},
}

// BenchmarkStream reads each of benchResults through Query, reporting the
// process CPU per result beside the wall time.
func BenchmarkStream(b *testing.B) {
	db, err := Open(Options{Compress: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	c, err := db.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Exec(context.Background(), benchTripsSQL); err != nil {
		b.Fatal(err)
	}
	for _, r := range benchResults {
		b.Run(r.name, func(b *testing.B) {
			cpu0 := processCPU()
			var rows, batches int64
			for b.Loop() {
				rs, err := c.Query(context.Background(), r.sql, 2048)
				if err != nil {
					b.Fatal(err)
				}
				rows, batches = 0, 0
				for {
					rec, err := rs.Next()
					if err != nil {
						b.Fatal(err)
					}
					if rec == nil {
						break
					}
					rows += rec.NumRows()
					batches++
					rec.Release()
				}
				rs.Close()
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(float64(batches), "batches")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(fmt.Sprintf("getrusage: %v", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
