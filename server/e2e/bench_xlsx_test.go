//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
)

// xlsxRuns is how many fresh servers BenchmarkXLSX measures.
const xlsxRuns = 5

// BenchmarkXLSX measures read_xlsx on a 100,000-row × 5-column sheet that
// exceljs's streaming writer made, against in-process DuckDB reading the
// same rows as CSV, in the same run, and prints a report:
//
//   - luna, first read: converting the sheet to Parquet (a fresh server
//     with an empty cache each run) and DuckDB's scan of it.
//   - luna, cached re-read: the same statement again; only the scan.
//   - in-process DuckDB read_csv of the same rows, and luna's read_csv.
//   - the conversion's peak RSS: the server's VmHWM from /proc/<pid>/status
//     just before and just after the first read.
func BenchmarkXLSX(b *testing.B) {
	dir := b.TempDir()
	runXLSXWriter(b, "exceljs.js", dir, strconv.Itoa(bigXLSXRows))
	book, csv := filepath.Join(dir, "big.xlsx"), filepath.Join(dir, "big.csv")
	const query = "SELECT count(*), sum(id)::BIGINT, sum(amount), count(*) FILTER (WHERE flag), min(day)::VARCHAR, max(day)::VARCHAR FROM %s"
	xlsxSQL := fmt.Sprintf(query, "read_xlsx('"+book+"')")
	csvSQL := fmt.Sprintf(query, "read_csv('"+csv+"')")
	local := openInProcess(b, 0)

	var first, cached, duck, lunaCSV []time.Duration
	var hwmBefore, hwmAfter []float64
	for range b.N {
		for range xlsxRuns {
			p := startLuna(b, false, nil, "--object-cache-dir", b.TempDir())
			c := p.dial(b, client.Options{})
			pid := p.cmd.Process.Pid
			// A statement first, so the baseline includes a warm server.
			scalar(b, c, "SELECT 1")
			hwmBefore = append(hwmBefore, peakRSS(b, pid))
			start := time.Now()
			got := queryRows(b, c, xlsxSQL)
			first = append(first, time.Since(start))
			hwmAfter = append(hwmAfter, peakRSS(b, pid))

			start = time.Now()
			again := queryRows(b, c, xlsxSQL)
			cached = append(cached, time.Since(start))

			start = time.Now()
			viaLuna := queryRows(b, c, csvSQL)
			lunaCSV = append(lunaCSV, time.Since(start))

			start = time.Now()
			want := localRows(b, local, csvSQL)
			duck = append(duck, time.Since(start))
			for _, g := range [][]string{got, again, viaLuna} {
				if !slices.Equal(g, want) {
					b.Fatalf("read_xlsx and read_csv differ:\nxlsx %q\ncsv  %q", g, want)
				}
			}
			c.Close()
			p.signal(syscall.SIGTERM)
			p.wait(30 * time.Second)
		}
	}
	b.StopTimer()

	rate := func(d time.Duration) float64 { return bigXLSXRows / d.Seconds() }
	medFirst, medCached, medDuck, medLunaCSV := pct(first, 50), pct(cached, 50), pct(duck, 50), pct(lunaCSV, 50)
	before, after := medianF(hwmBefore), medianF(hwmAfter)
	var rep strings.Builder
	fmt.Fprintf(&rep, "\n== read_xlsx: %d rows × 5 columns from exceljs's streaming writer; median of %d fresh servers\n", bigXLSXRows, len(first))
	fmt.Fprintf(&rep, "  luna read_xlsx, first read (convert + scan): %7.0f rows/s  (%v)\n", rate(medFirst), medFirst.Round(time.Millisecond))
	fmt.Fprintf(&rep, "  luna read_xlsx, cached re-read:              %7.0f rows/s  (%v)\n", rate(medCached), medCached.Round(time.Millisecond))
	fmt.Fprintf(&rep, "  luna read_csv, same rows:                    %7.0f rows/s  (%v)\n", rate(medLunaCSV), medLunaCSV.Round(time.Millisecond))
	fmt.Fprintf(&rep, "  in-process DuckDB read_csv, same rows:       %7.0f rows/s  (%v)\n", rate(medDuck), medDuck.Round(time.Millisecond))
	fmt.Fprintf(&rep, "  ratio first read / in-process read_csv:      %7.2f  (target: conversion >= 100,000 rows/s)\n", medDuck.Seconds()/medFirst.Seconds())
	fmt.Fprintf(&rep, "  ratio cached re-read / in-process read_csv:  %7.2f\n", medDuck.Seconds()/medCached.Seconds())
	fmt.Fprintf(&rep, "  server VmHWM: %.1f MiB before the first read, %.1f MiB after (conversion peak +%.1f MiB)\n", before, after, after-before)
	b.ReportMetric(rate(medFirst), "xlsx-rows/s")
	b.ReportMetric(medCached.Seconds()*1e3, "cached-ms")
	b.ReportMetric(medDuck.Seconds()/medFirst.Seconds(), "ratio")
	b.ReportMetric(after-before, "conversion-peak-MiB")
	fmt.Print(rep.String())
}

// localRows runs sql on in-process DuckDB and returns its rows as
// queryRows does.
func localRows(b *testing.B, local *inProcess, sql string) []string {
	r, err := local.QueryContext(context.Background(), sql)
	if err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
	defer r.Release()
	var out []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			vals := make([]string, rec.NumCols())
			for k, col := range rec.Columns() {
				if col.IsNull(i) {
					vals[k] = "NULL"
				} else {
					vals[k] = col.ValueStr(i)
				}
			}
			out = append(out, strings.Join(vals, "|"))
		}
	}
	if err := r.Err(); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
	return out
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
