// Package passwd finds the server's password outside the command line: in a
// local file (--passwd-file) or in a cloud source named by --passwd-from:
//
//   - gcp-metadata:ATTR, the VM's metadata attribute ATTR, else the project's
//     (metadata server from GCE_METADATA_HOST, default 169.254.169.254);
//   - gcp-secretmanager:SECRET, a Secret Manager secret version:
//     projects/P/secrets/S[/versions/V], or S[/versions/V] in the VM's own
//     project (from the metadata server); the version defaults to latest.
//     Credentials are Application Default Credentials, on a VM its service
//     account's token from the metadata server;
//   - aws-imds:TAG, the EC2 instance tag TAG, read through IMDSv2 (the
//     instance must allow tags in its metadata; endpoint from
//     AWS_EC2_METADATA_SERVICE_ENDPOINT or the shared config);
//   - aws-ssm:NAME, the SSM parameter NAME, SecureStrings decrypted;
//   - aws-secretsmanager:ID, the secret ID (name or ARN), current version.
//
// The AWS sources take region, credentials and endpoints from the SDK's
// default chain: environment (AWS_REGION, AWS_ENDPOINT_URL_SSM,
// AWS_ENDPOINT_URL_SECRETS_MANAGER, ...), shared config files, instance role.
//
// Whatever the source, trailing newlines are trimmed and an empty password is
// an error, since a server told to use a password must never start without
// one. Errors name the source and what went wrong; they never contain the
// password.
package passwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"
)

// The kinds of source --passwd-from accepts.
const (
	KindGCPMetadata       = "gcp-metadata"
	KindGCPSecretManager  = "gcp-secretmanager"
	KindAWSIMDS           = "aws-imds"
	KindAWSSSM            = "aws-ssm"
	KindAWSSecretsManager = "aws-secretsmanager"
)

var kinds = []string{KindGCPMetadata, KindGCPSecretManager, KindAWSIMDS, KindAWSSSM, KindAWSSecretsManager}

// Errors a failed Fetch or ReadFile wraps, for callers that tell them apart.
var (
	ErrNotFound     = errors.New("not found")
	ErrAccessDenied = errors.New("access denied")
	ErrEmpty        = errors.New("the password is empty")
	ErrUnreachable  = errors.New("unreachable")
)

// Source is a parsed --passwd-from value.
type Source struct {
	Kind string // one of the Kind constants
	Name string // attribute, tag, parameter name, secret name or secret id
}

// String returns the source in the form ParseSource accepts.
func (s Source) String() string { return s.Kind + ":" + s.Name }

// ParseSource parses KIND:NAME, e.g. "gcp-metadata:luna-passwd" or
// "aws-secretsmanager:arn:aws:secretsmanager:...": only the first colon
// separates, since secret ARNs contain colons.
func ParseSource(s string) (Source, error) {
	kind, name, ok := strings.Cut(s, ":")
	if !ok {
		return Source{}, fmt.Errorf("password source %q: want KIND:NAME with KIND one of %s", s, strings.Join(kinds, ", "))
	}
	known := false
	for _, k := range kinds {
		known = known || k == kind
	}
	if !known {
		return Source{}, fmt.Errorf("password source %q: unknown kind %q (want one of %s)", s, kind, strings.Join(kinds, ", "))
	}
	if name == "" {
		return Source{}, fmt.Errorf("password source %q: empty name after %q", s, kind+":")
	}
	// Metadata names become one segment of a URL path: anything that would
	// change the path or the query must not reach the request.
	if (kind == KindGCPMetadata || kind == KindAWSIMDS) && strings.ContainsAny(name, "/?#% \t\r\n") {
		return Source{}, fmt.Errorf("password source %q: a %s name cannot contain '/', '?', '#', '%%' or spaces", s, kind)
	}
	if kind == KindGCPSecretManager {
		if _, err := parseGSMName(name); err != nil {
			return Source{}, fmt.Errorf("password source %q: %w", s, err)
		}
	}
	return Source{Kind: kind, Name: name}, nil
}

// Options tune Fetch.
type Options struct {
	// Timeout is how long to keep retrying a source that is unreachable or
	// not ready yet (metadata services and instance roles can take a while
	// at boot); 0 means 2 minutes.
	Timeout time.Duration
	// Log receives retry messages; nil discards them. The password itself
	// is never logged.
	Log *slog.Logger
}

const (
	defaultTimeout = 2 * time.Minute
	firstBackoff   = 250 * time.Millisecond
	maxBackoff     = 5 * time.Second
	// attemptTimeout bounds one attempt, so a source that accepts the
	// connection and then hangs is retried rather than waited on until the
	// whole timeout is gone.
	attemptTimeout = 10 * time.Second
)

// Fetch reads the password from src.
//
// Failures that waiting may cure (connection refused, timeouts, HTTP 5xx,
// throttling, instance-role credentials not ready) are retried with
// exponential backoff, 250ms doubling to 5s, until opts.Timeout has passed or
// ctx is done. A missing attribute, tag, parameter or secret, a refusal and an
// empty value are final at once: in particular a metadata 404 at boot means
// the attribute or tag was never set, not that it is still on its way, and a
// misconfiguration should stop the server now rather than after the timeout.
func Fetch(ctx context.Context, src Source, opts Options) (string, error) {
	if _, err := ParseSource(src.String()); err != nil {
		return "", err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	get, err := newGetter(ctx, src, log)
	if err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}

	deadline, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := firstBackoff
	var last error
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(deadline, attemptTimeout)
		v, err := get(actx)
		acancel()
		if err == nil {
			v = trimNewlines(v)
			if v == "" {
				return "", fmt.Errorf("%s: %w", src, ErrEmpty)
			}
			return v, nil
		}
		if f := (*finalError)(nil); errors.As(err, &f) {
			return "", fmt.Errorf("%s: %w", src, err)
		}
		// An attempt cut short by our own deadline says less than the one
		// before it did, which is usually "connection refused".
		if deadline.Err() == nil || last == nil {
			last = err
		}
		if deadline.Err() == nil {
			wait := backoff
			if end, ok := deadline.Deadline(); ok {
				wait = min(wait, time.Until(end).Round(time.Millisecond))
			}
			log.Warn("password source not ready, retrying", "source", src.String(), "attempt", attempt, "retry_in", wait, "err", err)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-deadline.Done():
				t.Stop()
			}
			backoff = min(2*backoff, maxBackoff)
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: %w (last error: %v)", src, context.Cause(ctx), last)
		}
		if deadline.Err() != nil {
			return "", fmt.Errorf("%s: %w after %s (%s): %v", src, ErrUnreachable, timeout, attempts(attempt), last)
		}
	}
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// getter makes one attempt at reading the password. An error wrapping
// *finalError is not retried; any other error is.
type getter func(ctx context.Context) (string, error)

func newGetter(ctx context.Context, src Source, log *slog.Logger) (getter, error) {
	switch src.Kind {
	case KindGCPMetadata:
		return gcpGetter(src.Name, log), nil
	case KindGCPSecretManager:
		return gsmGetter(src.Name, log)
	case KindAWSIMDS:
		return imdsGetter(ctx, src.Name, log)
	case KindAWSSSM:
		return ssmGetter(ctx, src.Name, log)
	case KindAWSSecretsManager:
		return secretsManagerGetter(ctx, src.Name, log)
	}
	return nil, fmt.Errorf("unknown kind %q", src.Kind)
}

// finalError marks a failure that retrying cannot cure.
type finalError struct {
	kind error // ErrNotFound, ErrAccessDenied, or nil for anything else
	err  error
}

func (e *finalError) Error() string {
	if e.kind == nil {
		return e.err.Error()
	}
	return e.kind.Error() + ": " + e.err.Error()
}

func (e *finalError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

func final(kind, err error) error { return &finalError{kind: kind, err: err} }

// maxFileSize caps ReadFile: passwords are short, and a path that points at
// something large (a device, the wrong file) should fail rather than fill
// memory.
const maxFileSize = 64 << 10

// ReadFile reads a password file (--passwd-file). Trailing "\n" and "\r\n"
// are trimmed, other whitespace is kept; an empty password is an error.
// Errors name the path.
func ReadFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", pathError(path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", pathError(path, err)
	}
	if len(b) > maxFileSize {
		return "", fmt.Errorf("password file %s: larger than %d KiB, which no password is", path, maxFileSize>>10)
	}
	pw := trimNewlines(string(b))
	if pw == "" {
		return "", fmt.Errorf("password file %s: %w", path, ErrEmpty)
	}
	return pw, nil
}

// pathError drops the path an *fs.PathError already carries, so that it is
// named once.
func pathError(path string, err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("password file %s: %w", path, err)
}

// trimNewlines removes trailing line endings only: spaces and tabs may be
// part of a password.
func trimNewlines(s string) string { return strings.TrimRight(s, "\r\n") }
