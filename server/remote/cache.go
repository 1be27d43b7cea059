package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/recovery"
)

// cache keeps local copies of objects, one file per object version. An
// object is downloaded again only when its version changed; files no
// running statement uses are evicted, least recently used first, once the
// cache holds more than max bytes.
type cache struct {
	dir string
	max int64 // 0: no limit
	log *slog.Logger

	mu       sync.Mutex
	entries  map[string]*entry // by object URL
	size     int64
	inflight map[string]*download // by object URL + version
	seq      atomic.Uint64        // cache file names
}

type entry struct {
	url      string
	version  string
	path     string
	size     int64
	refs     int // statements using this file
	lastUsed time.Time
	stale    bool // replaced by a newer version; delete when unused
}

// download is one object version being fetched for every statement that
// waits on it. It runs on a context of its own, cancelled only when the
// last waiter leaves: one client going away must not fail the others.
type download struct {
	done    chan struct{}
	e       *entry
	err     error
	waiters int // c.mu; each gets a reference to e when it succeeds
	cancel  context.CancelCauseFunc
}

// stats counts cache traffic, for logs and tests.
type stats struct {
	Hits, Downloads int
	Bytes           int64
}

func newCache(dir string, max int64, log *slog.Logger) (*cache, error) {
	dir = filepath.Clean(dir)
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	// Copies from an earlier run are of unknown versions: start clean.
	if err := os.RemoveAll(filepath.Join(dir, "objects")); err != nil {
		return nil, fmt.Errorf("object cache %s: %w", dir, err)
	}
	for _, sub := range []string{"objects", "views", "staging"} {
		os.RemoveAll(filepath.Join(dir, sub))
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("object cache %s: %w", dir, err)
		}
	}
	return &cache{dir: dir, max: max, log: log, entries: map[string]*entry{}, inflight: map[string]*download{}}, nil
}

// privateDir makes dir (0700) or checks that the existing one is the
// server's own: a directory, not a symbolic link, owned by this user and
// not writable by group or others. Anyone else who can write there could
// swap cached objects for their own bytes, or plant links for the views.
func privateDir(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return fmt.Errorf("creating object cache directory %s: %w", dir, err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating object cache directory %s: %w", dir, err)
		}
		st, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("object cache directory %s: %w", dir, err)
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("object cache directory %s is a symbolic link; name the directory itself", dir)
	case !st.IsDir():
		return fmt.Errorf("object cache directory %s is not a directory", dir)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("object cache directory %s is writable by group or others (mode %04o); use a private directory (chmod 700)",
			dir, st.Mode().Perm())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return fmt.Errorf("object cache directory %s is owned by uid %d, not by the server's user (uid %d)", dir, sys.Uid, os.Getuid())
	}
	return nil
}

func hashName(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// acquire returns a local file holding obj at its listed version, and
// holds it until release. Concurrent requests for the same version share
// one download, which goes on while any of them still waits.
func (c *cache) acquire(ctx context.Context, b objstore.Bucket, url string, obj objstore.Object, st *stats) (*entry, error) {
	c.mu.Lock()
	if e := c.entries[url]; e != nil && e.version == obj.Version && !e.stale {
		e.refs++
		e.lastUsed = time.Now()
		st.Hits++
		c.mu.Unlock()
		return e, nil
	}
	key := url + "\x00" + obj.Version
	d := c.inflight[key]
	started := d == nil
	if started {
		// Not ctx: its cancellation is one waiter's, not the download's.
		dctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		d = &download{done: make(chan struct{}), cancel: cancel}
		c.inflight[key] = d
		go c.run(dctx, d, key, b, url, obj)
	}
	d.waiters++
	c.mu.Unlock()

	select {
	case <-d.done:
	case <-ctx.Done():
		c.mu.Lock()
		select {
		case <-d.done:
			// Finished meanwhile, and holds a reference for this waiter:
			// take it, so release balances it.
		default:
			d.waiters--
			if d.waiters == 0 {
				d.cancel(context.Cause(ctx))
				// Whoever asks next starts afresh rather than join a
				// download that is being cancelled.
				if c.inflight[key] == d {
					delete(c.inflight, key)
				}
			}
			c.mu.Unlock()
			return nil, context.Cause(ctx)
		}
		c.mu.Unlock()
	}
	if d.err != nil {
		return nil, d.err
	}
	if started {
		c.mu.Lock()
		st.Downloads++
		st.Bytes += d.e.size
		c.mu.Unlock()
	}
	return d.e, nil
}

// run carries out download d and hands its entry to the waiters left. A
// panic in the download is every waiter's error, and the download leaves
// the inflight set like a failed one: the next statement starts afresh.
func (c *cache) run(ctx context.Context, d *download, key string, b objstore.Bucket, url string, obj objstore.Object) {
	var e *entry
	err := recovery.Do(c.log, recovery.Download, "downloading "+url, func() (err error) {
		e, err = c.fetch(ctx, b, url, obj)
		recovery.Inject("download", url) // late, so that tests can gather waiters first
		return err
	}, "url", url)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer d.cancel(nil)
	if c.inflight[key] == d {
		delete(c.inflight, key)
	}
	d.e, d.err = e, err
	if err == nil {
		if old := c.entries[url]; old != e {
			if old != nil {
				old.stale = true
				c.dropIfUnused(old)
			}
			c.entries[url] = e
			c.size += e.size
		}
		// With no waiter left the file stays cached, unused, for the
		// next statement or for eviction.
		e.refs += d.waiters
		e.lastUsed = time.Now()
		c.evict()
	}
	close(d.done)
}

// fetch downloads obj into a new cache file.
func (c *cache) fetch(ctx context.Context, b objstore.Bucket, url string, obj objstore.Object) (*entry, error) {
	// A name of its own: a download abandoned by all its waiters may
	// still finish while a new one of the same version runs.
	n := c.seq.Add(1)
	final := filepath.Join(c.dir, "objects", fmt.Sprintf("%s-%d", hashName(url, obj.Version), n))
	f, err := os.CreateTemp(filepath.Join(c.dir, "objects"), ".part-*")
	if err != nil {
		return nil, fmt.Errorf("object cache: %w", err)
	}
	got, err := b.Download(ctx, obj.Key, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	// The version read may be newer than the one listed: keep the one
	// that matches the bytes.
	version := got.Version
	if version == "" {
		version = obj.Version
	}
	if version != obj.Version {
		final = filepath.Join(c.dir, "objects", fmt.Sprintf("%s-%d", hashName(url, version), n))
	}
	if err := os.Rename(f.Name(), final); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("object cache: %w", err)
	}
	st, err := os.Stat(final)
	if err != nil {
		return nil, fmt.Errorf("object cache: %w", err)
	}
	return &entry{url: url, version: version, path: final, size: st.Size()}, nil
}

// release ends a statement's use of e.
func (c *cache) release(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	e.lastUsed = time.Now()
	c.dropIfUnused(e)
	c.evict()
}

// dropIfUnused deletes a stale entry's file once nothing uses it.
// c.mu must be held.
func (c *cache) dropIfUnused(e *entry) {
	if e.stale && e.refs == 0 && e.path != "" {
		os.Remove(e.path)
		c.size -= e.size
		e.path = ""
	}
}

// forget drops the copy of an object that no longer exists.
func (c *cache) forget(url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[url]; e != nil {
		delete(c.entries, url)
		e.stale = true
		c.dropIfUnused(e)
	}
}

// evict removes unused files, least recently used first, while the cache
// is over its limit. c.mu must be held.
func (c *cache) evict() {
	if c.max <= 0 || c.size <= c.max {
		return
	}
	var idle []*entry
	for _, e := range c.entries {
		if e.refs == 0 {
			idle = append(idle, e)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastUsed.Before(idle[j].lastUsed) })
	for _, e := range idle {
		if c.size <= c.max {
			return
		}
		delete(c.entries, e.url)
		e.stale = true
		c.dropIfUnused(e)
		c.log.Debug("evicted object from cache", "url", e.url, "bytes", e.size)
	}
}

// usage is the bytes of cached files.
func (c *cache) usage() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// linkKey lays e's file out at key under root (a statement's view of a
// bucket) and returns the local path. It uses a hard link where the file
// system allows (no copy, and the view survives eviction of the entry).
// The key must be safe (keyPath) and no directory on the way may be a
// symbolic link; a path that already exists is an error unless it is
// this very file (a statement that names one object twice).
func linkKey(e *entry, root, key string) (string, error) {
	p, err := placeKey(root, key)
	if err != nil {
		return "", err
	}
	err = os.Link(e.path, p)
	if err != nil && !errors.Is(err, os.ErrExist) {
		err = os.Symlink(e.path, p)
	}
	if errors.Is(err, os.ErrExist) {
		if sameFile(p, e.path) {
			return p, nil
		}
		return "", fmt.Errorf("object key %s: local path %s already exists", quoteKey(key), p)
	}
	if err != nil {
		return "", fmt.Errorf("object key %s: %w", quoteKey(key), err)
	}
	return p, nil
}

// sameFile reports whether p is (a hard link to) target, or a symbolic
// link linkKey made to it.
func sameFile(p, target string) bool {
	st, err := os.Lstat(p)
	if err != nil {
		return false
	}
	if st.Mode()&os.ModeSymlink != 0 {
		to, err := os.Readlink(p)
		return err == nil && to == target
	}
	tst, err := os.Stat(target)
	return err == nil && st.Mode().IsRegular() && os.SameFile(st, tst)
}
