//go:build duckdb_arrow

// Package engine holds Luna's embedded DuckDB: one in-memory database, a
// connection per session, statement execution and streaming Arrow results.
//
// It talks to DuckDB through duckdb-go's binding layer rather than
// database/sql: that is the only way to ask DuckDB for a *streaming* result
// (duckdb_pending_prepared_streaming), so a large query result is produced
// chunk by chunk as the client reads it instead of being materialized whole
// inside DuckDB first. Chunks become Arrow record batches through DuckDB's
// own Arrow conversion, with no row-by-row work in Go.
//
// The engine knows nothing of sockets or the wire protocol.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	bindings "github.com/duckdb/duckdb-go-bindings"
)

// Options configures the database. Empty values keep DuckDB's defaults.
type Options struct {
	MemoryLimit    string // e.g. "4GB", "80%"
	Threads        int    // 0 = DuckDB's default (all cores)
	TempDir        string // where larger-than-memory work spills
	MaxTempDirSize string // cap on spill size, e.g. "100GB"
	HomeDir        string // DuckDB home directory (extensions, secrets)

	// Compress makes the database clients' tables go to a compressed
	// in-memory database, still named memory, and checkpoints it after
	// statements that change data and every CheckpointInterval (0: the
	// default) while a change is left over: only a checkpoint compresses.
	Compress           bool
	CheckpointInterval time.Duration
	// OnCheckpoint, when set, is told of each checkpoint's outcome.
	OnCheckpoint func(CheckpointOutcome, time.Duration)
	Log          *slog.Logger
}

// setting maps an option to the DuckDB setting and the flag that names it
// in errors, so a bad value is reported against what the operator typed.
type setting struct {
	name, value, flag string
}

func (o Options) settings() []setting {
	var s []setting
	add := func(name, value, flag string) {
		if value != "" {
			s = append(s, setting{name, value, flag})
		}
	}
	add("home_directory", o.HomeDir, "--db-home-dir")
	if o.HomeDir != "" {
		// DuckDB fixes its secret directory before home_directory is
		// applied, and would keep it relative to the working directory:
		// name it under the home, where --allowed-directories expects it.
		add("secret_directory", filepath.Join(o.HomeDir, ".duckdb", "stored_secrets"), "--db-home-dir")
	}
	add("temp_directory", o.TempDir, "--temp-dir")
	add("memory_limit", o.MemoryLimit, "--memory-limit")
	add("max_temp_directory_size", o.MaxTempDirSize, "--max-temp-dir-size")
	if o.Threads > 0 {
		add("threads", fmt.Sprint(o.Threads), "--threads")
	}
	return s
}

// DB is the one shared in-memory database.
type DB struct {
	db       bindings.Database
	lockdown lockdown
	ckpt     *checkpointer // nil: compression off
}

// Open creates the in-memory database and applies opts.
func Open(opts Options) (*DB, error) {
	var cfg bindings.Config
	if bindings.CreateConfig(&cfg) == bindings.StateError {
		return nil, errors.New("engine: create DuckDB config")
	}
	defer bindings.DestroyConfig(&cfg)
	// Luna's clients pick their own connection; keep DuckDB from loading
	// anything from the network on its own.
	bindings.SetConfig(cfg, "autoinstall_known_extensions", "false")

	d := &DB{}
	var msg string
	if bindings.OpenExt("", &d.db, cfg, &msg) == bindings.StateError {
		bindings.Close(&d.db)
		return nil, fmt.Errorf("engine: open in-memory database: %s", msg)
	}
	c, err := d.Connect()
	if err != nil {
		d.Close()
		return nil, err
	}
	defer c.Close()
	for _, s := range opts.settings() {
		q := fmt.Sprintf("SET GLOBAL %s = '%s'", s.name, strings.ReplaceAll(s.value, "'", "''"))
		if err := c.Exec(context.Background(), q); err != nil {
			d.Close()
			return nil, fmt.Errorf("%s %q: %w", s.flag, s.value, err)
		}
	}
	if opts.Compress {
		if err := useCompressed(c); err != nil {
			d.Close()
			return nil, err
		}
		if err := d.startCheckpointer(opts); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// useCompressed replaces the database DuckDB opened with a compressed
// in-memory one of the same name. A connection's default database is
// found by that name, so every connection opened afterwards uses it with
// no USE of its own, and clients keep seeing memory in current_database(),
// duckdb_tables(), information_schema and memory.main.t names.
func useCompressed(c *Conn) error {
	const swap = "luna_compressed_swap"
	for _, q := range []string{
		"ATTACH ':memory:' AS " + swap + " (COMPRESS)",
		"USE " + swap,
		"DETACH " + mainDatabase,
		"ATTACH ':memory:' AS " + mainDatabase + " (COMPRESS)",
		"USE " + mainDatabase,
		"DETACH " + swap,
	} {
		if err := c.Exec(context.Background(), q); err != nil {
			return fmt.Errorf("--memory-compression: open the compressed database: %s: %w", q, err)
		}
	}
	return nil
}

// Close closes the database. All connections must be closed first.
func (d *DB) Close() {
	if d.ckpt != nil {
		d.ckpt.close()
	}
	d.lockdown.close()
	bindings.Close(&d.db)
}

// Version is the DuckDB library version, e.g. "v1.5.6".
func Version() string { return bindings.LibraryVersion() }

// Error is an error reported by DuckDB. Message is DuckDB's text verbatim.
type Error struct {
	Message string
}

func (e *Error) Error() string { return e.Message }
