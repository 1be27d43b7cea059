package remote

import (
	"path"
	"strings"
)

// matchKey reports whether key matches pattern the way DuckDB globs paths:
// '*', '?' and '[…]' match within one path segment, and a '**' segment
// matches any number of segments. A key that cannot be a local path
// (checkKey: "..", "." or empty segments, backslashes, control
// characters) matches no pattern: a glob skips it, as a glob over local
// files never sees such names.
func matchKey(pattern, key string) bool {
	return checkKey(key) == nil && matchAnyKey(pattern, key)
}

// matchAnyKey is matchKey without the check of the key, to tell which
// skipped keys a glob would otherwise have matched.
func matchAnyKey(pattern, key string) bool {
	return matchSegments(strings.Split(pattern, "/"), strings.Split(key, "/"))
}

func matchSegments(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(segs); i++ {
				if matchSegments(rest, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], segs[0]); err != nil || !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}
