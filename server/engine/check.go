//go:build duckdb_arrow

package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/array"
	bindings "github.com/duckdb/duckdb-go-bindings"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/sqltext"
)

// Classify describes every statement of sql for access.Check, running
// none of them: each is prepared, which parses and binds it, for DuckDB's
// statement type, and queries are parsed once more with
// json_serialize_sql for the functions they call. luna, when set,
// reports statements Luna rewrites before DuckDB sees them (object-store
// URLs, secrets, read_xlsx, iceberg_scan): those are not prepared, since
// DuckDB would fail on, or try to install, an extension Luna does without.
//
// The texts are sqltext.Split's, the ones Luna runs one by one when it
// resolves URLs. When DuckDB's own extraction of the request yields as
// many statements, the types are those of DuckDB's statements. Otherwise
// (DuckDB expands PIVOT or COPY FROM DATABASE into several statements, or
// cannot parse the request) each text is classified alone, as all the
// statements DuckDB makes of it.
func (c *Conn) Classify(ctx context.Context, sql string, luna func(string) bool) ([]access.Statement, error) {
	split := sqltext.Split(sql)
	if len(split) == 0 {
		return nil, nil // DuckDB words the error when the request runs
	}
	stop := c.watch(ctx)
	defer stop()
	var ext bindings.ExtractedStatements
	n := int(bindings.ExtractStatements(c.c, sql, &ext))
	defer bindings.DestroyExtracted(&ext)
	out := make([]access.Statement, 0, len(split))
	if n == len(split) {
		for i, s := range split {
			st := access.Statement{Text: s.Text}
			if luna == nil || !luna(s.Text) {
				st.Type = preparedType(c.c, ext, i)
			}
			c.complete(ctx, &st, luna)
			out = append(out, st)
		}
	} else {
		for _, s := range split {
			out = append(out, c.classifyAlone(ctx, s.Text, luna)...)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	return out, nil
}

// classifyAlone classifies one statement's text on its own.
func (c *Conn) classifyAlone(ctx context.Context, text string, luna func(string) bool) []access.Statement {
	if luna != nil && luna(text) {
		st := access.Statement{Text: text}
		c.complete(ctx, &st, luna)
		return []access.Statement{st}
	}
	var ext bindings.ExtractedStatements
	n := int(bindings.ExtractStatements(c.c, text, &ext))
	defer bindings.DestroyExtracted(&ext)
	if n == 0 {
		st := access.Statement{Text: text, ParseError: bindings.ExtractStatementsError(ext)}
		c.complete(ctx, &st, luna)
		return []access.Statement{st}
	}
	out := make([]access.Statement, n)
	for i := range out {
		out[i] = access.Statement{Text: text, Type: preparedType(c.c, ext, i)}
		c.complete(ctx, &out[i], luna)
	}
	return out
}

// preparedType is the type of statement i of ext, prepared and released;
// "" when it does not prepare.
func preparedType(conn bindings.Connection, ext bindings.ExtractedStatements, i int) string {
	var st bindings.PreparedStatement
	defer bindings.DestroyPrepare(&st)
	if bindings.PrepareExtractedStatement(conn, ext, bindings.IdxT(i), &st) == bindings.StateError {
		return ""
	}
	return statementTypeName(bindings.PreparedStatementType(st))
}

// complete adds what the check needs beyond the type: the calls of a
// query from DuckDB's parse tree, and the statement an EXPLAIN or PREPARE
// carries.
func (c *Conn) complete(ctx context.Context, st *access.Statement, luna func(string) bool) {
	if st.Type == "SELECT" || st.Type == "" {
		st.Calls, st.Parsed = c.parsedCalls(ctx, st.Text)
	}
	lead := ""
	if toks := sqltext.Tokens(st.Text); len(toks) > 0 {
		lead = strings.ToUpper(toks[0].Value)
	}
	if st.Type == "EXPLAIN" || st.Type == "PREPARE" || st.Type == "" && (lead == "EXPLAIN" || lead == "PREPARE") {
		if body, ok := access.Body(st.Text); ok {
			if inner := c.classifyAlone(ctx, body, luna); len(inner) == 1 {
				st.Inner = &inner[0]
			}
		}
	}
}

// parsedCalls returns the function calls of a query as DuckDB parses it
// (json_serialize_sql parses, binding nothing, so it works for functions
// and tables that do not exist yet or that Luna provides); ok is false
// for a text that is not a query or does not parse.
func (c *Conn) parsedCalls(ctx context.Context, text string) (calls []access.Call, ok bool) {
	rows, err := c.queryStrings(ctx, "SELECT json_serialize_sql($1::VARCHAR)", text)
	if err != nil || len(rows) != 1 {
		return nil, false
	}
	var tree struct {
		Error      bool              `json:"error"`
		Statements []json.RawMessage `json:"statements"`
	}
	if json.Unmarshal([]byte(rows[0][0]), &tree) != nil || tree.Error {
		return nil, false
	}
	for _, raw := range tree.Statements {
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil, false
		}
		walkCalls(v, &calls)
	}
	return calls, true
}

// walkCalls gathers every function of a parse tree: scalar, aggregate,
// window and table functions all carry a function_name.
func walkCalls(v any, out *[]access.Call) {
	switch v := v.(type) {
	case map[string]any:
		if name, ok := v["function_name"].(string); ok {
			c := access.Call{Name: strings.ToLower(name)}
			if kids, ok := v["children"].([]any); ok && len(kids) > 0 {
				c.Arg, c.ArgLiteral = literal(kids[0])
			}
			*out = append(*out, c)
		}
		for _, x := range v {
			walkCalls(x, out)
		}
	case []any:
		for _, x := range v {
			walkCalls(x, out)
		}
	}
}

// literal reads a parse tree's VARCHAR constant.
func literal(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || m["class"] != "CONSTANT" {
		return "", false
	}
	val, ok := m["value"].(map[string]any)
	if !ok || val["is_null"] == true {
		return "", false
	}
	typ, _ := val["type"].(map[string]any)
	s, ok := val["value"].(string)
	if !ok || typ == nil || typ["id"] != "VARCHAR" {
		return "", false
	}
	return s, true
}

// settingScopes caches, per database, whether each of DuckDB's settings
// (by name and alias, lower case) is global.
var settingScopes sync.Map // *DB → map[string]bool

// Settings reports the scope of DuckDB's settings for access.Check. A
// setting an extension loaded later adds is unknown, which the check
// takes for global.
func (c *Conn) Settings(ctx context.Context) access.Settings {
	m, _ := settingScopes.Load(c.db)
	if m == nil {
		rows, err := c.queryStrings(ctx, `SELECT lower(name), scope FROM duckdb_settings()
			UNION ALL SELECT lower(unnest(aliases)), scope FROM duckdb_settings()`)
		if err != nil {
			return func(string) (bool, bool) { return false, false }
		}
		scopes := make(map[string]bool, len(rows))
		for _, r := range rows {
			scopes[r[0]] = r[1] != "LOCAL"
		}
		m, _ = settingScopes.LoadOrStore(c.db, scopes)
	}
	scopes := m.(map[string]bool)
	return func(name string) (global, known bool) {
		global, known = scopes[strings.ToLower(name)]
		return global, known
	}
}

// queryStrings runs a query of VARCHAR columns with VARCHAR parameters, apart
// from the connection's request state (StatementTypes, open result).
func (c *Conn) queryStrings(ctx context.Context, sql string, args ...string) ([][]string, error) {
	var st bindings.PreparedStatement
	defer bindings.DestroyPrepare(&st)
	if bindings.Prepare(c.c, sql, &st) == bindings.StateError {
		return nil, failure(ctx, bindings.PrepareError(st))
	}
	for i, a := range args {
		if bindings.BindVarchar(st, bindings.IdxT(i+1), a) == bindings.StateError {
			return nil, fmt.Errorf("bind parameter %d", i+1)
		}
	}
	r, err := stream(ctx, st, 2048)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out [][]string
	for {
		rec, err := r.Next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return out, nil
		}
		for i := range int(rec.NumRows()) {
			row := make([]string, rec.NumCols())
			for j := range row {
				col, ok := rec.Column(j).(*array.String)
				if !ok {
					rec.Release()
					return nil, fmt.Errorf("column %d is %s, not VARCHAR", j, rec.Column(j).DataType())
				}
				row[j] = strings.Clone(col.Value(i))
			}
			out = append(out, row)
		}
		rec.Release()
	}
}
