package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
	"github.com/lunadb/luna/server/sqltext"
)

// Tables written by Apache iceberg-go v0.7.0 (internal/icebergwriter,
// built by scripts/tools.sh), read through Luna and compared with the
// rows iceberg-go's own scan gave for each snapshot.

// writerExpected is an <scenario>.expected.json file.
type writerExpected struct {
	Scenario      string   `json:"scenario"`
	Table         string   `json:"table"`
	FormatVersion int      `json:"format_version"`
	Columns       []string `json:"columns"`
	Rows          [][]any  `json:"rows"`
	Snapshots     []struct {
		SnapshotID int64    `json:"snapshot_id"`
		Operation  string   `json:"operation"`
		Columns    []string `json:"columns"`
		Rows       [][]any  `json:"rows"`
	} `json:"snapshots"`
}

// icebergGoTables writes every scenario into a fresh directory.
func icebergGoTables(t *testing.T) map[string]writerExpected {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command(objstoretest.ToolPath(t, "iceberg-write"), "all", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("iceberg-write: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.expected.json"))
	if len(files) == 0 {
		t.Fatalf("iceberg-write wrote no tables:\n%s", out)
	}
	tables := map[string]writerExpected{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var e writerExpected
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		tables[e.Scenario] = e
	}
	return tables
}

// cellJSON gives a cell the form the writer's expected rows use.
func cellJSON(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Date32:
		return a.Value(i).ToTime().Format("2006-01-02")
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return a.Value(i).ToTime(unit).UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	return a.GetOneForMarshal(i)
}

// jsonRows queries and returns the rows as JSON values, sorted as the
// writer sorts them.
func jsonRows(t *testing.T, c *client.Conn, sql string) [][]any {
	t.Helper()
	rows, err := c.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		rec := rows.RecordBatch()
		for r := 0; r < int(rec.NumRows()); r++ {
			row := make([]any, rec.NumCols())
			for c := range row {
				row[c] = cellJSON(rec.Column(c), r)
			}
			out = append(out, row)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return normalizeRows(t, out)
}

// normalizeRows round-trips rows through JSON (so numbers compare alike)
// and sorts them.
func normalizeRows(t *testing.T, rows [][]any) [][]any {
	t.Helper()
	data, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b []any) int {
		for i := range a {
			if c := compareJSON(a[i], b[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	if out == nil {
		out = [][]any{}
	}
	return out
}

func compareJSON(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	x, ok1 := a.(float64)
	y, ok2 := b.(float64)
	if ok1 && ok2 {
		return cmp.Compare(x, y)
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func selectList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = `"` + strings.ReplaceAll(c, `"`, `""`) + `"`
	}
	return strings.Join(q, ", ")
}

func sameRows(t *testing.T, what string, got, want [][]any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(normalizeRows(t, want))
	if string(g) != string(w) {
		t.Errorf("%s:\nluna      %s\niceberg-go %s", what, g, w)
	}
}

func TestIcebergTablesFromIcebergGo(t *testing.T) {
	tables := icebergGoTables(t)
	p := startLuna(t, true, nil)
	c := p.dial(t, client.Options{})
	// A second client whose session must outlive anything the first one
	// sends.
	other := p.dial(t, client.Options{})

	for _, name := range []string{"day_null", "hour_null", "month_null", "eq_partitioned", "eq_specs", "bucket_pos", "v3_dv", "v3_dv_partitioned", "v1_basic"} {
		e, ok := tables[name]
		if !ok {
			t.Errorf("iceberg-write made no %s table", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			tbl := sqltext.Quote(e.Table)
			sameRows(t, "current snapshot", jsonRows(t, c, fmt.Sprintf("SELECT %s FROM iceberg_scan(%s)", selectList(e.Columns), tbl)), e.Rows)
			for _, s := range e.Snapshots {
				sql := fmt.Sprintf("SELECT %s FROM iceberg_scan(%s, snapshot_from_id = %d)", selectList(s.Columns), tbl, s.SnapshotID)
				sameRows(t, fmt.Sprintf("snapshot %d (%s)", s.SnapshotID, s.Operation), jsonRows(t, c, sql), s.Rows)
			}
			// SELECT * too: the crash was on exactly that.
			wantRows(t, other, fmt.Sprintf("SELECT count(*) FROM (SELECT * FROM iceberg_scan(%s))", tbl), fmt.Sprint(len(e.Rows)))
		})
	}

	// The query from the report, with pruning filters in play.
	if e, ok := tables["eq_partitioned"]; ok {
		wantRows(t, c, "SELECT grp, id, v FROM iceberg_scan("+sqltext.Quote(e.Table)+") WHERE id IN (5, 7) ORDER BY grp, id",
			"a|5|555", "b|7|77")
		wantRows(t, c, "SELECT grp, id, v FROM iceberg_scan("+sqltext.Quote(e.Table)+") WHERE grp = 'b' ORDER BY id", "b|7|77")
	}
	if e, ok := tables["day_null"]; ok {
		nulls := 0
		for _, r := range e.Rows {
			for i, col := range e.Columns {
				if col == "ts" && r[i] == nil {
					nulls++
				}
			}
		}
		wantRows(t, c, "SELECT count(*) FROM iceberg_scan("+sqltext.Quote(e.Table)+") WHERE ts IS NULL", fmt.Sprint(nulls))
		// A filter on the partition source column prunes by bounds; the
		// NULL partition's file must neither crash it nor be lost.
		wantRows(t, c, "SELECT count(*) > 0 FROM iceberg_scan("+sqltext.Quote(e.Table)+") WHERE ts >= TIMESTAMP '2000-01-01'", "true")
		wantRows(t, c, "SELECT count(*) > 0 FROM iceberg_metadata("+sqltext.Quote(e.Table)+")", "true")
	}
	wantRows(t, other, "SELECT 42", "42")
}
