// Package iceberg turns iceberg_scan, iceberg_metadata and
// iceberg_snapshots calls into SQL that DuckDB runs without its iceberg
// extension. The table's metadata, manifest lists and manifests are read
// here with apache/iceberg-go; a scan becomes read_parquet over the
// snapshot's data files, with the snapshot's schema mapped by field id
// (so renamed, added and dropped columns read as that schema has them),
// position and equality deletes applied as anti-joins that respect
// sequence numbers, and files pruned by partition summaries and column
// bounds when the query filters on a column with a literal.
//
// Parameters and output columns are DuckDB's. What is not supported (ORC
// or Avro data files, nested columns, an unknown metadata codec) fails
// with an error that names it. Deletion vectors (format v3) are decoded
// here and joined like position deletes.
package iceberg

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
)

// MaxMetadataBytes caps a table metadata file, inflated: it is read and
// parsed whole, and a small gzip file can inflate to gigabytes. Real
// metadata files, thousands of snapshots included, stay well below.
const MaxMetadataBytes = 128 << 20

// ErrNotFound is wrapped by Files when a file does not exist.
var ErrNotFound = errors.New("file not found")

// Files gives local copies of a table's files. Paths are as the table
// metadata writes them (file:///…, /…, s3://…).
type Files interface {
	// Local returns a local path holding the file at uri.
	Local(ctx context.Context, uri string) (string, error)
	// LocalAll is Local for many files at once (data files).
	LocalAll(ctx context.Context, uris []string) ([]string, error)
	// Scratch is a private directory for files a scan derives (deletion
	// vectors as Parquet), kept until the statement ends.
	Scratch() (string, error)
}

// Options are the parameters DuckDB's iceberg functions share.
type Options struct {
	AllowMovedPaths   bool
	MetadataCodec     string // "" or "gzip"
	Version           string // "" or "?": version-hint.text
	VersionNameFormat string // default "v%s%s.metadata.json,%s%s.metadata.json"
	SnapshotID        *int64
	SnapshotTime      *time.Time
}

const defaultVersionNameFormat = "v%s%s.metadata.json,%s%s.metadata.json"

// Table is a table's metadata as of one snapshot.
type Table struct {
	fn       string // function name, for errors
	path     string // as the user wrote it
	root     string // the table directory the user named
	meta     *tableMetadata
	snapshot *Snapshot // nil: the table has no snapshot
	schema   *iceberg.Schema
	opts     Options
	files    Files
}

// Open reads the table's metadata and picks the snapshot.
func Open(ctx context.Context, fn string, files Files, p string, o Options) (*Table, error) {
	if o.VersionNameFormat == "" {
		o.VersionNameFormat = defaultVersionNameFormat
	}
	codecExt := ""
	switch strings.ToLower(o.MetadataCodec) {
	case "", "none":
	case "gzip":
		codecExt = ".gz"
	default:
		return nil, fmt.Errorf("%s: metadata_compression_codec '%s' is not supported (supported: gzip)", fn, o.MetadataCodec)
	}
	t := &Table{fn: fn, path: p, opts: o, files: files}
	p = strings.TrimRight(p, "/")
	var metaPath string
	if strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".json.gz") {
		metaPath = p
		t.root = parentDir(parentDir(p))
	} else {
		t.root = p
		version := o.Version
		if version == "" || version == "?" {
			hint, err := t.read(ctx, p+"/metadata/version-hint.text")
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					return nil, fmt.Errorf("%s: %s has no metadata/version-hint.text: name a version (version => '…') or the metadata file", fn, t.path)
				}
				return nil, err
			}
			version = strings.TrimSpace(string(hint))
		}
		for _, f := range strings.Split(o.VersionNameFormat, ",") {
			if strings.Count(f, "%s") != 2 {
				return nil, fmt.Errorf("%s: version_name_format '%s' must hold two %%s (version, compression suffix)", fn, f)
			}
			cand := p + "/metadata/" + fmt.Sprintf(f, version, codecExt)
			if _, err := files.Local(ctx, cand); err == nil {
				metaPath = cand
				break
			} else if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
		if metaPath == "" {
			return nil, fmt.Errorf("%s: no metadata file for version '%s' of %s (tried %s)", fn, version, t.path, o.VersionNameFormat)
		}
	}
	data, err := t.read(ctx, metaPath)
	if err != nil {
		return nil, err
	}
	if codecExt != "" || strings.HasSuffix(metaPath, ".gz") {
		if data, err = gunzip(data); err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w", fn, metaPath, err)
		}
	}
	t.meta, err = parseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("%s: parsing %s: %w", fn, metaPath, err)
	}
	if err := t.pickSnapshot(); err != nil {
		return nil, err
	}
	return t, nil
}

// gunzip inflates a metadata file within MaxMetadataBytes. A first pass
// only counts, so a bomb costs no memory and a real file one allocation of
// its exact size.
func gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, MaxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if n > MaxMetadataBytes {
		return nil, fmt.Errorf("it inflates to more than %d MiB, the limit for a metadata file", MaxMetadataBytes>>20)
	}
	if err := zr.Reset(bytes.NewReader(data)); err != nil {
		return nil, err
	}
	out := bytes.NewBuffer(make([]byte, 0, n+1))
	if _, err := io.Copy(out, io.LimitReader(zr, n)); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

func (t *Table) pickSnapshot() error {
	o := t.opts
	switch {
	case o.SnapshotID != nil && o.SnapshotTime != nil:
		return fmt.Errorf("%s: give snapshot_from_id or snapshot_from_timestamp, not both", t.fn)
	case o.SnapshotID != nil:
		t.snapshot = t.meta.SnapshotByID(*o.SnapshotID)
		if t.snapshot == nil {
			return fmt.Errorf("%s: snapshot %d not found in %s", t.fn, *o.SnapshotID, t.path)
		}
	case o.SnapshotTime != nil:
		ms := o.SnapshotTime.UnixMilli()
		for i := range t.meta.Snapshots {
			s := &t.meta.Snapshots[i]
			if s.TimestampMs <= ms && (t.snapshot == nil || s.TimestampMs >= t.snapshot.TimestampMs) {
				t.snapshot = s
			}
		}
		if t.snapshot == nil {
			return fmt.Errorf("%s: no snapshot of %s at or before %s", t.fn, t.path, o.SnapshotTime.UTC().Format("2006-01-02 15:04:05.000"))
		}
	default:
		t.snapshot = t.meta.CurrentSnapshot()
	}
	t.schema = t.meta.CurrentSchema()
	if t.snapshot != nil && t.snapshot.SchemaID != nil {
		for _, s := range t.meta.Schemas {
			if s.ID == *t.snapshot.SchemaID {
				t.schema = s
			}
		}
	}
	return nil
}

// resolve maps a path written in the metadata to the file to read: with
// allow_moved_paths, paths under the table's recorded location move to
// where the user says the table is.
func (t *Table) resolve(p string) string {
	if t.opts.AllowMovedPaths {
		loc := strings.TrimRight(t.meta.Location, "/")
		if loc != "" && strings.HasPrefix(p, loc+"/") {
			return t.root + p[len(loc):]
		}
		if i := strings.Index(p, "/metadata/"); i >= 0 && !strings.HasPrefix(p, t.root+"/") {
			// Recorded under some other root: keep the part from the
			// table's own directories on.
			return t.root + p[i:]
		}
		if i := strings.Index(p, "/data/"); i >= 0 && !strings.HasPrefix(p, t.root+"/") {
			return t.root + p[i:]
		}
	}
	return p
}

func (t *Table) read(ctx context.Context, uri string) ([]byte, error) {
	local, err := t.files.Local(ctx, uri)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(local)
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", t.fn, uri, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxMetadataBytes {
		return nil, fmt.Errorf("%s: %s is larger than %d MiB, the limit for a metadata file", t.fn, uri, MaxMetadataBytes>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxMetadataBytes))
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", t.fn, uri, err)
	}
	return data, nil
}

func (t *Table) open(ctx context.Context, uri string) (*os.File, error) {
	local, err := t.files.Local(ctx, t.resolve(uri))
	if err != nil {
		if errors.Is(err, ErrNotFound) && !t.opts.AllowMovedPaths {
			return nil, fmt.Errorf("%s: %s not found (if the table was moved, add allow_moved_paths = true): %w", t.fn, uri, err)
		}
		return nil, err
	}
	f, err := os.Open(local)
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", t.fn, uri, err)
	}
	return f, nil
}

// manifests reads the snapshot's manifest list.
func (t *Table) manifests(ctx context.Context) ([]iceberg.ManifestFile, error) {
	if t.snapshot == nil {
		return nil, nil
	}
	if t.snapshot.ManifestList == "" {
		if len(t.snapshot.Manifests) > 0 {
			return nil, fmt.Errorf("%s: snapshot %d lists its manifests inline (v1 without a manifest list), which is not supported", t.fn, t.snapshot.SnapshotID)
		}
		return nil, nil
	}
	f, err := t.open(ctx, t.snapshot.ManifestList)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := t.checkAvro(ctx, f, "manifest list", t.snapshot.ManifestList); err != nil {
		return nil, err
	}
	list, err := iceberg.ReadManifestList(f)
	if err != nil {
		return nil, fmt.Errorf("%s: reading manifest list %s: %w", t.fn, t.snapshot.ManifestList, err)
	}
	return list, nil
}

func (t *Table) entries(ctx context.Context, m iceberg.ManifestFile, discardDeleted bool) ([]iceberg.ManifestEntry, error) {
	f, err := t.open(ctx, m.FilePath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := t.checkAvro(ctx, f, "manifest", m.FilePath()); err != nil {
		return nil, err
	}
	es, err := iceberg.ReadManifest(m, f, discardDeleted)
	if err != nil {
		return nil, fmt.Errorf("%s: reading manifest %s: %w", t.fn, m.FilePath(), err)
	}
	return es, nil
}

// checkAvro bounds what reading the Avro file f will inflate, then
// rewinds it for the reader. A file that is not Avro is left for the
// reader to refuse in its own words.
func (t *Table) checkAvro(ctx context.Context, f *os.File, what, uri string) error {
	err := checkAvro(ctx, f)
	if err != nil && !errors.Is(err, errAvroFormat) {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%s: reading %s %s: %w", t.fn, what, uri, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: reading %s %s: %w", t.fn, what, uri, err)
	}
	return nil
}

// quoteString is a SQL string literal.
func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quoteIdent is a SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Snapshots is iceberg_snapshots: one row per snapshot, DuckDB's columns.
func (t *Table) Snapshots() string {
	var rows []string
	for _, s := range t.meta.Snapshots {
		rows = append(rows, fmt.Sprintf("(%d::UBIGINT, %d::UBIGINT, epoch_ms(%d::BIGINT), %s::VARCHAR)",
			s.SequenceNumber, uint64(s.SnapshotID), s.TimestampMs, quoteString(s.ManifestList)))
	}
	cols := "sequence_number, snapshot_id, timestamp_ms, manifest_list"
	if len(rows) == 0 {
		return "(SELECT NULL::UBIGINT AS sequence_number, NULL::UBIGINT AS snapshot_id, NULL::TIMESTAMP AS timestamp_ms, NULL::VARCHAR AS manifest_list WHERE false)"
	}
	return "(SELECT * FROM (VALUES " + strings.Join(rows, ", ") + ") AS iceberg_snapshots(" + cols + "))"
}

// Metadata is iceberg_metadata: one row per manifest entry of the
// snapshot, DuckDB's columns.
func (t *Table) Metadata(ctx context.Context) (string, error) {
	list, err := t.manifests(ctx)
	if err != nil {
		return "", err
	}
	var rows []string
	for _, m := range list {
		if err := ctx.Err(); err != nil {
			return "", context.Cause(ctx)
		}
		es, err := t.entries(ctx, m, false)
		if err != nil {
			return "", err
		}
		mc := "DATA"
		if m.ManifestContent() == iceberg.ManifestContentDeletes {
			mc = "DELETE"
		}
		for _, e := range es {
			df := e.DataFile()
			rows = append(rows, fmt.Sprintf("(%s, %d::BIGINT, '%s', '%s', '%s', %s, %s, %d::BIGINT)",
				quoteString(m.FilePath()), m.SequenceNum(), mc, statusName(e.Status()), contentName(df.ContentType()),
				quoteString(df.FilePath()), quoteString(string(df.FileFormat())), df.Count()))
		}
	}
	if len(rows) == 0 {
		return "(SELECT NULL::VARCHAR AS manifest_path, NULL::BIGINT AS manifest_sequence_number, NULL::VARCHAR AS manifest_content, " +
			"NULL::VARCHAR AS status, NULL::VARCHAR AS content, NULL::VARCHAR AS file_path, NULL::VARCHAR AS file_format, NULL::BIGINT AS record_count WHERE false)", nil
	}
	return "(SELECT * FROM (VALUES " + strings.Join(rows, ", ") +
		") AS iceberg_metadata(manifest_path, manifest_sequence_number, manifest_content, status, content, file_path, file_format, record_count))", nil
}

func statusName(s iceberg.ManifestEntryStatus) string {
	switch s {
	case iceberg.EntryStatusEXISTING:
		return "EXISTING"
	case iceberg.EntryStatusADDED:
		return "ADDED"
	case iceberg.EntryStatusDELETED:
		return "DELETED"
	}
	return fmt.Sprint(int(s))
}

// contentName is DuckDB's wording, which calls data files EXISTING.
func contentName(c iceberg.ManifestEntryContent) string {
	switch c {
	case iceberg.EntryContentData:
		return "EXISTING"
	case iceberg.EntryContentPosDeletes:
		return "POSITION_DELETES"
	case iceberg.EntryContentEqDeletes:
		return "EQUALITY_DELETES"
	}
	return fmt.Sprint(int(c))
}

// localPath is a metadata path as a path on this machine, for files the
// table keeps on local disk.
func localPath(uri string) string {
	switch {
	case strings.HasPrefix(uri, "file://"):
		return path.Clean("/" + strings.TrimLeft(strings.TrimPrefix(uri, "file://"), "/"))
	case strings.HasPrefix(uri, "file:"):
		return path.Clean("/" + strings.TrimLeft(strings.TrimPrefix(uri, "file:"), "/"))
	}
	return uri
}

// LocalPath is exported for Files implementations.
func LocalPath(uri string) string { return localPath(uri) }
