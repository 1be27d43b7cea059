// Package filestamp notices that files were rewritten or replaced, by
// polling their device, inode, size and modification time: what an
// editor's save, an atomic rename (ACME clients, `luna user add`) or a
// secret-store agent changes. Polling works on every filesystem and in
// every container, which inotify does not.
package filestamp

import (
	"context"
	"os"
	"syscall"
	"time"
)

// Stamps are the states of some files, in order.
type Stamps []stamp

type stamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
	err      string
}

// Of stamps each of paths now; empty paths are skipped.
func Of(paths ...string) Stamps {
	out := make(Stamps, 0, len(paths))
	for _, p := range paths {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			out = append(out, stamp{err: err.Error()})
			continue
		}
		st := stamp{size: fi.Size(), mtime: fi.ModTime()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.dev, st.ino = uint64(sys.Dev), sys.Ino
		}
		out = append(out, st)
	}
	return out
}

// Equal reports whether nothing changed between a and b.
func (a Stamps) Equal(b Stamps) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i].dev == b[i].dev && a[i].ino == b[i].ino && a[i].size == b[i].size &&
			a[i].mtime.Equal(b[i].mtime) && a[i].err == b[i].err) {
			return false
		}
	}
	return true
}

// Unreadable reports whether a file could not be stat'ed.
func (a Stamps) Unreadable() bool {
	for _, s := range a {
		if s.err != "" {
			return true
		}
	}
	return false
}

// Every calls fn every interval until ctx ends.
func Every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}
