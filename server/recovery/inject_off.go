//go:build !lunapanic

package recovery

// Inject raises a test panic when built with the lunapanic tag; in the
// shipped binary it does nothing and compiles away.
func Inject(site, subject string) {}
