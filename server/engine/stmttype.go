//go:build duckdb_arrow

package engine

import bindings "github.com/duckdb/duckdb-go-bindings"

// statementTypeNames are DuckDB's statement types as the SQL keywords
// users know them by, for the query log and permission errors.
var statementTypeNames = map[bindings.StatementType]string{
	bindings.StatementTypeSelect:           "SELECT",
	bindings.StatementTypeInsert:           "INSERT",
	bindings.StatementTypeUpdate:           "UPDATE",
	bindings.StatementTypeExplain:          "EXPLAIN",
	bindings.StatementTypeDelete:           "DELETE",
	bindings.StatementTypePrepare:          "PREPARE",
	bindings.StatementTypeCreate:           "CREATE",
	bindings.StatementTypeExecute:          "EXECUTE",
	bindings.StatementTypeAlter:            "ALTER",
	bindings.StatementTypeTransaction:      "TRANSACTION",
	bindings.StatementTypeCopy:             "COPY",
	bindings.StatementTypeAnalyze:          "ANALYZE",
	bindings.StatementTypeVariableSet:      "SET VARIABLE",
	bindings.StatementTypeCreateFunc:       "CREATE FUNCTION",
	bindings.StatementTypeDrop:             "DROP",
	bindings.StatementTypeExport:           "EXPORT",
	bindings.StatementTypePragma:           "PRAGMA",
	bindings.StatementTypeVacuum:           "VACUUM",
	bindings.StatementTypeCall:             "CALL",
	bindings.StatementTypeSet:              "SET",
	bindings.StatementTypeLoad:             "LOAD",
	bindings.StatementTypeRelation:         "RELATION",
	bindings.StatementTypeExtension:        "EXTENSION",
	bindings.StatementTypeLogicalPlan:      "LOGICAL PLAN",
	bindings.StatementTypeAttach:           "ATTACH",
	bindings.StatementTypeDetach:           "DETACH",
	bindings.StatementTypeMulti:            "MULTI",
	bindings.StatementTypeCopyDatabase:     "COPY DATABASE",
	bindings.StatementTypeUpdateExtensions: "UPDATE EXTENSIONS",
	bindings.StatementTypeMergeInto:        "MERGE INTO",
}

// statementTypeName is t's name, "INVALID" for one DuckDB did not type.
func statementTypeName(t bindings.StatementType) string {
	if n, ok := statementTypeNames[t]; ok {
		return n
	}
	return "INVALID"
}

// StatementTypes names the types of the statements the last Exec or Query
// prepared, in order (DuckDB's parse: "SELECT", "INSERT", "CREATE"…); a
// statement that failed to prepare is not among them. The slice is reused
// by the next request.
func (c *Conn) StatementTypes() []string { return c.types }
