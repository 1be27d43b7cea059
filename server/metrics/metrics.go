// Package metrics holds Luna's Prometheus metrics: request counts and
// durations, streamed rows and bytes, authentication failures, open
// connections, DuckDB's memory and spill use, the memory tables take,
// checkpoints, admission control (--max-concurrent-queries), recovered
// panics (package recovery), and build information.
package metrics

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lunadb/luna/server/recovery"
)

// Metrics is the set of collectors, registered on their own registry.
type Metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	rows         prometheus.Counter
	bytes        prometheus.Counter
	authFailures prometheus.Counter
}

// New creates the metrics for a server of the given version.
func New(version, duckdbVersion string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luna_requests_total",
			Help: "Requests answered, by kind (exec, query, auth, unknown, malformed) and outcome (ok, error, denied, aborted).",
		}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "luna_request_duration_seconds",
			Help:    "Time from a request's start to its last byte written, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5ms to ~2 min
		}, []string{"kind"}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "luna_result_rows_total",
			Help: "Rows streamed to clients in query results.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "luna_result_bytes_total",
			Help: "Bytes of Arrow IPC streamed to clients in query results.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "luna_auth_failures_total",
			Help: "Refused authentications: wrong password, or a request before AUTH.",
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "luna_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version", "duckdb", "goversion"})
	build.WithLabelValues(version, duckdbVersion, runtime.Version()).Set(1)
	m.reg.MustRegister(m.requests, m.duration, m.rows, m.bytes, m.authFailures, build, recovery.Collector(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are registered, for the /metrics handler.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request counts a finished request.
func (m *Metrics) Request(kind, outcome string, d time.Duration) {
	m.requests.WithLabelValues(kind, outcome).Inc()
	m.duration.WithLabelValues(kind).Observe(d.Seconds())
}

// Streamed counts rows and bytes sent in one response.
func (m *Metrics) Streamed(rows, bytes int64) {
	m.rows.Add(float64(rows))
	m.bytes.Add(float64(bytes))
}

// AuthFailed counts a refused authentication.
func (m *Metrics) AuthFailed() { m.authFailures.Inc() }

// GaugeFunc registers a gauge whose value is read at each scrape.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// MemoryUse is one row of DuckDB's memory accounting.
type MemoryUse struct {
	Tag         string
	MemoryBytes int64
	SpillBytes  int64
}

// MemoryFunc reads DuckDB's memory accounting (duckdb_memory()).
type MemoryFunc func(ctx context.Context) ([]MemoryUse, error)

// WatchMemory registers collectors that read DuckDB's memory use and spill
// at each scrape, waiting at most timeout for the engine.
func (m *Metrics) WatchMemory(read MemoryFunc, timeout time.Duration, log *slog.Logger) {
	m.reg.MustRegister(&memoryCollector{read: read, timeout: timeout, log: log})
}

var (
	memoryDesc = prometheus.NewDesc("luna_duckdb_memory_bytes",
		"Memory DuckDB's buffer manager holds, by component (duckdb_memory()).", []string{"tag"}, nil)
	spillDesc = prometheus.NewDesc("luna_duckdb_spill_bytes",
		"Bytes DuckDB has spilled to its temporary directory, by component (duckdb_memory()).", []string{"tag"}, nil)
	tableMemoryDesc = prometheus.NewDesc("luna_table_memory_bytes",
		"Memory the tables of the in-memory databases hold, compressed or not (duckdb_memory() tags BASE_TABLE and IN_MEMORY_TABLE); their spilled part is in luna_duckdb_spill_bytes.", nil, nil)
	memoryUpDesc = prometheus.NewDesc("luna_duckdb_memory_scrape_ok",
		"1 if DuckDB's memory accounting could be read at this scrape.", nil, nil)
)

type memoryCollector struct {
	read    MemoryFunc
	timeout time.Duration
	log     *slog.Logger
}

func (c *memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memoryDesc
	ch <- spillDesc
	ch <- tableMemoryDesc
	ch <- memoryUpDesc
}

func (c *memoryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	// The registry collects on goroutines of its own, beyond the health
	// handler's recovery.
	var uses []MemoryUse
	err := recovery.Do(c.log, recovery.Health, "reading DuckDB memory use", func() (err error) {
		uses, err = c.read(ctx)
		return err
	})
	if err != nil {
		c.log.Warn("reading DuckDB memory use for metrics", "err", err)
		ch <- prometheus.MustNewConstMetric(memoryUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(memoryUpDesc, prometheus.GaugeValue, 1)
	var tables int64
	for _, u := range uses {
		ch <- prometheus.MustNewConstMetric(memoryDesc, prometheus.GaugeValue, float64(u.MemoryBytes), u.Tag)
		ch <- prometheus.MustNewConstMetric(spillDesc, prometheus.GaugeValue, float64(u.SpillBytes), u.Tag)
		if u.Tag == "BASE_TABLE" || u.Tag == "IN_MEMORY_TABLE" {
			tables += u.MemoryBytes
		}
	}
	ch <- prometheus.MustNewConstMetric(tableMemoryDesc, prometheus.GaugeValue, float64(tables))
}

// Checkpoints counts the checkpoints that compress in-memory tables.
type Checkpoints struct {
	runs     *prometheus.CounterVec
	duration prometheus.Histogram
}

// Checkpoints registers the checkpoint metrics.
func (m *Metrics) Checkpoints() *Checkpoints {
	c := &Checkpoints{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luna_checkpoints_total",
			Help: "Checkpoints of the compressed in-memory database, by outcome (ok; busy: refused while another transaction was writing, retried later; error).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "luna_checkpoint_duration_seconds",
			Help:    "Time each successful checkpoint took; writers' commits wait for it, readers do not.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 0.1ms to ~26s
		}),
	}
	for _, o := range []string{"ok", "busy", "error"} {
		c.runs.WithLabelValues(o)
	}
	m.reg.MustRegister(c.runs, c.duration)
	return c
}

// Done counts one checkpoint.
func (c *Checkpoints) Done(outcome string, d time.Duration) {
	c.runs.WithLabelValues(outcome).Inc()
	if outcome == "ok" {
		c.duration.Observe(d.Seconds())
	}
}

// Refreshes counts the re-runs of startup statements whose object-store
// sources changed (--watch-interval).
type Refreshes struct {
	runs *prometheus.CounterVec
	last *prometheus.GaugeVec
}

// Refreshes registers the table-refresh metrics.
func (m *Metrics) Refreshes() *Refreshes {
	r := &Refreshes{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luna_table_refreshes_total",
			Help: "Startup statements run again because their object-store sources changed, by table and outcome (ok, error).",
		}, []string{"table", "outcome"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "luna_table_refreshed_timestamp_seconds",
			Help: "When each watched table was last loaded successfully (Unix time).",
		}, []string{"table"}),
	}
	m.reg.MustRegister(r.runs, r.last)
	return r
}

// Loaded records a successful load of table at t, the first one included.
func (r *Refreshes) Loaded(table string, t time.Time) {
	r.last.WithLabelValues(table).Set(float64(t.UnixNano()) / 1e9)
}

// Done counts one refresh of table.
func (r *Refreshes) Done(table string, ok bool) {
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	r.runs.WithLabelValues(table, outcome).Inc()
}

// Admission counts the waits for a query slot (--max-concurrent-queries);
// it is an admission.Observer.
type Admission struct {
	wait      prometheus.Histogram
	abandoned *prometheus.CounterVec
}

// Admission registers the admission metrics but the gauges of running and
// waiting queries, which read the limiter itself (GaugeFunc).
func (m *Metrics) Admission() *Admission {
	a := &Admission{
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "luna_query_wait_seconds",
			Help:    "Time statements waited for a query slot (--max-concurrent-queries), admitted or not; 0 when one was free.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5ms to ~2 min
		}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luna_admission_rejected_total",
			Help: "Statements that stopped waiting for a query slot without one, by reason (timeout: --query-timeout passed; canceled: the client went away or the server shut down).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"timeout", "canceled"} {
		a.abandoned.WithLabelValues(r)
	}
	m.reg.MustRegister(a.wait, a.abandoned)
	return a
}

// Admitted records a statement that got a slot after waiting d.
func (a *Admission) Admitted(d time.Duration) { a.wait.Observe(d.Seconds()) }

// Abandoned records a statement that gave up waiting after d.
func (a *Admission) Abandoned(reason string, d time.Duration) {
	a.wait.Observe(d.Seconds())
	a.abandoned.WithLabelValues(reason).Inc()
}
