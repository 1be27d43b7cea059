// Package fspolicy is DuckDB's local-file lockdown (enable_external_access
// = false with allowed_directories and allowed_paths) as Luna applies it to
// the files its own readers and writers open for a client: read_xlsx,
// COPY … TO '….xlsx' and the Iceberg functions, which DuckDB never sees.
//
// DuckDB 1.5.6 compares paths after normalizing them and resolves symbolic
// links (a link in an allowed directory to /etc is refused). Luna does the
// same, stricter where it can: every path is made absolute and cleaned, and
// every symbolic link in it that exists is resolved before the comparison,
// so neither "..", a link, nor a relative path leaves an allowed directory.
package fspolicy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Policy is the lockdown in force. The zero Policy allows everything.
type Policy struct {
	// Locked is DuckDB's enable_external_access = false.
	Locked bool
	// Dirs are the allowed directories, Paths the allowed single files,
	// as DuckDB lists them.
	Dirs  []string
	Paths []string
}

// DeniedError is the refusal, worded as DuckDB words its own.
type DeniedError struct {
	Path string // as the client wrote it
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("Permission Error: Cannot access file \"%s\" - file system operations are disabled by configuration", e.Path)
}

// CheckRead reports whether a client may read the local file at path;
// shown is the path as the client wrote it, for the error.
func (p Policy) CheckRead(path, shown string) error {
	if !p.Locked {
		return nil
	}
	if r, ok := Resolve(path); ok && p.allowed(r) {
		return nil
	}
	return &DeniedError{Path: shown}
}

// CheckGlob is CheckRead for a pattern: the directories up to its first
// pattern element must be allowed (so that nothing outside is even
// listed); the file chosen from its matches must pass CheckRead.
func (p Policy) CheckGlob(pattern, shown string) error {
	return p.CheckRead(globBase(pattern), shown)
}

// CheckWrite reports whether a client may create or replace the file at
// path. The file itself is not resolved: Luna's writers replace a link
// rather than writing through it, so only its directory must be allowed.
func (p Policy) CheckWrite(path, shown string) error {
	if !p.Locked {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return &DeniedError{Path: shown}
	}
	dir, name := filepath.Split(abs)
	if name == "" || name == "." || name == ".." {
		return &DeniedError{Path: shown}
	}
	if r, ok := Resolve(dir); ok && p.allowed(filepath.Join(r, name)) {
		return nil
	}
	return &DeniedError{Path: shown}
}

func (p Policy) allowed(resolved string) bool {
	for _, d := range p.Dirs {
		if rd, ok := Resolve(d); ok && within(resolved, rd) {
			return true
		}
	}
	for _, f := range p.Paths {
		if rf, ok := Resolve(f); ok && resolved == rf {
			return true
		}
	}
	return false
}

// within reports whether p is dir or lies under it; both are clean and
// absolute.
func within(p, dir string) bool {
	if dir == "/" || p == dir {
		return true
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}

// Resolve makes p absolute and clean and resolves the symbolic links of its
// longest existing prefix; the part that does not exist yet is kept as
// written (cleaned). ok is false when an existing part cannot be resolved
// (no permission, a link loop): such a path is refused, since a link there
// could lead anywhere.
func Resolve(p string) (resolved string, ok bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false
	}
	rest := ""
	cur := abs
	for {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest), true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false
		}
		if fi, lerr := os.Lstat(cur); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return "", false // a dangling link: where it leads is not known
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, true
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// globBase is p up to (not including) its first element with a pattern
// character.
func globBase(p string) string {
	if !strings.ContainsAny(p, "*?[") {
		return p
	}
	parts := strings.Split(filepath.ToSlash(p), "/")
	for i, part := range parts {
		if strings.ContainsAny(part, "*?[") {
			base := strings.Join(parts[:i], "/")
			if base == "" && strings.HasPrefix(p, "/") {
				return "/"
			}
			if base == "" {
				return "."
			}
			return filepath.FromSlash(base)
		}
	}
	return p
}

// CheckSecrets refuses a lockdown under which a client could read stored
// secrets: an allowed directory that holds (or is) one of secretDirs.
func (p Policy) CheckSecrets(secretDirs ...string) error {
	if !p.Locked {
		return nil
	}
	for _, s := range secretDirs {
		if s == "" {
			continue
		}
		rs, ok := Resolve(s)
		if !ok {
			return fmt.Errorf("cannot resolve the stored secrets directory %s to check it against the allowed directories", s)
		}
		for _, d := range p.Dirs {
			if rd, ok := Resolve(d); ok && within(rs, rd) {
				return fmt.Errorf("allowed directory %s holds the stored secrets directory %s, which clients could then read with read_text: "+
					"keep secrets outside every allowed directory (e.g. --db-home-dir elsewhere, with --object-cache-dir and --temp-dir under the allowed directory)", d, s)
			}
		}
	}
	return nil
}
