// Package testenv holds what the module's tests share: where the
// repository is, and a buffer that logs from many goroutines can be
// written to and read from safely.
package testenv

import (
	"bytes"
	"path/filepath"
	"runtime"
	"sync"
)

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// SyncBuffer is a bytes.Buffer safe for concurrent Write and String, for
// capturing the logs of code under test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
