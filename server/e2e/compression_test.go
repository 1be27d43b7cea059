//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// load3M is a 3M-row table DuckDB holds in about 55 MiB uncompressed and
// about 1.3 MiB once checkpointed.
const load3M = "CREATE OR REPLACE TABLE %s AS SELECT range AS i, (range %% 7)::VARCHAR AS s FROM range(3000000)"

// tableMemory is what duckdb_memory() says the tables hold.
func tableMemory(t testing.TB, c *client.Conn) int64 {
	t.Helper()
	v := scalar(t, c, "SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory() WHERE tag IN ('BASE_TABLE', 'IN_MEMORY_TABLE')")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("table memory %q: %v", v, err)
	}
	return n
}

func TestCompressionLoadedTableIsCompressed(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args, env  []string
		compressed bool
	}{
		{"default", nil, nil, true},
		{"flag off", []string{"--memory-compression", "off"}, nil, false},
		{"env off", nil, []string{"LUNA_MEMORY_COMPRESSION=off"}, false},
		{"flag on wins over env", []string{"--memory-compression", "on"}, []string{"LUNA_MEMORY_COMPRESSION=off"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			haddr := freePort(t)
			p := startLuna(t, false, tc.env, append([]string{"--health-host-port", haddr}, tc.args...)...)
			c := p.dial(t, client.Options{})
			if err := c.Exec(context.Background(), fmt.Sprintf(load3M, "t")); err != nil {
				t.Fatal(err)
			}
			// The very next query sees the table as it is kept.
			m := tableMemory(t, c)
			if tc.compressed && m > 10<<20 || !tc.compressed && m < 40<<20 {
				t.Fatalf("table memory %d bytes, compressed %v", m, tc.compressed)
			}
			if got := metric(t, "http://"+haddr, "luna_table_memory_bytes"); got < float64(m)/2 || got > float64(m)*2 {
				t.Fatalf("luna_table_memory_bytes %v, duckdb_memory() %d", got, m)
			}
			// Clients see the database as before: memory, main.
			for q, want := range map[string]string{
				"SELECT current_database() || '.' || current_schema()":                       "memory.main",
				"SELECT count(*) FROM memory.main.t":                                         "3000000",
				"SELECT database_name FROM duckdb_tables() WHERE table_name = 't'":           "memory",
				"SELECT table_catalog FROM information_schema.tables WHERE table_name = 't'": "memory",
				"SELECT count(*) FROM (SHOW TABLES) WHERE name = 't'":                        "1",
			} {
				if got := scalar(t, c, q); got != want {
					t.Errorf("%s = %q, want %q", q, got, want)
				}
			}
			_, body := httpGet(t, "http://"+haddr+"/metrics")
			if has := strings.Contains(body, `luna_checkpoints_total{outcome="ok"}`); has != tc.compressed {
				t.Fatalf("luna_checkpoints_total present: %v, compression %v", has, tc.compressed)
			}
		})
	}
}

func TestCompressionMalformedFlag(t *testing.T) {
	bin := binary(t, "luna", false)
	for _, tc := range []struct{ args, env []string }{
		{[]string{"--memory-compression", "yes"}, nil},
		{nil, []string{"LUNA_MEMORY_COMPRESSION=ON "}},
	} {
		_, errOut, code := run(t, "", tc.env, bin, append([]string{"--api-host-port", "127.0.0.1:0"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, "--memory-compression: must be on or off") {
			t.Errorf("%v %v: exit %d, stderr %q", tc.args, tc.env, code, errOut)
		}
	}
}

// A transaction open while other sessions load tables, and so checkpoint,
// keeps its snapshot, its own rows and its temporary tables; COMMIT and
// ROLLBACK work as without compression.
func TestCompressionTransactionsAcrossCheckpoints(t *testing.T) {
	p := startLuna(t, true, nil)
	ctx := context.Background()
	a, b := p.dial(t, client.Options{}), p.dial(t, client.Options{})
	for _, q := range []string{
		"CREATE TABLE acct AS SELECT range AS id, 100 AS bal FROM range(1000)",
		"CREATE TEMP TABLE scratch AS SELECT 7 AS x",
		"BEGIN",
		"UPDATE acct SET bal = bal - 10 WHERE id = 1",
		"INSERT INTO acct VALUES (5000, 1)",
		"INSERT INTO scratch VALUES (8)",
	} {
		if err := a.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// b's load cannot be checkpointed while a's UPDATE is open: it must
	// still succeed, and a's transaction go on untouched.
	if err := b.Exec(ctx, fmt.Sprintf(load3M, "big")); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, b, "SELECT count(*) FROM acct"); got != "1000" {
		t.Fatalf("b sees a's uncommitted rows: %s", got)
	}
	if got := scalar(t, a, "SELECT count(*) || ':' || sum(bal) FROM acct"); got != "1001:99991" {
		t.Fatalf("a's own view: %s", got)
	}
	if err := a.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	// a's COMMIT lets the checkpoint through.
	if m := tableMemory(t, b); m > 10<<20 {
		t.Fatalf("table memory %d after COMMIT: not compressed", m)
	}
	if got := scalar(t, b, "SELECT count(*) || ':' || sum(bal) FROM acct"); got != "1001:99991" {
		t.Fatalf("after COMMIT: %s", got)
	}
	if got := scalar(t, a, "SELECT string_agg(x::VARCHAR, ',' ORDER BY x) FROM scratch"); got != "7,8" {
		t.Fatalf("temp table: %s", got)
	}
	if err := a.Exec(ctx, "BEGIN; DELETE FROM acct; INSERT INTO scratch VALUES (9)"); err != nil {
		t.Fatal(err)
	}
	if err := b.Exec(ctx, fmt.Sprintf(load3M, "big2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, a, "SELECT count(*) FROM acct"); got != "1001" {
		t.Fatalf("after ROLLBACK: %s", got)
	}
	if got := scalar(t, a, "SELECT count(*) FROM scratch"); got != "2" {
		t.Fatalf("temp table after ROLLBACK: %s", got)
	}
}

// Sessions writing (inserts, updates, deletes, catalog changes) while
// another loads tables and checkpoints: no statement fails, nothing is
// lost, and the tables end up compressed.
func TestCompressionConcurrentWritersAndCheckpoints(t *testing.T) {
	p := startLuna(t, true, nil)
	ctx := context.Background()
	setup := p.dial(t, client.Options{})
	if err := setup.Exec(ctx, "CREATE TABLE log (w INT, n INT)"); err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 3, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		c := p.dial(t, client.Options{})
		wg.Go(func() {
			for n := range rounds {
				for _, q := range []string{
					fmt.Sprintf("INSERT INTO log VALUES (%d, %d)", w, n),
					fmt.Sprintf("BEGIN; INSERT INTO log VALUES (%d, -1); UPDATE log SET n = n WHERE w = %d; DELETE FROM log WHERE w = %d AND n = -1; COMMIT", w, w, w),
					fmt.Sprintf("CREATE OR REPLACE TABLE side_%d AS SELECT %d AS n", w, n),
				} {
					if err := c.Exec(ctx, q); err != nil {
						errs <- fmt.Errorf("writer %d: %s: %w", w, q, err)
						return
					}
				}
			}
		})
	}
	loader := p.dial(t, client.Options{})
	wg.Go(func() {
		for i := range 4 {
			if err := loader.Exec(ctx, fmt.Sprintf(load3M, fmt.Sprintf("big_%d", i))); err != nil {
				errs <- fmt.Errorf("loader: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := scalar(t, setup, "SELECT count(*) || ':' || count(DISTINCT w) FROM log"); got != fmt.Sprintf("%d:%d", writers*rounds, writers) {
		t.Fatalf("log: %s", got)
	}
	// Whatever checkpoints were refused meanwhile, the last statement's
	// own checkpoint has nothing left in the way.
	if err := setup.Exec(ctx, "INSERT INTO log VALUES (99, 99)"); err != nil {
		t.Fatal(err)
	}
	if m := tableMemory(t, setup); m > 20<<20 {
		t.Fatalf("table memory %d bytes for four 3M-row tables: not compressed", m)
	}
}

// Watched tables reload as one swap with compression on, and the
// reloaded table is compressed.
func TestCompressionWatchReload(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	b := s3Bucket(t, srv, "cmp")
	put(t, b, "w/part-1.csv", partCSV(1, 20000))
	dir := t.TempDir()
	writeFile(t, dir, "10-load.sql", s3Secret(srv)+`
CREATE TABLE events AS FROM read_csv('s3://cmp/w/*.csv');
CREATE TABLE wide AS SELECT range AS i, (range % 7)::VARCHAR AS s FROM range(3000000);
`)
	p := startLuna(t, true, nil, "--init-sql", dir, "--watch-interval", "150ms")
	c := p.dial(t, client.Options{})
	// The startup SQL's tables are compressed before the first client.
	if m := tableMemory(t, c); m > 10<<20 {
		t.Fatalf("table memory %d after startup SQL", m)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var mu sync.Mutex
	seen := map[string]bool{}
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		r := p.dial(t, client.Options{})
		for ctx.Err() == nil {
			rows, err := r.Query(ctx, "SELECT count(*)::VARCHAR || ':' || count(DISTINCT part)::VARCHAR FROM events")
			var got string
			if err == nil {
				got, err = firstString(rows)
			}
			mu.Lock()
			if err != nil && ctx.Err() == nil && readErr == nil {
				readErr = err
			}
			if err == nil {
				seen[got] = true
			}
			mu.Unlock()
		}
	})
	put(t, b, "w/part-2.csv", partCSV(2, 20000))
	deadline := time.Now().Add(30 * time.Second)
	for scalar(t, c, "SELECT count(*) FROM events") != "40000" {
		if time.Now().After(deadline) {
			t.Fatalf("no reload:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	for s := range seen {
		if s != "20000:1" && s != "40000:2" {
			t.Fatalf("a reader saw a half-swapped table: %s (all: %v)", s, seen)
		}
	}
	if m := tableMemory(t, c); m > 10<<20 {
		t.Fatalf("table memory %d after the reload", m)
	}
}
