//go:build duckdb_arrow

package server

import (
	"context"
	"errors"

	"github.com/lunadb/luna/server/access"
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

// permitted checks the statements of sql against the session's role,
// running none of them. It is given the text as the client sent it: the
// object-store URLs, secrets and Luna's own functions that the resolver
// rewrites are judged as written.
func (ss *sqlSession) permitted(ctx context.Context, sql string) error {
	conn, err := ss.engineConn()
	if err != nil {
		return err
	}
	var luna func(string) bool
	if ss.srv.opts.Resolver != nil {
		luna = remote.Involved
	}
	stmts, err := conn.Classify(ctx, sql, luna)
	if err != nil {
		return err
	}
	err = access.Check(ss.role, stmts, conn.Settings(ctx))
	if d := (*access.Denied)(nil); errors.As(err, &d) {
		ss.log.Info("permission denied", "user", ss.user, "role", ss.role.String(), "denied", d.What)
	}
	return err
}

// execSQL runs every statement of an x: request in order, stopping at the
// first error. Requests that name no URL or secret go to DuckDB whole.
func (ss *sqlSession) execSQL(ctx context.Context, conn *engine.Conn, sql string) error {
	res := ss.srv.opts.Resolver
	if res == nil || !remote.Involved(sql) {
		ran, back := ss.sessionsRewrite(sql)
		err := back(conn.Exec(ctx, ran))
		ss.noteTypes(conn)
		return err
	}
	stmts := sqltext.Split(sql)
	if len(stmts) == 0 {
		return conn.Exec(ctx, sql) // DuckDB words the error
	}
	for _, st := range stmts {
		ran, back := ss.sessionsRewrite(st.Text)
		err := back(RunStatement(ctx, res, conn, ran))
		ss.noteStatement(conn, st.Text)
		if err != nil {
			return err
		}
	}
	return nil
}

// openQuery runs a q: request's statements but the last, then starts the
// last one's result. rows is nil when the last statement was carried out
// by Luna itself (a secret). finish must be called once the result has
// been sent, with whether it went out whole.
func (ss *sqlSession) openQuery(ctx context.Context, conn *engine.Conn, sql string) (rows *engine.Rows, finish func(ok bool) error, err error) {
	res := ss.srv.opts.Resolver
	none := func(bool) error { return nil }
	if res == nil || !remote.Involved(sql) {
		ran, back := ss.sessionsRewrite(sql)
		rows, err = conn.Query(ctx, ran, ss.srv.opts.BatchRows)
		ss.noteTypes(conn)
		return rows, none, back(err)
	}
	stmts := sqltext.Split(sql)
	if len(stmts) == 0 {
		rows, err = conn.Query(ctx, sql, ss.srv.opts.BatchRows)
		return rows, none, err
	}
	for _, st := range stmts[:len(stmts)-1] {
		ran, back := ss.sessionsRewrite(st.Text)
		err := back(RunStatement(ctx, res, conn, ran))
		ss.noteStatement(conn, st.Text)
		if err != nil {
			return nil, none, err
		}
	}
	lastText := stmts[len(stmts)-1].Text
	last, back := ss.sessionsRewrite(lastText)
	p, err := res.Prepare(ctx, last)
	if err != nil {
		return nil, none, back(err)
	}
	handed := false // finish is the caller's
	defer finishIfPanicking(ctx, p, &handed)
	finish = func(ok bool) error { return p.Finish(ctx, ok) }
	if p.SQL == "" {
		handed = true
		ss.types = append(ss.types, secretStatementType(lastText))
		return nil, finish, nil
	}
	rows, err = conn.Query(ctx, p.SQL, ss.srv.opts.BatchRows)
	ss.noteTypes(conn)
	handed = true
	if err != nil {
		finish(false)
		return nil, none, back(p.ClientError(err))
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
