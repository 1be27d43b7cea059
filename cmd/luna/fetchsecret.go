//go:build duckdb_arrow

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lunadb/luna/server/passwd"
)

// fetchSecret is `luna fetch-secret SOURCE`: it prints a secret read from a
// --passwd-from source, so that the startup scripts fetch secret startup SQL
// (CREATE SECRET with credentials) with the same code, credentials and
// retries the server uses for its password. It returns the exit code.
func fetchSecret(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("luna fetch-secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to keep retrying a source that is not reachable yet")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: luna fetch-secret [--timeout 2m] SOURCE\n\n"+
			"Prints the secret SOURCE names (the forms of --passwd-from: gcp-metadata:<attribute>,\n"+
			"gcp-secretmanager:<secret>, aws-imds:<tag>, aws-ssm:<parameter>, aws-secretsmanager:<id>)\n"+
			"on stdout, trailing newlines trimmed. A missing, refused or empty secret fails at once.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	src, err := passwd.ParseSource(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "luna fetch-secret: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, err := passwd.Fetch(context.Background(), src, passwd.Options{Timeout: *timeout, Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "luna fetch-secret: %v\n", err)
		return 1
	}
	if _, err := io.WriteString(stdout, v+"\n"); err != nil {
		fmt.Fprintf(stderr, "luna fetch-secret: writing the secret: %v\n", err)
		return 1
	}
	return 0
}

// subcommands are the commands of the luna binary besides the server.
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"fetch-secret": fetchSecret,
}

func runSubcommand(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	cmd, ok := subcommands[args[0]]
	if !ok {
		return 0, false
	}
	return cmd(args[1:], os.Stdout, os.Stderr), true
}
