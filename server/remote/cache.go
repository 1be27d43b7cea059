package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/lunadb/luna/server/objstore"
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

type download struct {
	done chan struct{}
	e    *entry
	err  error
}

// stats counts cache traffic, for logs and tests.
type stats struct {
	Hits, Downloads int
	Bytes           int64
}

func newCache(dir string, max int64, log *slog.Logger) (*cache, error) {
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
// one download.
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
	if d == nil {
		d = &download{done: make(chan struct{})}
		c.inflight[key] = d
		c.mu.Unlock()
		d.e, d.err = c.fetch(ctx, b, url, obj)
		c.mu.Lock()
		delete(c.inflight, key)
		close(d.done)
		if d.err == nil {
			st.Downloads++
			st.Bytes += d.e.size
		}
	} else {
		c.mu.Unlock()
		select {
		case <-d.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	e := d.e
	if old := c.entries[url]; old != e {
		if old != nil {
			old.stale = true
			c.dropIfUnused(old)
		}
		c.entries[url] = e
		c.size += e.size
	}
	e.refs++
	e.lastUsed = time.Now()
	c.evict()
	return e, nil
}

// fetch downloads obj into a new cache file.
func (c *cache) fetch(ctx context.Context, b objstore.Bucket, url string, obj objstore.Object) (*entry, error) {
	final := filepath.Join(c.dir, "objects", hashName(url, obj.Version))
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
		final = filepath.Join(c.dir, "objects", hashName(url, version))
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

// linkInto makes path point at e's file, with a hard link where the file
// system allows (no copy, and the view survives eviction of the entry).
func linkInto(e *entry, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	err := os.Link(e.path, path)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return os.Symlink(e.path, path)
	}
	return nil
}
