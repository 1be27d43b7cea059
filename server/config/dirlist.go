package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DirList is a comma-separated list of absolute directories.
type DirList []string

func (d *DirList) String() string { return strings.Join(*d, ",") }

// Set replaces the list with the directories in s.
func (d *DirList) Set(s string) error {
	*d = nil
	for _, dir := range strings.Split(s, ",") {
		dir = strings.TrimSpace(dir)
		if dir == "" {
			return fmt.Errorf("empty directory in %q", s)
		}
		*d = append(*d, dir)
	}
	return nil
}

// validate wants absolute paths: a relative one would depend on the
// working directory the service happens to start in.
func (d DirList) validate() error {
	for _, dir := range d {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("%q is not an absolute path", dir)
		}
	}
	return nil
}
