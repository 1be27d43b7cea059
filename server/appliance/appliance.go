//go:build duckdb_arrow

// Package appliance runs Luna as a service on a VM: it finds the password,
// opens the database, runs the startup SQL, serves the API and the HTTP
// health port, keeps systemd informed (readiness, status, watchdog,
// stopping) and drains gracefully when told to stop.
package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/lunadb/luna/server"
	"github.com/lunadb/luna/server/admission"
	"github.com/lunadb/luna/server/config"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/health"
	"github.com/lunadb/luna/server/metrics"
	"github.com/lunadb/luna/server/passwd"
	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/server/remote"
	"github.com/lunadb/luna/server/systemd"
	"github.com/lunadb/luna/server/tlsconf"
	"github.com/lunadb/luna/server/users"
)

// Run serves until ctx ends (a signal, normally), then drains. It returns
// an error when the server could not start or stopped on its own.
func Run(ctx context.Context, cfg config.Config, version string, log *slog.Logger) error {
	notify := systemd.NewNotifier(log)
	// Things to re-read on SIGHUP register here as they are set up.
	var reload reloads
	reload.onSIGHUP(ctx, log)

	notify.Status("finding the password")
	password, err := findPassword(ctx, cfg, log)
	if err != nil {
		return err
	}
	named, err := loadUsers(ctx, cfg, &reload, log)
	if err != nil {
		return err
	}

	// Certificates before the database: a bad one fails at once.
	certs, err := loadTLS(ctx, cfg, &reload, log)
	if err != nil {
		return err
	}

	notify.Status("opening the database")
	met := metrics.New(version, engine.Version())
	opts := engine.Options{
		MemoryLimit:    cfg.MemoryLimit,
		Threads:        cfg.Threads,
		TempDir:        cfg.TempDir,
		MaxTempDirSize: cfg.MaxTempDirSize,
		HomeDir:        cfg.DBHomeDir,
		Compress:       cfg.MemoryCompression == "on",
		Log:            log,
	}
	if opts.Compress {
		cps := met.Checkpoints()
		opts.OnCheckpoint = func(o engine.CheckpointOutcome, d time.Duration) { cps.Done(string(o), d) }
	}
	db, err := engine.Open(opts)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()

	inspect, err := newInspector(db, cfg.HealthProbeSQL)
	if err != nil {
		return err
	}
	defer inspect.close()
	met.WatchMemory(inspect.memory, cfg.HealthProbeWait, log)

	// The health port comes up first so that a load balancer sees "not
	// ready" rather than nothing while the startup SQL runs.
	var hs *health.Server
	if cfg.HealthHostPort != "" {
		hln, err := net.Listen("tcp", cfg.HealthHostPort)
		if err != nil {
			return fmt.Errorf("listen on --health-host-port %s: %w", cfg.HealthHostPort, err)
		}
		hs = health.New(met.Registry(), log)
		hs.SetNotReady("running startup SQL")
		go func() {
			err := recovery.Do(log, recovery.Health, "serving the health port", func() error { return hs.Serve(hln) })
			if err != nil {
				log.Error("health server stopped", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hs.Shutdown(sctx)
		}()
		log.Info("health endpoints listening", "addr", hln.Addr().String())
	}

	// Bind before the startup SQL so a taken port fails at once; accept
	// only after it, so no client sees half-loaded tables.
	ln, err := net.Listen("tcp", cfg.APIHostPort)
	if err != nil {
		return fmt.Errorf("cannot listen on --api-host-port %s: %w", cfg.APIHostPort, err)
	}
	defer ln.Close()

	var resolver *remote.Resolver
	if cfg.ObjectStore == "native" {
		dir := cfg.CacheDir()
		if dir == "" {
			dir, err = os.MkdirTemp("", "luna-object-cache-")
			if err != nil {
				return fmt.Errorf("creating the object cache directory: %w", err)
			}
			defer os.RemoveAll(dir)
		}
		resolver, err = remote.New(remote.Options{CacheDir: dir, CacheMaxBytes: int64(cfg.ObjectCacheMaxBytes),
			SecretDir: cfg.SecretDir(), Log: log})
		if err != nil {
			return err
		}
		met.GaugeFunc("luna_object_cache_bytes", "Bytes of objects in the local cache.", func() float64 {
			return float64(resolver.CacheBytes())
		})
	}

	if err := restrictFiles(ctx, db, cfg, resolver, log); err != nil {
		return err
	}
	var watch *watcher
	if cfg.WatchInterval > 0 && resolver != nil {
		watch = &watcher{res: resolver, log: log, met: met.Refreshes(), interval: cfg.WatchInterval}
	}
	if err := runInitSQL(ctx, db, resolver, cfg, notify, watch, log); err != nil {
		return err
	}
	if err := lockAfterStartup(ctx, db, cfg, resolver); err != nil {
		return err
	}
	var watching sync.WaitGroup
	// The watcher and the watchdog each get a context of their own: one
	// variable for both would be reassigned while the watcher reads it.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer func() {
		stopWatching()
		watching.Wait()
	}()
	if watch != nil && watch.conn != nil {
		watching.Go(func() { watch.run(watchCtx) })
	}
	if ctx.Err() != nil {
		return nil // stopped during startup
	}

	adm := admission.New(cfg.MaxConcurrentQueries, met.Admission())
	met.GaugeFunc("luna_queries_running", "Statements holding a query slot: running in DuckDB or streaming their result (counted with or without --max-concurrent-queries).", func() float64 {
		return float64(adm.Running())
	})
	met.GaugeFunc("luna_queries_waiting", "Statements waiting for a query slot (--max-concurrent-queries).", func() float64 {
		return float64(adm.Waiting())
	})
	srv := server.New(db, server.Options{
		Password:        password,
		Users:           named,
		MaxRequestBytes: int(cfg.MaxRequestBytes),
		MaxConnections:  cfg.MaxConnections,
		QueryTimeout:    cfg.QueryTimeout,
		BatchRows:       cfg.BatchRows,
		Observer:        met,
		Resolver:        resolver,
		Admission:       adm,

		AuthTimeout:        cfg.AuthTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		MaxUnauthenticated: cfg.MaxUnauthenticated,

		QueryLog: queryLog(cfg, log),

		// A plain connection bypasses mutual TLS: a client CA requires TLS.
		TLS:        certs.config(),
		RequireTLS: cfg.RequireTLS || cfg.TLSClientCAFile != "",

		TLSClientCertUser: cfg.TLSClientCertUser,
	}, log)
	if certs != nil {
		met.GaugeFunc("luna_tls_certificate_expiry_timestamp_seconds", "When the API port's TLS certificate expires, in seconds since the Unix epoch.", func() float64 {
			return float64(certs.NotAfter().Unix())
		})
	}
	met.GaugeFunc("luna_connections_open", "Client connections being served.", func() float64 {
		return float64(srv.OpenConnections())
	})
	served := make(chan error, 1)
	// A panic in the accept loop stops the server like an accept error:
	// Run returns, and systemd starts it afresh.
	go func() {
		served <- recovery.Do(log, recovery.Serve, "accepting connections", func() error { return srv.Serve(ln) })
	}()

	var draining sync.WaitGroup
	watchdogCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	probe := &prober{inspect: inspect, srv: srv, addr: dialAddr(ln.Addr()), timeout: cfg.HealthProbeWait}
	draining.Add(1)
	go func() {
		defer draining.Done()
		defer recovery.Recover(log, recovery.Watchdog, "feeding the systemd watchdog", nil)
		// A panic in one probe fails that probe: the watchdog goes
		// unfed while it lasts.
		notify.Watchdog(watchdogCtx, func(ctx context.Context) error {
			return recovery.Do(log, recovery.Watchdog, "the health probe", func() error { return probe.check(ctx) })
		})
	}()

	addr := ln.Addr().String()
	if hs != nil {
		hs.SetReady()
	}
	notify.Ready("serving on " + addr)
	log.Info("luna is serving", "addr", addr, "version", version, "duckdb", engine.Version(), "auth", password != "" || named != nil)

	var runErr error
	select {
	case err := <-served:
		runErr = fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}

	if hs != nil {
		hs.SetNotReady("draining")
	}
	if runErr == nil && cfg.DrainDelay > 0 {
		// Unready but serving: the load balancer's health checks see the
		// 503 and stop routing here while new connections still succeed.
		log.Info("unready", "drain_delay", cfg.DrainDelay)
		notify.Stopping("unready; serving until the load balancer notices")
		select {
		case <-time.After(cfg.DrainDelay):
		case err := <-served:
			runErr = fmt.Errorf("server stopped: %w", err)
		}
	}
	log.Info("draining", "timeout", cfg.ShutdownTimeout)
	notify.Stopping("draining connections")
	probe.draining.Store(true)
	stopWatching()
	watching.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown deadline passed; running requests were interrupted")
	}
	stopWatchdog()
	draining.Wait()
	log.Info("stopped")
	return runErr
}

// queryLog is the query log --query-log asks for, nil when off: lines go
// out through the main log's handler, tagged log=query.
func queryLog(cfg config.Config, log *slog.Logger) *server.QueryLog {
	if cfg.QueryLog == "off" {
		return nil
	}
	return &server.QueryLog{
		Log:             server.NewQueryLogger(log.Handler()),
		All:             cfg.QueryLog == "all",
		StatementLength: cfg.QueryLogStatementLength,
	}
}

// findPassword applies the password sources in their order of precedence:
// --passwd, --passwd-file, LUNA_PASSWD, --passwd-from. A source that was
// configured but yields nothing is an error: the server never starts
// without the password it was told to use.
func findPassword(ctx context.Context, cfg config.Config, log *slog.Logger) (string, error) {
	pw, err := passwordFromSources(ctx, cfg, log)
	if err == nil && strings.ContainsAny(pw, "\r\n") {
		// AUTH is one line: no client could ever send this password.
		err = errors.New("the password must not contain line breaks")
	}
	return pw, err
}

// usersPoll is how often the users file is checked for changes.
const usersPoll = 2 * time.Second

// loadUsers reads the named users from --users-file (then followed as it
// changes) or --users-from, and has them re-read on SIGHUP. Nil: neither
// is set. A malformed users file stops the server, naming the line.
func loadUsers(ctx context.Context, cfg config.Config, reload *reloads, log *slog.Logger) (server.Users, error) {
	var st *users.Store
	var err error
	switch {
	case cfg.UsersFile != "":
		if st, err = users.OpenFile(ctx, cfg.UsersFile, log); err != nil {
			return nil, fmt.Errorf("--users-file: %w", err)
		}
		recovery.Go(log, recovery.Watch, "watching the users file", func() { st.Watch(ctx, usersPoll) })
	case cfg.UsersFrom != "":
		src, err := passwd.ParseSource(cfg.UsersFrom)
		if err != nil {
			return nil, fmt.Errorf("--users-from: %w", err)
		}
		fetch := func(ctx context.Context) (string, error) {
			log.Info("fetching the users file", "source", src.String(), "timeout", cfg.PasswdTimeout)
			return passwd.Fetch(ctx, src, passwd.Options{Timeout: cfg.PasswdTimeout, Log: log})
		}
		if st, err = users.New(ctx, "users file from "+src.String(), fetch, log); err != nil {
			return nil, fmt.Errorf("--users-from: %w", err)
		}
	default:
		return nil, nil
	}
	reload.add("users file", st.Reload)
	log.Info("users loaded", "users", st.Len())
	return st, nil
}

func passwordFromSources(ctx context.Context, cfg config.Config, log *slog.Logger) (string, error) {
	switch {
	case cfg.Passwd != "" && !cfg.FromEnv["passwd"]:
		return cfg.Passwd, nil
	case cfg.PasswdFile != "":
		pw, err := passwd.ReadFile(cfg.PasswdFile)
		if err != nil {
			return "", fmt.Errorf("--passwd-file: %w", err)
		}
		return pw, nil
	case cfg.Passwd != "":
		return cfg.Passwd, nil
	case cfg.PasswdFrom != "":
		src, err := passwd.ParseSource(cfg.PasswdFrom)
		if err != nil {
			return "", fmt.Errorf("--passwd-from: %w", err)
		}
		log.Info("fetching the password", "source", src.String(), "timeout", cfg.PasswdTimeout)
		pw, err := passwd.Fetch(ctx, src, passwd.Options{Timeout: cfg.PasswdTimeout, Log: log})
		if err != nil {
			return "", fmt.Errorf("--passwd-from: %w", err)
		}
		log.Info("password fetched", "source", src.String())
		return pw, nil
	}
	return "", nil
}

// runInitSQL runs the startup SQL, telling systemd about progress so a long
// preload that is still moving is not killed by the start timeout.
//
// With watch set, statements that loaded tables from object storage are
// handed to it, and so is the connection when there are any.
func runInitSQL(ctx context.Context, db *engine.DB, resolver *remote.Resolver, cfg config.Config, notify *systemd.Notifier, watch *watcher, log *slog.Logger) (err error) {
	files, err := initFiles(cfg.InitSQL)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	conn, err := db.Connect()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || watch == nil || len(watch.tables) == 0 {
			conn.Close()
			return
		}
		watch.conn = conn
	}()
	// Progress tracking lets a long statement count as progress.
	if err := conn.Exec(ctx, "SET enable_progress_bar = true; SET enable_progress_bar_print = false"); err != nil {
		return fmt.Errorf("startup SQL: enable progress tracking: %w", err)
	}

	var mu sync.Mutex
	statements := 0
	r := &initRunner{conn: conn, resolver: resolver, log: log, continueOnError: cfg.InitSQLOnError == "continue",
		started: func(file string, line int) {
			mu.Lock()
			statements++
			mu.Unlock()
			notify.Status(fmt.Sprintf("running startup SQL: %s:%d", file, line))
		}}
	if watch != nil {
		r.loaded = watch.add
	}

	const tick, grace = 10 * time.Second, 30 * time.Second
	done := make(chan struct{})
	defer close(done)
	notify.ExtendTimeout(grace)
	recovery.Go(log, recovery.Startup, "tracking startup SQL progress", func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		lastStatements, lastRows := -1, uint64(0)
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			mu.Lock()
			n := statements
			mu.Unlock()
			_, rows, _ := conn.Progress()
			if n != lastStatements || rows > lastRows {
				notify.ExtendTimeout(grace)
			}
			lastStatements, lastRows = n, rows
		}
	})

	start := time.Now()
	failed, err := r.run(ctx, files)
	if err != nil {
		return err
	}
	log.Info("startup SQL finished", "files", len(files), "failed_statements", failed, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// inspector runs the server's own queries (health probe, memory use) on
// its own connections, one at a time each.
type inspector struct {
	probeMu   sync.Mutex
	probeConn *engine.Conn
	probeSQL  string
	memMu     sync.Mutex
	memConn   *engine.Conn
}

func newInspector(db *engine.DB, probeSQL string) (*inspector, error) {
	pc, err := db.Connect()
	if err != nil {
		return nil, err
	}
	mc, err := db.Connect()
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &inspector{probeConn: pc, probeSQL: probeSQL, memConn: mc}, nil
}

func (i *inspector) close() {
	i.probeConn.Close()
	i.memConn.Close()
}

// engineAnswers runs the probe query; ctx bounds it.
func (i *inspector) engineAnswers(ctx context.Context) error {
	i.probeMu.Lock()
	defer i.probeMu.Unlock()
	if err := i.probeConn.Exec(ctx, i.probeSQL); err != nil {
		return fmt.Errorf("engine probe (%s): %w", i.probeSQL, err)
	}
	return nil
}

// memory reads DuckDB's memory accounting.
func (i *inspector) memory(ctx context.Context) ([]metrics.MemoryUse, error) {
	i.memMu.Lock()
	defer i.memMu.Unlock()
	rows, err := i.memConn.Query(ctx, "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()", 2048)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []metrics.MemoryUse
	for {
		rec, err := rows.Next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return out, nil
		}
		tags, mem, spill := rec.Column(0).(*array.String), rec.Column(1).(*array.Int64), rec.Column(2).(*array.Int64)
		for r := range int(rec.NumRows()) {
			// Cloned: the string lies in the batch's memory, freed below.
			out = append(out, metrics.MemoryUse{Tag: strings.Clone(tags.Value(r)), MemoryBytes: mem.Value(r), SpillBytes: spill.Value(r)})
		}
		rec.Release()
	}
}

// prober is the watchdog's health check: the engine answers the probe
// query in time, and the API's accept loop takes a new connection. The
// probe connection sends nothing, so it never reaches TLS or AUTH: it
// works the same with --require-tls and with mutual TLS, where a TLS
// probe would need a client certificate of its own.
type prober struct {
	inspect  *inspector
	srv      *server.Server
	addr     string
	timeout  time.Duration
	draining atomic.Bool
}

func (p *prober) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.inspect.engineAnswers(ctx); err != nil {
		return err
	}
	if p.draining.Load() {
		return nil // the listener is closed on purpose
	}
	before := p.srv.Accepted()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return fmt.Errorf("API listener probe: %w", err)
	}
	defer c.Close()
	// The kernel completes the handshake on its own; only the server's
	// accept loop moves the counter.
	for p.srv.Accepted() == before {
		select {
		case <-ctx.Done():
			return errors.New("API listener probe: the server did not accept a connection in time")
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// dialAddr turns a listening address into one a local probe can dial.
func dialAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := tcp.IP
	switch {
	case ip == nil || ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// tlsCerts is the API port's certificate store; nil without TLS.
type tlsCerts struct{ *tlsconf.Store }

// loadTLS reads the certificate files, and has them re-read when they
// change and on SIGHUP.
func loadTLS(ctx context.Context, cfg config.Config, reload *reloads, log *slog.Logger) (*tlsCerts, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	st, err := tlsconf.Load(tlsconf.Options{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, ClientCAFile: cfg.TLSClientCAFile, Log: log})
	if err != nil {
		return nil, err // it names the file at fault
	}
	reload.add("TLS certificate", st.Reload)
	recovery.Go(log, recovery.Watch, "watching the TLS certificate files", func() { st.Watch(ctx, 0) })
	return &tlsCerts{st}, nil
}

func (c *tlsCerts) config() *tls.Config {
	if c == nil {
		return nil
	}
	return c.Config()
}
