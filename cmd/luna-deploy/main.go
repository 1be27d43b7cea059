// Command luna-deploy creates, inspects, rolls and tails a Luna fleet: a
// regional managed instance group on GCP (luna-deploy mig ...) or an auto
// scaling group on AWS (luna-deploy asg ...). The work is done by
// deploy/cli; this file only wires in the process's streams and signals.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lunadb/luna/deploy/cli"
)

func main() {
	// Ctrl-C cancels the context: a follow ends cleanly, a wait stops.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		StdoutTTY: isTerminal(os.Stdout),
	})
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
