//go:build duckdb_arrow

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bindings "github.com/duckdb/duckdb-go-bindings"

	"github.com/lunadb/luna/server/recovery"
)

// DefaultCheckpointInterval is how often a change that no statement's own
// checkpoint covered (DuckDB refused it while another transaction wrote) is
// checkpointed.
const DefaultCheckpointInterval = time.Minute

// retryDelay is the first wait before a refused checkpoint is tried again;
// it doubles up to the checkpoint interval.
const retryDelay = 2 * time.Second

// mainDatabase is the name clients see for the database their tables go
// to, with compression on or off.
const mainDatabase = "memory"

// CheckpointOutcome is what became of one checkpoint: "ok", "busy"
// (DuckDB refused it while another transaction held changes it cannot
// checkpoint around) or "error".
type CheckpointOutcome string

// Checkpoint outcomes.
const (
	CheckpointOK    CheckpointOutcome = "ok"
	CheckpointBusy  CheckpointOutcome = "busy"
	CheckpointError CheckpointOutcome = "error"
)

// changesData reports whether a statement of type t may change table data
// or the catalog, so that a checkpoint after it has something to compress
// or free. Transaction statements count for their COMMIT; EXECUTE, for
// the statement it runs, which is not known here.
func changesData(t bindings.StatementType) bool {
	switch t {
	case bindings.StatementTypeInsert, bindings.StatementTypeUpdate, bindings.StatementTypeDelete,
		bindings.StatementTypeCreate, bindings.StatementTypeAlter, bindings.StatementTypeDrop,
		bindings.StatementTypeCopy, bindings.StatementTypeCopyDatabase, bindings.StatementTypeMergeInto,
		bindings.StatementTypeTransaction, bindings.StatementTypeExecute, bindings.StatementTypeMulti:
		return true
	}
	return false
}

// checkpointer compresses what statements loaded: DuckDB stores in-memory
// tables uncompressed until a checkpoint rewrites them. It checkpoints on
// a connection of its own, so no session's transaction is touched, and
// never with FORCE, which would abort the other sessions' transactions.
type checkpointer struct {
	conn     *Conn
	log      *slog.Logger
	observe  func(CheckpointOutcome, time.Duration)
	interval time.Duration

	// sem admits one checkpoint at a time; a waiter can give up on it.
	sem chan struct{}
	// changed counts data-changing statements; clean is the count the
	// last successful checkpoint began after.
	changed, clean atomic.Uint64
	retry          chan struct{}
	stop           context.CancelFunc
	ctx            context.Context
	wg             sync.WaitGroup
}

func (d *DB) startCheckpointer(opts Options) error {
	c, err := d.Connect()
	if err != nil {
		return err
	}
	c.internal = true
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cp := &checkpointer{conn: c, log: log, observe: opts.OnCheckpoint, interval: opts.CheckpointInterval,
		sem: make(chan struct{}, 1), retry: make(chan struct{}, 1)}
	if cp.interval <= 0 {
		cp.interval = DefaultCheckpointInterval
	}
	cp.ctx, cp.stop = context.WithCancel(context.Background())
	d.ckpt = cp
	cp.wg.Go(cp.loop)
	return nil
}

// changedData is called by a connection after statements that may have
// changed data: it checkpoints before returning, unless ctx ends first
// or another checkpoint is refused, which the periodic one then retries.
func (d *DB) changedData(ctx context.Context) {
	cp := d.ckpt
	if cp == nil {
		return
	}
	gen := cp.changed.Add(1)
	if ctx.Err() != nil {
		return // the periodic checkpoint will see it
	}
	cp.checkpoint(ctx, gen)
}

// Checkpoint checkpoints now if anything changed since the last one. It
// reports DuckDB's refusal or failure; the periodic checkpoint retries.
func (d *DB) Checkpoint(ctx context.Context) error {
	if d.ckpt == nil {
		return nil
	}
	return d.ckpt.checkpoint(ctx, d.ckpt.changed.Load())
}

// checkpoint makes sure the changes up to gen are checkpointed.
func (cp *checkpointer) checkpoint(ctx context.Context, gen uint64) error {
	select {
	case cp.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-cp.ctx.Done():
		return errors.New("the database is closing")
	}
	defer func() { <-cp.sem }()
	if cp.clean.Load() >= gen {
		return nil // a checkpoint that began after gen covered it
	}
	upTo := cp.changed.Load()
	start := time.Now()
	err := cp.conn.Exec(cp.ctx, "CHECKPOINT "+mainDatabase)
	d := time.Since(start)
	outcome := CheckpointOK
	switch {
	case err == nil:
		for {
			c := cp.clean.Load()
			if c >= upTo || cp.clean.CompareAndSwap(c, upTo) {
				break
			}
		}
		cp.log.Debug("checkpointed", "duration", d.Round(time.Microsecond))
	case busy(err):
		outcome = CheckpointBusy
		cp.log.Debug("checkpoint deferred: another transaction is writing", "err", err)
		err = fmt.Errorf("checkpoint: %w", err)
	default:
		outcome = CheckpointError
		if cp.ctx.Err() == nil {
			cp.log.Warn("checkpoint failed; will retry", "err", err)
		}
		err = fmt.Errorf("checkpoint: %w", err)
	}
	if cp.observe != nil {
		cp.observe(outcome, d)
	}
	if err != nil {
		select {
		case cp.retry <- struct{}{}:
		default:
		}
	}
	return err
}

// busy tells DuckDB's refusal to checkpoint while another transaction holds
// changes it cannot checkpoint around (an UPDATE, DELETE or catalog
// change; appends do not stop it).
func busy(err error) bool {
	var e *Error
	return errors.As(err, &e) && strings.Contains(e.Message, "Cannot CHECKPOINT")
}

// loop checkpoints every interval when something changed since the last
// checkpoint, and soon after a refused one, backing off to the interval.
func (cp *checkpointer) loop() {
	defer recovery.Recover(cp.log, recovery.Statement, "the periodic checkpoint", nil)
	t := time.NewTimer(cp.interval)
	defer t.Stop()
	delay := retryDelay
	for {
		select {
		case <-cp.ctx.Done():
			return
		case <-cp.retry:
			t.Reset(min(delay, cp.interval))
			delay = min(2*delay, cp.interval)
			continue
		case <-t.C:
		}
		gen := cp.changed.Load()
		if gen > cp.clean.Load() && cp.checkpoint(cp.ctx, gen) == nil {
			delay = retryDelay
		}
		// A failure queued a retry; drain it so the interval holds.
		select {
		case <-cp.retry:
			t.Reset(min(delay, cp.interval))
			delay = min(2*delay, cp.interval)
		default:
			t.Reset(cp.interval)
		}
	}
}

func (cp *checkpointer) close() {
	cp.stop()
	cp.conn.Interrupt()
	cp.wg.Wait()
	cp.conn.Close()
}
