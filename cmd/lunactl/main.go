// Command lunactl is the command-line client of a Luna server: an
// interactive SQL shell at a terminal, one request otherwise.
//
// Usage:
//
//	lunactl [-addr host:port] [-user name] [-pass password] [-x | -q] [-p text | -f file] [-format table|csv|json|line|markdown|arrow] [-timeout d]
//	        [-tls] [-tls-ca-file f] [-tls-server-name n] [-tls-cert-file f -tls-key-file f] [-tls-insecure-skip-verify]
//
// The statement text comes from -p, from the file named by -f ("-" for
// standard input), or from standard input when it is not a terminal. The
// whole text is sent as one request: with -x the server runs every
// statement in it and lunactl prints the status; with -q (the default) the
// server returns the result of the last statement, which lunactl prints in
// the chosen format.
//
// With none of them and standard input a terminal, lunactl is a shell: one
// session for its whole life, statements ending at ';', DuckDB's
// meta-commands (.help lists them), Ctrl-C cancelling the running
// statement and a progress line for long ones.
//
// Exit status is 0 on success, 1 on any error (server errors are printed as
// "error: <message>") and 2 on bad usage.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/lunadb/luna/client"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// config is the parsed command line.
type config struct {
	addr    string
	pass    string
	user    string
	prefix  string
	format  string
	exec    bool // send as x: instead of q:
	payload string
	hasP    bool // -p was given, possibly empty
	file    string
	timeout time.Duration
	tls     *tls.Config // nil: plain TCP
}

// env is the process's outside world, replaceable in tests.
type env struct {
	stdin    io.Reader
	stdinTTY bool
	stdout   io.Writer
	stderr   io.Writer
	// term is the terminal the shell runs at; nil outside one, where
	// lunactl with no statement is a usage error.
	term *terminal
}

// usageError is a mistake on the command line; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func main() {
	e := env{
		stdin:    os.Stdin,
		stdinTTY: isTerminal(os.Stdin),
		stdout:   os.Stdout,
		stderr:   os.Stderr,
	}
	if e.stdinTTY {
		e.term = osTerminal()
	}
	os.Exit(run(context.Background(), os.Args[1:], e))
}

func run(ctx context.Context, args []string, e env) int {
	cfg, err := parseFlags(args, e.stderr)
	if err == nil && interactive(cfg, e) {
		return runShell(ctx, cfg, e)
	}
	if err == nil {
		// One request: Ctrl-C ends it, and the connection with it.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
		var stmt string
		if stmt, err = readStatement(cfg, e); err == nil {
			out := bufio.NewWriter(e.stdout)
			err = send(ctx, cfg, stmt, out)
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
		}
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errFlagSyntax):
		return exitUsage // the flag package has already explained
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "lunactl: %v\nRun 'lunactl -h' for usage.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(e.stderr, "error: %s\n", errorText(err))
		return exitError
	}
}

// interactive reports whether lunactl runs as a shell: no statement given
// and standard input a terminal.
func interactive(cfg *config, e env) bool {
	return e.term != nil && e.stdinTTY && !cfg.hasP && cfg.file == ""
}

// errFlagSyntax marks errors the flag package reported itself.
var errFlagSyntax = errors.New("bad flag")

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("lunactl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", client.DefaultAddr, "server `address`")
	x := fs.Bool("x", false, "send as execute (x:) and print the status")
	q := fs.Bool("q", false, "send as query (q:) and print the result (default)")
	typ := fs.String("type", "", "request `type`, q: or x: (older spelling of -q and -x)")
	fs.StringVar(&cfg.payload, "p", "", "statement `text`")
	fs.StringVar(&cfg.file, "f", "", "read statements from `file` (- for standard input)")
	fs.StringVar(&cfg.pass, "pass", "", "`password` sent as AUTH")
	fs.StringVar(&cfg.user, "user", "", "user `name` of a server's users file: sent as AUTH name password (needs -pass)")
	fs.StringVar(&cfg.prefix, "prefix", "$", "request `prefix`; anything but $ is sent raw")
	fs.StringVar(&cfg.format, "format", "table", "output `format`: table, csv, json, line, markdown or arrow")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "give up after `duration` (0 means no limit)")
	var tf tlsFlags
	tf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lunactl [flags]\n\n"+
			"Sends one request to a Luna server. The statement text comes from -p,\n"+
			"-f, or standard input when it is not a terminal; at a terminal without\n"+
			"them, lunactl is an interactive SQL shell (.help inside lists its commands).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errFlagSyntax
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (use -p for the statement)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { cfg.hasP = cfg.hasP || f.Name == "p" })

	if *x && *q {
		return nil, usagef("-x and -q are mutually exclusive")
	}
	cfg.exec = *x
	if *typ != "" {
		exec, err := parseType(*typ)
		if err != nil {
			return nil, err
		}
		if (*x && !exec) || (*q && exec) {
			return nil, usagef("-type %s contradicts -x/-q", *typ)
		}
		cfg.exec = exec
	}
	if cfg.hasP && cfg.file != "" {
		return nil, usagef("-p and -f are mutually exclusive")
	}
	if !slices.Contains(formats, cfg.format) {
		return nil, usagef("unknown format %q (want %s)", cfg.format, strings.Join(formats, ", "))
	}
	if cfg.timeout < 0 {
		return nil, usagef("negative -timeout")
	}
	if cfg.user != "" {
		if cfg.pass == "" {
			return nil, usagef("-user needs -pass")
		}
		if strings.ContainsAny(cfg.user, " \t\r\n") {
			return nil, usagef("-user %q: a user name has no spaces", cfg.user)
		}
		// Redis 6's form, as the server reads it.
		cfg.pass = cfg.user + " " + cfg.pass
	}
	var err error
	if cfg.tls, err = tf.config(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseType reads the -type value; the colon is optional.
func parseType(s string) (exec bool, err error) {
	switch strings.TrimSuffix(s, ":") {
	case "x":
		return true, nil
	case "q":
		return false, nil
	}
	return false, usagef("unknown -type %q (want q: or x:)", s)
}

// readStatement returns the statement text from -p, -f or standard input.
func readStatement(cfg *config, e env) (string, error) {
	var text string
	switch {
	case cfg.hasP:
		text = cfg.payload
	case cfg.file == "-" || (cfg.file == "" && !e.stdinTTY):
		b, err := io.ReadAll(e.stdin)
		if err != nil {
			return "", fmt.Errorf("reading standard input: %w", err)
		}
		text = string(b)
	case cfg.file != "":
		b, err := os.ReadFile(cfg.file)
		if err != nil {
			return "", err
		}
		text = string(b)
	default:
		return "", usagef("no statement: use -p, -f or pipe it to standard input")
	}
	if strings.TrimSpace(text) == "" {
		return "", usagef("empty statement")
	}
	return text, nil
}

// send runs the statement and writes its outcome to out.
func send(ctx context.Context, cfg *config, stmt string, out io.Writer) error {
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
	}
	c, err := client.Dial(ctx, cfg.addr, client.Options{Password: cfg.pass, TLS: cfg.tls})
	if err != nil {
		return err
	}
	defer c.Close()

	start := time.Now()
	var rows *client.Rows
	switch {
	case cfg.prefix != "$":
		typ := client.PrefixQuery
		if cfg.exec {
			typ = client.PrefixExec
		}
		rows, err = c.Do(ctx, rawRequest(cfg.prefix, typ, stmt), stmt)
	case cfg.exec:
		err = c.Exec(ctx, stmt)
	default:
		rows, err = c.Query(ctx, stmt)
	}
	if err != nil {
		return err
	}
	if cfg.exec {
		if rows != nil {
			if err := rows.Close(); err != nil {
				return err
			}
		}
		_, err := fmt.Fprintln(out, "OK")
		return err
	}
	defer rows.Close()
	p, err := newPrinter(cfg.format, out, rows.Schema())
	if err != nil {
		return err
	}
	return printRows(p, rows, start)
}

// rawRequest frames a request with an arbitrary prefix in place of '$', as
// the original lunactl did; the server only understands '$'.
func rawRequest(prefix, typ, stmt string) []byte {
	framed := client.AppendRequest(nil, typ, stmt)
	return append([]byte(prefix), framed[1:]...)
}

// errorText is the message printed after "error: ".
func errorText(err error) string {
	var le *client.Error
	if errors.As(err, &le) {
		return le.Message
	}
	return strings.TrimPrefix(err.Error(), "luna: ")
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
