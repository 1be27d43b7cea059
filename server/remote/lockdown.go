package remote

import (
	"context"

	"github.com/lunadb/luna/server/fspolicy"
	"github.com/lunadb/luna/server/sqlerror"
)

// Luna's own readers and writers (read_xlsx, COPY … TO '….xlsx',
// iceberg_*) open local files DuckDB never sees; they obey DuckDB's file
// lockdown through these checks. Object-store URLs are not local files and
// are not checked; Luna's own cache and staging files are not either.

// SetFilePolicy makes the resolver ask policy before opening a client's
// local path. Call it before serving.
func (r *Resolver) SetFilePolicy(policy func(ctx context.Context) (fspolicy.Policy, error)) {
	r.opts.FilePolicy = policy
}

// CacheDir is the object cache directory (converted sheets, staging and
// statement views live under it too): DuckDB must be allowed to read it.
func (r *Resolver) CacheDir() string { return r.opts.CacheDir }

// SecretDir is where PERSISTENT secrets are stored ("": nowhere): no
// client may be allowed to read it.
func (r *Resolver) SecretDir() string { return r.opts.SecretDir }

func (r *Resolver) policy(ctx context.Context) (fspolicy.Policy, error) {
	if r.opts.FilePolicy == nil {
		return fspolicy.Policy{}, nil
	}
	p, err := r.opts.FilePolicy(ctx)
	if err != nil {
		return p, sqlerror.Errorf(sqlerror.IO, "%w", err)
	}
	return p, nil
}

// checkRead refuses a local path (or glob) the lockdown does not allow;
// shown is how the client named it.
func (r *Resolver) checkRead(ctx context.Context, local, shown string) error {
	p, err := r.policy(ctx)
	if err != nil {
		return err
	}
	return p.CheckRead(local, shown)
}

// checkWrite refuses a local COPY target the lockdown does not allow.
func (r *Resolver) checkWrite(ctx context.Context, local, shown string) error {
	p, err := r.policy(ctx)
	if err != nil {
		return err
	}
	return p.CheckWrite(local, shown)
}

// checkGlob is checkRead for a pattern before it is expanded.
func (r *Resolver) checkGlob(ctx context.Context, pattern, shown string) error {
	p, err := r.policy(ctx)
	if err != nil {
		return err
	}
	return p.CheckGlob(pattern, shown)
}
