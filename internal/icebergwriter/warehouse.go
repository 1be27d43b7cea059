package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/hadoop"
	"github.com/apache/iceberg-go/table"
)

const namespace = "db"

// warehouse is a local Hadoop-catalog warehouse with one namespace.
type warehouse struct {
	cat *hadoop.Catalog
}

func newWarehouse(ctx context.Context, dir string) (*warehouse, error) {
	cat, err := hadoop.NewCatalog("local", dir, iceberg.Properties{})
	if err != nil {
		return nil, fmt.Errorf("opening hadoop catalog at %s: %w", dir, err)
	}
	if err := cat.CreateNamespace(ctx, table.Identifier{namespace}, nil); err != nil {
		return nil, fmt.Errorf("creating namespace %s in %s: %w", namespace, dir, err)
	}
	return &warehouse{cat: cat}, nil
}

// create makes table db.<name> with the given format version and spec
// (nil: unpartitioned) plus extra table properties.
func (w *warehouse) create(ctx context.Context, name string, formatVersion int, sc *iceberg.Schema, spec *iceberg.PartitionSpec, props iceberg.Properties) (*table.Table, error) {
	p := iceberg.Properties{table.PropertyFormatVersion: fmt.Sprint(formatVersion)}
	for k, v := range props {
		p[k] = v
	}
	opts := []catalog.CreateTableOpt{catalog.WithProperties(p)}
	if spec != nil {
		opts = append(opts, catalog.WithPartitionSpec(spec))
	}
	tbl, err := w.cat.CreateTable(ctx, table.Identifier{namespace, name}, sc, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating table %s.%s: %w", namespace, name, err)
	}
	return tbl, nil
}

// batch decodes rows given as a JSON array of objects into an Arrow record
// with the Arrow form of sc (no field ids; iceberg-go matches by name).
func batch(sc *iceberg.Schema, rows string) (arrow.RecordBatch, error) {
	asc, err := table.SchemaToArrowSchema(sc, nil, false, false)
	if err != nil {
		return nil, fmt.Errorf("converting schema to arrow: %w", err)
	}
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, asc, strings.NewReader(rows))
	if err != nil {
		return nil, fmt.Errorf("decoding rows %s: %w", rows, err)
	}
	return rec, nil
}

// appendRows commits one append of rows (JSON objects) to tbl using the
// table's current schema.
func appendRows(ctx context.Context, tbl *table.Table, rows string) (*table.Table, error) {
	rec, err := batch(tbl.Schema(), rows)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		return nil, fmt.Errorf("making record reader: %w", err)
	}
	defer rdr.Release()
	next, err := tbl.Append(ctx, rdr, nil)
	if err != nil {
		return nil, fmt.Errorf("appending %s: %w", rows, err)
	}
	return next, nil
}

// deleteWhere commits a row-level delete; the table's write.delete.mode
// decides between rewriting files and merge-on-read delete files.
func deleteWhere(ctx context.Context, tbl *table.Table, filter iceberg.BooleanExpression) (*table.Table, error) {
	next, err := tbl.Delete(ctx, filter, nil)
	if err != nil {
		return nil, fmt.Errorf("deleting %s: %w", filter, err)
	}
	return next, nil
}

// equalityDelete commits one row delta holding the equality-delete files
// iceberg-go writes for rows (JSON objects over the columns of keyCols plus
// the partition source columns), keyed on keyCols. iceberg-go writes one
// file per partition of the table's current spec.
func equalityDelete(ctx context.Context, tbl *table.Table, keyCols []string, extraCols []string, rows string) (*table.Table, error) {
	sc := tbl.Schema()
	ids := make([]int, 0, len(keyCols))
	for _, c := range keyCols {
		f, ok := sc.FindFieldByName(c)
		if !ok {
			return nil, fmt.Errorf("equality key column %s not in schema", c)
		}
		ids = append(ids, f.ID)
	}
	recSchema, err := sc.Select(true, append(append([]string{}, keyCols...), extraCols...)...)
	if err != nil {
		return nil, fmt.Errorf("selecting delete columns: %w", err)
	}
	rec, err := batch(recSchema, rows)
	if err != nil {
		return nil, err
	}
	defer rec.Release()

	tx := tbl.NewTransaction()
	files, err := tx.WriteEqualityDeletes(ctx, ids, func(yield func(arrow.RecordBatch, error) bool) {
		yield(rec, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("writing equality deletes %s: %w", rows, err)
	}
	if err := tx.NewRowDelta(nil).AddDeletes(files...).Commit(ctx); err != nil {
		return nil, fmt.Errorf("staging row delta: %w", err)
	}
	next, err := tx.Commit(ctx)
	if err != nil {
		return nil, fmt.Errorf("committing equality deletes: %w", err)
	}
	return next, nil
}
