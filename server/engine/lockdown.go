//go:build duckdb_arrow

package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/lunadb/luna/server/fspolicy"
)

// lockdown is the DB's view of DuckDB's file lockdown.
type lockdown struct {
	mu     sync.Mutex
	conn   *Conn // asks DuckDB for its settings; opened on first use
	locked *fspolicy.Policy
}

// RestrictFiles turns on DuckDB's own lockdown: only dirs may be read or
// written, no external extension may be loaded. DuckDB refuses to change
// allowed_directories once external access is off, and to turn it back on
// at all, so this holds for the life of the database even before
// LockConfiguration. DuckDB refuses to move its temp directory afterwards:
// Open has set it.
func (d *DB) RestrictFiles(ctx context.Context, dirs []string) error {
	c, err := d.Connect()
	if err != nil {
		return err
	}
	defer c.Close()
	quoted := make([]string, len(dirs))
	for i, d := range dirs {
		quoted[i] = "'" + strings.ReplaceAll(d, "'", "''") + "'"
	}
	for _, q := range []string{
		// DuckDB's persistent secrets live in its secret directory, which
		// must not be readable; without this, every CREATE SECRET fails
		// trying to read that directory.
		"SET GLOBAL allow_persistent_secrets = false",
		"SET GLOBAL allowed_directories = [" + strings.Join(quoted, ", ") + "]",
		"SET GLOBAL enable_external_access = false",
	} {
		if err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("--allowed-directories: %s: %w", q, err)
		}
	}
	return nil
}

// SecretDirectory is DuckDB's own directory of persistent secrets.
func (d *DB) SecretDirectory(ctx context.Context) (string, error) {
	c, err := d.Connect()
	if err != nil {
		return "", err
	}
	defer c.Close()
	rows, err := c.Query(ctx, "SELECT current_setting('secret_directory')::VARCHAR", 16)
	if err != nil {
		return "", fmt.Errorf("read DuckDB's secret_directory: %w", err)
	}
	defer rows.Close()
	rec, err := rows.Next()
	if err != nil || rec == nil {
		return "", fmt.Errorf("read DuckDB's secret_directory: %v", err)
	}
	defer rec.Release()
	return strings.Clone(rec.Column(0).(*array.String).Value(0)), nil
}

// LockConfiguration sets lock_configuration = true: from now on no SET can
// change any setting, the lockdown included.
func (d *DB) LockConfiguration(ctx context.Context) error {
	c, err := d.Connect()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Exec(ctx, "SET GLOBAL lock_configuration = true"); err != nil {
		return fmt.Errorf("lock the configuration: %w", err)
	}
	return nil
}

// FilePolicy is the lockdown DuckDB enforces right now, set by
// --allowed-directories or by SET statements (startup SQL, a client), for
// Luna's own readers and writers to apply. Once external access is off
// DuckDB's answer can no longer change, and it is remembered.
func (d *DB) FilePolicy(ctx context.Context) (fspolicy.Policy, error) {
	l := &d.lockdown
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locked != nil {
		return *l.locked, nil
	}
	if l.conn == nil {
		c, err := d.Connect()
		if err != nil {
			return fspolicy.Policy{}, err
		}
		l.conn = c
	}
	rows, err := l.conn.Query(ctx, "SELECT current_setting('enable_external_access')::VARCHAR, "+
		"current_setting('allowed_directories')::VARCHAR[], current_setting('allowed_paths')::VARCHAR[]", 16)
	if err != nil {
		return fspolicy.Policy{}, fmt.Errorf("read DuckDB's file lockdown settings: %w", err)
	}
	defer rows.Close()
	rec, err := rows.Next()
	if err != nil || rec == nil {
		return fspolicy.Policy{}, fmt.Errorf("read DuckDB's file lockdown settings: %v", err)
	}
	defer rec.Release()
	p := fspolicy.Policy{
		Locked: rec.Column(0).(*array.String).Value(0) == "false",
		Dirs:   stringList(rec.Column(1).(*array.List), 0),
		Paths:  stringList(rec.Column(2).(*array.List), 0),
	}
	if p.Locked {
		l.locked = &p
	}
	return p, nil
}

func stringList(l *array.List, row int) []string {
	if l.IsNull(row) {
		return nil
	}
	vals := l.ListValues().(*array.String)
	beg, end := l.ValueOffsets(row)
	out := make([]string, 0, end-beg)
	for i := beg; i < end; i++ {
		out = append(out, strings.Clone(vals.Value(int(i))))
	}
	return out
}

func (l *lockdown) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}
