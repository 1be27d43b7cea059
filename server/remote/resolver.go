package remote

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lunadb/luna/server/fspolicy"
	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/server/sqlerror"
	"github.com/lunadb/luna/server/sqltext"
)

// Options configures a Resolver.
type Options struct {
	CacheDir      string
	CacheMaxBytes int64 // 0: no limit
	Workers       int   // parallel downloads; 0: 8
	// SecretDir holds PERSISTENT secrets; empty: they cannot be made.
	SecretDir string
	// ProgressInterval is how often a running download logs its progress;
	// 0: every 5s.
	ProgressInterval time.Duration
	Log              *slog.Logger
	// Open returns the bucket for a location and the secret chosen for it
	// (nil: the machine's own identity). Nil uses the cloud SDK backends.
	Open func(ctx context.Context, loc Location, sec *Secret) (objstore.Bucket, error)
	// FilePolicy is the local-file lockdown in force (see lockdown.go);
	// nil: none.
	FilePolicy func(ctx context.Context) (fspolicy.Policy, error)
}

// Resolver turns statements that name object-store URLs into statements
// DuckDB can run on local files.
type Resolver struct {
	opts    Options
	secrets *Secrets
	cache   *cache
	seq     atomic.Uint64

	mu      sync.Mutex
	buckets map[string]objstore.Bucket
}

// New returns a resolver with its cache in opts.CacheDir.
func New(opts Options) (*Resolver, error) {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 5 * time.Second
	}
	if opts.Open == nil {
		opts.Open = openBucket
	}
	c, err := newCache(opts.CacheDir, opts.CacheMaxBytes, opts.Log)
	if err != nil {
		return nil, err
	}
	secrets, err := loadSecrets(opts.SecretDir, opts.Log)
	if err != nil {
		return nil, err
	}
	return &Resolver{opts: opts, secrets: secrets, cache: c, buckets: map[string]objstore.Bucket{}}, nil
}

// Involved reports cheaply whether sql may need the resolver: it names a
// URL, a secret, an .xlsx file or an iceberg_ function, or lists secrets.
// Everything else goes straight to DuckDB.
func Involved(sql string) bool {
	return strings.Contains(sql, "://") || hasFold(sql, "secret") || formatsInvolved(sql)
}

// Statement is one statement made ready for DuckDB.
type Statement struct {
	// SQL is what DuckDB runs; empty when the statement was carried out
	// here (CREATE or DROP SECRET).
	SQL string
	// Sources are the remote inputs the statement reads, with the object
	// versions it read.
	Sources []Source

	r       *Resolver
	orig    string        // the statement as the client wrote it
	edits   sqltext.Edits // where SQL differs from orig
	mu      sync.Mutex    // entries, while the URLs download together
	entries []*entry
	slots   chan struct{} // the statement's downloads in progress
	view    string
	uploads []upload
	hooks   []func(ctx context.Context, ok bool) error // formats: run first by Finish
}

// Source is one URL a statement read and what it matched.
type Source struct {
	URL      string
	Versions map[string]string // object key → version
}

type upload struct {
	loc   Location
	local string // staged file or directory
	dir   string // staging root to remove afterwards
}

// Prepare resolves one statement (no ';'-separated lists). The caller must
// call Finish once DuckDB is done with the statement, whatever happened.
func (r *Resolver) Prepare(ctx context.Context, stmt string) (*Statement, error) {
	toks := sqltext.Tokens(stmt)
	s := &Statement{r: r, SQL: stmt, orig: stmt}
	// A panic while resolving (a bug in a format's reader) still releases
	// what the statement holds; the session's recovery answers it.
	defer func() {
		if v := recover(); v != nil {
			s.Finish(ctx, false)
			panic(v)
		}
	}()
	if st, ok, err := parseSecretStatement(toks); ok {
		if err == nil {
			err = r.secrets.apply(st)
		}
		if err != nil {
			return nil, redactError(stmt, err)
		}
		s.SQL = ""
		return s, nil
	}

	writeTarget := copyTarget(toks)
	if src := copySource(toks); src >= 0 && formatAt(toks, src) == "xlsx" {
		sql, err := s.copyFromXLSX(ctx, stmt, toks, src)
		if err != nil {
			s.Finish(ctx, false)
			return nil, err
		}
		s.SQL = sql
		return s, nil
	}
	// A view or macro keeps its body: over local copies that last one
	// statement it would fail or go stale on first use.
	defines := definesObject(toks)
	// Replacements are collected first and the SQL written once every
	// URL is fetched: the URLs of one statement download together.
	type replacement struct {
		from, to int
		text     string
		fetch    int // index into fetches whose local path is the text; -1: text
	}
	var reps []replacement
	var fetches []Location
	skip := 0 // formats: tokens a rewritten call already covered
	for i, t := range toks {
		switch {
		case i < skip:
		case isFormatToken(toks, i, writeTarget): // formats: read_xlsx, iceberg_*, COPY TO xlsx
			if defines != "" {
				s.Finish(ctx, false)
				return nil, keepsStatementFiles(defines, "read_xlsx or iceberg_*")
			}
			end, text, err := s.rewriteFormat(ctx, stmt, toks, i, writeTarget)
			if err != nil {
				s.Finish(ctx, false)
				return nil, err
			}
			reps = append(reps, replacement{from: t.Start, to: toks[end].End, text: text, fetch: -1})
			skip = end + 1
		case t.Kind == sqltext.String:
			loc, ok := ParseLocation(t.Value)
			if !ok {
				continue
			}
			if defines != "" {
				s.Finish(ctx, false)
				return nil, keepsStatementFiles(defines, "object-store URLs ("+loc.URL+")")
			}
			if i != writeTarget {
				reps = append(reps, replacement{from: t.Start, to: t.End, fetch: len(fetches)})
				fetches = append(fetches, loc)
				continue
			}
			local, err := s.stage(loc)
			if err != nil {
				s.Finish(ctx, false)
				return nil, err
			}
			reps = append(reps, replacement{from: t.Start, to: t.End, text: sqltext.Quote(local), fetch: -1})
		case t.IsWord("duckdb_secrets") && i+2 < len(toks) && toks[i+1].Value == "(":
			// Luna's secrets are not in DuckDB's secret manager: list
			// them in its place.
			end := i + 2
			for end < len(toks) && toks[end].Value != ")" {
				end++
			}
			if end >= len(toks) {
				continue
			}
			reps = append(reps, replacement{from: t.Start, to: toks[end].End, text: r.secrets.listingSQL(), fetch: -1})
		}
	}
	if len(fetches) > 0 {
		locals, err := s.fetchAll(ctx, fetches)
		if err != nil {
			s.Finish(ctx, false)
			return nil, err
		}
		for i := range reps {
			if reps[i].fetch >= 0 {
				reps[i].text = sqltext.Quote(locals[reps[i].fetch])
			}
		}
	}
	if len(reps) > 0 {
		var b strings.Builder
		last := 0
		for _, rep := range reps {
			b.WriteString(stmt[last:rep.from])
			s.edit(&b, rep.from, rep.to, rep.text)
			last = rep.to
		}
		b.WriteString(stmt[last:])
		s.SQL = b.String()
	}
	return s, nil
}

// copyTarget is the index of the string token a COPY … TO writes to, or
// -1.
func copyTarget(toks []sqltext.Token) int {
	if len(toks) == 0 || !toks[0].IsWord("COPY") {
		return -1
	}
	for i := 1; i+1 < len(toks); i++ {
		if toks[i].IsWord("TO") && toks[i+1].Kind == sqltext.String {
			return i + 1
		}
	}
	return -1
}

// viewDir is the statement's private directory of links to cached files.
func (s *Statement) viewDir() (string, error) {
	if s.view == "" {
		dir := filepath.Join(s.r.cache.dir, "views", fmt.Sprint(s.r.seq.Add(1)))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		s.view = dir
	}
	return s.view, nil
}

// fetchAll fetches the URLs a statement reads, all at once, and returns
// their local paths in the same order. Listing and downloading one URL
// need not wait for another's; the statement's downloads together stay
// within the worker limit. The first failure cancels the rest.
func (s *Statement) fetchAll(ctx context.Context, locs []Location) ([]string, error) {
	if s.slots == nil {
		s.slots = make(chan struct{}, s.r.opts.Workers)
	}
	if _, err := s.viewDir(); err != nil {
		return nil, err
	}
	locals := make([]string, len(locs))
	srcs := make([]Source, len(locs))
	if len(locs) == 1 {
		var err error
		locals[0], srcs[0], err = s.fetch(ctx, locs[0])
		if err != nil {
			return nil, err
		}
	} else {
		g, gctx := errgroup.WithContext(ctx)
		for i, loc := range locs {
			g.Go(recovery.Func(s.r.opts.Log, recovery.Statement, "fetching "+loc.URL, func() error {
				var err error
				locals[i], srcs[i], err = s.fetch(gctx, loc)
				return err
			}))
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	// In statement order, whatever order the fetches finished in.
	s.Sources = append(s.Sources, srcs...)
	return locals, nil
}

// fetch brings every object loc matches into the cache and lays them out
// under the statement's view directory with their keys as paths, so that
// DuckDB's own globbing and hive partitioning see exactly the objects that
// exist now.
func (s *Statement) fetch(ctx context.Context, loc Location) (string, Source, error) {
	r := s.r
	src := Source{URL: loc.URL, Versions: map[string]string{}}
	b, err := r.bucket(ctx, loc)
	if err != nil {
		return "", src, err
	}
	listed, err := b.List(ctx, loc.Prefix())
	if err != nil {
		return "", src, sqlerror.Errorf(sqlerror.IO, "listing %s: %w", loc.URL, err)
	}
	objs := matching(loc, listed)
	if loc.IsGlob() {
		r.warnUnsafeKeys(loc, listed)
	} else {
		for _, o := range objs {
			if err := checkKey(o.Key); err != nil {
				return "", src, sqlerror.Errorf(sqlerror.InvalidInput, "cannot read %s: %w", loc.URL, err)
			}
		}
	}
	if len(objs) == 0 {
		if loc.IsGlob() {
			return "", src, sqlerror.Errorf(sqlerror.IO, "No files found that match the pattern \"%s\"", loc.URL)
		}
		r.cache.forget(loc.bucketURL() + "/" + loc.Key)
		return "", src, sqlerror.Errorf(sqlerror.IO, "No files found that match the pattern \"%s\"", loc.URL)
	}
	view, err := s.viewDir()
	if err != nil {
		return "", src, err
	}
	root := filepath.Join(view, string(loc.Scheme), loc.Account, loc.Bucket)

	var mu sync.Mutex
	var st stats
	start := time.Now()
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	progress := r.progress(loc.URL, len(objs), total, start)
	defer progress.stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, o := range objs {
		g.Go(recovery.Func(r.opts.Log, recovery.Statement, "fetching "+loc.URL, func() error {
			if err := gctx.Err(); err != nil {
				return context.Cause(gctx) // cancelled or failed: start nothing more
			}
			select {
			case s.slots <- struct{}{}:
			case <-gctx.Done():
				return context.Cause(gctx)
			}
			var one stats
			e, err := r.cache.acquire(gctx, b, loc.bucketURL()+"/"+o.Key, o, &one)
			<-s.slots
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.entries = append(s.entries, e)
			s.mu.Unlock()
			mu.Lock()
			src.Versions[o.Key] = e.version
			st.Hits += one.Hits
			st.Downloads += one.Downloads
			st.Bytes += one.Bytes
			mu.Unlock()
			progress.add(one.Bytes)
			if c := downloadCounter(ctx); c != nil {
				c.Add(one.Bytes)
			}
			_, err = linkKey(e, root, o.Key)
			return err
		}))
	}
	if err := g.Wait(); err != nil {
		return "", src, sqlerror.Errorf(sqlerror.IO, "reading %s: %w", loc.URL, err)
	}
	if st.Downloads > 0 {
		r.opts.Log.Info("objects fetched", "url", loc.URL, "objects", len(objs), "downloaded", st.Downloads,
			"cached", st.Hits, "bytes", st.Bytes, "duration", time.Since(start).Round(time.Millisecond))
	}
	// A pattern is DuckDB's to glob over the view, and it matched safe
	// keys only, so it is a safe path too; checked all the same.
	local, err := keyPath(root, loc.Key)
	if err != nil {
		return "", src, sqlerror.Errorf(sqlerror.InvalidInput, "cannot read %s: %w", loc.URL, err)
	}
	return local, src, nil
}

// maxUnsafeKeyWarnings bounds the log lines one listing can cause: a
// bucket may hold any number of hostile keys.
const maxUnsafeKeyWarnings = 10

// warnUnsafeKeys logs the keys a glob skips because they cannot be local
// paths. A glob skips them, as a local glob never
// sees "." or ".." entries; naming one such key fails the statement.
// Keys ending in '/' are folder markers that consoles create: skipped
// without a word.
func (r *Resolver) warnUnsafeKeys(loc Location, listed []objstore.Object) {
	n := 0
	for _, o := range listed {
		if strings.HasSuffix(o.Key, "/") && checkKey(strings.TrimSuffix(o.Key, "/")) == nil {
			continue
		}
		err := checkKey(o.Key)
		if err == nil || !matchAnyKey(loc.Key, o.Key) {
			continue
		}
		n++
		if n <= maxUnsafeKeyWarnings {
			r.opts.Log.Warn("skipping object whose key cannot be a local path", "url", loc.URL, "key", quoteKey(o.Key), "err", err)
		}
	}
	if n > maxUnsafeKeyWarnings {
		r.opts.Log.Warn("skipped more objects whose keys cannot be local paths", "url", loc.URL, "skipped", n)
	}
}

// stage gives a COPY … TO a local target; Finish uploads what it wrote.
func (s *Statement) stage(loc Location) (string, error) {
	dir := filepath.Join(s.r.cache.dir, "staging", fmt.Sprint(s.r.seq.Add(1)))
	name := path.Base(loc.Key)
	if loc.Key == "" || name == "." || name == ".." || name == "/" {
		return "", sqlerror.Errorf(sqlerror.InvalidInput, "COPY TO needs an object key, got %s", loc.URL)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	local := filepath.Join(dir, name)
	s.uploads = append(s.uploads, upload{loc: loc, local: local, dir: dir})
	return local, nil
}

// Finish uploads a successful COPY … TO's output, then releases the
// statement's cached files and staging area. A failed statement uploads
// nothing.
func (s *Statement) Finish(ctx context.Context, succeeded bool) error {
	var err error
	for _, h := range s.hooks { // formats: e.g. write the workbook before its upload
		if herr := h(ctx, succeeded && err == nil); herr != nil && err == nil {
			err = herr
		}
	}
	s.hooks = nil
	succeeded = succeeded && err == nil
	if succeeded {
		for _, u := range s.uploads {
			if uerr := s.r.upload(ctx, u); uerr != nil && err == nil {
				err = uerr
			}
		}
	}
	for _, u := range s.uploads {
		os.RemoveAll(u.dir)
	}
	s.uploads = nil
	for _, e := range s.entries {
		s.r.cache.release(e)
	}
	s.entries = nil
	if s.view != "" {
		os.RemoveAll(s.view)
		s.view = ""
	}
	return err
}

// upload sends a staged file, or every file of a staged directory
// (PARTITION_BY, PER_THREAD_OUTPUT), under the target key.
func (r *Resolver) upload(ctx context.Context, u upload) error {
	b, err := r.bucket(ctx, u.loc)
	if err != nil {
		return err
	}
	base := path.Dir(u.loc.Key)
	if base == "." {
		base = ""
	}
	var files []string
	err = filepath.WalkDir(u.local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the statement wrote nothing
	}
	if err != nil {
		return sqlerror.Errorf(sqlerror.IO, "uploading to %s: %w", u.loc.URL, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, f := range files {
		g.Go(recovery.Func(r.opts.Log, recovery.Statement, "uploading to "+u.loc.URL, func() error {
			rel, _ := filepath.Rel(filepath.Dir(u.local), f)
			key := path.Join(base, filepath.ToSlash(rel))
			fh, err := os.Open(f)
			if err != nil {
				return err
			}
			defer fh.Close()
			st, err := fh.Stat()
			if err != nil {
				return err
			}
			if err := b.Upload(gctx, key, fh, st.Size()); err != nil {
				return fmt.Errorf("upload %s: %w", key, err)
			}
			return nil
		}))
	}
	if err := g.Wait(); err != nil {
		return sqlerror.Errorf(sqlerror.IO, "uploading to %s: %w", u.loc.URL, err)
	}
	r.opts.Log.Info("uploaded COPY output", "url", u.loc.URL, "files", len(files))
	return nil
}

// bucket returns a client for loc's bucket with the secret DuckDB would
// choose for its URL, reusing clients.
func (r *Resolver) bucket(ctx context.Context, loc Location) (objstore.Bucket, error) {
	sec := r.secrets.lookup(loc.URL, loc.Scheme)
	name := "(ambient)"
	if sec != nil {
		// The provider decides whose credentials are sent: it is part of
		// what makes two clients the same.
		name = sec.Name + "\x00" + sec.Provider + "\x00" + fmt.Sprint(sec.Options)
	}
	key := loc.bucketURL() + "\x00" + name
	r.mu.Lock()
	b := r.buckets[key]
	r.mu.Unlock()
	if b != nil {
		return b, nil
	}
	b, err := r.opts.Open(ctx, loc, sec)
	if err != nil {
		return nil, sqlerror.Errorf(sqlerror.IO, "opening %s: %w", loc.bucketURL(), err)
	}
	r.mu.Lock()
	r.buckets[key] = b
	r.mu.Unlock()
	return b, nil
}

// CacheBytes is the size of the object cache.
func (r *Resolver) CacheBytes() int64 { return r.cache.usage() }

type downloadsKey struct{}

// CountDownloads returns a context under which the bytes each statement
// downloads are added to n as every object arrives, for luna_sessions().
func CountDownloads(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, downloadsKey{}, n)
}

func downloadCounter(ctx context.Context) *atomic.Int64 {
	n, _ := ctx.Value(downloadsKey{}).(*atomic.Int64)
	return n
}

// progressLog logs large transfers every few seconds.
type progressLog struct {
	mu    sync.Mutex
	bytes int64
	done  chan struct{}
}

func (r *Resolver) progress(url string, objects int, total int64, start time.Time) *progressLog {
	p := &progressLog{done: make(chan struct{})}
	recovery.Go(r.opts.Log, recovery.Progress, "logging download progress", func() {
		t := time.NewTicker(r.opts.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.mu.Lock()
				n := p.bytes
				p.mu.Unlock()
				secs := time.Since(start).Seconds()
				r.opts.Log.Info("fetching objects", "url", url, "objects", objects, "bytes_done", n, "bytes_total", total,
					"mib_per_s", fmt.Sprintf("%.1f", float64(n)/secs/(1<<20)))
			}
		}
	}, "url", url)
	return p
}

func (p *progressLog) add(n int64) {
	p.mu.Lock()
	p.bytes += n
	p.mu.Unlock()
}

func (p *progressLog) stop() { close(p.done) }
