package config

import (
	"io"
	"strings"
	"testing"
)

func TestQueryLogFlags(t *testing.T) {
	none := func(string) string { return "" }
	c, err := Parse(nil, none, io.Discard)
	if err != nil || c.QueryLog != "errors" || c.QueryLogStatementLength != 200 {
		t.Fatalf("defaults: %q %d %v", c.QueryLog, c.QueryLogStatementLength, err)
	}
	vars := env(map[string]string{"LUNA_QUERY_LOG": "all", "LUNA_QUERY_LOG_STATEMENT_LENGTH": "0"})
	if c, err := Parse(nil, vars, io.Discard); err != nil || c.QueryLog != "all" || c.QueryLogStatementLength != 0 {
		t.Fatalf("from the environment: %q %d %v", c.QueryLog, c.QueryLogStatementLength, err)
	}
	for args, want := range map[string]string{
		"--query-log=some":                     `--query-log: must be off, errors or all, got "some"`,
		"--query-log-statement-length=-1":      "--query-log-statement-length: must be between 0 and 1048576, got -1",
		"--query-log-statement-length=2000000": "--query-log-statement-length: must be between 0 and 1048576, got 2000000",
	} {
		if _, err := Parse([]string{args}, none, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", args, err)
		}
	}
}
