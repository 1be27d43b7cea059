package packaging

import (
	"fmt"
	"regexp"
	"strings"
)

// describeRE splits `git describe --tags --always --dirty` output: an
// optional tag with the commits since it and the commit, or a bare commit.
var describeRE = regexp.MustCompile(`^(?:(.+)-([0-9]+)-g([0-9a-f]{4,40})|([0-9a-f]{4,40}))?(-dirty)?$`)

// debVersionRE is what a Debian upstream version may hold when the package
// has no revision: a leading digit, then alphanumerics and . + ~ only.
var debVersionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// DebianVersion turns `git describe --tags --always --dirty` output (the
// Makefile's VERSION) into a Debian package version that sorts the way the
// releases do:
//
//	v1.2.3                  1.2.3
//	v1.2.3-rc1              1.2.3~rc1        (before 1.2.3)
//	v1.2.3-4-gabc1234       1.2.3+git4.abc1234 (after 1.2.3)
//	abc1234 (no tag)        0.0.0~gitabc1234
//	... -dirty              ... with .dirty (or +dirty) appended
//	dev (no git)            0.0.0~dev
func DebianVersion(describe string) (string, error) {
	in := strings.TrimSpace(describe)
	if in == "" {
		return "", fmt.Errorf("empty version")
	}
	if in == "dev" {
		return "0.0.0~dev", nil
	}
	m := describeRE.FindStringSubmatch(in)
	if m == nil || (m[1] == "" && m[4] == "") {
		// A plain tag (v1.2.3, v1.2.3-rc1), possibly dirty.
		tag, dirty := strings.CutSuffix(in, "-dirty")
		v, err := tagVersion(tag)
		if err != nil {
			return "", fmt.Errorf("version %q: %w", describe, err)
		}
		if dirty {
			v += "+dirty"
		}
		return check(describe, v)
	}
	var v string
	switch {
	case m[4] != "": // no tag: only the commit
		v = "0.0.0~git" + m[4]
	default:
		base, err := tagVersion(m[1])
		if err != nil {
			return "", fmt.Errorf("version %q: %w", describe, err)
		}
		v = base + "+git" + m[2] + "." + m[3]
	}
	if m[5] != "" {
		v += ".dirty"
	}
	return check(describe, v)
}

// tagVersion converts a release tag: v1.2.3 -> 1.2.3, v1.2.3-rc.1 -> 1.2.3~rc.1.
func tagVersion(tag string) (string, error) {
	t := strings.TrimPrefix(tag, "v")
	if t == "" || t[0] < '0' || t[0] > '9' {
		return "", fmt.Errorf("tag %q does not start with a number (want v1.2.3)", tag)
	}
	// A pre-release suffix sorts before the release in Debian with ~.
	if base, pre, ok := strings.Cut(t, "-"); ok {
		t = base + "~" + strings.ReplaceAll(pre, "-", ".")
	}
	return t, nil
}

func check(describe, v string) (string, error) {
	if !debVersionRE.MatchString(v) {
		return "", fmt.Errorf("version %q gives %q, which is not a valid Debian version", describe, v)
	}
	return v, nil
}
