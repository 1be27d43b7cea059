//go:build !lunapanic

package recovery

import "testing"

// The shipped build ignores LUNA_PANIC_AT.
func TestInjectIsOffWithoutTheTag(t *testing.T) {
	t.Setenv("LUNA_PANIC_AT", "statement")
	Inject("statement", "anything")
}
