package access

import (
	"strings"

	"github.com/lunadb/luna/server/sqltext"
)

// adminFunctions are DuckDB functions only admin may call, whatever the
// statement around them:
//   - secrets: duckdb_secrets() lists them, which_secret() tells which
//     one covers a path;
//   - duckdb_settings() shows every setting's value, and global settings
//     can hold credentials (http_proxy_password); current_setting() is
//     checked apart (callNeed);
//   - SQL the check cannot see before it runs: query(), query_table(),
//     json_execute_serialized_sql() run SQL passed as a value;
//     arrow_scan() reads memory at a pointer it is given;
//   - global side effects: checkpoints, DuckDB's log (which also holds
//     other sessions' queries), profiling, the parser switch.
var adminFunctions = map[string]bool{
	"duckdb_secrets": true, "which_secret": true,
	"duckdb_settings": true,
	"query":           true, "query_table": true, "json_execute_serialized_sql": true,
	"arrow_scan": true, "arrow_scan_dumb": true,
	"checkpoint": true, "force_checkpoint": true,
	"enable_logging": true, "disable_logging": true, "truncate_duckdb_logs": true, "write_log": true,
	"duckdb_logs": true, "duckdb_logs_parsed": true, "duckdb_log_contexts": true,
	"enable_profiling": true, "disable_profiling": true,
	"enable_peg_parser": true, "disable_peg_parser": true,
}

// writeFunctions change the database: nextval() advances a sequence.
var writeFunctions = map[string]bool{"nextval": true}

// sensitiveWords mark settings current_setting() may not show below
// admin, since their values are credentials or may carry them (a proxy
// URL with user:password).
var sensitiveWords = []string{"password", "secret", "token", "credential", "key", "connection_string", "proxy", "username"}

// callNeed is the role calling c requires.
func callNeed(c Call) Role {
	switch {
	case adminFunctions[c.Name]:
		return Admin
	case writeFunctions[c.Name]:
		return Write
	case c.Name == "current_setting":
		// Only a literal name can be checked before the call runs.
		if !c.ArgLiteral {
			return Admin
		}
		arg := strings.ToLower(c.Arg)
		for _, w := range sensitiveWords {
			if strings.Contains(arg, w) {
				return Admin
			}
		}
	}
	return Read
}

// calls are the function calls of st: from DuckDB's parse tree when the
// engine had one, else every name the tokenizer finds before a '(' —
// more than the calls (CREATE TABLE query(a int) counts), never fewer.
func calls(st *Statement) []Call {
	if st.Parsed {
		return st.Calls
	}
	return tokenCalls(st.Text)
}

func tokenCalls(text string) []Call {
	toks := sqltext.Tokens(text)
	var out []Call
	for i := 0; i+1 < len(toks); i++ {
		t := toks[i]
		if t.Kind != sqltext.Word && t.Kind != sqltext.Ident || symbol(toks, i+1) != "(" {
			continue
		}
		c := Call{Name: strings.ToLower(t.Value)}
		if i+3 < len(toks) && toks[i+2].Kind == sqltext.String {
			if s := symbol(toks, i+3); s == ")" || s == "," {
				c.Arg, c.ArgLiteral = toks[i+2].Value, true
			}
		}
		out = append(out, c)
	}
	return out
}

// sessionFunctions are Luna's functions over live sessions.
var sessionFunctions = map[string]bool{"luna_sessions": true, "luna_cancel": true, "luna_kill": true}

// SessionFunction reports whether name is one of Luna's functions over
// live sessions: luna_sessions, luna_cancel, luna_kill. Check lets every
// role call them, since who may cancel a session depends on whose it is;
// the functions decide with MaySession where they run.
func SessionFunction(name string) bool { return sessionFunctions[strings.ToLower(name)] }

// MaySession returns a *Denied unless role may call the session function
// fn on a session; own reports that the session belongs to the caller's
// own user. luna_sessions lists every connection and luna_kill closes
// one: admin's. luna_cancel also lets a user stop its own statements.
func MaySession(role Role, fn string, own bool) error {
	fn = strings.ToLower(fn)
	if role == Admin || fn == "luna_cancel" && own {
		return nil
	}
	return &Denied{Role: role, What: fn, Call: true}
}
