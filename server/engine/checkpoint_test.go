//go:build duckdb_arrow

package engine

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
)

func openCompressed(t *testing.T, interval time.Duration) (*DB, *Conn, *outcomes) {
	t.Helper()
	o := &outcomes{}
	db, err := Open(Options{Threads: 2, Compress: true, CheckpointInterval: interval, OnCheckpoint: o.add})
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); db.Close() })
	return db, c, o
}

type outcomes struct {
	mu  sync.Mutex
	got []CheckpointOutcome
}

func (o *outcomes) add(c CheckpointOutcome, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, c)
}

func (o *outcomes) count(c CheckpointOutcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, g := range o.got {
		if g == c {
			n++
		}
	}
	return n
}

func scalar(t *testing.T, c *Conn, q string) string {
	t.Helper()
	r, err := c.Query(context.Background(), q, 16)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer r.Close()
	rec, err := r.Next()
	if err != nil || rec == nil {
		t.Fatalf("%s: no row (%v)", q, err)
	}
	defer rec.Release()
	return strings.Clone(rec.Column(0).(*array.String).Value(0))
}

func tableMemory(t *testing.T, c *Conn) int64 {
	t.Helper()
	r, err := c.Query(context.Background(), "SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory() WHERE tag IN ('BASE_TABLE', 'IN_MEMORY_TABLE')", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec, err := r.Next()
	if err != nil || rec == nil {
		t.Fatalf("no row (%v)", err)
	}
	defer rec.Release()
	return rec.Column(0).(*array.Int64).Value(0)
}

const load3M = "CREATE OR REPLACE TABLE t AS SELECT range AS i, (range % 7)::VARCHAR AS s FROM range(3000000)"

// Which statements ask for a checkpoint: those that may change data or
// the catalog, and transaction control (for COMMIT).
func TestCheckpointTrigger(t *testing.T) {
	db, c, _ := openCompressed(t, time.Hour)
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		sql     string
		changes bool
	}{
		{"CREATE TABLE a(x INT)", true},
		{"CREATE TABLE b AS SELECT 1 AS x", true},
		{"INSERT INTO a VALUES (1), (2)", true},
		{"UPDATE a SET x = 3 WHERE x = 1", true},
		{"DELETE FROM a WHERE x = 2", true},
		{"ALTER TABLE a ADD COLUMN y INT", true},
		{"COPY a TO '" + dir + "/a.csv'", true},
		{"COPY a FROM '" + dir + "/a.csv'", true},
		{"MERGE INTO a USING b ON a.x = b.x WHEN NOT MATCHED THEN INSERT VALUES (b.x, 0)", true},
		{"BEGIN", true},
		{"COMMIT", true},
		{"DROP TABLE b", true},
		{"CREATE VIEW v AS SELECT * FROM a", true},
		{"SELECT * FROM a", false},
		{"SET threads = 2", false},
		{"DESCRIBE a", false},
		{"SHOW TABLES", false},
		{"EXPLAIN SELECT * FROM a", false},
		{"PRAGMA version", false},
		{"SELECT 1; SELECT 2", false},
		{"SELECT 1; INSERT INTO a VALUES (5, 5)", true},
	} {
		before := db.ckpt.changed.Load()
		if err := c.Exec(ctx, tc.sql); err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		if got := db.ckpt.changed.Load() > before; got != tc.changes {
			t.Errorf("%s: counted as a change: %v, want %v", tc.sql, got, tc.changes)
		}
	}
	// Through Query too, the checkpoint coming once the result is closed.
	before := db.ckpt.changed.Load()
	r, err := c.Query(ctx, "INSERT INTO a VALUES (6, 6)", 16)
	if err != nil {
		t.Fatal(err)
	}
	if db.ckpt.changed.Load() != before {
		t.Fatal("checkpoint asked for before the result was closed")
	}
	r.Close()
	if db.ckpt.changed.Load() == before {
		t.Fatal("q: INSERT did not count as a change")
	}
	// A failed request counts: an earlier statement of it may have committed.
	before = db.ckpt.changed.Load()
	if err := c.Exec(ctx, "INSERT INTO a VALUES (7, 7); INSERT INTO nope VALUES (1)"); err == nil {
		t.Fatal("want an error")
	}
	if db.ckpt.changed.Load() == before {
		t.Fatal("failed request with an INSERT did not count as a change")
	}
}

func TestCompressedDatabaseKeepsItsName(t *testing.T) {
	db, c, _ := openCompressed(t, time.Hour)
	ctx := context.Background()
	if err := c.Exec(ctx, "CREATE TABLE t AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	c2, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for q, want := range map[string]string{
		"SELECT current_database()": "memory",
		"SELECT string_agg(database_name, ',') FROM duckdb_databases() WHERE NOT internal": "memory",
		"SELECT database_name || '.' || table_name FROM duckdb_tables()":                   "memory.t",
		"SELECT table_catalog FROM information_schema.tables WHERE table_name = 't'":       "memory",
		"SELECT x::VARCHAR FROM memory.main.t":                                             "1",
	} {
		if got := scalar(t, c2, q); got != want {
			t.Errorf("%s = %q, want %q", q, got, want)
		}
	}
}

func TestLoadedTableIsCompressed(t *testing.T) {
	_, c, o := openCompressed(t, time.Hour)
	if err := c.Exec(context.Background(), load3M); err != nil {
		t.Fatal(err)
	}
	// Uncompressed, the table takes 55 MiB.
	if m := tableMemory(t, c); m > 10<<20 {
		t.Fatalf("table memory %d bytes after load: not compressed", m)
	}
	if o.count(CheckpointOK) == 0 {
		t.Fatal("no checkpoint reported")
	}

	off, err := Open(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	oc, _ := off.Connect()
	defer oc.Close()
	if err := oc.Exec(context.Background(), load3M); err != nil {
		t.Fatal(err)
	}
	if m := tableMemory(t, oc); m < 40<<20 {
		t.Fatalf("compression off: table memory %d bytes, want the uncompressed size", m)
	}
}

// DuckDB refuses a checkpoint while another transaction holds an UPDATE,
// DELETE or catalog change; the refusal touches neither transaction and
// the checkpoint is retried.
func TestRefusedCheckpointIsRetried(t *testing.T) {
	db, c, o := openCompressed(t, time.Hour)
	ctx := context.Background()
	other, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := c.Exec(ctx, "CREATE TABLE w AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	if err := other.Exec(ctx, "BEGIN; UPDATE w SET x = 2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, load3M); err != nil {
		t.Fatalf("load during the other's transaction: %v", err)
	}
	if o.count(CheckpointBusy) == 0 {
		t.Fatal("want a refused checkpoint while the other transaction writes")
	}
	if m := tableMemory(t, c); m < 40<<20 {
		t.Fatalf("table memory %d: compressed although the checkpoint was refused?", m)
	}
	if err := other.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("the other transaction was harmed: %v", err)
	}
	// The COMMIT was itself a change: its checkpoint compresses the table.
	if m := tableMemory(t, c); m > 10<<20 {
		t.Fatalf("table memory %d bytes after the other's COMMIT", m)
	}
	if got := scalar(t, c, "SELECT x::VARCHAR FROM w"); got != "2" {
		t.Fatalf("w.x = %s", got)
	}
}

func TestPeriodicCheckpointRetries(t *testing.T) {
	db, c, _ := openCompressed(t, 300*time.Millisecond)
	ctx := context.Background()
	other, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.internal = true // its COMMIT must not checkpoint: the loop has to
	if err := c.Exec(ctx, "CREATE TABLE w AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	if err := other.Exec(ctx, "BEGIN; DELETE FROM w"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, load3M); err != nil {
		t.Fatal(err)
	}
	if err := other.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tableMemory(t, c) > 10<<20 {
		if time.Now().After(deadline) {
			t.Fatal("the periodic checkpoint did not compress the table")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A transaction open across checkpoints keeps its snapshot and its changes.
func TestTransactionAcrossCheckpoints(t *testing.T) {
	db, c, _ := openCompressed(t, time.Hour)
	ctx := context.Background()
	other, _ := db.Connect()
	defer other.Close()
	if err := c.Exec(ctx, "CREATE TABLE a AS SELECT range AS i FROM range(10)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "BEGIN; INSERT INTO a VALUES (100)"); err != nil {
		t.Fatal(err)
	}
	if err := other.Exec(ctx, load3M); err != nil { // checkpoints meanwhile
		t.Fatal(err)
	}
	// Refused or not, it must leave both transactions as they were.
	db.Checkpoint(ctx)
	if got := scalar(t, other, "SELECT count(*)::VARCHAR FROM a"); got != "10" {
		t.Fatalf("uncommitted row visible to another session: %s", got)
	}
	if got := scalar(t, c, "SELECT count(*)::VARCHAR FROM a"); got != "11" {
		t.Fatalf("own uncommitted row lost: %s", got)
	}
	if err := c.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, c, "SELECT count(*)::VARCHAR FROM a"); got != "10" {
		t.Fatalf("after ROLLBACK: %s", got)
	}
}
