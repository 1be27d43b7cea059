//go:build duckdb_arrow

package appliance

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lunadb/luna/server/config"
	"github.com/lunadb/luna/server/engine"
	"github.com/lunadb/luna/server/remote"
)

// restrictFiles applies --allowed-directories before the startup SQL runs:
// DuckDB may then read and write only those directories and Luna's own
// (object cache, spill), and Luna's readers and writers follow whatever
// lockdown DuckDB has, from the flag or from SET statements.
func restrictFiles(ctx context.Context, db *engine.DB, cfg config.Config, resolver *remote.Resolver, log *slog.Logger) error {
	if resolver != nil {
		resolver.SetFilePolicy(db.FilePolicy)
	}
	if len(cfg.AllowedDirectories) == 0 {
		return nil
	}
	dirs := append([]string(nil), cfg.AllowedDirectories...)
	if resolver != nil {
		dirs = append(dirs, resolver.CacheDir())
	}
	if cfg.TempDir != "" {
		dirs = append(dirs, cfg.TempDir)
	}
	if err := db.RestrictFiles(ctx, dirs); err != nil {
		return err
	}
	if err := checkSecretsHidden(ctx, db, resolver); err != nil {
		return fmt.Errorf("--allowed-directories: %w", err)
	}
	log.Info("local file access restricted", "allowed_directories", dirs)
	return nil
}

// lockAfterStartup runs once the startup SQL is done: a lockdown written
// by hand there must not expose the stored secrets either, and with
// --allowed-directories no later SET may change any setting. The startup
// SQL runs before the lock so that the operator's own SET statements work.
func lockAfterStartup(ctx context.Context, db *engine.DB, cfg config.Config, resolver *remote.Resolver) error {
	if err := checkSecretsHidden(ctx, db, resolver); err != nil {
		return fmt.Errorf("file lockdown: %w", err)
	}
	if len(cfg.AllowedDirectories) == 0 {
		return nil
	}
	return db.LockConfiguration(ctx)
}

// checkSecretsHidden refuses a lockdown whose allowed directories hold
// Luna's or DuckDB's stored secrets, which read_text could then return.
func checkSecretsHidden(ctx context.Context, db *engine.DB, resolver *remote.Resolver) error {
	p, err := db.FilePolicy(ctx)
	if err != nil || !p.Locked {
		return err
	}
	duckSecrets, err := db.SecretDirectory(ctx)
	if err != nil {
		return err
	}
	secretDirs := []string{duckSecrets}
	if resolver != nil {
		secretDirs = append(secretDirs, resolver.SecretDir())
	}
	return p.CheckSecrets(secretDirs...)
}
