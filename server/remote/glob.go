package remote

import (
	"path"
	"strings"
)

// matchKey reports whether key matches pattern the way DuckDB globs paths:
// '*', '?' and '[…]' match within one path segment, and a '**' segment
// matches any number of segments.
func matchKey(pattern, key string) bool {
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
