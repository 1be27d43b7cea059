//go:build lunapanic

package recovery

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Test builds (-tags lunapanic) read LUNA_PANIC_AT=<site>[:<match>]: Inject
// panics at site when its subject contains match (any subject without
// one). LUNA_PANIC_COUNT=n stops after n panics.
var (
	injectSite, injectMatch = parseAt(os.Getenv("LUNA_PANIC_AT"))
	injectLimit, _          = strconv.ParseInt(os.Getenv("LUNA_PANIC_COUNT"), 10, 64)
	injected                atomic.Int64
)

func parseAt(s string) (site, match string) {
	site, match, _ = strings.Cut(s, ":")
	return site, match
}

// Inject panics at site as LUNA_PANIC_AT asks, the way the bug that
// prompted this package did: a conversion of a nil interface.
func Inject(site, subject string) {
	if injectSite == "" || site != injectSite || !strings.Contains(subject, injectMatch) {
		return
	}
	if injectLimit > 0 && injected.Add(1) > injectLimit {
		return
	}
	var v any
	_ = v.(string)
}
