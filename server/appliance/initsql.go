//go:build duckdb_arrow

package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lunadb/luna/server"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/remote"
	"github.com/lunadb/luna/server/sqltext"
)

// initFiles expands the --init-sql paths: a file as it is, a directory as
// its *.sql files in lexical order.
func initFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--init-sql %s: %w", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("--init-sql %s: %w", p, err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, filepath.Join(p, n))
		}
	}
	return files, nil
}

// InitError is a failed startup statement.
type InitError struct {
	File string
	Line int
	Err  error
}

func (e *InitError) Error() string {
	return fmt.Sprintf("startup SQL %s:%d: %v", e.File, e.Line, e.Err)
}

func (e *InitError) Unwrap() error { return e.Err }

// initRunner runs the startup SQL on one connection.
type initRunner struct {
	conn            *engine.Conn
	resolver        *remote.Resolver // nil: statements go to DuckDB as they are
	log             *slog.Logger
	continueOnError bool
	// started is called before each statement, so the caller can tell a
	// supervisor that startup is still making progress.
	started func(file string, line int)
	// loaded, when set, is told of each statement that read object-store
	// URLs, so that a watcher can run it again when they change.
	loaded func(file string, line int, stmt string, sources []remote.Source)
}

// run runs every statement of files in order. With continueOnError a
// failing statement is logged and skipped; otherwise the first failure is
// returned as an *InitError.
func (r *initRunner) run(ctx context.Context, files []string) (failed int, err error) {
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return failed, fmt.Errorf("startup SQL %s: %w", f, err)
		}
		stmts := sqltext.Split(string(src))
		r.log.Info("running startup SQL", "file", f, "statements", len(stmts))
		for i, st := range stmts {
			if r.started != nil {
				r.started(f, st.Line)
			}
			start := time.Now()
			sources, err := server.RunTracked(ctx, r.resolver, r.conn, st.Text)
			if err != nil {
				if ctx.Err() != nil {
					return failed, context.Cause(ctx)
				}
				ierr := &InitError{File: f, Line: st.Line, Err: err}
				if !r.continueOnError {
					return failed, ierr
				}
				failed++
				r.log.Error("startup statement failed; continuing", "file", f, "line", st.Line, "err", err)
				continue
			}
			r.log.Info("startup statement done", "file", f, "line", st.Line,
				"statement", fmt.Sprintf("%d/%d", i+1, len(stmts)), "duration", time.Since(start).Round(time.Millisecond))
			if len(sources) > 0 && r.loaded != nil {
				r.loaded(f, st.Line, st.Text, sources)
			}
		}
	}
	return failed, nil
}
