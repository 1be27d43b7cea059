//go:build duckdb_arrow

// Command luna is the Luna server: an in-memory DuckDB database served over
// TCP, answering in Arrow IPC. It only wires flags to the server packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/lunadb/luna/server"
	"github.com/lunadb/luna/server/config"
	"github.com/lunadb/luna/server/engine"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := config.Parse(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "luna: %v\n", err)
		return 2
	}
	if cfg.Version {
		fmt.Printf("luna %s (DuckDB %s)\n", version, engine.Version())
		return 0
	}
	log := cfg.Logger(os.Stderr)

	db, err := engine.Open(engine.Options{
		MemoryLimit:    cfg.MemoryLimit,
		Threads:        cfg.Threads,
		TempDir:        cfg.TempDir,
		MaxTempDirSize: cfg.MaxTempDirSize,
		HomeDir:        cfg.DBHomeDir,
	})
	if err != nil {
		log.Error("cannot open database", "err", err)
		return 1
	}
	defer db.Close()

	ln, err := net.Listen("tcp", cfg.APIHostPort)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.APIHostPort, "err", err)
		return 1
	}
	srv := server.New(db, server.Options{
		Password:        cfg.Passwd,
		MaxRequestBytes: int(cfg.MaxRequestBytes),
		MaxConnections:  cfg.MaxConnections,
		QueryTimeout:    cfg.QueryTimeout,
		BatchRows:       cfg.BatchRows,
	}, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("luna is serving", "addr", ln.Addr().String(), "version", version, "duckdb", engine.Version(), "auth", cfg.Passwd != "")

	select {
	case err := <-served:
		log.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	stop() // a second signal kills the process the default way
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown deadline passed; running requests were interrupted")
	}
	log.Info("stopped")
	return 0
}
