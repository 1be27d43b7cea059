package access

import (
	"strings"

	"github.com/lunadb/luna/server/sqltext"
)

// setNeed classifies SET, RESET, USE and PRAGMA name = value. A setting
// whose scope is global changes every connection, whatever the statement
// says: DuckDB applies SET threads = 1 to the whole database. Only admin
// changes those, and settings DuckDB does not list (an extension's, a
// typo) are taken for global.
func setNeed(toks []sqltext.Token, settings Settings) (Role, string, error) {
	lead := word(toks, 0)
	switch lead {
	case "USE":
		// USE changes the session's default catalog and schema only;
		// qualified names reach the same objects without it.
		return Read, "USE", nil
	case "PRAGMA":
		if symbol(toks, 2) == "=" {
			return settingNeed("PRAGMA", name(toks, 1), settings)
		}
		return pragmaNeed(toks, settings)
	case "SET", "RESET":
	default:
		return Admin, lead, nil
	}
	i := 1
	switch word(toks, i) {
	case "GLOBAL":
		return Admin, lead + " GLOBAL", nil
	case "SESSION", "LOCAL":
		i++
	}
	switch word(toks, i) {
	case "VARIABLE":
		// SQL variables belong to the session.
		return Read, lead + " VARIABLE", nil
	case "ALL", "":
		return Admin, lead, nil
	}
	return settingNeed(lead, name(toks, i), settings)
}

// fileSettings are session settings that make DuckDB write files where
// they point (profiles, HTTP logs): a write, under the file lockdown.
var fileSettings = map[string]bool{
	"profile_output": true, "profiling_output": true, "http_logging_output": true,
}

func settingNeed(lead, setting string, settings Settings) (Role, string, error) {
	if setting == "" {
		return Admin, lead, nil
	}
	global, known := false, false
	if settings != nil {
		global, known = settings(setting)
	}
	switch {
	case global || !known:
		return Admin, lead + " " + setting, nil
	case fileSettings[setting]:
		return Write, lead + " " + setting, nil
	}
	return Read, lead, nil
}

// readPragmas are the PRAGMAs that only report: DuckDB turns each into a
// query of a pragma_… table function.
var readPragmas = map[string]bool{
	"collations": true, "database_list": true, "database_size": true, "functions": true,
	"metadata_info": true, "platform": true, "show": true, "show_databases": true,
	"show_tables": true, "show_tables_expanded": true, "storage_info": true,
	"table_info": true, "user_agent": true, "version": true, "extension_versions": true,
}

// pragmaNeed: the reporting PRAGMAs are reads; the others change the
// database or its settings (checkpoints, profiling, optimizer switches,
// parquet keys, imports) and are admin's.
func pragmaNeed(toks []sqltext.Token, settings Settings) (Role, string, error) {
	n := name(toks, 1)
	if symbol(toks, 2) == "=" {
		return settingNeed("PRAGMA", n, settings)
	}
	if readPragmas[n] {
		return Read, "PRAGMA", nil
	}
	return Admin, strings.TrimSpace("PRAGMA " + n), nil
}

// name is toks[i] as an identifier, lower case: DuckDB's setting and
// pragma names are case-insensitive.
func name(toks []sqltext.Token, i int) string {
	if i < len(toks) && (toks[i].Kind == sqltext.Word || toks[i].Kind == sqltext.Ident) {
		return strings.ToLower(toks[i].Value)
	}
	return ""
}
