package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/lunadb/luna/server/sqltext"
)

// metaHelp is .help's text; the commands are DuckDB's shell's, so that
// what people know from it works here.
const metaHelp = `.help                  this list
.quit, .exit           leave (so does Ctrl-D)
.tables                list the tables and views
.schema [table]        show the CREATE statements of every table, or of one
.mode [MODE]           show results as table, csv, json, line or markdown
.timer on|off          print how long each statement took
.maxrows N             show at most N rows of a result in table, line and markdown modes (0: all)
.progress on|off       show a progress line for statements running longer than a second
.output [FILE]         send results to FILE; without one, back to the screen
.read FILE             run the statements in FILE
Statements end with ';' and may span lines. Ctrl-C cancels the running
statement and keeps the session; at the prompt it clears what was typed.
Long or wide results page through $PAGER (less -S when it is not set).
`

// meta runs a meta-command; it reports whether the shell is to quit.
func (sh *shell) meta(ctx context.Context, line string) (quit bool) {
	args := strings.Fields(line)
	cmd, args := args[0], args[1:]
	fail := func(format string, a ...any) bool {
		fmt.Fprintf(sh.e.stderr, "error: "+format+"\n", a...)
		return false
	}
	switch cmd {
	case ".quit", ".exit", ".q":
		return true
	case ".help", ".h":
		fmt.Fprint(sh.e.stdout, metaHelp)
	case ".tables":
		sh.execute(ctx, tablesSQL)
	case ".schema":
		switch len(args) {
		case 0:
			sh.schema(ctx, "")
		case 1:
			sh.schema(ctx, args[0])
		default:
			return fail(".schema takes at most one table name")
		}
	case ".mode":
		switch {
		case len(args) == 0:
			fmt.Fprintf(sh.e.stdout, "current output mode: %s\n", sh.mode)
		case len(args) == 1 && slices.Contains(formats, args[0]) && args[0] != "arrow":
			sh.mode = args[0]
		default:
			return fail(".mode takes one of table, csv, json, line, markdown")
		}
	case ".timer", ".progress":
		on, ok := onOff(args)
		if !ok {
			return fail("%s takes on or off", cmd)
		}
		if cmd == ".timer" {
			sh.timer = on
		} else {
			sh.progress = on
		}
	case ".maxrows":
		n, err := -1, error(nil)
		if len(args) == 1 {
			n, err = strconv.Atoi(args[0])
		}
		if err != nil || n < 0 {
			return fail(".maxrows takes a whole number of rows, 0 for all")
		}
		sh.maxRows = n
	case ".output":
		if len(args) > 1 {
			return fail("%s takes at most one file name", cmd)
		}
		if sh.outFile != nil {
			sh.outFile.Close()
			sh.outFile = nil
		}
		sh.out = sh.e.stdout
		if len(args) == 1 {
			f, err := os.Create(args[0])
			if err != nil {
				return fail("%s: %v", cmd, err)
			}
			sh.outFile, sh.out = f, f
		}
	case ".read":
		if len(args) != 1 {
			return fail(".read takes one file name")
		}
		b, err := os.ReadFile(args[0])
		if err != nil {
			return fail(".read: %v", err)
		}
		for _, st := range sqltext.Split(string(b)) {
			if !sh.execute(ctx, st.Text) {
				break
			}
		}
	default:
		return fail("unknown command %s (.help lists them)", cmd)
	}
	return false
}

func onOff(args []string) (on, ok bool) {
	if len(args) != 1 {
		return false, false
	}
	switch strings.ToLower(args[0]) {
	case "on", "true", "1":
		return true, true
	case "off", "false", "0":
		return false, true
	}
	return false, false
}

// schema prints the CREATE statements of the tables and views, or of the
// one named, each ending in ';' as DuckDB's .schema does.
func (sh *shell) schema(ctx context.Context, table string) {
	sql := "SELECT sql FROM (" + catalogSQL + ")"
	if table != "" {
		sql += " WHERE name = " + quoteLiteral(table)
	}
	sql += " ORDER BY name"
	if !sh.ready(ctx) {
		return
	}
	rows, err := sh.conn.Query(ctx, sql)
	if err != nil {
		sh.reportOrDrop(err)
		return
	}
	defer rows.Close()
	var b bytes.Buffer
	for rows.Next() {
		rec := rows.RecordBatch()
		for i := range int(rec.NumRows()) {
			if s := rec.Column(0).ValueStr(i); rec.Column(0).IsValid(i) {
				b.WriteString(strings.TrimSuffix(strings.TrimSpace(s), ";") + ";\n")
			}
		}
	}
	if err := rows.Err(); err != nil {
		sh.reportOrDrop(err)
		return
	}
	sh.out.Write(b.Bytes())
}

// catalogSQL lists the session's tables and views (temporary ones too)
// from DuckDB's catalog, with their CREATE statements.
const catalogSQL = "SELECT table_name AS name, sql FROM duckdb_tables() WHERE NOT internal " +
	"UNION ALL SELECT view_name, sql FROM duckdb_views() WHERE NOT internal"

// tablesSQL is .tables: the names, as DuckDB's .tables lists them.
const tablesSQL = "SELECT DISTINCT name FROM (" + catalogSQL + ") ORDER BY name"

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// show writes a laid-out result to the screen, through the pager when it
// is taller or wider than the terminal.
func (sh *shell) show(b []byte) {
	width, height := sh.e.term.size()
	lines, widest := 0, 0
	for line := range bytes.Lines(b) {
		lines++
		widest = max(widest, displayWidth(strings.TrimRight(string(line), "\n")))
	}
	if lines < height && widest <= width {
		sh.e.stdout.Write(b)
		return
	}
	pager := os.Getenv("PAGER")
	if pager == "" {
		if _, err := exec.LookPath("less"); err != nil {
			sh.e.stdout.Write(b)
			return
		}
		pager = "less -S"
	}
	cmd := exec.Command("/bin/sh", "-c", pager)
	cmd.Stdin = bytes.NewReader(b)
	cmd.Stdout, cmd.Stderr = sh.e.stdout, sh.e.stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			// The pager would not start: the result still shows.
			fmt.Fprintf(sh.e.stderr, "(pager %q: %v)\n", pager, err)
			sh.e.stdout.Write(b)
		}
	}
}
