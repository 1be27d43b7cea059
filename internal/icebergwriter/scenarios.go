package main

import (
	"context"
	"fmt"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// buildFunc creates and fills the scenario's table db.<name> and returns
// its final state.
type buildFunc func(ctx context.Context, w *warehouse, name string) (*table.Table, error)

// scenarios is documented in the package comment.
var scenarios = map[string]buildFunc{
	"day_null":          timeNull(iceberg.DayTransform{}, "ts_day"),
	"hour_null":         timeNull(iceberg.HourTransform{}, "ts_hour"),
	"month_null":        timeNull(iceberg.MonthTransform{}, "ts_month"),
	"eq_partitioned":    eqPartitioned,
	"eq_specs":          eqSpecs,
	"bucket_pos":        bucketPos,
	"v3_dv":             v3DV(false),
	"v3_dv_partitioned": v3DV(true),
	"v1_basic":          v1Basic,
}

// Partition field ids start at 1000, the convention Iceberg writers follow.
const firstPartitionFieldID = 1000

func spec(fields ...iceberg.PartitionField) *iceberg.PartitionSpec {
	for i := range fields {
		fields[i].FieldID = firstPartitionFieldID + i
	}
	s := iceberg.NewPartitionSpec(fields...)
	return &s
}

func field(sourceID int, name string, tr iceberg.Transform) iceberg.PartitionField {
	return iceberg.PartitionField{SourceIDs: []int{sourceID}, Name: name, Transform: tr}
}

func timeNull(tr iceberg.Transform, partName string) buildFunc {
	return func(ctx context.Context, w *warehouse, name string) (*table.Table, error) {
		sc := iceberg.NewSchema(0,
			iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
			iceberg.NestedField{ID: 2, Name: "ts", Type: iceberg.PrimitiveTypes.Timestamp},
			iceberg.NestedField{ID: 3, Name: "v", Type: iceberg.PrimitiveTypes.String},
		)
		tbl, err := w.create(ctx, name, 2, sc, spec(field(2, partName, tr)), nil)
		if err != nil {
			return nil, err
		}
		// Rows straddle hour, day and month boundaries so every transform
		// yields several partitions, plus the NULL one.
		tbl, err = appendRows(ctx, tbl, `[
			{"id": 1, "ts": "2024-01-31T23:59:59.999999", "v": "jan31-late"},
			{"id": 2, "ts": "2024-02-01T00:00:00", "v": "feb01-midnight"},
			{"id": 3, "ts": "2024-02-01T00:30:00", "v": "feb01-0030"},
			{"id": 4, "ts": "2024-02-01T10:15:30.123456", "v": "feb01-1015"},
			{"id": 5, "ts": null, "v": "no-ts"},
			{"id": 6, "ts": "2024-03-15T12:00:00", "v": "mar15"}
		]`)
		if err != nil {
			return nil, err
		}
		return appendRows(ctx, tbl, `[
			{"id": 7, "ts": null, "v": null},
			{"id": 8, "ts": "2024-02-01T10:45:00", "v": "feb01-1045"}
		]`)
	}
}

func grpSchema() *iceberg.Schema {
	return iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: "grp", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 3, Name: "v", Type: iceberg.PrimitiveTypes.Int64},
	)
}

func eqPartitioned(ctx context.Context, w *warehouse, name string) (*table.Table, error) {
	tbl, err := w.create(ctx, name, 2, grpSchema(), spec(field(2, "grp", iceberg.IdentityTransform{})), nil)
	if err != nil {
		return nil, err
	}
	tbl, err = appendRows(ctx, tbl, `[
		{"grp": "a", "id": 5, "v": 555},
		{"grp": "a", "id": 7, "v": 70},
		{"grp": "b", "id": 5, "v": 50},
		{"grp": "b", "id": 7, "v": 77}
	]`)
	if err != nil {
		return nil, err
	}
	tbl, err = equalityDelete(ctx, tbl, []string{"id"}, []string{"grp"}, `[
		{"id": 7, "grp": "a"},
		{"id": 5, "grp": "b"}
	]`)
	if err != nil {
		return nil, err
	}
	return appendRows(ctx, tbl, `[{"grp": "a", "id": 9, "v": 900}]`)
}

func eqSpecs(ctx context.Context, w *warehouse, name string) (*table.Table, error) {
	tbl, err := w.create(ctx, name, 2, grpSchema(), nil, nil)
	if err != nil {
		return nil, err
	}
	tbl, err = appendRows(ctx, tbl, `[
		{"id": 1, "grp": "a", "v": 10},
		{"id": 2, "grp": "a", "v": 20},
		{"id": 3, "grp": "a", "v": 30}
	]`)
	if err != nil {
		return nil, err
	}
	tbl, err = appendRows(ctx, tbl, `[
		{"id": 2, "grp": "b", "v": 22},
		{"id": 4, "grp": "b", "v": 40}
	]`)
	if err != nil {
		return nil, err
	}
	// Spec 0 is unpartitioned, so this delete is global.
	tbl, err = equalityDelete(ctx, tbl, []string{"id"}, nil, `[{"id": 2}]`)
	if err != nil {
		return nil, err
	}

	tx := tbl.NewTransaction()
	if err := tx.UpdateSpec(true).AddIdentity("grp").Commit(); err != nil {
		return nil, fmt.Errorf("adding identity(grp) to the spec: %w", err)
	}
	if tbl, err = tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing spec update: %w", err)
	}

	tbl, err = appendRows(ctx, tbl, `[
		{"id": 2, "grp": "a", "v": 21},
		{"id": 3, "grp": "a", "v": 31},
		{"id": 3, "grp": "b", "v": 32},
		{"id": 5, "grp": "b", "v": 50}
	]`)
	if err != nil {
		return nil, err
	}
	return equalityDelete(ctx, tbl, []string{"id"}, []string{"grp"}, `[{"id": 3, "grp": "a"}]`)
}

func bucketPos(ctx context.Context, w *warehouse, name string) (*table.Table, error) {
	sc := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: "name", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 3, Name: "v", Type: iceberg.PrimitiveTypes.Int64},
	)
	tbl, err := w.create(ctx, name, 2, sc,
		spec(field(1, "id_bucket", iceberg.BucketTransform{NumBuckets: 4})),
		iceberg.Properties{table.WriteDeleteModeKey: table.WriteModeMergeOnRead})
	if err != nil {
		return nil, err
	}
	rows := "["
	for i := 1; i <= 20; i++ {
		if i > 1 {
			rows += ","
		}
		rows += fmt.Sprintf(`{"id": %d, "name": "n%02d", "v": %d}`, i, i, i*10)
	}
	rows += "]"
	if tbl, err = appendRows(ctx, tbl, rows); err != nil {
		return nil, err
	}
	if tbl, err = deleteWhere(ctx, tbl, iceberg.IsIn(iceberg.Reference("id"), int64(2), int64(5), int64(11), int64(16))); err != nil {
		return nil, err
	}

	tx := tbl.NewTransaction()
	err = tx.UpdateSchema(true, false).
		RenameColumn([]string{"v"}, "amount").
		AddColumn([]string{"note"}, iceberg.PrimitiveTypes.String, "", false, nil).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("evolving schema: %w", err)
	}
	if tbl, err = tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing schema update: %w", err)
	}

	tbl, err = appendRows(ctx, tbl, `[
		{"id": 21, "name": "n21", "amount": 210, "note": "after-evolution"},
		{"id": 22, "name": "n22", "amount": 220, "note": null},
		{"id": 23, "name": "n23", "amount": 230, "note": "x"},
		{"id": 24, "name": "n24", "amount": 240, "note": "y"},
		{"id": 25, "name": "n25", "amount": 250, "note": "z"},
		{"id": 26, "name": "n26", "amount": 260, "note": "w"}
	]`)
	if err != nil {
		return nil, err
	}
	return deleteWhere(ctx, tbl, iceberg.IsIn(iceberg.Reference("id"), int64(3), int64(22)))
}

func v3DV(partitioned bool) buildFunc {
	return func(ctx context.Context, w *warehouse, name string) (*table.Table, error) {
		var ps *iceberg.PartitionSpec
		if partitioned {
			ps = spec(field(2, "grp", iceberg.IdentityTransform{}))
		}
		tbl, err := w.create(ctx, name, 3, grpSchema(), ps,
			iceberg.Properties{table.WriteDeleteModeKey: table.WriteModeMergeOnRead})
		if err != nil {
			return nil, err
		}
		// Unpartitioned: one data file per append. Partitioned: each
		// append writes one file per group.
		tbl, err = appendRows(ctx, tbl, `[
			{"id": 1, "grp": "a", "v": 10},
			{"id": 2, "grp": "a", "v": 20},
			{"id": 3, "grp": "b", "v": 30},
			{"id": 4, "grp": "b", "v": 40},
			{"id": 5, "grp": "b", "v": 50}
		]`)
		if err != nil {
			return nil, err
		}
		tbl, err = appendRows(ctx, tbl, `[
			{"id": 6, "grp": "a", "v": 60},
			{"id": 7, "grp": "a", "v": 70},
			{"id": 8, "grp": "a", "v": 80},
			{"id": 9, "grp": "b", "v": 90},
			{"id": 10, "grp": "b", "v": 100}
		]`)
		if err != nil {
			return nil, err
		}
		// Hits both data files (and, partitioned, files of both groups).
		if tbl, err = deleteWhere(ctx, tbl, iceberg.IsIn(iceberg.Reference("id"), int64(2), int64(4), int64(7), int64(9))); err != nil {
			return nil, err
		}
		// A second delete on the first file: its deletion vector is
		// replaced by one holding both deletes.
		return deleteWhere(ctx, tbl, iceberg.EqualTo(iceberg.Reference("id"), int64(5)))
	}
}

func v1Basic(ctx context.Context, w *warehouse, name string) (*table.Table, error) {
	tbl, err := w.create(ctx, name, 1, grpSchema(), spec(field(2, "grp", iceberg.IdentityTransform{})), nil)
	if err != nil {
		return nil, err
	}
	tbl, err = appendRows(ctx, tbl, `[
		{"id": 1, "grp": "a", "v": 10},
		{"id": 2, "grp": "b", "v": 20},
		{"id": 3, "grp": null, "v": 30}
	]`)
	if err != nil {
		return nil, err
	}
	return appendRows(ctx, tbl, `[
		{"id": 4, "grp": "a", "v": 40},
		{"id": 5, "grp": "c", "v": null}
	]`)
}
