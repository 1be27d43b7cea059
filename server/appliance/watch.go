//go:build duckdb_arrow

package appliance

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/lunadb/luna/server"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/metrics"
	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/server/remote"
	"github.com/lunadb/luna/server/sqltext"
)

// watcher keeps startup-SQL tables in step with the objects they were
// loaded from (--watch-interval): it lists their sources every interval and
// runs a table's CREATE again, as CREATE OR REPLACE, when an object was
// added, changed or deleted. DuckDB swaps the table in one commit, so a
// reader sees the old table or the new one, never a half-loaded one.
type watcher struct {
	res      *remote.Resolver
	log      *slog.Logger
	met      *metrics.Refreshes
	interval time.Duration
	// conn is the startup SQL's connection, kept so that a reload runs
	// with the same session settings the first load had.
	conn   *engine.Conn
	tables []*watchedTable
}

type watchedTable struct {
	file    string
	line    int
	name    string // as the statement spells it
	sql     string // the statement as CREATE OR REPLACE TABLE
	sources []remote.Source
}

// add is told of each startup statement that read object-store URLs.
func (w *watcher) add(file string, line int, stmt string, sources []remote.Source) {
	sql, name, ok := reloadable(stmt)
	if !ok {
		w.log.Info("startup statement reads object-store URLs but is not CREATE TABLE … AS; it is not re-run when they change",
			"file", file, "line", line)
		return
	}
	w.tables = append(w.tables, &watchedTable{file: file, line: line, name: name, sql: sql, sources: sources})
	w.met.Loaded(name, time.Now())
	w.log.Info("watching the sources of a table", "table", name, "file", file, "line", line,
		"sources", remote.Describe(sources), "interval", w.interval)
}

// reloadable turns CREATE [OR REPLACE] TABLE [IF NOT EXISTS] name … into
// CREATE OR REPLACE TABLE name …, and reports the table's name. Other
// statements (INSERT, temporary tables, …) are not safe to run twice.
func reloadable(stmt string) (sql, name string, ok bool) {
	toks := sqltext.Tokens(stmt)
	i := 0
	word := func(w string) bool {
		if i < len(toks) && toks[i].IsWord(w) {
			i++
			return true
		}
		return false
	}
	if !word("CREATE") {
		return "", "", false
	}
	if word("OR") && !word("REPLACE") {
		return "", "", false
	}
	if !word("TABLE") {
		return "", "", false
	}
	if word("IF") && !(word("NOT") && word("EXISTS")) {
		return "", "", false
	}
	if i >= len(toks) {
		return "", "", false
	}
	first := i
	for i < len(toks) && !toks[i].IsWord("AS") && toks[i].Value != "(" {
		i++
	}
	if i == first || i >= len(toks) {
		return "", "", false
	}
	name = strings.TrimSpace(stmt[toks[first].Start:toks[i-1].End])
	return "CREATE OR REPLACE TABLE " + stmt[toks[first].Start:], name, true
}

// run checks the sources every interval until ctx ends, then closes the
// connection.
func (w *watcher) run(ctx context.Context) {
	defer w.conn.Close()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, tbl := range w.tables {
			if ctx.Err() != nil {
				return
			}
			// A panic fails this check alone (logged and counted): the
			// table keeps its contents and is checked again next time.
			// The connection is between two DuckDB calls, as after a
			// failed reload, and goes on serving the checks.
			recovery.Do(w.log, recovery.Watch, "checking the sources of table "+tbl.name, func() error {
				w.check(ctx, tbl)
				return nil
			}, "table", tbl.name, "file", tbl.file, "line", tbl.line)
		}
	}
}

// check reloads tbl if its sources changed. A failed reload leaves the
// table as it was and is tried again at the next interval.
func (w *watcher) check(ctx context.Context, tbl *watchedTable) {
	recovery.Inject("watch", tbl.name)
	change, err := w.res.Changes(ctx, tbl.sources)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("cannot check a table's sources; will try again", "table", tbl.name, "err", err)
		}
		return
	}
	if !change.Any() {
		return
	}
	w.log.Info("sources changed; reloading table", "table", tbl.name, "file", tbl.file, "line", tbl.line,
		"new", change.New, "changed", change.Changed, "deleted", change.Deleted)
	start := time.Now()
	sources, err := server.RunTracked(ctx, w.res, w.conn, tbl.sql)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		w.met.Done(tbl.name, false)
		w.log.Error("reloading table failed; it keeps its previous contents", "table", tbl.name,
			"file", tbl.file, "line", tbl.line, "err", err)
		return
	}
	tbl.sources = sources
	w.met.Done(tbl.name, true)
	w.met.Loaded(tbl.name, time.Now())
	w.log.Info("table reloaded", "table", tbl.name, "sources", remote.Describe(sources),
		"duration", time.Since(start).Round(time.Millisecond))
}
