//go:build duckdb_arrow

package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lunadb/luna/server/admission"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/recovery"
	"github.com/lunadb/luna/server/sqlerror"
	"github.com/lunadb/luna/server/sqltext"
)

// QueryLog is the query log: one line per request, on a logger of its
// own so that operators can route or filter it (its lines carry
// log=query).
type QueryLog struct {
	// Log receives the lines (NewQueryLogger).
	Log *slog.Logger
	// All logs every request; otherwise only those that did not succeed.
	All bool
	// StatementLength is how many characters of the statement text a line
	// shows, secret values redacted (0: none).
	StatementLength int
}

// QueryLogAttr is the attribute every query-log line carries.
var QueryLogAttr = slog.String("log", "query")

// NewQueryLogger returns a logger that writes through h, in its format
// and to its output, whatever h's level: --query-log decides what is
// logged, not --log-level.
func NewQueryLogger(h slog.Handler) *slog.Logger {
	return slog.New(anyLevel{h}).With(QueryLogAttr)
}

// anyLevel passes every record on to its handler. slog's own handlers
// check the level only in Enabled, which the Logger calls.
type anyLevel struct{ h slog.Handler }

func (a anyLevel) Enabled(context.Context, slog.Level) bool { return true }

func (a anyLevel) Handle(ctx context.Context, r slog.Record) error { return a.h.Handle(ctx, r) }

func (a anyLevel) WithAttrs(attrs []slog.Attr) slog.Handler { return anyLevel{a.h.WithAttrs(attrs)} }

func (a anyLevel) WithGroup(name string) slog.Handler { return anyLevel{a.h.WithGroup(name)} }

// reqMark is where the connection's counters stood when a request began.
type reqMark struct {
	start       time.Time
	rows, bytes int64
}

func (ss *sqlSession) mark(start time.Time) reqMark {
	return reqMark{start: start, rows: ss.live.rows.Load(), bytes: ss.sentBytes()}
}

// sent is the response bytes written or buffered so far.
func (ss *session) sent() int64 { return ss.bw.Written() + int64(ss.bw.Buffered()) }

// finished records a finished request: the counters luna_sessions()
// shows, the metrics (outcome as Observer.Request takes it) and the
// query log. text is what the client sent, for an AUTH line never
// logged.
func (ss *sqlSession) finished(kind, outcome string, m reqMark, err error, text string) {
	d := time.Since(m.start)
	ss.srv.opts.Observer.Request(kind, outcome, d)
	sent := ss.sentBytes()
	ss.live.bytes.Store(sent)
	ql := ss.srv.opts.QueryLog
	if ql == nil || ql.Log == nil {
		return
	}
	class := ""
	switch {
	case kind == "auth" && outcome == "denied":
		class = "auth"
	case kind == "malformed" || errors.Is(err, errUnknownPrefix):
		class = "protocol"
	case outcome == "denied" && err == nil:
		class = "auth" // a request before AUTH
	case err != nil || outcome != "ok":
		class = ss.errorClass(err)
	}
	if class == "permission" {
		outcome = "denied"
	}
	if outcome == "ok" && !ql.All {
		return
	}
	// The session's own goroutine is the only writer of ss.user, so it
	// reads it without srv.mu: no request contends on the server's lock.
	user := ss.user
	attrs := []slog.Attr{
		slog.Uint64("session", ss.id),
		slog.String("user", user),
		slog.String("remote", ss.remote),
		slog.String("kind", kind),
		slog.Any("types", append([]string{}, ss.types...)),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int64("rows", ss.live.rows.Load()-m.rows),
		slog.Int64("bytes", sent-m.bytes),
		slog.String("outcome", outcome),
	}
	if class != "" {
		attrs = append(attrs, slog.String("error_class", class))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", cutRunes(sqltext.RedactMessage(err.Error(), redactable(text)), 1000)))
	}
	if loggable(kind, text) {
		attrs = append(attrs, slog.String("statement", statementExcerpt(text, ql.StatementLength)))
	}
	level := slog.LevelInfo
	if outcome != "ok" {
		level = slog.LevelWarn
	}
	ql.Log.LogAttrs(context.Background(), level, "query", attrs...)
}

// loggable reports whether a request's text may go to the log: never an
// AUTH line's, nor a malformed request's (it may be one cut short), nor
// anything that looks like AUTH sent with the wrong spelling.
func loggable(kind, text string) bool {
	switch kind {
	case "auth", "malformed":
		return false
	}
	t := strings.TrimLeft(text, " \t\r\n")
	return len(t) < 4 || !strings.EqualFold(t[:4], "auth")
}

// redactable is the part of a request searched for secret values to take
// out of an error message: all of it unless huge, where the engine has
// redacted its own errors already.
func redactable(text string) string {
	if len(text) > 1<<20 {
		return text[:1<<20]
	}
	return text
}

func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i] + "…"
		}
		count++
	}
	return s
}

// errorClass names what kind of failure err is, for the query log:
// timeout, cancelled, killed, client_gone, shutdown, permission, panic,
// admission, a DuckDB error's own class (parser, binder, catalog,
// invalid_input, …), or error.
func (ss *sqlSession) errorClass(err error) string {
	if err == nil || errors.Is(err, errBroken) {
		// A failed write, or a result broken off: the cause is the
		// session's, or wrapped in err after errBroken.
		if c := context.Cause(ss.ctx); c != nil && (err == nil || !hasCause(err)) {
			err = c
		}
	}
	var (
		by *stoppedBy
		qt *queryTimeout
		at *admission.TimeoutError
		pe *recovery.Error
		ee *engine.Error
	)
	switch {
	case err == nil:
		return "error"
	case errors.As(err, &by):
		if by.kill {
			return "killed"
		}
		return "cancelled"
	case errors.As(err, &qt), errors.As(err, &at):
		return "timeout"
	case errors.Is(err, errClientGone), errors.Is(err, errClientStalled), errors.Is(err, errEvicted),
		errors.Is(err, errIdle), errors.Is(err, errAuthTimeout):
		return "client_gone"
	case errors.Is(err, errShuttingDown):
		return "shutdown"
	case errors.As(err, &pe):
		return "panic"
	case strings.HasPrefix(err.Error(), "permission denied"):
		return "permission"
	case errors.As(err, &ee):
		return duckdbClass(ee.Message)
	}
	return "error"
}

// hasCause reports whether err wraps more than errBroken.
func hasCause(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap()) > 1
	}
	return false
}

// duckdbClass is the query log's name for the class of an error message:
// "Catalog Error: …" is catalog, "Invalid Input Error: …" invalid_input.
func duckdbClass(msg string) string {
	c := sqlerror.ClassOf(msg)
	if c == "" {
		return "error"
	}
	return strings.ReplaceAll(strings.ToLower(c), " ", "_")
}

// noteStatement adds the type of one statement of a request run on its
// own (RunStatement): DuckDB's, or for a secret Luna keeps itself, which
// DuckDB never sees, its leading keywords.
func (ss *sqlSession) noteStatement(conn *engine.Conn, stmt string) {
	if t := secretStatementType(stmt); t != "" {
		ss.types = append(ss.types, t)
		return
	}
	ss.noteTypes(conn)
}

// secretStatementType is CREATE SECRET or DROP SECRET for statements that
// are one, else "".
func secretStatementType(stmt string) string {
	toks := sqltext.Tokens(stmt)
	if len(toks) == 0 || !toks[0].IsWord("CREATE") && !toks[0].IsWord("DROP") {
		return ""
	}
	for _, t := range toks[1:] {
		switch {
		case t.IsWord("SECRET"):
			return strings.ToUpper(toks[0].Value) + " SECRET"
		case t.IsWord("OR"), t.IsWord("REPLACE"), t.IsWord("PERSISTENT"), t.IsWord("TEMPORARY"), t.IsWord("TEMP"):
		default:
			return ""
		}
	}
	return ""
}
