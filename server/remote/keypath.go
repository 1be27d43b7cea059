package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// errUnsafeKey marks an object key (or a remote path) that cannot become a
// local path: a bucket is written by others, and a key such as
// "data/../../stored_secrets/x.json" must never name a file outside the
// directory Luna lays objects out in.
var errUnsafeKey = errors.New("object key cannot be a local path")

// checkKey refuses keys that are absolute, have empty, "." or ".."
// segments, hold a backslash, NUL or other control character, or are not
// UTF-8 (which S3, GCS and Azure require anyway). Control characters are
// refused too: no real data set needs them, and a newline or escape in a
// file name confuses logs, terminals and DuckDB's errors.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", errUnsafeKey)
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("%w: %s is absolute", errUnsafeKey, quoteKey(key))
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %s is not valid UTF-8", errUnsafeKey, quoteKey(key))
	}
	for _, r := range key {
		switch {
		case r == '\\':
			return fmt.Errorf("%w: %s has a backslash", errUnsafeKey, quoteKey(key))
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("%w: %s has a control character", errUnsafeKey, quoteKey(key))
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %s has an empty path segment", errUnsafeKey, quoteKey(key))
		case ".", "..":
			return fmt.Errorf("%w: %s has a %q path segment", errUnsafeKey, quoteKey(key), seg)
		}
	}
	return nil
}

// quoteKey quotes a key for logs and errors so that control characters
// and invalid bytes in it show as escapes, and a long one stays short.
func quoteKey(key string) string {
	const max = 256
	if len(key) > max {
		return fmt.Sprintf("%q…", key[:max])
	}
	return fmt.Sprintf("%q", key)
}

// keyPath maps an object key to a path under root. It refuses any key
// checkKey refuses and proves that the result, once cleaned, lies strictly
// under root. It touches no file: placeKey checks what exists.
func keyPath(root, key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	rel := filepath.FromSlash(key)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %s", errUnsafeKey, quoteKey(key))
	}
	root = filepath.Clean(root)
	p := filepath.Join(root, rel)
	if back, err := filepath.Rel(root, p); err != nil || back != rel || !strings.HasPrefix(p, root+string(filepath.Separator)) {
		return "", fmt.Errorf("%w: %s leaves its directory", errUnsafeKey, quoteKey(key))
	}
	return p, nil
}

// placeKey returns keyPath(root, key) after making its parent directories
// under root, one at a time: every existing component must be a real
// directory, never a symbolic link (which could point anywhere), and root
// itself must be one (it is made if missing).
func placeKey(root, key string) (string, error) {
	p, err := keyPath(root, key)
	if err != nil {
		return "", err
	}
	// Root is Luna's own: the view directory, scheme, account and bucket.
	root = filepath.Clean(root)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	if err := realDir(root, false); err != nil {
		return "", err
	}
	segs := strings.Split(filepath.ToSlash(key), "/")
	dir := root
	for _, seg := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, seg)
		if err := realDir(dir, true); err != nil {
			return "", fmt.Errorf("placing object key %s: %w", quoteKey(key), err)
		}
	}
	return p, nil
}

// realDir checks that dir is a directory and not a symbolic link; with
// create, a missing one is made (0700).
func realDir(dir string, create bool) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) && create {
		err = os.Mkdir(dir, 0o700)
		if err != nil && !errors.Is(err, fs.ErrExist) { // another worker may have made it
			return err
		}
		st, err = os.Lstat(dir)
	}
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
