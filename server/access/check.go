package access

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lunadb/luna/server/sqltext"
)

// Statement is what the check knows of one statement of a request. The
// engine fills it from DuckDB's own parse (engine.Conn.Classify); Text is
// the statement as the client wrote it, before Luna rewrites anything.
type Statement struct {
	Text string
	// Type is DuckDB's type of the prepared statement ("SELECT", "INSERT",
	// "SET"…, see engine's statementTypeName); empty when the statement
	// could not be prepared without running the ones before it, or was
	// not prepared because Luna carries it out itself. The check then
	// classifies its leading keywords.
	Type string
	// ParseError is DuckDB's error when it could not even parse the
	// statement; it is the answer when the keywords say nothing either.
	ParseError string
	// Parsed reports that Calls come from DuckDB's parse tree; otherwise
	// the check finds the calls in the text with Luna's tokenizer.
	Parsed bool
	Calls  []Call
	// Inner is the statement an EXPLAIN or PREPARE carries, when the
	// engine typed it (see Body); nil: the check classifies its keywords.
	Inner *Statement
}

// Call is one function call of a statement.
type Call struct {
	Name string // lower case, without catalog or schema
	// Arg is the first argument when ArgLiteral: it is a string literal.
	Arg        string
	ArgLiteral bool
}

// Settings reports a DuckDB setting's scope: global when DuckDB applies it
// to every connection (SET threads = 1 does), known when DuckDB has it.
type Settings func(name string) (global, known bool)

// Denied is the error of a statement or call the role may not run.
type Denied struct {
	Role Role
	// What is the statement refused ("INSERT", "CREATE SECRET", "SET
	// GLOBAL"…), or the function when Call is set.
	What string
	Call bool
}

func (e *Denied) Error() string {
	if e.Call {
		return fmt.Sprintf("permission denied: role %s cannot call %s()", e.Role, e.What)
	}
	return fmt.Sprintf("permission denied: role %s cannot run %s", e.Role, e.What)
}

// Check returns a *Denied for the first statement of a request that role
// may not run, or nil when it may run them all. It is called before any
// of them runs, so a denial means nothing of the request ran. Admin may
// do anything, and its requests are not classified at all.
func Check(role Role, stmts []Statement, settings Settings) error {
	if role == Admin {
		return nil
	}
	for i := range stmts {
		need, what, err := Need(&stmts[i], settings)
		if err != nil {
			return err
		}
		if !role.Allows(need) {
			return &Denied{Role: role, What: what}
		}
		for _, c := range calls(&stmts[i]) {
			if !role.Allows(callNeed(c)) {
				return &Denied{Role: role, What: c.Name, Call: true}
			}
		}
	}
	return nil
}

// Need is the role a statement itself requires, and the name a denial
// gives it; the functions it calls are checked apart (Check). err is
// DuckDB's parse error of a statement neither DuckDB nor its keywords can
// tell anything of.
func Need(st *Statement, settings Settings) (Role, string, error) {
	toks := sqltext.Tokens(st.Text)
	lead := word(toks, 0)
	switch st.Type {
	case "":
		return byKeywords(st, toks, lead, settings)
	case "SELECT":
		if lead == "PRAGMA" {
			return pragmaNeed(toks, settings)
		}
		return Read, "SELECT", nil
	case "INSERT", "UPDATE", "DELETE", "MERGE INTO", "COPY", "COPY DATABASE", "EXPORT", "ALTER", "CREATE FUNCTION":
		return Write, st.Type, nil
	case "CREATE", "DROP":
		return createDropNeed(toks, st.Type)
	case "EXPLAIN":
		return explainNeed(st, toks, settings)
	case "PREPARE":
		return prepareNeed(st, settings)
	case "EXECUTE", "TRANSACTION":
		// EXECUTE runs a statement this session PREPAREd, which was
		// checked then against the same role.
		return Read, st.Type, nil
	case "SET":
		return setNeed(toks, settings)
	case "PRAGMA":
		return pragmaNeed(toks, settings)
	case "CALL":
		// CHECKPOINT is a CALL to DuckDB; CALL of a table function is a
		// read, the function's own need checked with the other calls.
		if lead == "CALL" {
			return Read, "CALL", nil
		}
		return Admin, keywordName(toks, lead), nil
	case "LOAD", "VACUUM", "ANALYZE":
		// INSTALL and LOAD are both LOAD; VACUUM and ANALYZE both VACUUM.
		return Admin, keywordName(toks, lead), nil
	}
	// ATTACH, DETACH, EXTENSION, UPDATE EXTENSIONS, and the types no SQL
	// text produces.
	return Admin, st.Type, nil
}

// byKeywords classifies a statement DuckDB did not prepare by its leading
// keywords. DuckDB prepares (binds) each statement of a request against
// the catalog as it is before any runs, so in
//
//	CREATE TABLE t(a int); INSERT INTO t VALUES (1)
//
// the INSERT cannot be prepared until the CREATE ran; statements that
// name object-store URLs or Luna's own functions are rewritten by Luna
// and are not prepared at all. The classes here are conservative: a
// keyword not known to only read or write needs admin.
func byKeywords(st *Statement, toks []sqltext.Token, lead string, settings Settings) (Role, string, error) {
	switch lead {
	case "SELECT", "FROM", "VALUES", "TABLE", "DESCRIBE", "DESC", "SHOW", "SUMMARIZE", "PIVOT", "UNPIVOT", "(":
		return Read, "SELECT", nil
	case "WITH":
		// A CTE may front an INSERT, UPDATE, DELETE or MERGE: any of
		// them outside parentheses makes it a write.
		depth := 0
		for _, t := range toks {
			switch {
			case t.Kind == sqltext.Symbol && t.Value == "(":
				depth++
			case t.Kind == sqltext.Symbol && t.Value == ")":
				depth--
			case depth == 0 && t.Kind == sqltext.Word:
				switch strings.ToUpper(t.Value) {
				case "INSERT", "UPDATE", "DELETE", "MERGE":
					return Write, keywordName(nil, strings.ToUpper(t.Value)), nil
				}
			}
		}
		return Read, "SELECT", nil
	case "INSERT", "DELETE", "TRUNCATE", "MERGE", "COPY", "EXPORT", "IMPORT", "ALTER", "COMMENT":
		return Write, keywordName(toks, lead), nil
	case "UPDATE":
		if word(toks, 1) == "EXTENSIONS" {
			return Admin, "UPDATE EXTENSIONS", nil
		}
		return Write, "UPDATE", nil
	case "CREATE", "DROP":
		return createDropNeed(toks, lead)
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT":
		return Read, "TRANSACTION", nil
	case "SET", "RESET", "USE":
		return setNeed(toks, settings)
	case "PRAGMA":
		return pragmaNeed(toks, settings)
	case "EXPLAIN":
		return explainNeed(st, toks, settings)
	case "PREPARE":
		return prepareNeed(st, settings)
	case "EXECUTE", "DEALLOCATE":
		return Read, lead, nil
	case "CALL":
		return Read, "CALL", nil
	case "":
		if st.ParseError != "" {
			return 0, "", errors.New(st.ParseError)
		}
		return Admin, "an empty statement", nil
	}
	if knownAdmin[lead] {
		return Admin, keywordName(toks, lead), nil
	}
	if st.ParseError != "" {
		return 0, "", errors.New(st.ParseError)
	}
	return Admin, lead, nil
}

// knownAdmin are leading keywords of statements only admin may run.
var knownAdmin = map[string]bool{
	"ATTACH": true, "DETACH": true, "INSTALL": true, "LOAD": true, "FORCE": true,
	"CHECKPOINT": true, "VACUUM": true, "ANALYZE": true,
}

// keywordName names a statement by its keyword for a denial, the way
// DuckDB's statement types are named where one fits.
func keywordName(toks []sqltext.Token, lead string) string {
	switch lead {
	case "MERGE":
		return "MERGE INTO"
	case "TRUNCATE":
		return "DELETE"
	case "FORCE":
		if w := word(toks, 1); w != "" {
			return "FORCE " + w
		}
	case "UPDATE":
		if word(toks, 1) == "EXTENSIONS" {
			return "UPDATE EXTENSIONS"
		}
	}
	return lead
}

// createDropNeed: CREATE and DROP of tables, views, macros, sequences,
// schemas and types are writes; of a secret, admin's.
func createDropNeed(toks []sqltext.Token, what string) (Role, string, error) {
	for i := 1; i < len(toks) && i < 5; i++ {
		switch word(toks, i) {
		case "OR", "REPLACE", "PERSISTENT", "TEMPORARY", "TEMP":
			continue
		case "SECRET":
			return Admin, what + " SECRET", nil
		}
		break
	}
	return Write, what, nil
}

// explainNeed: EXPLAIN only plans, which is a read; EXPLAIN ANALYZE runs
// the statement, which then needs what it needs.
func explainNeed(st *Statement, toks []sqltext.Token, settings Settings) (Role, string, error) {
	if !explainAnalyze(toks) {
		return Read, "EXPLAIN", nil
	}
	need, what, err := innerNeed(st, settings)
	return need, "EXPLAIN ANALYZE " + what, err
}

// prepareNeed: PREPARE needs what the prepared statement needs; EXECUTE
// of it then is a read.
func prepareNeed(st *Statement, settings Settings) (Role, string, error) {
	return innerNeed(st, settings)
}

func innerNeed(st *Statement, settings Settings) (Role, string, error) {
	if st.Inner != nil {
		return Need(st.Inner, settings)
	}
	body, ok := Body(st.Text)
	if !ok {
		return Admin, keywordName(nil, word(sqltext.Tokens(st.Text), 0)), nil
	}
	return Need(&Statement{Text: body}, settings)
}

// Body returns the statement an EXPLAIN or PREPARE carries:
// EXPLAIN [ANALYZE] [(options)] body, PREPARE name [(types)] AS body.
func Body(text string) (string, bool) {
	toks := sqltext.Tokens(text)
	i := 1
	switch word(toks, 0) {
	case "EXPLAIN":
		if w := word(toks, i); w == "ANALYZE" || w == "ANALYSE" {
			i++
		}
		if symbol(toks, i) == "(" {
			i = pastParens(toks, i)
		}
	case "PREPARE":
		i++ // the name
		if symbol(toks, i) == "(" {
			i = pastParens(toks, i)
		}
		if word(toks, i) != "AS" {
			return "", false
		}
		i++
	default:
		return "", false
	}
	if i >= len(toks) {
		return "", false
	}
	return text[toks[i].Start:], true
}

// explainAnalyze reports whether an EXPLAIN runs its statement: EXPLAIN
// ANALYZE, or ANALYZE among its parenthesized options.
func explainAnalyze(toks []sqltext.Token) bool {
	if w := word(toks, 1); w == "ANALYZE" || w == "ANALYSE" {
		return true
	}
	if symbol(toks, 1) != "(" {
		return false
	}
	end := pastParens(toks, 1)
	for i := 2; i < end; i++ {
		if w := word(toks, i); w == "ANALYZE" || w == "ANALYSE" {
			return true
		}
	}
	return false
}

// pastParens returns the index past the parenthesis group opening at i.
func pastParens(toks []sqltext.Token, i int) int {
	depth := 0
	for ; i < len(toks); i++ {
		switch symbol(toks, i) {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(toks)
}

// word is toks[i] upper-cased when it is a word, else "(" for an opening
// parenthesis (a statement may start with one) or "".
func word(toks []sqltext.Token, i int) string {
	if i >= len(toks) {
		return ""
	}
	switch t := toks[i]; t.Kind {
	case sqltext.Word:
		return strings.ToUpper(t.Value)
	case sqltext.Symbol:
		if t.Value == "(" {
			return "("
		}
	}
	return ""
}

func symbol(toks []sqltext.Token, i int) string {
	if i < len(toks) && toks[i].Kind == sqltext.Symbol {
		return toks[i].Value
	}
	return ""
}
