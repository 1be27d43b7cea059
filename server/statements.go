//go:build duckdb_arrow

package server

import (
	"context"

	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/remote"
	"github.com/lunadb/luna/server/sqltext"
)

// RunStatement runs one statement to completion, resolving the
// object-store URLs in it when res is set: downloads before, uploads of a
// COPY … TO after success.
func RunStatement(ctx context.Context, res *remote.Resolver, conn *engine.Conn, stmt string) error {
	_, err := RunTracked(ctx, res, conn, stmt)
	return err
}

// RunTracked is RunStatement that also returns the object-store sources
// the statement read, with the object versions it saw.
func RunTracked(ctx context.Context, res *remote.Resolver, conn *engine.Conn, stmt string) ([]remote.Source, error) {
	if res == nil || !remote.Involved(stmt) {
		return nil, conn.Exec(ctx, stmt)
	}
	p, err := res.Prepare(ctx, stmt)
	if err != nil {
		return nil, err
	}
	finishing := false
	defer finishIfPanicking(ctx, p, &finishing)
	if p.SQL != "" {
		err = p.ClientError(conn.Exec(ctx, p.SQL))
	}
	finishing = true
	if ferr := p.Finish(ctx, err == nil); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return p.Sources, nil
}

// execSQL runs every statement of an x: request in order, stopping at the
// first error. Requests that name no URL or secret go to DuckDB whole.
func (ss *session) execSQL(ctx context.Context, conn *engine.Conn, sql string) error {
	res := ss.srv.opts.Resolver
	if res == nil || !remote.Involved(sql) {
		return conn.Exec(ctx, sql)
	}
	stmts := sqltext.Split(sql)
	if len(stmts) == 0 {
		return conn.Exec(ctx, sql) // DuckDB words the error
	}
	for _, st := range stmts {
		if err := RunStatement(ctx, res, conn, st.Text); err != nil {
			return err
		}
	}
	return nil
}

// openQuery runs a q: request's statements but the last, then starts the
// last one's result. rows is nil when the last statement was carried out
// by Luna itself (a secret). finish must be called once the result has
// been sent, with whether it went out whole.
func (ss *session) openQuery(ctx context.Context, conn *engine.Conn, sql string) (rows *engine.Rows, finish func(ok bool) error, err error) {
	res := ss.srv.opts.Resolver
	none := func(bool) error { return nil }
	if res == nil || !remote.Involved(sql) {
		rows, err = conn.Query(ctx, sql, ss.srv.opts.BatchRows)
		return rows, none, err
	}
	stmts := sqltext.Split(sql)
	if len(stmts) == 0 {
		rows, err = conn.Query(ctx, sql, ss.srv.opts.BatchRows)
		return rows, none, err
	}
	for _, st := range stmts[:len(stmts)-1] {
		if err := RunStatement(ctx, res, conn, st.Text); err != nil {
			return nil, none, err
		}
	}
	p, err := res.Prepare(ctx, stmts[len(stmts)-1].Text)
	if err != nil {
		return nil, none, err
	}
	handed := false // finish is the caller's
	defer finishIfPanicking(ctx, p, &handed)
	finish = func(ok bool) error { return p.Finish(ctx, ok) }
	if p.SQL == "" {
		handed = true
		return nil, finish, nil
	}
	rows, err = conn.Query(ctx, p.SQL, ss.srv.opts.BatchRows)
	handed = true
	if err != nil {
		finish(false)
		return nil, none, p.ClientError(err)
	}
	return rows, finish, nil
}

// finishIfPanicking, deferred, finishes p as failed when a panic unwinds
// past it before *done was set, so the statement's cached files and views
// are released before the panic reaches the session's recovery (run).
func finishIfPanicking(ctx context.Context, p *remote.Statement, done *bool) {
	if !*done {
		p.Finish(ctx, false)
	}
}
