// Command iceberg-write creates small Iceberg test tables with Apache
// iceberg-go v0.7.0 and records the rows that iceberg-go's own scan returns
// for them, so Luna's iceberg_scan (built on an older iceberg-go) can be
// checked against an independent writer and reader.
//
// It is a separate Go module because iceberg-go v0.7.0 needs a newer
// arrow-go than the one Luna's main module is pinned to; the main module
// never imports it.
//
// Usage:
//
//	iceberg-write <scenario> <dir>   one scenario, table under <dir>/db/<scenario>
//	iceberg-write all <dir>          every scenario, each in <dir>/<scenario>/
//	iceberg-write list               scenario names
//
// Tables go into a Hadoop-catalog warehouse rooted at the scenario
// directory (namespace "db"): metadata/vN.metadata.json plus
// metadata/version-hint.text, Parquet data, Avro manifests, all on the local
// filesystem. iceberg-go's Hadoop catalog records locations as plain
// absolute paths (no file:// scheme).
//
// Next to each table it writes <dir>/<scenario>.expected.json:
//
//	{"scenario": "...", "table": "<table dir holding metadata/>",
//	 "format_version": N, "snapshot_id": <current>,
//	 "columns": [...], "rows": [[...], ...],
//	 "snapshots": [{"snapshot_id": N, "sequence_number": N, "operation": "...",
//	                "columns": [...], "rows": [[...], ...]}, ...]}
//
// "rows" is the current snapshot; "snapshots" lists every snapshot, oldest
// first, each scanned by id (with that snapshot's schema, so columns can
// differ). Values: integers as JSON numbers, strings as strings, timestamps
// as RFC 3339 UTC text with six fractional digits
// ("2024-03-01T10:00:00.000000Z", also for timestamps without time zone),
// dates as YYYY-MM-DD, NULL as null. Rows are sorted column by column:
// NULL first, numbers numerically, everything else as text.
//
// Scenarios and what each proves:
//
//   - day_null, hour_null, month_null: format v2, (id long required,
//     ts timestamp, v string) partitioned by day(ts) / hour(ts) / month(ts),
//     two appends; some rows have a NULL ts, so a manifest partition value
//     is NULL. A reader must not assume partition values are non-null.
//   - eq_partitioned: v2, identity(grp). Data (grp,id,v): (a,5,555) (a,7,70)
//     (b,5,50) (b,7,77); then one row delta with two equality-delete files
//     keyed on id only: the grp=a file deletes id 7, the grp=b file deletes
//     id 5 (each file holds only the id column; grp is its partition value).
//     Answer: (a,5,555) (b,7,77). A reader that applies equality deletes
//     across partitions returns nothing. A last append adds (a,9,900).
//   - eq_specs: v2 with partition-spec evolution. Two unpartitioned (spec 0)
//     appends, a global (spec 0) equality delete of id 2 that removes id 2
//     from both older files; the spec then becomes identity(grp), an append
//     adds rows including id 2 again (newer sequence number, so it survives)
//     and id 3 in grp a and b, then an equality delete of id 3 in partition
//     grp=a only removes (3,a) from the spec 1 file: the spec 0 row (3,a,30)
//     survives because a partitioned delete applies only to data files of
//     the same spec and partition, and (3,b,32) survives as well.
//   - bucket_pos: v2, bucket(4, id), write.delete.mode=merge-on-read: a
//     delete writes position-delete files; then the schema evolves (v renamed
//     to amount, column note added), another append, and another
//     merge-on-read delete on a file written with the new schema. Older
//     snapshots are read with their own schema.
//   - v3_dv: format v3, unpartitioned, merge-on-read: two data files, one
//     delete commit removing rows from both (a deletion vector per file in a
//     Puffin file, deletion-vector-v1 blobs), then a second delete on the
//     first file, which replaces that file's deletion vector with a merged
//     one (the old one is marked DELETED in the manifest).
//   - v3_dv_partitioned: the same with identity(grp).
//   - v1_basic: format v1, identity(grp), two appends.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "iceberg-write:", err)
		os.Exit(1)
	}
}

func usage() error {
	return errors.New("usage: iceberg-write <scenario>|all <dir> | iceberg-write list")
}

func run(ctx context.Context, args []string) error {
	if len(args) == 1 && args[0] == "list" {
		for _, name := range scenarioNames() {
			fmt.Println(name)
		}
		return nil
	}
	if len(args) != 2 {
		return usage()
	}
	name, dir := args[0], args[1]
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", args[1], err)
	}
	if name == "all" {
		for _, n := range scenarioNames() {
			if err := runScenario(ctx, n, filepath.Join(dir, n)); err != nil {
				return err
			}
		}
		return nil
	}
	if _, ok := scenarios[name]; !ok {
		return fmt.Errorf("unknown scenario %q (have: all, %v)", name, scenarioNames())
	}
	return runScenario(ctx, name, dir)
}

func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runScenario builds one scenario's table under dir, scans it and writes
// dir/<name>.expected.json.
func runScenario(ctx context.Context, name, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	w, err := newWarehouse(ctx, dir)
	if err != nil {
		return fmt.Errorf("scenario %s: %w", name, err)
	}
	tbl, err := scenarios[name](ctx, w, name)
	if err != nil {
		return fmt.Errorf("scenario %s: building table: %w", name, err)
	}
	exp, err := expectedFor(ctx, name, tbl)
	if err != nil {
		return fmt.Errorf("scenario %s: scanning table: %w", name, err)
	}
	out := filepath.Join(dir, name+".expected.json")
	if err := writeJSON(out, exp); err != nil {
		return fmt.Errorf("scenario %s: %w", name, err)
	}
	fmt.Printf("%s\t%s\n", name, exp.Table)
	return nil
}
