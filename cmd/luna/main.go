//go:build duckdb_arrow

// Command luna is the Luna server: an in-memory DuckDB database served over
// TCP, answering in Arrow IPC. It only wires flags to the server packages.
// `luna fetch-secret SOURCE` prints a secret from a --passwd-from source,
// for the startup scripts.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lunadb/luna/server/appliance"
	"github.com/lunadb/luna/server/config"
	"github.com/lunadb/luna/server/engine"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	if code, ok := runSubcommand(os.Args[1:]); ok {
		return code
	}
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process the default way
	}()
	if err := appliance.Run(ctx, cfg, version, log); err != nil {
		log.Error("luna failed", "err", err)
		return 1
	}
	return 0
}
