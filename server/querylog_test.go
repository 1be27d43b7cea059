//go:build duckdb_arrow

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/lunadb/luna/server/admission"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/recovery"
)

func TestQueryLoggerIgnoresLevel(t *testing.T) {
	var buf bytes.Buffer
	main := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	main.Info("dropped")
	ql := NewQueryLogger(main.Handler())
	ql.Info("query", "session", 1)
	out := buf.String()
	if strings.Contains(out, "dropped") || !strings.Contains(out, `"msg":"query","log":"query","session":1`) {
		t.Errorf("logs: %s", out)
	}
}

func TestErrorClass(t *testing.T) {
	ss := &session{}
	ss.ctx, ss.cancel = context.WithCancelCause(context.Background())
	for _, c := range []struct {
		err  error
		want string
	}{
		{&stoppedBy{by: 3}, "cancelled"},
		{&stoppedBy{by: 3, kill: true}, "killed"},
		{&queryTimeout{}, "timeout"},
		{&admission.TimeoutError{}, "timeout"},
		{errClientGone, "client_gone"},
		{errShuttingDown, "shutdown"},
		{&recovery.Error{}, "panic"},
		{errors.New("permission denied: role read cannot run INSERT"), "permission"},
		{&engine.Error{Message: "Catalog Error: Table with name x does not exist!"}, "catalog"},
		{&engine.Error{Message: "Invalid Input Error: bad"}, "invalid_input"},
		{&engine.Error{Message: "Parser Error: syntax error at or near \"x\""}, "parser"},
		{&engine.Error{Message: "something odd: Error: x"}, "error"},
		{fmt.Errorf("%w: %w", errBroken, &engine.Error{Message: "Out of Memory Error: no"}), "out_of_memory"},
		{errors.New("other"), "error"},
	} {
		if got := ss.errorClass(c.err); got != c.want {
			t.Errorf("errorClass(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	// A result broken off by the client going away takes the session's
	// cause.
	ss.cancel(errClientGone)
	if got := ss.errorClass(errBroken); got != "client_gone" {
		t.Errorf("errorClass(errBroken) = %q", got)
	}
}

func TestLoggable(t *testing.T) {
	for _, c := range []struct {
		kind, text string
		want       bool
	}{
		{"auth", "secret", false},
		{"malformed", "SELECT 1", false},
		{"unknown", "  auth hunter2", false},
		{"unknown", "z:hello", true},
		{"query", "SELECT 1", true},
	} {
		if got := loggable(c.kind, c.text); got != c.want {
			t.Errorf("loggable(%q, %q) = %v", c.kind, c.text, got)
		}
	}
}

func TestSecretStatementType(t *testing.T) {
	for sql, want := range map[string]string{
		"CREATE SECRET s (TYPE s3)":                        "CREATE SECRET",
		"create or replace persistent secret s (TYPE gcs)": "CREATE SECRET",
		"DROP SECRET IF EXISTS s":                          "DROP SECRET",
		"CREATE TABLE secret (x int)":                      "",
		"SELECT 'secret'":                                  "",
	} {
		if got := secretStatementType(sql); got != want {
			t.Errorf("secretStatementType(%q) = %q, want %q", sql, got, want)
		}
	}
}
