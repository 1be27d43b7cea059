package iceberg

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/iceberg-go"
)

// Files written without Parquet field ids (tables migrated from Hive or
// added with Spark's add_files) would read as all-NULL columns through
// read_parquet's field-id schema. Their footers are checked first; such
// files are read by column name through the table's name mapping, or the
// scan fails.

// nameMappingProperty is the table property holding the JSON name
// mapping (Iceberg spec, "Column Projection").
const nameMappingProperty = "schema.name-mapping.default"

// parquetColumns are a Parquet file's top-level columns as its footer
// has them.
type parquetColumns struct {
	names []string
	ids   []int // -1: the column has no field id
	rows  int64
}

// complete reports whether every top-level column has a field id.
func (c parquetColumns) complete() bool {
	for _, id := range c.ids {
		if id < 0 {
			return false
		}
	}
	return true
}

// footerKey names one version of a file. The inode is part of it because
// object-store files are hard links under a per-statement directory: the
// same cached object shows under a new path in every statement.
type footerKey struct {
	path       string // "" when dev and ino identify the file
	dev, ino   uint64
	size, mtim int64
}

const footerCacheMax = 4096

var footers = struct {
	sync.Mutex
	m map[footerKey]parquetColumns
}{m: map[footerKey]parquetColumns{}}

// readColumns reads a local Parquet file's footer (only the footer) for
// its top-level column names and field ids, cached per file version.
func readColumns(local string) (parquetColumns, error) {
	st, err := os.Stat(local)
	if err != nil {
		return parquetColumns{}, err
	}
	key := footerKey{path: local, size: st.Size(), mtim: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		key.path, key.dev, key.ino = "", uint64(sys.Dev), uint64(sys.Ino)
	}
	footers.Lock()
	c, ok := footers.m[key]
	footers.Unlock()
	if ok {
		return c, nil
	}
	r, err := file.OpenParquetFile(local, false)
	if err != nil {
		return parquetColumns{}, err
	}
	defer r.Close()
	root := r.MetaData().Schema.Root()
	c = parquetColumns{names: make([]string, root.NumFields()), ids: make([]int, root.NumFields()), rows: r.NumRows()}
	for i := range root.NumFields() {
		f := root.Field(i)
		c.names[i], c.ids[i] = f.Name(), int(f.FieldID())
	}
	footers.Lock()
	if len(footers.m) >= footerCacheMax {
		clear(footers.m)
	}
	footers.m[key] = c
	footers.Unlock()
	return c, nil
}

// nameMapping is the table's name mapping, nil when it has none.
func (t *Table) nameMapping() (iceberg.NameMapping, error) {
	raw, ok := t.meta.Properties[nameMappingProperty]
	if !ok {
		return nil, nil
	}
	var nm iceberg.NameMapping
	if err := json.Unmarshal([]byte(raw), &nm); err != nil {
		return nil, fmt.Errorf("%s: table property %s of %s is not a valid name mapping: %w", t.fn, nameMappingProperty, t.path, err)
	}
	return nm, nil
}

// columnsByID resolves a file's top-level columns to field ids: a
// column's own field id, else the name mapping's id for its name. Columns
// neither names are not part of the table. It returns field id →
// physical column name.
func columnsByID(cols parquetColumns, nm iceberg.NameMapping) (map[int]string, error) {
	out := map[int]string{}
	for i, name := range cols.names {
		id := cols.ids[i]
		if id < 0 {
			id = mappedID(nm, name)
		}
		if id < 0 {
			continue
		}
		if prev, dup := out[id]; dup {
			return nil, fmt.Errorf("columns \"%s\" and \"%s\" both map to field id %d", prev, name, id)
		}
		out[id] = name
	}
	return out, nil
}

// mappedID is the field id the mapping gives a top-level name, or -1.
// Names match exactly, as the spec has them.
func mappedID(nm iceberg.NameMapping, name string) int {
	for _, f := range nm {
		for _, n := range f.Names {
			if n == name && f.FieldID != nil {
				return *f.FieldID
			}
		}
	}
	return -1
}

// Field ids of a position delete file's columns (Iceberg spec).
const (
	posFileID = 2147483546
	posPosID  = 2147483545
)

// checkFieldIDs reads the footers of the files a scan reads and marks
// those without Parquet field ids to be read by name. It fails, naming
// the file, when such a file cannot be mapped: reading it by field id
// would give NULL columns, never an error. It returns the number of data
// files read by name.
func (t *Table) checkFieldIDs(data []dataFile, posDels, eqDels []deleteFile) (int, error) {
	var nm iceberg.NameMapping
	loaded := false
	mapping := func(what, uri string) (iceberg.NameMapping, error) {
		if !loaded {
			var err error
			if nm, err = t.nameMapping(); err != nil {
				return nil, err
			}
			loaded = true
		}
		if nm == nil {
			return nil, fmt.Errorf("%s: %s %s has no Parquet field ids and table %s has no %s property to map its columns by name, which is not supported",
				t.fn, what, uri, t.path, nameMappingProperty)
		}
		return nm, nil
	}
	footer := func(local, uri string) (parquetColumns, error) {
		c, err := readColumns(local)
		if err != nil {
			return c, fmt.Errorf("%s: reading the Parquet footer of %s: %w", t.fn, uri, err)
		}
		return c, nil
	}
	n := 0
	for i, d := range data {
		cols, err := footer(d.local, d.uri)
		if err != nil {
			return 0, err
		}
		if cols.complete() {
			continue
		}
		nm, err := mapping("data file", d.uri)
		if err != nil {
			return 0, err
		}
		if data[i].byName, err = columnsByID(cols, nm); err != nil {
			return 0, fmt.Errorf("%s: data file %s: %w", t.fn, d.uri, err)
		}
		n++
	}
	for i, d := range posDels {
		cols, err := footer(d.local, d.uri)
		if err != nil {
			return 0, err
		}
		if cols.complete() {
			continue
		}
		// The spec fixes these columns' names, so no mapping is needed.
		byName, _ := columnsByID(cols, iceberg.NameMapping{
			{Names: []string{"file_path"}, FieldID: ptr(posFileID)}, {Names: []string{"pos"}, FieldID: ptr(posPosID)}})
		if byName[posFileID] != "file_path" || byName[posPosID] != "pos" {
			return 0, fmt.Errorf("%s: position delete file %s has no Parquet field ids and no file_path and pos columns", t.fn, d.uri)
		}
		posDels[i].byName = byName
	}
	for i, d := range eqDels {
		cols, err := footer(d.local, d.uri)
		if err != nil {
			return 0, err
		}
		if cols.complete() {
			continue
		}
		nm, err := mapping("equality delete file", d.uri)
		if err != nil {
			return 0, err
		}
		byName, err := columnsByID(cols, nm)
		if err != nil {
			return 0, fmt.Errorf("%s: equality delete file %s: %w", t.fn, d.uri, err)
		}
		for _, id := range d.eqIDs {
			// A missing key column would read as NULL and delete the
			// rows whose column is NULL.
			if _, ok := byName[id]; !ok {
				return 0, fmt.Errorf("%s: equality delete file %s has no column for field id %d by Parquet field id or name mapping", t.fn, d.uri, id)
			}
		}
		eqDels[i].byName = byName
	}
	return n, nil
}

func ptr(v int) *int { return &v }
