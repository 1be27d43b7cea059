// Package cli is the luna-deploy command line: it parses the subcommands
// and flags, reads the startup script and key files, and calls the deploy
// packages. cmd/luna-deploy only hands it the process's streams, signals
// (a context cancelled by SIGINT or SIGTERM) and environment; tests hand
// it fakes.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/lunadb/luna/deploy"
	"google.golang.org/api/option"
)

// Env is what the command line runs with.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// StdoutTTY turns on coloured prefixes in logs.
	StdoutTTY bool
	// GCPOptions and AWSConfig reach the clouds' clients: endpoints and
	// credentials for tests.
	GCPOptions []option.ClientOption
	AWSConfig  func(*aws.Config)
	Now        func() time.Time
	// PollInterval overrides the pause between polls of long operations.
	PollInterval time.Duration
}

// Exit codes. A command stopped by a signal exits with 128 plus the
// signal's number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// SignalError is the cause of a context cancelled by a signal; Main reads
// the signal from it for the exit code. The cause os/signal.NotifyContext
// sets is understood too.
type SignalError struct{ Signal syscall.Signal }

func (e SignalError) Error() string { return e.Signal.String() + " signal received" }

// Is makes a cancellation by a signal match context.Canceled, like
// NotifyContext's own cause.
func (e SignalError) Is(target error) bool { return target == context.Canceled }

var signalNames = map[syscall.Signal]string{
	syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "SIGHUP", syscall.SIGQUIT: "SIGQUIT",
}

// signalled returns the exit code for a context ended by a signal, and the
// signal's name, or false if ctx is still live. A context cancelled for
// another reason counts as an interrupt.
func signalled(ctx context.Context) (code int, name string, ok bool) {
	if ctx.Err() == nil {
		return 0, "", false
	}
	cause := context.Cause(ctx)
	var se SignalError
	if errors.As(cause, &se) {
		name := signalNames[se.Signal]
		if name == "" {
			name = se.Signal.String()
		}
		return 128 + int(se.Signal), name, true
	}
	// NotifyContext's cause is unexported; its text names the signal.
	for sig, name := range signalNames {
		if cause != nil && cause.Error() == (SignalError{sig}).Error() {
			return 128 + int(sig), name, true
		}
	}
	return 128 + int(syscall.SIGINT), "cancelled", true
}

// errUsage marks a usage error already explained on stderr.
var errUsage = errors.New("usage")

// Main runs luna-deploy with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if len(args) == 0 {
		topUsage(env.Stderr)
		return exitUsage
	}
	var cloud string
	switch args[0] {
	case "-h", "-help", "--help", "help":
		topUsage(env.Stdout)
		return exitOK
	case "mig", "asg":
		cloud = args[0]
	default:
		fmt.Fprintf(env.Stderr, "luna-deploy: unknown command %q: use mig (GCP) or asg (AWS)\n\n", args[0])
		topUsage(env.Stderr)
		return exitUsage
	}
	if len(args) < 2 {
		fmt.Fprintf(env.Stderr, "luna-deploy %s: missing subcommand: one of %s\n", cloud, strings.Join(commands, ", "))
		return exitUsage
	}
	cmd := args[1]
	if cmd == "-h" || cmd == "--help" || cmd == "help" {
		fmt.Fprintf(env.Stdout, "Usage: luna-deploy %s <%s> [flags]\nRun luna-deploy %s <command> --help for a command's flags and an example.\n", cloud, strings.Join(commands, "|"), cloud)
		return exitOK
	}
	if !known(cmd) {
		fmt.Fprintf(env.Stderr, "luna-deploy %s: unknown subcommand %q: one of %s\n", cloud, cmd, strings.Join(commands, ", "))
		return exitUsage
	}
	r := &run{env: env, cloud: cloud, cmd: cmd}
	err := r.parse(args[2:])
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err == nil {
		err = r.exec(ctx)
	}
	if code, sig, ok := signalled(ctx); ok && !errors.Is(err, errUsage) {
		if cmd == "logs" {
			// Ctrl-C is how a follow ends.
			return exitOK
		}
		// Whatever got done, the operator stopped it: never report
		// success, and say what may still be going on.
		msg := "stopped (" + sig + ")"
		switch cmd {
		case "create", "update", "delete":
			msg += ": an operation already sent goes on in the cloud; check with luna-deploy " + cloud + " status"
		case "restart":
			msg += ": the instance being restarted may still be starting; check with luna-deploy " + cloud + " status"
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			msg += " (" + err.Error() + ")"
		}
		fmt.Fprintf(env.Stderr, "luna-deploy %s %s: %s\n", cloud, cmd, msg)
		return code
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, deploy.ErrAborted):
		fmt.Fprintf(env.Stderr, "luna-deploy: %v\n", err)
		return exitError
	default:
		fmt.Fprintf(env.Stderr, "luna-deploy %s %s: %v\n", cloud, cmd, err)
		return exitError
	}
}

var commands = []string{"create", "update", "status", "restart", "logs", "delete"}

func known(cmd string) bool {
	for _, c := range commands {
		if c == cmd {
			return true
		}
	}
	return false
}

func topUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: luna-deploy <mig|asg> <command> [flags]

Create, inspect, roll and tail a Luna fleet.
  mig   a regional managed instance group on Google Compute Engine
  asg   an EC2 auto scaling group on AWS

Commands:
  create   make the template (instance template / launch template) and the group
  update   copy the current template with only the changes the flags name, and roll
           the instances over to it (launch before terminate; --dry-run shows the diff)
  status   list the instances: state, health, zone, internal IP, version
  restart  restart Luna on one instance after another over SSH (or on --instance
           ones), waiting for /readyz to answer 200 for --settle in between
  logs     tail the journals of Luna and the startup script of every instance
           over SSH, merged; follows instances that join, move or are replaced
  delete   remove the group and its templates (asks first unless --yes)

Examples:
  luna-deploy mig create --project my-proj --region europe-west1 --passwd-file pw.txt
  luna-deploy asg status --region eu-west-1 --profile prod
  luna-deploy mig logs --project my-proj --region europe-west1 -i ~/.ssh/id_ed25519 --follow

Run luna-deploy <mig|asg> <command> --help for a command's flags.
`)
}
