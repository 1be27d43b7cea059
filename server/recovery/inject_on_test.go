//go:build lunapanic

package recovery

import "testing"

func TestInjectPanicsWhereAsked(t *testing.T) {
	defer func(s, m string, n int64) { injectSite, injectMatch, injectLimit = s, m, n }(injectSite, injectMatch, injectLimit)
	injectSite, injectMatch = parseAt("download:part-2")
	injectLimit = 1
	injected.Store(0)
	panicked := func(site, subject string) bool {
		return Do(nil, "test-inject", "x", func() error { Inject(site, subject); return nil }) != nil
	}
	if panicked("statement", "part-2") || panicked("download", "part-1") {
		t.Fatal("Inject panicked at a place it was not asked to")
	}
	if !panicked("download", "s3://b/part-2.csv") {
		t.Fatal("Inject did not panic where asked")
	}
	if panicked("download", "s3://b/part-2.csv") {
		t.Fatal("Inject panicked past LUNA_PANIC_COUNT")
	}
}
