package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"
)

// expected is the content of <scenario>.expected.json.
type expected struct {
	Scenario      string          `json:"scenario"`
	Table         string          `json:"table"`
	FormatVersion int             `json:"format_version"`
	SnapshotID    int64           `json:"snapshot_id"`
	Columns       []string        `json:"columns"`
	Rows          [][]any         `json:"rows"`
	Snapshots     []snapshotState `json:"snapshots"`
}

type snapshotState struct {
	SnapshotID     int64    `json:"snapshot_id"`
	SequenceNumber int64    `json:"sequence_number"`
	Operation      string   `json:"operation"`
	Columns        []string `json:"columns"`
	Rows           [][]any  `json:"rows"`
}

// expectedFor scans tbl's current snapshot and every snapshot by id with
// iceberg-go's own reader.
func expectedFor(ctx context.Context, name string, tbl *table.Table) (*expected, error) {
	exp := &expected{
		Scenario:      name,
		Table:         tbl.Location(),
		FormatVersion: tbl.Metadata().Version(),
		Snapshots:     []snapshotState{},
	}
	if cur := tbl.CurrentSnapshot(); cur != nil {
		exp.SnapshotID = cur.SnapshotID
	}
	var err error
	if exp.Columns, exp.Rows, err = scanRows(ctx, tbl.Scan()); err != nil {
		return nil, fmt.Errorf("scanning current snapshot: %w", err)
	}
	for _, s := range tbl.Metadata().Snapshots() {
		cols, rows, err := scanRows(ctx, tbl.Scan(table.WithSnapshotID(s.SnapshotID)))
		if err != nil {
			return nil, fmt.Errorf("scanning snapshot %d: %w", s.SnapshotID, err)
		}
		st := snapshotState{SnapshotID: s.SnapshotID, SequenceNumber: s.SequenceNumber, Columns: cols, Rows: rows}
		if s.Summary != nil {
			st.Operation = string(s.Summary.Operation)
		}
		exp.Snapshots = append(exp.Snapshots, st)
	}
	return exp, nil
}

func scanRows(ctx context.Context, scan *table.Scan) ([]string, [][]any, error) {
	defer scan.Close()
	tbl, err := scan.ToArrowTable(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tbl.Release()

	sc := tbl.Schema()
	cols := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		cols[i] = f.Name
	}
	rows := [][]any{}
	rdr := array.NewTableReader(tbl, -1)
	defer rdr.Release()
	for rdr.Next() {
		rec := rdr.RecordBatch()
		for r := 0; r < int(rec.NumRows()); r++ {
			row := make([]any, rec.NumCols())
			for c := range row {
				v, err := jsonValue(rec.Column(c), r)
				if err != nil {
					return nil, nil, fmt.Errorf("column %s: %w", cols[c], err)
				}
				row[c] = v
			}
			rows = append(rows, row)
		}
	}
	if err := rdr.Err(); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(rows, compareRows)
	return cols, rows, nil
}

// jsonValue turns one Arrow cell into the value written to JSON.
func jsonValue(arr arrow.Array, i int) (any, error) {
	if arr.IsNull(i) {
		return nil, nil
	}
	switch a := arr.(type) {
	case *array.Int32:
		return int64(a.Value(i)), nil
	case *array.Int64:
		return a.Value(i), nil
	case *array.Float32:
		return float64(a.Value(i)), nil
	case *array.Float64:
		return a.Value(i), nil
	case *array.Boolean:
		return a.Value(i), nil
	case *array.String:
		return a.Value(i), nil
	case *array.LargeString:
		return a.Value(i), nil
	case *array.Date32:
		return a.Value(i).ToTime().Format("2006-01-02"), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC().Format("2006-01-02T15:04:05.000000Z"), nil
	default:
		return nil, fmt.Errorf("unsupported arrow type %s", arr.DataType())
	}
}

// compareRows orders rows column by column: NULL first, numbers
// numerically, everything else by its text.
func compareRows(a, b []any) int {
	for i := range a {
		if c := compareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	if x, ok := a.(int64); ok {
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	}
	if x, ok := number(a); ok {
		if y, ok := number(b); ok {
			return cmp.Compare(x, y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
