package remote

import (
	"context"
	"strings"

	"github.com/lunadb/luna/server/sqlerror"
	"github.com/lunadb/luna/server/sqltext"
)

// copySource is the index of the string token that COPY tbl [(cols)]
// FROM reads, or -1. A FROM inside COPY (query) TO is a query's and not
// a COPY source.
func copySource(toks []sqltext.Token) int {
	if len(toks) < 3 || !toks[0].IsWord("COPY") {
		return -1
	}
	i := 1
	// The table name, qualified or not.
	for i < len(toks) && (toks[i].Kind == sqltext.Word || toks[i].Kind == sqltext.Ident) && !toks[i].IsWord("FROM") {
		i++
		if i < len(toks) && toks[i].Kind == sqltext.Symbol && toks[i].Value == "." {
			i++
			continue
		}
		break
	}
	if i == 1 {
		return -1
	}
	if i < len(toks) && toks[i].Kind == sqltext.Symbol && toks[i].Value == "(" {
		_, end, ok := splitGroup(toks, i)
		if !ok {
			return -1
		}
		i = end + 1
	}
	if i+1 < len(toks) && toks[i].IsWord("FROM") && toks[i+1].Kind == sqltext.String {
		return i + 1
	}
	return -1
}

// formatAt is the format a COPY reads or writes at the string token
// toks[i]: its FORMAT option, or xlsx for a path ending in .xlsx (as
// DuckDB infers it), lower case.
func formatAt(toks []sqltext.Token, i int) string {
	opts, _ := copyOptions(toks, i)
	for _, o := range opts {
		if len(o) >= 2 && o[0].IsWord("FORMAT") {
			return strings.ToLower(o[len(o)-1].Value)
		}
	}
	if strings.HasSuffix(strings.ToLower(toks[i].Value), ".xlsx") {
		return "xlsx"
	}
	return ""
}

// copyFromXLSX runs COPY tbl [(cols)] FROM '….xlsx' (FORMAT xlsx, …) as
// INSERT INTO tbl [(cols)] SELECT * FROM the converted sheet: the
// sheet's columns go to the table's by position and are cast to its
// types, as COPY FROM does. The options are read_xlsx's.
func (s *Statement) copyFromXLSX(ctx context.Context, stmt string, toks []sqltext.Token, src int) (string, error) {
	opts, end := copyOptions(toks, src)
	c := call{name: "COPY FROM xlsx", named: map[string]arg{}}
	for _, o := range opts {
		if len(o) < 2 || o[0].Kind != sqltext.Word {
			return "", sqlerror.Errorf(sqlerror.Binder, "COPY FROM xlsx: cannot read option %s", tokText(stmt, o))
		}
		key := strings.ToLower(o[0].Value)
		v, ok := literalArg(stmt, o[1:])
		if !ok && len(o) == 2 && o[1].Kind == sqltext.Word {
			v, ok = arg{text: o[1].Value}, true
		}
		if !ok {
			return "", sqlerror.Errorf(sqlerror.Binder, "COPY FROM xlsx: %s must be a literal, got %s", strings.ToUpper(key), tokText(stmt, o[1:]))
		}
		if key == "format" {
			continue
		}
		c.named[key] = v
	}
	o, err := xlsxOptions(c)
	if err != nil {
		return "", err
	}
	read, err := s.readXLSX(ctx, toks[src].Value, o)
	if err != nil {
		return "", err
	}
	target := stmt[toks[1].Start:toks[src-2].End]
	var b strings.Builder
	b.WriteString(stmt[:toks[0].Start])
	s.edit(&b, toks[0].Start, toks[end].End, "INSERT INTO "+target+" SELECT * FROM "+read)
	b.WriteString(stmt[toks[end].End:])
	return b.String(), nil
}
