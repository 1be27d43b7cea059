package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lunadb/luna/server/excel"
	"github.com/lunadb/luna/server/iceberg"
	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/server/sqlerror"
	"github.com/lunadb/luna/server/sqltext"
)

// Luna's own table functions for formats whose DuckDB extensions it does
// not have: read_xlsx (and FROM 'file.xlsx') becomes read_parquet over a
// converted copy of the sheet, iceberg_scan becomes read_parquet over the
// snapshot's data files, iceberg_metadata and iceberg_snapshots become
// VALUES lists. The calls are rewritten here, before DuckDB sees the
// statement, so their paths may be local files or object-store URLs.

// formatFunctions are the table functions rewritten here.
var formatFunctions = map[string]bool{
	"read_xlsx": true, "iceberg_scan": true, "iceberg_metadata": true, "iceberg_snapshots": true,
}

// formatsInvolved reports cheaply whether sql may use one of them.
func formatsInvolved(sql string) bool {
	return hasFold(sql, "xlsx") || hasFold(sql, "iceberg_")
}

// hasFold is an ASCII case-insensitive strings.Contains for a lower-case
// sub, without copying s: it runs on every request, and requests can be
// large.
func hasFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) && lowerASCII(s[i+j]) == sub[j] {
			j++
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isFormatToken reports whether toks[i] starts something rewritten here:
// a call of one of the functions, a bare '….xlsx' read in a FROM or JOIN,
// or the target of COPY … TO '….xlsx'.
func isFormatToken(toks []sqltext.Token, i, writeTarget int) bool {
	t := toks[i]
	switch t.Kind {
	case sqltext.Word:
		return formatFunctions[strings.ToLower(t.Value)] && i+1 < len(toks) && toks[i+1].Value == "(" && toks[i+1].Kind == sqltext.Symbol &&
			(i == 0 || toks[i-1].Value != ".")
	case sqltext.String:
		if i == writeTarget {
			return copyFormat(toks) == "xlsx"
		}
		if toks[0].IsWord("COPY") && i == copySource(toks) {
			return false // COPY … FROM: only in xlsx format, done whole
		}
		return i > 0 && (toks[i-1].IsWord("FROM") || toks[i-1].IsWord("JOIN")) && strings.HasSuffix(strings.ToLower(t.Value), ".xlsx")
	}
	return false
}

// rewriteFormat rewrites the call, literal or COPY target at toks[i]; the
// text replaces toks[i] through toks[end].
func (s *Statement) rewriteFormat(ctx context.Context, stmt string, toks []sqltext.Token, i, writeTarget int) (end int, text string, err error) {
	if toks[i].Kind == sqltext.String {
		if i == writeTarget {
			return s.stageXLSX(ctx, stmt, toks, i)
		}
		text, err := s.readXLSX(ctx, toks[i].Value, excel.Options{})
		return i, text, err
	}
	name := strings.ToLower(toks[i].Value)
	c, err := parseCall(stmt, toks, i)
	if err != nil {
		return 0, "", err
	}
	switch name {
	case "read_xlsx":
		o, oerr := xlsxOptions(c)
		if oerr != nil {
			return 0, "", oerr
		}
		text, err = s.readXLSX(ctx, c.path, o)
	default:
		text, err = s.iceberg(ctx, name, c, icebergFilters(toks, c.end))
	}
	return c.end, text, err
}

// call is a parsed table function call.
type call struct {
	name  string
	path  string
	named map[string]arg
	end   int // index of the closing parenthesis
}

// arg is a named argument's value: the literal's content and kind.
type arg struct {
	text     string
	isString bool
	cast     string // TIMESTAMP '…' or '…'::TIMESTAMP
}

// parseCall reads name(path, key = value, …). Values must be literals:
// the call is resolved before DuckDB runs.
func parseCall(stmt string, toks []sqltext.Token, i int) (call, error) {
	c := call{name: strings.ToLower(toks[i].Value), named: map[string]arg{}}
	args, end, ok := splitGroup(toks, i+1)
	if !ok {
		return c, sqlerror.Errorf(sqlerror.Parser, "%s( is not closed", c.name)
	}
	c.end = end
	if len(args) == 0 || len(args[0]) != 1 || args[0][0].Kind != sqltext.String {
		return c, sqlerror.Errorf(sqlerror.Binder, "%s: the first argument must be the path as a string literal", c.name)
	}
	c.path = args[0][0].Value
	for _, a := range args[1:] {
		if len(a) < 3 || a[0].Kind != sqltext.Word {
			return c, sqlerror.Errorf(sqlerror.Binder, "%s: expected name = value, got %s", c.name, tokText(stmt, a))
		}
		key := strings.ToLower(a[0].Value)
		k := 1
		switch {
		case a[1].Value == "=" && a[1].Kind == sqltext.Symbol:
			k = 2
			if a[2].Value == ">" { // =>
				k = 3
			}
		case a[1].Value == ":" && a[2].Value == "=":
			k = 3
		default:
			return c, sqlerror.Errorf(sqlerror.Binder, "%s: expected name = value, got %s", c.name, tokText(stmt, a))
		}
		v, ok := literalArg(stmt, a[k:])
		if !ok {
			return c, sqlerror.Errorf(sqlerror.Binder, "%s: %s must be a literal, got %s", c.name, key, tokText(stmt, a[k:]))
		}
		if _, dup := c.named[key]; dup {
			return c, sqlerror.Errorf(sqlerror.Binder, "%s: %s given twice", c.name, key)
		}
		c.named[key] = v
	}
	return c, nil
}

func tokText(stmt string, ts []sqltext.Token) string {
	if len(ts) == 0 {
		return "nothing"
	}
	return stmt[ts[0].Start:ts[len(ts)-1].End]
}

// literalArg reads a string, number, boolean or typed string literal.
func literalArg(stmt string, ts []sqltext.Token) (arg, bool) {
	switch {
	case len(ts) == 1 && ts[0].Kind == sqltext.String:
		return arg{text: ts[0].Value, isString: true}, true
	case len(ts) == 2 && ts[0].Kind == sqltext.Word && ts[1].Kind == sqltext.String:
		return arg{text: ts[1].Value, isString: true, cast: strings.ToUpper(ts[0].Value)}, true
	case len(ts) == 4 && ts[0].Kind == sqltext.String && ts[1].Value == ":" && ts[2].Value == ":" && ts[3].Kind == sqltext.Word:
		return arg{text: ts[0].Value, isString: true, cast: strings.ToUpper(ts[3].Value)}, true
	}
	if n, ok := number(stmt, ts); ok {
		return arg{text: n}, true
	}
	return arg{}, false
}

// number joins the tokens of a numeric literal (-1, 3.5, 1e3).
func number(stmt string, ts []sqltext.Token) (string, bool) {
	if len(ts) == 0 {
		return "", false
	}
	text := stmt[ts[0].Start:ts[len(ts)-1].End]
	for k := 1; k < len(ts); k++ {
		if ts[k].Start != ts[k-1].End {
			return "", false
		}
	}
	if len(ts) == 1 && ts[0].Kind == sqltext.Word {
		if strings.EqualFold(text, "true") || strings.EqualFold(text, "false") {
			return strings.ToLower(text), true
		}
	}
	if _, err := strconv.ParseFloat(text, 64); err != nil {
		return "", false
	}
	return text, true
}

func (a arg) boolean(fn, key string) (bool, error) {
	switch strings.ToLower(a.text) {
	case "true", "1", "t":
		return true, nil
	case "false", "0", "f":
		return false, nil
	}
	return false, sqlerror.Errorf(sqlerror.Binder, "%s: %s must be a BOOLEAN, got '%s'", fn, key, a.text)
}

func (a arg) str(fn, key string) (string, error) {
	if !a.isString || a.cast != "" {
		return "", sqlerror.Errorf(sqlerror.Binder, "%s: %s must be a VARCHAR string, got %s", fn, key, a.text)
	}
	return a.text, nil
}

func xlsxOptions(c call) (excel.Options, error) {
	var o excel.Options
	for k, v := range c.named {
		var err error
		var b bool
		switch k {
		case "sheet":
			o.Sheet, err = v.str(c.name, k)
		case "range":
			o.Range, err = v.str(c.name, k)
		case "header":
			b, err = v.boolean(c.name, k)
			o.Header = &b
		case "stop_at_empty":
			b, err = v.boolean(c.name, k)
			o.StopAtEmpty = &b
		case "all_varchar":
			o.AllVarchar, err = v.boolean(c.name, k)
		case "ignore_errors":
			o.IgnoreErrors, err = v.boolean(c.name, k)
		case "empty_as_varchar":
			o.EmptyAsVarchar, err = v.boolean(c.name, k)
		default:
			err = sqlerror.Errorf(sqlerror.Binder, "%s: unknown parameter %s (supported: sheet, header, all_varchar, ignore_errors, range, stop_at_empty, empty_as_varchar)", c.name, k)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// localize makes a user's path local: object-store URLs are fetched
// (globs included) into the statement's view; local paths stay.
func (s *Statement) localize(ctx context.Context, p string) (string, error) {
	if loc, ok := ParseLocation(p); ok {
		locals, err := s.fetchAll(ctx, []Location{loc})
		if err != nil {
			return "", err
		}
		return locals[0], nil
	}
	return p, nil
}

// readXLSX converts the sheet (the first file a glob matches, as DuckDB
// reads it) and returns the read_parquet call that scans the result.
func (s *Statement) readXLSX(ctx context.Context, p string, o excel.Options) (string, error) {
	_, isRemote := ParseLocation(p)
	if !isRemote {
		if err := s.r.checkGlob(ctx, p, p); err != nil {
			return "", err
		}
	}
	local, err := s.localize(ctx, p)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(local, "*?[") {
		matches, err := filepath.Glob(local)
		if err != nil || len(matches) == 0 {
			return "", sqlerror.Errorf(sqlerror.IO, "read_xlsx: no files found that match the pattern \"%s\"", p)
		}
		sort.Strings(matches)
		local = matches[0]
	}
	if !isRemote {
		if err := s.r.checkRead(ctx, local, p); err != nil {
			return "", err
		}
	}
	st, err := os.Stat(local)
	if err != nil {
		return "", sqlerror.Errorf(sqlerror.IO, "read_xlsx: cannot open file \"%s\": %w", p, errors.Unwrap(err))
	}
	converted, err := s.r.convertXLSX(ctx, local, st, p, o)
	if err != nil {
		return "", err
	}
	view, err := s.viewDir()
	if err != nil {
		return "", err
	}
	link := filepath.Join(view, fmt.Sprintf("xlsx-%d.parquet", s.r.seq.Add(1)))
	if err := os.Link(converted, link); err != nil {
		return "", sqlerror.Errorf(sqlerror.IO, "read_xlsx: %w", err)
	}
	return "read_parquet(" + sqltext.Quote(link) + ")", nil
}

// convertedKeep is how many converted sheets stay cached.
const convertedKeep = 64

var convertMu sync.Mutex

// convertXLSX converts a workbook once per file version and options; the
// file's identity is its inode, size and modification time, which a
// cached object keeps across statements.
func (r *Resolver) convertXLSX(ctx context.Context, local string, st fs.FileInfo, name string, o excel.Options) (string, error) {
	id := fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id += fmt.Sprintf("/%d/%d", sys.Dev, sys.Ino)
	} else {
		abs, _ := filepath.Abs(local)
		id += "/" + abs
	}
	dir := filepath.Join(r.cache.dir, "converted")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", sqlerror.Errorf(sqlerror.IO, "read_xlsx: %w", err)
	}
	out := filepath.Join(dir, hashName("xlsx", id, o.Key())+".parquet")
	now := time.Now()
	if os.Chtimes(out, now, now) == nil {
		return out, nil
	}
	tmp, err := os.CreateTemp(dir, ".part-*")
	if err != nil {
		return "", sqlerror.Errorf(sqlerror.IO, "read_xlsx: %w", err)
	}
	tmp.Close()
	start := time.Now()
	recovery.Inject("conversion", name)
	if err := excel.Convert(ctx, local, tmp.Name(), name, o); err != nil {
		os.Remove(tmp.Name())
		var xe *excel.Error
		if errors.As(err, &xe) {
			return "", sqlerror.Errorf(sqlerror.InvalidInput, "%w", err)
		}
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		os.Remove(tmp.Name())
		return "", sqlerror.Errorf(sqlerror.IO, "read_xlsx: %w", err)
	}
	r.opts.Log.Info("converted xlsx sheet", "file", name, "sheet", o.Sheet, "duration", time.Since(start).Round(time.Millisecond))
	r.pruneConverted(dir)
	return out, nil
}

// pruneConverted drops the least recently used conversions beyond
// convertedKeep. Statements reading one hold their own hard link.
func (r *Resolver) pruneConverted(dir string) {
	convertMu.Lock()
	defer convertMu.Unlock()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type f struct {
		path string
		at   time.Time
	}
	var files []f
	for _, e := range ents {
		if info, err := e.Info(); err == nil && !e.IsDir() && strings.HasSuffix(e.Name(), ".parquet") {
			files = append(files, f{filepath.Join(dir, e.Name()), info.ModTime()})
		}
	}
	if len(files) <= convertedKeep {
		return
	}
	sort.Slice(files, func(i, j int) bool { return files[i].at.Before(files[j].at) })
	for _, x := range files[:len(files)-convertedKeep] {
		os.Remove(x.path)
	}
}

// --- Iceberg ---

func icebergOptions(c call) (iceberg.Options, error) {
	var o iceberg.Options
	for k, v := range c.named {
		var err error
		switch k {
		case "allow_moved_paths":
			o.AllowMovedPaths, err = v.boolean(c.name, k)
		case "metadata_compression_codec":
			o.MetadataCodec, err = v.str(c.name, k)
		case "version":
			o.Version, err = v.str(c.name, k)
			if !v.isString {
				o.Version, err = v.text, nil
			}
		case "version_name_format":
			o.VersionNameFormat, err = v.str(c.name, k)
		case "snapshot_from_id":
			var id uint64
			id, err = strconv.ParseUint(v.text, 10, 64)
			if err != nil || v.isString {
				err = sqlerror.Errorf(sqlerror.Binder, "%s: snapshot_from_id must be an integer, got %s", c.name, v.text)
			}
			n := int64(id)
			o.SnapshotID = &n
		case "snapshot_from_timestamp":
			var ts time.Time
			ts, err = parseTimestamp(v.text)
			if err != nil || !v.isString {
				err = sqlerror.Errorf(sqlerror.Binder, "%s: snapshot_from_timestamp must be a TIMESTAMP literal such as TIMESTAMP '2025-01-31 12:00:00', got %s", c.name, v.text)
			}
			o.SnapshotTime = &ts
		default:
			err = sqlerror.Errorf(sqlerror.Binder, "%s: unknown parameter %s (supported: allow_moved_paths, metadata_compression_codec, version, version_name_format, snapshot_from_id, snapshot_from_timestamp)", c.name, k)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// parseTimestamp reads a TIMESTAMP literal as DuckDB does: UTC when no
// zone is given.
func parseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad timestamp %q", s)
}

func (s *Statement) iceberg(ctx context.Context, fn string, c call, filters []iceberg.Filter) (string, error) {
	o, err := icebergOptions(c)
	if err != nil {
		return "", err
	}
	t, err := iceberg.Open(ctx, fn, tableFiles{s}, c.path, o)
	if err != nil {
		return "", wrapIceberg(err)
	}
	switch fn {
	case "iceberg_snapshots":
		return t.Snapshots(), nil
	case "iceberg_metadata":
		sql, err := t.Metadata(ctx)
		return sql, wrapIceberg(err)
	}
	start := time.Now()
	recovery.Inject("iceberg", c.path)
	sql, plan, err := t.Scan(ctx, filters)
	if err != nil {
		return "", wrapIceberg(err)
	}
	s.r.opts.Log.Info("iceberg scan planned", "table", c.path, "data_files", plan.DataFiles, "pruned_files", plan.PrunedFiles,
		"pruned_manifests", plan.PrunedManifests, "position_deletes", plan.PositionDeletes, "equality_deletes", plan.EqualityDeletes,
		"name_mapped_files", plan.NameMapped, "deletion_vectors", plan.DeletionVectors, "duration", time.Since(start).Round(time.Millisecond))
	return sql, nil
}

func wrapIceberg(err error) error {
	if err == nil || sqlerror.Has(err) {
		return err
	}
	return sqlerror.Errorf(sqlerror.InvalidInput, "%w", err)
}

// icebergFilters finds the "column op literal" conjuncts of a WHERE
// clause that directly follows the scan (after an optional alias), for
// pruning. Anything it does not understand (OR, joins after the scan, a
// subquery around it) yields no filters: pruning is an optimization and
// DuckDB applies the whole WHERE clause anyway.
func icebergFilters(toks []sqltext.Token, end int) []iceberg.Filter {
	i := end + 1
	alias := ""
	if i < len(toks) && toks[i].IsWord("AS") {
		i++
	}
	if i < len(toks) && (toks[i].Kind == sqltext.Ident || (toks[i].Kind == sqltext.Word && !isClauseWord(toks[i].Value))) {
		alias = toks[i].Value
		i++
	}
	if i >= len(toks) || !toks[i].IsWord("WHERE") {
		return nil
	}
	i++
	var conj [][]sqltext.Token
	var cur []sqltext.Token
	depth := 0
	for ; i < len(toks); i++ {
		t := toks[i]
		if t.Kind == sqltext.Symbol {
			switch t.Value {
			case "(":
				depth++
			case ")":
				depth--
			}
		}
		if depth < 0 || (depth == 0 && t.Kind == sqltext.Word && isClauseWord(t.Value)) || (depth == 0 && t.Value == ";") {
			break
		}
		if depth == 0 && t.IsWord("OR") {
			return nil
		}
		if depth == 0 && t.IsWord("AND") {
			conj = append(conj, cur)
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	conj = append(conj, cur)
	var out []iceberg.Filter
	for _, c := range conj {
		if f, ok := simplePredicate(c, alias); ok {
			out = append(out, f)
		}
	}
	return out
}

var clauseWords = map[string]bool{
	"WHERE": true, "GROUP": true, "ORDER": true, "LIMIT": true, "OFFSET": true, "HAVING": true, "WINDOW": true,
	"QUALIFY": true, "UNION": true, "EXCEPT": true, "INTERSECT": true, "JOIN": true, "LEFT": true, "RIGHT": true,
	"INNER": true, "FULL": true, "CROSS": true, "NATURAL": true, "POSITIONAL": true, "ASOF": true, "ANTI": true,
	"SEMI": true, "ON": true, "USING": true, "RETURNING": true, "USING_SAMPLE": true, "TABLESAMPLE": true,
	"LATERAL": true, "PIVOT": true, "UNPIVOT": true,
}

func isClauseWord(w string) bool { return clauseWords[strings.ToUpper(w)] }

var flipOp = map[string]string{"=": "=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

// simplePredicate reads [alias.]column op literal, either way round.
func simplePredicate(ts []sqltext.Token, alias string) (iceberg.Filter, bool) {
	// Join two-character operators.
	var parts []sqltext.Token
	for k := 0; k < len(ts); k++ {
		t := ts[k]
		if t.Kind == sqltext.Symbol && (t.Value == "<" || t.Value == ">") && k+1 < len(ts) && ts[k+1].Value == "=" && ts[k+1].Start == t.End {
			t.Value += "="
			t.End = ts[k+1].End
			k++
		} else if t.Kind == sqltext.Symbol && t.Value == "=" && k+1 < len(ts) && ts[k+1].Value == "=" {
			k++
		}
		parts = append(parts, t)
	}
	opAt := -1
	for k, t := range parts {
		if t.Kind == sqltext.Symbol {
			if _, ok := flipOp[t.Value]; ok {
				if opAt >= 0 {
					return iceberg.Filter{}, false
				}
				opAt = k
			}
		}
	}
	if opAt <= 0 || opAt == len(parts)-1 {
		return iceberg.Filter{}, false
	}
	left, right, op := parts[:opAt], parts[opAt+1:], parts[opAt].Value
	col, ok := columnRef(left, alias)
	lit, isStr, ok2 := literalTokens(right)
	if !ok || !ok2 {
		col, ok = columnRef(right, alias)
		lit, isStr, ok2 = literalTokens(left)
		op = flipOp[op]
	}
	if !ok || !ok2 {
		return iceberg.Filter{}, false
	}
	return iceberg.Filter{Column: col, Op: op, Value: lit, String: isStr}, true
}

func columnRef(ts []sqltext.Token, alias string) (string, bool) {
	isName := func(t sqltext.Token) bool {
		return t.Kind == sqltext.Ident || (t.Kind == sqltext.Word && !isNumberWord(t.Value))
	}
	switch {
	case len(ts) == 1 && isName(ts[0]):
		return ts[0].Value, true
	case len(ts) == 3 && isName(ts[0]) && ts[1].Value == "." && isName(ts[2]) && alias != "" && strings.EqualFold(ts[0].Value, alias):
		return ts[2].Value, true
	}
	return "", false
}

func isNumberWord(w string) bool { return w != "" && w[0] >= '0' && w[0] <= '9' }

func literalTokens(ts []sqltext.Token) (string, bool, bool) {
	switch {
	case len(ts) == 1 && ts[0].Kind == sqltext.String:
		return ts[0].Value, true, true
	case len(ts) == 2 && ts[0].IsWord("DATE") && ts[1].Kind == sqltext.String:
		return ts[1].Value, true, true
	}
	var b strings.Builder
	for k, t := range ts {
		if k > 0 && ts[k-1].End != t.Start {
			return "", false, false
		}
		b.WriteString(t.Value)
	}
	if _, err := strconv.ParseFloat(b.String(), 64); err != nil || len(ts) == 0 {
		return "", false, false
	}
	return b.String(), false, true
}

// tableFiles gives the iceberg reader local copies of a table's files:
// local paths as they are, object-store files through the cache.
type tableFiles struct{ s *Statement }

func (f tableFiles) Scratch() (string, error) { return f.s.viewDir() }

func (f tableFiles) Local(ctx context.Context, uri string) (string, error) {
	out, err := f.LocalAll(ctx, []string{uri})
	if err != nil {
		return "", err
	}
	return out[0], nil
}

func (f tableFiles) LocalAll(ctx context.Context, uris []string) ([]string, error) {
	out := make([]string, len(uris))
	var remote []Location
	var at []int
	for i, u := range uris {
		if loc, ok := ParseLocation(u); ok {
			remote = append(remote, loc)
			at = append(at, i)
			continue
		}
		p := iceberg.LocalPath(u)
		// Before Stat: not even a file's existence is told outside the
		// lockdown.
		if err := f.s.r.checkRead(ctx, p, u); err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, sqlerror.Errorf(sqlerror.IO, "%s: %w", u, iceberg.ErrNotFound)
			}
			return nil, sqlerror.Errorf(sqlerror.IO, "%s: %w", u, err)
		}
		out[i] = p
	}
	if len(remote) > 0 {
		got, err := f.s.fetchObjects(ctx, remote)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			out[i] = got[k]
		}
	}
	return out, nil
}

// fetchObjects brings named objects (no globs) into the cache and the
// statement's view, listing each bucket once under the objects' common
// prefix. A missing object is an error wrapping iceberg.ErrNotFound.
func (s *Statement) fetchObjects(ctx context.Context, locs []Location) ([]string, error) {
	r := s.r
	type group struct {
		first Location
		idx   []int
	}
	groups := map[string]*group{}
	var order []string
	for i, l := range locs {
		k := l.bucketURL()
		g := groups[k]
		if g == nil {
			g = &group{first: l}
			groups[k] = g
			order = append(order, k)
		}
		g.idx = append(g.idx, i)
	}
	out := make([]string, len(locs))
	view, err := s.viewDir()
	if err != nil {
		return nil, err
	}
	for _, k := range order {
		g := groups[k]
		prefix := locs[g.idx[0]].Key
		for _, i := range g.idx[1:] {
			prefix = commonPrefix(prefix, locs[i].Key)
		}
		if j := strings.LastIndexByte(prefix, '/'); j >= 0 {
			prefix = prefix[:j+1]
		} else {
			prefix = ""
		}
		b, err := r.bucket(ctx, g.first)
		if err != nil {
			return nil, err
		}
		listed, err := b.List(ctx, prefix)
		if err != nil {
			return nil, sqlerror.Errorf(sqlerror.IO, "listing %s/%s: %w", k, prefix, err)
		}
		byKey := make(map[string]objstore.Object, len(listed))
		for _, o := range listed {
			byKey[o.Key] = o
		}
		for _, i := range g.idx {
			if _, ok := byKey[locs[i].Key]; !ok {
				return nil, sqlerror.Errorf(sqlerror.IO, "%s: %w", locs[i].URL, iceberg.ErrNotFound)
			}
		}
		// The statement depends on everything under the prefix (a table's
		// next snapshot adds files there).
		s.addSource(strings.TrimSuffix(g.first.URL, g.first.Key)+prefix+"**", listed)
		root := filepath.Join(view, string(g.first.Scheme), g.first.Account, g.first.Bucket)
		var mu sync.Mutex
		eg, gctx := errgroup.WithContext(ctx)
		eg.SetLimit(r.opts.Workers)
		for _, i := range g.idx {
			loc := locs[i]
			o := byKey[loc.Key]
			eg.Go(recovery.Func(r.opts.Log, recovery.Statement, "reading a table's files", func() error {
				var st stats
				e, err := r.cache.acquire(gctx, b, loc.bucketURL()+"/"+o.Key, o, &st)
				if err != nil {
					return err
				}
				mu.Lock()
				s.entries = append(s.entries, e)
				mu.Unlock()
				// A manifest's path is remote data: linkKey keeps it in the view.
				dst, err := linkKey(e, root, o.Key)
				out[i] = dst
				return err
			}))
		}
		if err := eg.Wait(); err != nil {
			return nil, sqlerror.Errorf(sqlerror.IO, "reading %s: %w", k, err)
		}
	}
	return out, nil
}

func commonPrefix(a, b string) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return a[:i]
		}
	}
	return a[:n]
}

// definesObject names the VIEW, MACRO or FUNCTION a CREATE statement
// defines, or is "".
func definesObject(toks []sqltext.Token) string {
	i := 0
	next := func(w string) bool {
		if i < len(toks) && toks[i].IsWord(w) {
			i++
			return true
		}
		return false
	}
	if !next("CREATE") {
		return ""
	}
	if next("OR") {
		next("REPLACE")
	}
	if !next("TEMP") {
		next("TEMPORARY")
	}
	for _, w := range []string{"VIEW", "MACRO", "FUNCTION"} {
		if next(w) {
			return w
		}
	}
	return ""
}

// keepsStatementFiles is the error for a view or macro (what) over files
// Luna prepares for one statement (over).
func keepsStatementFiles(what, over string) error {
	return sqlerror.Errorf(sqlerror.NotImplemented, "a %s over %s would read local copies that last only for one statement; "+
		"load the data with CREATE TABLE … AS instead (--watch-interval keeps such tables up to date)", what, over)
}

// copyOptions finds COPY … TO target's option list: its tokens between
// the parentheses, and the index of the closing one (target if none).
func copyOptions(toks []sqltext.Token, target int) (opts [][]sqltext.Token, end int) {
	i := target + 1
	if i < len(toks) && toks[i].IsWord("WITH") {
		i++
	}
	if i >= len(toks) || toks[i].Value != "(" || toks[i].Kind != sqltext.Symbol {
		return nil, target
	}
	opts, end, ok := splitGroup(toks, i)
	if !ok {
		return nil, target
	}
	return opts, end
}

// splitGroup splits the bracketed list that opens at toks[open] into its
// top-level, comma-separated items, and returns the index of the bracket
// that closes it; ok is false when it is never closed.
func splitGroup(toks []sqltext.Token, open int) (items [][]sqltext.Token, end int, ok bool) {
	depth := 0
	var cur []sqltext.Token
	for j := open; j < len(toks); j++ {
		t := toks[j]
		if t.Kind == sqltext.Symbol {
			switch t.Value {
			case "(", "[", "{":
				depth++
				if depth == 1 {
					continue
				}
			case ")", "]", "}":
				depth--
				if depth == 0 {
					if len(cur) > 0 || len(items) > 0 {
						items = append(items, cur)
					}
					return items, j, true
				}
			case ",":
				if depth == 1 {
					items = append(items, cur)
					cur = nil
					continue
				}
			}
		}
		cur = append(cur, t)
	}
	return nil, 0, false
}

// copyFormat is the format a COPY … TO writes: its FORMAT option, or
// xlsx for a target ending in .xlsx (as DuckDB infers it), lower case.
func copyFormat(toks []sqltext.Token) string {
	target := copyTarget(toks)
	if target < 0 {
		return ""
	}
	return formatAt(toks, target)
}

// stageXLSX lets DuckDB write the COPY's result as Parquet to a staging
// file; once the statement succeeded, the workbook is written from it to
// the target (and uploaded, for an object-store target).
func (s *Statement) stageXLSX(ctx context.Context, stmt string, toks []sqltext.Token, i int) (int, string, error) {
	opts, end := copyOptions(toks, i)
	wo := excel.WriteOptions{}
	for _, o := range opts {
		if len(o) < 2 || o[0].Kind != sqltext.Word {
			return 0, "", sqlerror.Errorf(sqlerror.Binder, "COPY TO xlsx: cannot read option %s", tokText(stmt, o))
		}
		key := strings.ToUpper(o[0].Value)
		v, ok := literalArg(stmt, o[1:])
		if !ok && len(o) == 2 && o[1].Kind == sqltext.Word {
			v, ok = arg{text: o[1].Value}, true
		}
		if !ok {
			return 0, "", sqlerror.Errorf(sqlerror.Binder, "COPY TO xlsx: %s must be a literal, got %s", key, tokText(stmt, o[1:]))
		}
		var err error
		switch key {
		case "FORMAT":
		case "HEADER":
			wo.Header, err = v.boolean("COPY TO xlsx", key)
		case "SHEET":
			wo.Sheet, err = v.str("COPY TO xlsx", key)
		default:
			err = sqlerror.Errorf(sqlerror.Binder, "COPY TO xlsx: option %s is not supported (supported: FORMAT, HEADER, SHEET)", key)
		}
		if err != nil {
			return 0, "", err
		}
	}
	target := toks[i].Value
	dest := target
	if loc, ok := ParseLocation(target); ok {
		local, err := s.stage(loc)
		if err != nil {
			return 0, "", err
		}
		dest = local
	} else if err := s.r.checkWrite(ctx, dest, target); err != nil {
		return 0, "", err
	}
	dir := filepath.Join(s.r.cache.dir, "staging", fmt.Sprintf("xlsx-%d", s.r.seq.Add(1)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, "", sqlerror.Errorf(sqlerror.IO, "COPY TO xlsx: %w", err)
	}
	staged := filepath.Join(dir, "result.parquet")
	s.hooks = append(s.hooks, func(ctx context.Context, ok bool) error {
		defer os.RemoveAll(dir)
		if !ok {
			return nil
		}
		if err := excel.Write(ctx, staged, dest, wo); err != nil {
			return sqlerror.Errorf(sqlerror.IO, "%w", err)
		}
		return nil
	})
	return end, sqltext.Quote(staged) + " (FORMAT parquet)", nil
}

// addSource records a listing the statement depends on, once per URL.
func (s *Statement) addSource(url string, listed []objstore.Object) {
	for _, src := range s.Sources {
		if src.URL == url {
			return
		}
	}
	src := Source{URL: url, Versions: map[string]string{}}
	for _, o := range listed {
		// Keys that can never be read are not sources: the watcher skips
		// them too, and would otherwise see them deleted at every check.
		if checkKey(o.Key) == nil {
			src.Versions[o.Key] = o.Version
		}
	}
	s.Sources = append(s.Sources, src)
}
