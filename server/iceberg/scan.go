package iceberg

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
)

// Filter is one "column op literal" conjunct of the query's WHERE clause
// on the scan; files whose partition values or column bounds rule it out
// are not read. DuckDB still applies the filter itself, so pruning only
// saves work.
type Filter struct {
	Column string // as written, matched case-insensitively
	Op     string // =, <, <=, >, >=
	Value  string // the literal's text (numbers) or content (strings)
	String bool   // the literal was a string (or DATE '…')
}

// Plan is what a scan reads, for logs and tests.
type Plan struct {
	DataFiles, PrunedFiles, PrunedManifests, PositionDeletes, EqualityDeletes int
	// DeletionVectors counts the vectors applied (format v3).
	DeletionVectors int
	// NameMapped counts data files without Parquet field ids, read by
	// column name through the table's name mapping.
	NameMapped int
}

type dataFile struct {
	uri   string // as recorded
	local string
	seq   int64
	// part numbers the file's partition (spec and values) within the
	// scan; equality deletes of a partitioned spec apply only to it.
	part int
	// byName is field id → column name for a file without Parquet field
	// ids; nil: the file is read by field id.
	byName map[int]string
}

type deleteFile struct {
	uri    string
	local  string
	seq    int64
	eqIDs  []int          // equality deletes
	part   int            // as dataFile's; globalPart: every partition
	byName map[int]string // as dataFile's
}

// globalPart is the part of an equality delete written under an
// unpartitioned spec, which applies to data files of every partition.
const globalPart = -1

// Scan is iceberg_scan: a parenthesized query that reads the snapshot.
func (t *Table) Scan(ctx context.Context, filters []Filter) (string, Plan, error) {
	var plan Plan
	fields := t.schema.Fields()
	for _, f := range fields {
		if _, err := duckType(f.Type); err != nil {
			return "", plan, fmt.Errorf("%s: column \"%s\": %w", t.fn, f.Name, err)
		}
	}
	list, err := t.manifests(ctx)
	if err != nil {
		return "", plan, err
	}
	specs := map[int]iceberg.PartitionSpec{}
	for _, s := range t.meta.PartitionSpecs {
		specs[s.ID()] = s
	}
	var data []dataFile
	var posDels, eqDels []deleteFile
	var dvs []deletionVector
	parts := map[string]int{}
	partOf := func(specID int, fi fileInfo) int {
		k := fmt.Sprintf("%d/%s", specID, fi.partition)
		n, ok := parts[k]
		if !ok {
			n = len(parts)
			parts[k] = n
		}
		return n
	}
	for _, m := range list {
		if err := ctx.Err(); err != nil {
			return "", plan, context.Cause(ctx)
		}
		isData := m.ManifestContent() == iceberg.ManifestContentData
		if isData && !t.manifestMayMatch(m, specs, filters) {
			plan.PrunedManifests++
			continue
		}
		es, err := t.entries(ctx, m, true)
		if err != nil {
			return "", plan, err
		}
		specID := int(m.PartitionSpecID())
		spec, ok := specs[specID]
		if !ok {
			return "", plan, fmt.Errorf("%s: manifest %s names partition spec %d, which the table metadata does not have", t.fn, m.FilePath(), specID)
		}
		for _, e := range es {
			df := e.DataFile()
			fi, err := readFileInfo(df)
			if err != nil {
				return "", plan, fmt.Errorf("%s: manifest %s: %w", t.fn, m.FilePath(), err)
			}
			if df.ContentType() == iceberg.EntryContentPosDeletes && strings.EqualFold(string(df.FileFormat()), "puffin") {
				dv, err := t.deletionVector(df, e.SequenceNum())
				if err != nil {
					return "", plan, err
				}
				dvs = append(dvs, dv)
				continue
			}
			if df.FileFormat() != iceberg.ParquetFile {
				what := "data file"
				if df.ContentType() != iceberg.EntryContentData {
					what = "delete file"
				}
				return "", plan, fmt.Errorf("%s: %s %s is in %s format; only PARQUET is supported", t.fn, what, df.FilePath(), df.FileFormat())
			}
			switch df.ContentType() {
			case iceberg.EntryContentData:
				if col := t.missingPartitionColumn(fi, spec); col != "" {
					// Reading it by field id would give NULLs, not the
					// partition's value.
					return "", plan, fmt.Errorf("%s: data file %s does not store its partition column \"%s\" (a migrated table?), which is not supported", t.fn, df.FilePath(), col)
				}
				if !t.fileMayMatch(fi, filters) {
					plan.PrunedFiles++
					continue
				}
				data = append(data, dataFile{uri: df.FilePath(), seq: e.SequenceNum(), part: partOf(specID, fi)})
			case iceberg.EntryContentPosDeletes:
				posDels = append(posDels, deleteFile{uri: df.FilePath(), seq: e.SequenceNum()})
			case iceberg.EntryContentEqDeletes:
				ids := df.EqualityFieldIDs()
				if len(ids) == 0 {
					return "", plan, fmt.Errorf("%s: equality delete file %s names no equality columns", t.fn, df.FilePath())
				}
				// Iceberg spec, "Scan Planning": an equality delete applies
				// to data files of its own spec and partition, unless its
				// spec is unpartitioned.
				part := globalPart
				if spec.NumFields() > 0 {
					part = partOf(specID, fi)
				}
				eqDels = append(eqDels, deleteFile{uri: df.FilePath(), seq: e.SequenceNum(), eqIDs: ids, part: part})
			default:
				return "", plan, fmt.Errorf("%s: manifest entry content %d in %s is not supported", t.fn, df.ContentType(), m.FilePath())
			}
		}
	}
	plan.DataFiles, plan.PositionDeletes, plan.EqualityDeletes = len(data), len(posDels), len(eqDels)
	if len(data) == 0 {
		return t.emptyScan(), plan, nil
	}
	// A delete file only matters if some data file is older than it.
	minSeq := int64(math.MaxInt64)
	for _, d := range data {
		minSeq = min(minSeq, d.seq)
	}
	posDels = keep(posDels, func(d deleteFile) bool { return d.seq >= minSeq })
	eqDels = keep(eqDels, func(d deleteFile) bool { return d.seq > minSeq })
	// A deletion vector applies to its data file when that file is read
	// and is not newer than the vector.
	dataSeq := make(map[string]int64, len(data))
	for _, d := range data {
		dataSeq[d.uri] = d.seq
	}
	var liveDVs []deletionVector
	for _, dv := range dvs {
		if seq, ok := dataSeq[dv.ref]; ok && dv.seq >= seq {
			liveDVs = append(liveDVs, dv)
		}
	}
	plan.DeletionVectors = len(liveDVs)

	uris := make([]string, 0, len(data)+len(posDels)+len(eqDels)+len(liveDVs))
	for _, d := range data {
		uris = append(uris, t.resolve(d.uri))
	}
	for _, d := range posDels {
		uris = append(uris, t.resolve(d.uri))
	}
	for _, d := range eqDels {
		uris = append(uris, t.resolve(d.uri))
	}
	for _, dv := range liveDVs {
		uris = append(uris, t.resolve(dv.uri))
	}
	locals, err := t.files.LocalAll(ctx, uris)
	if err != nil {
		return "", plan, err
	}
	for i := range data {
		data[i].local = locals[i]
	}
	for i := range posDels {
		posDels[i].local = locals[len(data)+i]
	}
	for i := range eqDels {
		eqDels[i].local = locals[len(data)+len(posDels)+i]
	}
	for i := range liveDVs {
		liveDVs[i].local = locals[len(data)+len(posDels)+len(eqDels)+i]
	}
	if plan.NameMapped, err = t.checkFieldIDs(data, posDels, eqDels); err != nil {
		return "", plan, err
	}
	var dvFile string
	if len(liveDVs) > 0 {
		rows := make(map[string]int64, len(data))
		for _, d := range data {
			c, err := readColumns(d.local)
			if err != nil {
				return "", plan, fmt.Errorf("%s: reading %s: %w", t.fn, d.uri, err)
			}
			rows[d.uri] = c.rows
		}
		dir, err := t.files.Scratch()
		if err != nil {
			return "", plan, fmt.Errorf("%s: %w", t.fn, err)
		}
		if dvFile, err = t.writeDeletionVectors(ctx, liveDVs, rows, dir); err != nil {
			return "", plan, err
		}
	}
	sql, err := t.scanSQL(data, posDels, eqDels, dvFile)
	return sql, plan, err
}

func keep(ds []deleteFile, f func(deleteFile) bool) []deleteFile {
	var out []deleteFile
	for _, d := range ds {
		if f(d) {
			out = append(out, d)
		}
	}
	return out
}

func (t *Table) emptyScan() string {
	var cols []string
	for _, f := range t.schema.Fields() {
		typ, _ := duckType(f.Type)
		cols = append(cols, fmt.Sprintf("CAST(NULL AS %s) AS %s", typ, quoteIdent(f.Name)))
	}
	if len(cols) == 0 {
		return "(SELECT 1 WHERE false)"
	}
	return "(SELECT " + strings.Join(cols, ", ") + " WHERE false)"
}

// fieldType finds a field's type in the snapshot's schema or, for a
// column dropped since, in any schema of the table.
func (t *Table) fieldType(id int) (iceberg.NestedField, bool) {
	if f, ok := t.schema.FindFieldByID(id); ok {
		return f, true
	}
	for _, s := range t.meta.Schemas {
		if f, ok := s.FindFieldByID(id); ok {
			return f, true
		}
	}
	return iceberg.NestedField{}, false
}

func schemaEntry(id int, name, typ string) string {
	return fmt.Sprintf("%d: {name: %s, type: %s, default_value: NULL}", id, quoteString(name), quoteString(typ))
}

func fileList(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = quoteString(f)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Names of the scan's internal columns; the scan's result has the
// table's columns only.
const (
	colFile = "__iceberg_file"
	colSeq  = "__iceberg_seq"
	colPart = "__iceberg_part"
)

func (t *Table) scanSQL(data []dataFile, posDels, eqDels []deleteFile, dvFile string) (string, error) {
	fields := t.schema.Fields()
	var entries, visible []string
	var out []outCol
	colOf := map[int]string{}
	for _, f := range fields {
		typ, _ := duckType(f.Type)
		entries = append(entries, schemaEntry(f.ID, f.Name, typ))
		visible = append(visible, quoteIdent(f.Name))
		out = append(out, outCol{f.ID, f.Name, typ})
		colOf[f.ID] = quoteIdent(f.Name)
	}
	// Equality-delete columns the snapshot's schema no longer shows are
	// still read from the data files, under internal names.
	for _, d := range eqDels {
		for _, id := range d.eqIDs {
			if _, ok := colOf[id]; ok {
				continue
			}
			f, ok := t.fieldType(id)
			if !ok {
				return "", fmt.Errorf("%s: equality delete file %s names unknown field id %d", t.fn, d.uri, id)
			}
			typ, err := duckType(f.Type)
			if err != nil {
				return "", fmt.Errorf("%s: equality delete column \"%s\": %w", t.fn, f.Name, err)
			}
			name := fmt.Sprintf("__iceberg_eq_%d", id)
			entries = append(entries, schemaEntry(id, name, typ))
			out = append(out, outCol{id, name, typ})
			colOf[id] = quoteIdent(name)
		}
	}
	var byID []string
	for _, d := range data {
		if d.byName == nil {
			byID = append(byID, d.local)
		}
	}
	schema := "MAP {" + strings.Join(entries, ", ") + "}"
	positional := len(posDels) > 0 || dvFile != ""
	deletes := positional || len(eqDels) > 0
	if !deletes && len(byID) == len(data) {
		return fmt.Sprintf("(SELECT %s FROM read_parquet(%s, schema = %s))", strings.Join(visible, ", "), fileList(byID), schema), nil
	}

	// The rows to scan: files with field ids read through the schema map,
	// files without them by column name, one read per distinct mapping of
	// names, all with the same columns in the same order.
	var extraSel, extraOpt string
	if deletes {
		extraSel = fmt.Sprintf(", %s, file_row_number", quoteIdent(colFile))
		extraOpt = fmt.Sprintf(", filename = '%s', file_row_number = true", colFile)
	}
	var reads []string
	if len(byID) > 0 {
		names := make([]string, len(out))
		for i, c := range out {
			names[i] = quoteIdent(c.name)
		}
		reads = append(reads, fmt.Sprintf("SELECT %s%s FROM read_parquet(%s, schema = %s%s)",
			strings.Join(names, ", "), extraSel, fileList(byID), schema, extraOpt))
	}
	byNameFiles := map[string][]string{}
	var order []string
	for _, d := range data {
		if d.byName == nil {
			continue
		}
		sel := byNameSelect(out, d.byName)
		if _, ok := byNameFiles[sel]; !ok {
			order = append(order, sel)
		}
		byNameFiles[sel] = append(byNameFiles[sel], d.local)
	}
	for _, sel := range order {
		// No hive partitioning: a migrated table's key=value directories
		// must not add columns the table does not have.
		reads = append(reads, fmt.Sprintf("SELECT %s%s FROM read_parquet(%s, hive_partitioning = false, union_by_name = true%s)",
			sel, extraSel, fileList(byNameFiles[sel]), extraOpt))
	}
	rows := "(" + strings.Join(reads, " UNION ALL ") + ")"
	if !deletes {
		return fmt.Sprintf("(SELECT %s FROM %s AS __r)", strings.Join(visible, ", "), rows), nil
	}

	// Deletes become anti-joins. A position delete names a data file by
	// its recorded path: the small delete side is mapped to the local
	// file DuckDB's filename column shows, keeping only deletes at least
	// as new as the file. Equality deletes apply to rows of older files,
	// so data rows learn their file's sequence number first.
	var files []string
	for _, d := range data {
		files = append(files, fmt.Sprintf("(%s, %s, %d::BIGINT, %d::BIGINT)", quoteString(d.local), quoteString(d.uri), d.seq, d.part))
	}
	values := "(VALUES " + strings.Join(files, ", ") + ") AS __f(lpath, ipath, seq, part)"
	from := rows + " AS __r"
	if len(eqDels) > 0 {
		from = fmt.Sprintf("(SELECT __d.*, __f.seq AS %s, __f.part AS %s FROM %s AS __d JOIN %s ON __d.%s = __f.lpath) AS __r", colSeq, colPart, rows, values, colFile)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(SELECT %s FROM %s", strings.Join(visible, ", "), from)
	if positional {
		var parts []string
		for _, d := range posDels {
			if d.byName != nil {
				parts = append(parts, fmt.Sprintf("SELECT CAST(file_path AS VARCHAR) AS file_path, CAST(pos AS BIGINT) AS pos, %d::BIGINT AS seq FROM read_parquet(%s, hive_partitioning = false)",
					d.seq, quoteString(d.local)))
				continue
			}
			parts = append(parts, fmt.Sprintf("SELECT file_path, pos, %d::BIGINT AS seq FROM read_parquet(%s, schema = MAP {%s, %s})",
				d.seq, quoteString(d.local), schemaEntry(posFileID, "file_path", "VARCHAR"), schemaEntry(posPosID, "pos", "BIGINT")))
		}
		if dvFile != "" {
			parts = append(parts, fmt.Sprintf("SELECT file_path, pos, seq FROM read_parquet(%s, hive_partitioning = false)", quoteString(dvFile)))
		}
		fmt.Fprintf(&b, " ANTI JOIN (SELECT __f.lpath, __p.pos FROM (%s) AS __p JOIN %s ON __p.file_path = __f.ipath WHERE __p.seq >= __f.seq) AS __x ON __r.%s = __x.lpath AND __r.file_row_number = __x.pos",
			strings.Join(parts, " UNION ALL "), values, colFile)
	}
	// Equality deletes, grouped by the columns they compare and by
	// whether they are scoped to a partition.
	groups := map[string][]deleteFile{}
	var keys []string
	for _, d := range eqDels {
		ids := append([]int(nil), d.eqIDs...)
		sort.Ints(ids)
		k := fmt.Sprint(ids, d.part == globalPart)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		d.eqIDs = ids
		groups[k] = append(groups[k], d)
	}
	sort.Strings(keys)
	for n, k := range keys {
		g := groups[k]
		ids := g[0].eqIDs
		alias := fmt.Sprintf("__e%d", n)
		var sel, ents, match []string
		var keyCols []outCol
		for _, id := range ids {
			f, _ := t.fieldType(id)
			typ, _ := duckType(f.Type)
			name := fmt.Sprintf("__k%d", id)
			sel = append(sel, name)
			ents = append(ents, schemaEntry(id, name, typ))
			keyCols = append(keyCols, outCol{id, name, typ})
			match = append(match, fmt.Sprintf("%s.%s IS NOT DISTINCT FROM __r.%s", alias, name, colOf[id]))
		}
		if g[0].part != globalPart {
			match = append(match, fmt.Sprintf("%s.part = __r.%s", alias, colPart))
		}
		var parts []string
		for _, d := range g {
			if d.byName != nil {
				parts = append(parts, fmt.Sprintf("SELECT %s, %d::BIGINT AS seq, %d::BIGINT AS part FROM read_parquet(%s, hive_partitioning = false)",
					byNameSelect(keyCols, d.byName), d.seq, d.part, quoteString(d.local)))
				continue
			}
			parts = append(parts, fmt.Sprintf("SELECT %s, %d::BIGINT AS seq, %d::BIGINT AS part FROM read_parquet(%s, schema = MAP {%s})",
				strings.Join(sel, ", "), d.seq, d.part, quoteString(d.local), strings.Join(ents, ", ")))
		}
		fmt.Fprintf(&b, " ANTI JOIN (%s) AS %s ON %s AND %s.seq > __r.%s",
			strings.Join(parts, " UNION ALL "), alias, strings.Join(match, " AND "), alias, colSeq)
	}
	b.WriteString(")")
	return b.String(), nil
}

// outCol is a column a scan's row source yields.
type outCol struct {
	id        int
	name, typ string
}

// byNameSelect reads cols from a file by its column names: a column the
// file does not have is NULL (added after the file was written).
func byNameSelect(cols []outCol, byName map[int]string) string {
	sel := make([]string, len(cols))
	for i, c := range cols {
		src := "NULL"
		if phys, ok := byName[c.id]; ok {
			src = quoteIdent(phys)
		}
		sel[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", src, c.typ, quoteIdent(c.name))
	}
	return strings.Join(sel, ", ")
}

// duckType is the DuckDB type an Iceberg type reads as.
func duckType(t iceberg.Type) (string, error) {
	switch t := t.(type) {
	case iceberg.BooleanType:
		return "BOOLEAN", nil
	case iceberg.Int32Type:
		return "INTEGER", nil
	case iceberg.Int64Type:
		return "BIGINT", nil
	case iceberg.Float32Type:
		return "FLOAT", nil
	case iceberg.Float64Type:
		return "DOUBLE", nil
	case iceberg.DecimalType:
		return fmt.Sprintf("DECIMAL(%d, %d)", t.Precision(), t.Scale()), nil
	case iceberg.DateType:
		return "DATE", nil
	case iceberg.TimeType:
		return "TIME", nil
	case iceberg.TimestampType:
		return "TIMESTAMP", nil
	case iceberg.TimestampTzType:
		return "TIMESTAMP WITH TIME ZONE", nil
	case iceberg.StringType:
		return "VARCHAR", nil
	case iceberg.UUIDType:
		return "UUID", nil
	case iceberg.BinaryType, iceberg.FixedType:
		return "BLOB", nil
	}
	return "", fmt.Errorf("type %s is not supported", t)
}

// missingPartitionColumn names an identity partition column of the
// snapshot's schema that a data file's statistics show it does not store,
// or is "". Files without statistics are taken to store every column.
func (t *Table) missingPartitionColumn(fi fileInfo, spec iceberg.PartitionSpec) string {
	counts := fi.valueCounts
	if len(counts) == 0 {
		return ""
	}
	for pf := range spec.Fields() {
		if _, ok := pf.Transform.(iceberg.IdentityTransform); !ok {
			continue
		}
		f, ok := t.schema.FindFieldByID(pf.SourceID)
		if !ok {
			continue
		}
		if _, ok := counts[pf.SourceID]; !ok {
			return f.Name
		}
	}
	return ""
}

// --- pruning ---

// value is a comparable literal or bound.
type value struct {
	num   float64
	str   string
	isStr bool
}

func cmp(a, b value) int {
	if a.isStr {
		return strings.Compare(a.str, b.str)
	}
	switch {
	case a.num < b.num:
		return -1
	case a.num > b.num:
		return 1
	}
	return 0
}

// literal converts a filter's literal to the column type's domain; ok is
// false when it cannot be compared safely (then nothing is pruned).
func literal(f Filter, t iceberg.Type) (value, bool) {
	switch t.(type) {
	case iceberg.Int32Type, iceberg.Int64Type, iceberg.Float32Type, iceberg.Float64Type:
		if f.String {
			return value{}, false
		}
		x, err := strconv.ParseFloat(f.Value, 64)
		return value{num: x}, err == nil
	case iceberg.StringType:
		return value{str: f.Value, isStr: true}, f.String
	case iceberg.DateType:
		if !f.String {
			return value{}, false
		}
		d, err := time.Parse("2006-01-02", f.Value)
		return value{num: float64(d.Unix() / 86400)}, err == nil
	}
	return value{}, false
}

// decodeBound reads Iceberg's single-value binary form.
func decodeBound(b []byte, t iceberg.Type) (value, bool) {
	switch t.(type) {
	case iceberg.Int32Type, iceberg.DateType:
		if len(b) != 4 {
			return value{}, false
		}
		return value{num: float64(int32(binary.LittleEndian.Uint32(b)))}, true
	case iceberg.Int64Type:
		if len(b) != 8 {
			return value{}, false
		}
		return value{num: float64(int64(binary.LittleEndian.Uint64(b)))}, true
	case iceberg.Float32Type:
		if len(b) != 4 {
			return value{}, false
		}
		return value{num: float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))}, true
	case iceberg.Float64Type:
		if len(b) != 8 {
			return value{}, false
		}
		return value{num: math.Float64frombits(binary.LittleEndian.Uint64(b))}, true
	case iceberg.StringType:
		return value{str: string(b), isStr: true}, true
	}
	return value{}, false
}

// mayMatch reports whether some value in [lo, hi] can satisfy op lit.
func mayMatch(op string, lit, lo, hi value) bool {
	switch op {
	case "=":
		return cmp(lo, lit) <= 0 && cmp(lit, hi) <= 0
	case "<":
		return cmp(lo, lit) < 0
	case "<=":
		return cmp(lo, lit) <= 0
	case ">":
		return cmp(hi, lit) > 0
	case ">=":
		return cmp(hi, lit) >= 0
	}
	return true
}

func (t *Table) column(name string) (iceberg.NestedField, bool) {
	return t.schema.FindFieldByNameCaseInsensitive(name)
}

// manifestMayMatch checks the manifest's partition summaries of identity
// partition fields against the filters.
func (t *Table) manifestMayMatch(m iceberg.ManifestFile, specs map[int]iceberg.PartitionSpec, filters []Filter) bool {
	if len(filters) == 0 {
		return true
	}
	spec, ok := specs[int(m.PartitionSpecID())]
	sums := m.Partitions()
	if !ok || len(sums) == 0 {
		return true
	}
	i := 0
	for pf := range spec.Fields() {
		if i >= len(sums) {
			break
		}
		sum := sums[i]
		i++
		if _, ok := pf.Transform.(iceberg.IdentityTransform); !ok {
			continue
		}
		src, ok := t.schema.FindFieldByID(pf.SourceID)
		if !ok {
			continue
		}
		for _, f := range filters {
			if !strings.EqualFold(f.Column, src.Name) {
				continue
			}
			lit, ok := literal(f, src.Type)
			if !ok {
				continue
			}
			if sum.LowerBound == nil || sum.UpperBound == nil {
				if !sum.ContainsNull {
					continue
				}
				return false // only nulls: no comparison holds
			}
			lo, ok1 := decodeBound(*sum.LowerBound, src.Type)
			hi, ok2 := decodeBound(*sum.UpperBound, src.Type)
			if ok1 && ok2 && !mayMatch(f.Op, lit, lo, hi) {
				return false
			}
		}
	}
	return true
}

// fileMayMatch checks a data file's column bounds against the filters.
func (t *Table) fileMayMatch(fi fileInfo, filters []Filter) bool {
	if len(filters) == 0 {
		return true
	}
	los, his := fi.lower, fi.upper
	for _, f := range filters {
		col, ok := t.column(f.Column)
		if !ok {
			continue
		}
		lit, ok := literal(f, col.Type)
		if !ok {
			continue
		}
		lb, ok1 := los[col.ID]
		ub, ok2 := his[col.ID]
		if !ok1 || !ok2 {
			continue
		}
		if _, isStr := col.Type.(iceberg.StringType); isStr {
			// String bounds may be truncated: only the lower bound is
			// exact enough to compare.
			lo, _ := decodeBound(lb, col.Type)
			if f.Op == "=" || f.Op == "<" || f.Op == "<=" {
				if !mayMatch(f.Op, lit, lo, value{str: "\U0010FFFF", isStr: true}) {
					return false
				}
			}
			continue
		}
		lo, ok1 := decodeBound(lb, col.Type)
		hi, ok2 := decodeBound(ub, col.Type)
		if ok1 && ok2 && !mayMatch(f.Op, lit, lo, hi) {
			return false
		}
	}
	return true
}
