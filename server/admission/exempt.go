package admission

import (
	"strings"

	"github.com/lunadb/luna/server/sqltext"
)

// Exempt reports whether every statement of sql is one that runs no query
// and so needs no slot: BEGIN or START TRANSACTION, ROLLBACK or ABORT, and
// SET or RESET of a setting to a plain value. They take microseconds, and
// a client that sets up its session or abandons a transaction should not
// queue behind long queries for that.
//
// COMMIT (and END) is not exempt: committing may checkpoint, which
// compresses what the transaction loaded. A transaction's COMMIT may thus
// wait for a slot while the transaction stays open; that holds no slot, so
// it cannot stop the queue from moving. SET VARIABLE, and any SET with a
// parenthesis (a subquery), can run a query and is not exempt either.
func Exempt(sql string) bool {
	// Most requests are queries: decide those from the first word alone,
	// without reading the whole text.
	if !exemptWord(firstWord(sql)) {
		return false
	}
	stmts := sqltext.Split(sql)
	if len(stmts) == 0 {
		return false
	}
	for _, st := range stmts {
		if !exemptStatement(sqltext.Tokens(st.Text)) {
			return false
		}
	}
	return true
}

func exemptWord(w string) bool {
	switch strings.ToUpper(w) {
	case "BEGIN", "START", "ROLLBACK", "ABORT", "SET", "RESET":
		return true
	}
	return false
}

func exemptStatement(toks []sqltext.Token) bool {
	if len(toks) == 0 || toks[0].Kind != sqltext.Word || !exemptWord(toks[0].Value) {
		return false
	}
	first := strings.ToUpper(toks[0].Value)
	if first == "SET" || first == "RESET" {
		if first == "SET" && len(toks) > 1 && toks[1].IsWord("VARIABLE") {
			return false
		}
		for _, t := range toks {
			if t.Kind == sqltext.Symbol && t.Value == "(" {
				return false
			}
		}
		return true
	}
	// BEGIN [TRANSACTION], START TRANSACTION, ROLLBACK [TRANSACTION],
	// ABORT: words only.
	for _, t := range toks[1:] {
		if t.Kind != sqltext.Word {
			return false
		}
	}
	if first == "START" {
		return len(toks) > 1 && toks[1].IsWord("TRANSACTION")
	}
	return true
}

// firstWord is the first word of sql after blanks and comments.
func firstWord(sql string) string {
	i := 0
	for i < len(sql) {
		switch c := sql[i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';':
			i++
		case strings.HasPrefix(sql[i:], "--"):
			n := strings.IndexByte(sql[i:], '\n')
			if n < 0 {
				return ""
			}
			i += n + 1
		case strings.HasPrefix(sql[i:], "/*"):
			// Nesting is ignored here: this word only picks the requests
			// worth a full read, which sqltext does as DuckDB would.
			n := strings.Index(sql[i+2:], "*/")
			if n < 0 {
				return ""
			}
			i += n + 4
		default:
			j := i
			for j < len(sql) && (sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z') {
				j++
			}
			return sql[i:j]
		}
	}
	return ""
}
