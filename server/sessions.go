//go:build duckdb_arrow

package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/sqltext"
	"github.com/lunadb/luna/wire"
)

// Session states as luna_sessions() shows them.
const (
	stateAuthenticating = "authenticating" // connected, AUTH not passed yet
	stateIdle           = "idle"
	stateRunning        = "running"   // statements running, nothing of the result out yet
	stateStreaming      = "streaming" // the result is being written
)

// sessionStatementLength is how much of a running request luna_sessions()
// shows, in characters.
const sessionStatementLength = 200

// killGrace is how long a killed session has to tell its client why
// before its connection is closed under it (a client that does not read
// would otherwise hold it).
const killGrace = 2 * time.Second

// liveState is what other sessions see of a session: luna_sessions()
// reads it and luna_cancel interrupts through it, from their own
// goroutines; the session's serving goroutine writes it.
type liveState struct {
	mu      sync.Mutex
	state   string
	text    string                  // the running request as received; redacted when shown
	started time.Time               // when the running request started
	cancel  context.CancelCauseFunc // ends the running request; nil when idle

	// rows and bytes count what the connection sent in all: result rows,
	// and response bytes (status tables included), updated as each batch
	// is written; downloaded counts the object-store bytes the running
	// request fetched, as each object arrives.
	rows, bytes, downloaded atomic.Int64
	// conn is the session's DuckDB connection once opened, for the
	// progress of its running statement.
	conn atomic.Pointer[engine.Conn]
}

func (l *liveState) setState(st string) {
	l.mu.Lock()
	l.state = st
	l.mu.Unlock()
}

// begin marks a request running and returns its context, which luna_cancel
// can end, and the function that marks the session idle again.
func (l *liveState) begin(ctx context.Context, text string, start time.Time) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	l.downloaded.Store(0) // before the request shows as running
	l.mu.Lock()
	l.state, l.text, l.started, l.cancel = stateRunning, text, start, cancel
	l.mu.Unlock()
	return ctx, func() {
		l.mu.Lock()
		l.state, l.text, l.started, l.cancel = stateIdle, "", time.Time{}, nil
		l.mu.Unlock()
		cancel(nil)
	}
}

// interrupt ends the running request with cause; false when none runs.
func (l *liveState) interrupt(cause error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel == nil {
		return false
	}
	l.cancel(cause)
	return true
}

// stoppedBy is the cause of a request ended by luna_cancel, or of a
// session ended by luna_kill: the client's error names who did it.
type stoppedBy struct {
	by   uint64
	kill bool
}

func (e *stoppedBy) Error() string {
	if e.kill {
		return fmt.Sprintf("killed by session %d (luna_kill)", e.by)
	}
	return fmt.Sprintf("cancelled by session %d (luna_cancel)", e.by)
}

// mentions reports whether sql holds name (lower case, starting with
// "luna_") in any case. It looks at underscores only, so a request that
// names no Luna function costs one fast byte search.
func mentions(sql, name string) bool {
	rest := name[len("luna"):]
	for off := 0; ; {
		i := strings.IndexByte(sql[off:], '_')
		if i < 0 {
			return false
		}
		i += off
		if i >= 4 && strings.EqualFold(sql[i-4:i], "luna") && len(sql)-i >= len(rest) && strings.EqualFold(sql[i:i+len(rest)], rest) {
			return true
		}
		off = i + 1
	}
}

// controlCall is one CALL luna_cancel(id) or CALL luna_kill(id).
type controlCall struct {
	kill bool
	id   uint64
}

func (c controlCall) name() string {
	if c.kill {
		return "luna_kill"
	}
	return "luna_cancel"
}

var errControlAlone = errors.New("CALL luna_cancel(id) and CALL luna_kill(id) must be sent as a request of their own, without other statements")

// controlRequest reads a request of CALL luna_cancel(id) and CALL
// luna_kill(id) statements. ok is false for a request that calls neither;
// err is set when it calls one in another form, or among other
// statements. Luna carries them out itself, before the request takes a
// query slot, so an operator can always stop a runaway query.
func controlRequest(sql string) (calls []controlCall, ok bool, err error) {
	if !mentions(sql, "luna_cancel") && !mentions(sql, "luna_kill") {
		return nil, false, nil
	}
	stmts := sqltext.Split(sql)
	others := false
	for _, st := range stmts {
		c, isCall, err := parseControl(st.Text)
		if err != nil {
			return nil, true, err
		}
		if !isCall {
			others = true
			continue
		}
		calls = append(calls, c)
	}
	switch {
	case len(calls) == 0:
		return nil, false, nil // the name is in a string or an identifier
	case others:
		return nil, true, errControlAlone
	}
	return calls, true, nil
}

// parseControl reads one statement: isCall when it is CALL luna_cancel
// or CALL luna_kill, err when its argument is not a session id.
func parseControl(stmt string) (c controlCall, isCall bool, err error) {
	toks := sqltext.Tokens(stmt)
	if len(toks) < 2 || !toks[0].IsWord("CALL") {
		return c, false, nil
	}
	switch {
	case toks[1].IsWord("luna_cancel"):
	case toks[1].IsWord("luna_kill"):
		c.kill = true
	default:
		return c, false, nil
	}
	usage := fmt.Errorf("%s takes one session id, a whole number from luna_sessions(): CALL %s(42)", c.name(), c.name())
	if len(toks) != 5 || toks[2].Value != "(" || toks[4].Value != ")" || toks[3].Kind != sqltext.Word {
		return c, true, usage
	}
	c.id, err = strconv.ParseUint(toks[3].Value, 10, 64)
	if err != nil {
		return c, true, usage
	}
	return c, true, nil
}

// runControl answers a request of luna_cancel and luna_kill calls.
func (ss *session) runControl(req wire.Request, calls []controlCall) error {
	ss.types = ss.types[:0]
	for _, c := range calls {
		ss.types = append(ss.types, "CALL")
		if err := ss.control(c); err != nil {
			ss.status(req.Text, err.Error())
			return err
		}
	}
	ss.status(req.Text, wire.OK)
	return nil
}

// control cancels the running request of session c.id, or kills the
// session. Admin may do so to any session, another role only to sessions
// of its own (named) user; to those it does not see, whether they exist is
// not told.
func (ss *sqlSession) control(c controlCall) error {
	s := ss.srv
	var target *sqlSession
	s.mu.Lock()
	role, user := ss.role, ss.user
	for t := range s.sessions {
		if t.id == c.id {
			target = t
			break
		}
	}
	own := target != nil && user != "" && target.user == user
	s.mu.Unlock()
	admin := role.Allows(access.Admin)
	switch {
	case !admin && !own:
		return fmt.Errorf("permission denied: role %s may %s only sessions of its own user (session %d is not one)", role, c.verb(), c.id)
	case target == nil:
		return fmt.Errorf("%s: no session %d (FROM luna_sessions() lists them)", c.name(), c.id)
	case target == ss && !c.kill:
		return fmt.Errorf("luna_cancel: session %d is this one; its running request is this CALL", c.id)
	}
	cause := &stoppedBy{by: ss.id, kill: c.kill}
	if !c.kill {
		if target.live.interrupt(cause) {
			ss.log.Info("request cancelled", "target", c.id)
		}
		return nil
	}
	ss.log.Info("session killed", "target", c.id)
	// The session ends with cause: its running request is interrupted and
	// answered with it, then the connection closes; the timer closes it
	// anyway should the session be stuck writing to its client.
	target.cancel(cause)
	time.AfterFunc(killGrace, target.hangUp)
	return nil
}

func (c controlCall) verb() string {
	if c.kill {
		return "kill"
	}
	return "cancel"
}

// sessionsRewrite replaces each luna_sessions() call of sql by a subquery
// of the sessions' state at this moment, which DuckDB then reads like any
// other table: Luna registers no functions in DuckDB, and a temporary
// macro would be a catalog change (one more statement and a checkpoint on
// every call). back maps DuckDB's errors about the rewritten text to sql,
// so excerpts quote what the client wrote.
func (ss *sqlSession) sessionsRewrite(sql string) (string, func(error) error) {
	same := func(err error) error { return err }
	if !mentions(sql, "luna_sessions") {
		return sql, same
	}
	toks := sqltext.Tokens(sql)
	var b strings.Builder
	var edits sqltext.Edits
	snapshot := ""
	last := 0
	for i := 0; i+2 < len(toks); i++ {
		t := toks[i]
		if !t.IsWord("luna_sessions") || toks[i+1].Value != "(" || toks[i+2].Value != ")" ||
			i > 0 && toks[i-1].Kind == sqltext.Symbol && toks[i-1].Value == "." {
			continue
		}
		if snapshot == "" {
			snapshot = "(" + ss.sessionsSQL(time.Now()) + ")"
		}
		end := toks[i+2].End
		b.WriteString(sql[last:t.Start])
		e := sqltext.Edit{OldStart: t.Start, OldEnd: end, NewStart: b.Len()}
		b.WriteString(snapshot)
		e.NewEnd = b.Len()
		edits = append(edits, e)
		last = end
		i += 2
	}
	if len(edits) == 0 {
		return sql, same
	}
	b.WriteString(sql[last:])
	ran := b.String()
	return ran, func(err error) error {
		var ee *engine.Error
		if errors.As(err, &ee) {
			ee.Message = sqltext.Reframe(ee.Message, ran, sql, edits.Back)
		}
		return err
	}
}

// sessionColumns are luna_sessions()'s columns and their types.
var sessionColumns = []struct{ name, typ string }{
	{"id", "UBIGINT"},
	{`"user"`, "VARCHAR"}, // NULL: the --passwd password, or no password
	{"role", "VARCHAR"},   // NULL before AUTH
	{"remote", "VARCHAR"},
	{"tls", "BOOLEAN"},
	{"connected_since", "TIMESTAMP"}, // UTC
	{"state", "VARCHAR"},             // authenticating, idle, running or streaming
	{"statement", "VARCHAR"},         // the running request's first 200 characters, secrets redacted; NULL when idle
	{"running_for", "DOUBLE"},        // seconds the running request has run; NULL when idle
	{"rows_sent", "BIGINT"},          // result rows the connection sent in all
	{"bytes_sent", "BIGINT"},         // response bytes the connection sent in all
	{"bytes_downloaded", "BIGINT"},   // object-store bytes the running request fetched so far; NULL when idle
	{"progress", "DOUBLE"},           // the running statement's percentage done, from DuckDB; NULL when idle or unknown
	{"rows_processed", "BIGINT"},     // rows the running statement has processed, from DuckDB; NULL when idle or unknown
	{"this_session", "BOOLEAN"},      // true for the session that asks
}

// sessionRow is one session as luna_sessions() shows it.
type sessionRow struct {
	id                 uint64
	user, role, remote string
	tls                bool
	since, started     time.Time
	state, text        string
	rows, bytes, down  int64
	progress           float64
	processed          uint64
	tracked, this      bool
	conn               *engine.Conn // asked for its progress once srv.mu is released
}

// sessionsSQL is the query that luna_sessions() stands for: every session
// to an admin, a session's own user's sessions to another role.
func (ss *sqlSession) sessionsSQL(now time.Time) string {
	s := ss.srv
	var rows []sessionRow
	s.mu.Lock()
	admin, user := ss.role.Allows(access.Admin), ss.user
	for t := range s.sessions {
		if !admin && (user == "" || t.user != user) {
			continue
		}
		r := sessionRow{id: t.id, user: t.user, role: t.role.String(), remote: t.remote, tls: t.tls != nil, since: t.since,
			rows: t.live.rows.Load(), bytes: t.live.bytes.Load(), down: t.live.downloaded.Load(), this: t == ss}
		t.live.mu.Lock()
		r.state, r.text, r.started = t.live.state, t.live.text, t.live.started
		t.live.mu.Unlock()
		if !r.started.IsZero() && t != ss {
			r.conn = t.live.conn.Load()
		}
		rows = append(rows, r)
	}
	s.mu.Unlock()
	for i := range rows {
		if c := rows[i].conn; c != nil {
			// DuckDB tracks it when the session has SET enable_progress_bar;
			// a call into DuckDB, so not under the server's lock.
			rows[i].progress, rows[i].processed, rows[i].tracked = c.Progress()
		}
	}
	slices.SortFunc(rows, func(a, b sessionRow) int { return compareUint(a.id, b.id) })

	var b strings.Builder
	b.WriteString("SELECT * FROM (VALUES ")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		if r.state == stateAuthenticating {
			r.role = ""
		}
		statement, runningFor, downloaded, progress, processed := "", "NULL", "NULL", "NULL", "NULL"
		if !r.started.IsZero() {
			statement = statementExcerpt(r.text, sessionStatementLength)
			runningFor = strconv.FormatFloat(now.Sub(r.started).Seconds(), 'f', 6, 64)
			downloaded = strconv.FormatInt(r.down, 10)
		}
		if r.tracked {
			progress = strconv.FormatFloat(r.progress, 'f', 2, 64)
			processed = strconv.FormatUint(r.processed, 10)
		}
		vals := []string{
			strconv.FormatUint(r.id, 10),
			literal(r.user),
			literal(r.role),
			literal(r.remote),
			strconv.FormatBool(r.tls),
			"'" + r.since.UTC().Format("2006-01-02 15:04:05.999999") + "'",
			literal(r.state),
			literal(statement),
			runningFor,
			strconv.FormatInt(r.rows, 10),
			strconv.FormatInt(r.bytes, 10),
			downloaded,
			progress,
			processed,
			strconv.FormatBool(r.this),
		}
		b.WriteByte('(')
		for j, v := range vals {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v + "::" + sessionColumns[j].typ)
		}
		b.WriteByte(')')
	}
	if len(rows) == 0 {
		// Typed like the rows, with none: a user of another role with no
		// session of its own, which cannot happen while it asks.
		b.WriteString("(")
		for j, c := range sessionColumns {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("NULL::" + c.typ)
		}
		b.WriteString(")")
	}
	b.WriteString(") AS luna_sessions(")
	for j, c := range sessionColumns {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.name)
	}
	b.WriteString(")")
	if len(rows) == 0 {
		b.WriteString(" WHERE false")
	}
	return b.String()
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// literal is s as a SQL string literal, NULL when empty. Text from
// clients is made printable first: DuckDB reads statements as C strings
// (a NUL would end the statement), and control characters are of no use
// in a listing. Quotes are doubled; a backslash means nothing in a plain
// literal.
func literal(s string) string {
	if s == "" {
		return "NULL"
	}
	return sqltext.Quote(printable(s))
}

// printable replaces invalid UTF-8, and control characters but space,
// with U+FFFD, or with a space for line breaks and tabs.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r):
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// statementExcerpt is sql's first n characters with secret values
// redacted (see sqltext.Redact), "…" marking a cut. Only a prefix is
// redacted, so a long request costs no more than a short one; a literal
// cut by it still counts as one, and what lies past the prefix is never
// shown.
func statementExcerpt(sql string, n int) string {
	if n <= 0 {
		return ""
	}
	cut := false
	if limit := 4096 + 4*n; len(sql) > limit {
		sql, cut = sql[:limit], true
	}
	red := sqltext.Redact(sql).SQL
	red = strings.ToValidUTF8(red, "\uFFFD")
	if utf8.RuneCountInString(red) > n {
		i, count := 0, 0
		for i = range red {
			if count == n {
				break
			}
			count++
		}
		red, cut = red[:i], true
	}
	red = strings.TrimSpace(red)
	if cut {
		red += "…"
	}
	return red
}

// noteTypes adds the statement types conn prepared for the request's
// last engine call to the request's, for the query log.
func (ss *sqlSession) noteTypes(conn *engine.Conn) {
	ss.types = append(ss.types, conn.StatementTypes()...)
}
