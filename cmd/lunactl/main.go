// Command lunactl sends one request to a Luna server and prints the answer.
//
// Usage:
//
//	lunactl [-addr host:port] [-user name] [-pass password] [-x | -q] [-p text | -f file] [-format table|csv|json|arrow] [-timeout d]
//	        [-tls] [-tls-ca-file f] [-tls-server-name n] [-tls-cert-file f -tls-key-file f] [-tls-insecure-skip-verify]
//
// The statement text comes from -p, from the file named by -f ("-" for
// standard input), or from standard input when it is not a terminal. The
// whole text is sent as one request: with -x the server runs every
// statement in it and lunactl prints the status; with -q (the default) the
// server returns the result of the last statement, which lunactl prints in
// the chosen format.
//
// Exit status is 0 on success, 1 on any error (server errors are printed as
// "error: <message>") and 2 on bad usage.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

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
}

// usageError is a mistake on the command line; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], env{
		stdin:    os.Stdin,
		stdinTTY: isTerminal(os.Stdin),
		stdout:   os.Stdout,
		stderr:   os.Stderr,
	})
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, e env) int {
	cfg, err := parseFlags(args, e.stderr)
	if err == nil {
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
	fs.StringVar(&cfg.format, "format", "table", "output `format`: table, csv, json or arrow")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "give up after `duration` (0 means no limit)")
	var tf tlsFlags
	tf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lunactl [flags]\n\n"+
			"Sends one request to a Luna server. The statement text comes from -p,\n"+
			"-f, or standard input when it is not a terminal.\n\nFlags:\n")
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
	switch cfg.format {
	case "table", "csv", "json", "arrow":
	default:
		return nil, usagef("unknown format %q (want table, csv, json or arrow)", cfg.format)
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
	return printRows(out, cfg.format, rows, start)
}

// rawRequest frames a request with an arbitrary prefix in place of '$', as
// the original lunactl did; the server only understands '$'.
func rawRequest(prefix, typ, stmt string) []byte {
	framed := client.AppendRequest(nil, typ, stmt)
	return append([]byte(prefix), framed[1:]...)
}

// printRows streams rows to w in the given format.
func printRows(w io.Writer, format string, rows *client.Rows, start time.Time) error {
	p, err := newPrinter(format, w, rows.Schema())
	if err != nil {
		return err
	}
	var n int64
	for rows.Next() {
		rec := rows.RecordBatch()
		n += rec.NumRows()
		if err := p.write(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return p.finish(n, time.Since(start))
}

// printer renders a result set batch by batch.
type printer interface {
	write(rec arrow.RecordBatch) error
	// finish completes the output; rows and elapsed feed the table footer.
	finish(rows int64, elapsed time.Duration) error
}

func newPrinter(format string, w io.Writer, schema *arrow.Schema) (printer, error) {
	switch format {
	case "table":
		return &tablePrinter{w: w, schema: schema}, nil
	case "csv":
		return newCSVPrinter(w, schema)
	case "json":
		return newJSONPrinter(w, schema), nil
	case "arrow":
		return &arrowPrinter{iw: ipc.NewWriter(w, ipc.WithSchema(schema))}, nil
	}
	return nil, usagef("unknown format %q", format)
}

// tablePrinter buffers the cells, since column widths depend on every row.
type tablePrinter struct {
	w      io.Writer
	schema *arrow.Schema
	rows   [][]string
}

// cellEscaper keeps each row on one line.
var cellEscaper = strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`)

func (p *tablePrinter) write(rec arrow.RecordBatch) error {
	for i := range int(rec.NumRows()) {
		row := make([]string, rec.NumCols())
		for j, col := range rec.Columns() {
			if col.IsNull(i) {
				row[j] = "NULL"
			} else {
				// Cloned: the batch's memory is reused once it is released.
				row[j] = strings.Clone(cellEscaper.Replace(col.ValueStr(i)))
			}
		}
		p.rows = append(p.rows, row)
	}
	return nil
}

func (p *tablePrinter) finish(n int64, elapsed time.Duration) error {
	fields := p.schema.Fields()
	if len(fields) == 0 {
		// A statement without a result set, sent as a query.
		_, err := fmt.Fprintln(p.w, "OK")
		return err
	}
	widths := make([]int, len(fields))
	right := make([]bool, len(fields))
	header := make([]string, len(fields))
	for j, f := range fields {
		header[j] = cellEscaper.Replace(f.Name)
		widths[j] = displayWidth(header[j])
		id := f.Type.ID()
		right[j] = arrow.IsInteger(id) || arrow.IsFloating(id) || arrow.IsDecimal(id)
	}
	for _, row := range p.rows {
		for j, cell := range row {
			widths[j] = max(widths[j], displayWidth(cell))
		}
	}

	var b strings.Builder
	border := func() {
		for _, w := range widths {
			b.WriteByte('+')
			b.WriteString(strings.Repeat("-", w+2))
		}
		b.WriteString("+\n")
	}
	line := func(cells []string) {
		for j, cell := range cells {
			pad := strings.Repeat(" ", widths[j]-displayWidth(cell))
			b.WriteString("| ")
			if right[j] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
			b.WriteByte(' ')
		}
		b.WriteString("|\n")
	}
	border()
	line(header)
	border()
	for _, row := range p.rows {
		line(row)
	}
	if len(p.rows) > 0 {
		border()
	}
	noun := "rows"
	if n == 1 {
		noun = "row"
	}
	fmt.Fprintf(&b, "(%d %s, %s)\n", n, noun, formatElapsed(elapsed))
	_, err := io.WriteString(p.w, b.String())
	return err
}

// displayWidth approximates how many terminal columns s occupies: East
// Asian wide characters and most emoji take two, combining marks none.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me):
		case isWide(r):
			n += 2
		default:
			n++
		}
	}
	return n
}

func isWide(r rune) bool {
	switch {
	case r < 0x1100:
		return false
	case r >= 0xFF01 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6, // fullwidth forms
		r >= 0x1F300 && r <= 0x1FAFF, // emoji and pictographs
		r >= 0x3000 && r <= 0x303F:   // CJK punctuation
		return true
	}
	return unicode.In(r, unicode.Han, unicode.Hangul, unicode.Hiragana, unicode.Katakana)
}

// formatElapsed rounds d to about three significant digits.
func formatElapsed(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

type csvPrinter struct {
	cw     *csv.Writer
	record []string
}

func newCSVPrinter(w io.Writer, schema *arrow.Schema) (*csvPrinter, error) {
	p := &csvPrinter{cw: csv.NewWriter(w), record: make([]string, schema.NumFields())}
	if len(p.record) == 0 {
		return p, nil
	}
	for j, f := range schema.Fields() {
		p.record[j] = f.Name
	}
	return p, p.cw.Write(p.record)
}

func (p *csvPrinter) write(rec arrow.RecordBatch) error {
	for i := range int(rec.NumRows()) {
		for j, col := range rec.Columns() {
			p.record[j] = "" // NULL
			if col.IsValid(i) {
				p.record[j] = col.ValueStr(i)
			}
		}
		if err := p.cw.Write(p.record); err != nil {
			return err
		}
	}
	return nil
}

func (p *csvPrinter) finish(int64, time.Duration) error {
	p.cw.Flush()
	return p.cw.Error()
}

// jsonPrinter writes one JSON object per row (JSON Lines), keeping the
// columns in schema order.
type jsonPrinter struct {
	w    io.Writer
	keys [][]byte // encoded column names
	buf  bytes.Buffer
	enc  *json.Encoder // encodes into scratch
	// scratch holds one encoded value; Encode appends a newline that
	// must not end up inside the row.
	scratch bytes.Buffer
}

func newJSONPrinter(w io.Writer, schema *arrow.Schema) *jsonPrinter {
	p := &jsonPrinter{w: w}
	p.enc = json.NewEncoder(&p.scratch)
	p.enc.SetEscapeHTML(false) // values are data, not HTML
	for _, f := range schema.Fields() {
		p.keys = append(p.keys, p.encode(f.Name))
	}
	return p
}

// encode returns the JSON encoding of v, or nil if it has none.
func (p *jsonPrinter) encode(v any) []byte {
	p.scratch.Reset()
	if err := p.enc.Encode(v); err != nil {
		return nil
	}
	return bytes.Clone(bytes.TrimSuffix(p.scratch.Bytes(), []byte("\n")))
}

func (p *jsonPrinter) write(rec arrow.RecordBatch) error {
	for i := range int(rec.NumRows()) {
		p.buf.Reset()
		p.buf.WriteByte('{')
		for j, col := range rec.Columns() {
			if j > 0 {
				p.buf.WriteByte(',')
			}
			p.buf.Write(p.keys[j])
			p.buf.WriteByte(':')
			if col.IsNull(i) {
				p.buf.WriteString("null")
				continue
			}
			v := p.encode(col.GetOneForMarshal(i))
			if v == nil {
				// JSON has no NaN or infinity; fall back to the text.
				v = p.encode(col.ValueStr(i))
			}
			p.buf.Write(v)
		}
		p.buf.WriteString("}\n")
		if _, err := p.w.Write(p.buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

func (p *jsonPrinter) finish(int64, time.Duration) error { return nil }

// arrowPrinter re-encodes the result as an Arrow IPC stream.
type arrowPrinter struct{ iw *ipc.Writer }

func (p *arrowPrinter) write(rec arrow.RecordBatch) error { return p.iw.Write(rec) }

func (p *arrowPrinter) finish(int64, time.Duration) error { return p.iw.Close() }

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
