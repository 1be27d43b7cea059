package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lunadb/luna/packaging"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultMaintainer(t *testing.T) {
	for _, tc := range []struct {
		env         map[string]string
		want        string
		placeholder bool
	}{
		{nil, packaging.DefaultMaintainer, true},
		{map[string]string{"DEBEMAIL": "jane@example.com", "DEBFULLNAME": "Jane Doe"}, "Jane Doe <jane@example.com>", false},
		{map[string]string{"DEBEMAIL": "jane@example.com"}, "Luna packager <jane@example.com>", false},
		{map[string]string{"LUNA_PACKAGE_MAINTAINER": "Ops <ops@example.com>", "DEBEMAIL": "jane@example.com"}, "Ops <ops@example.com>", false},
	} {
		got, placeholder := defaultMaintainer(env(tc.env))
		if got != tc.want || placeholder != tc.placeholder {
			t.Errorf("env %v: %q, %v; want %q, %v", tc.env, got, placeholder, tc.want, tc.placeholder)
		}
	}
}

// TestBadMaintainer: a malformed -maintainer is a usage error, caught
// before anything is built.
func TestBadMaintainer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	out := t.TempDir()
	code := run([]string{"deb", "-version", "v1.0.0", "-maintainer", "jane@example.com", "-out", out}, &stdout, &stderr, env(nil))
	if code != 2 || !strings.Contains(stderr.String(), `-maintainer: maintainer "jane@example.com" is not "Name <address>"`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
