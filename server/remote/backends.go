package remote

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/objstore/abs"
	"github.com/lunadb/luna/server/objstore/gcs"
	"github.com/lunadb/luna/server/objstore/s3"
	"github.com/lunadb/luna/server/sqlerror"
)

// gcsInteropEndpoint is GCS's S3-compatible XML API, which takes HMAC keys.
const gcsInteropEndpoint = "storage.googleapis.com"

// openBucket builds the client for a location from its secret, with the
// rule DuckDB follows and one Luna adds for the machine's identity:
//   - a secret with keys (KEY_ID/SECRET, a CONNECTION_STRING) uses them;
//   - PROVIDER config, the default, without keys sends unsigned,
//     anonymous requests, as DuckDB does for public buckets: the
//     machine's credentials must never go to an endpoint a client named;
//   - PROVIDER credential_chain uses the machine's identity, at the
//     secret's ENDPOINT if it names one: the client asked for that;
//   - no secret at all uses the machine's identity against the cloud's
//     own endpoint (or the one the operator set with AWS_ENDPOINT_URL*):
//     the AWS default credential chain (instance profile), Application
//     Default Credentials for GCS (the VM's service account),
//     DefaultAzureCredential (managed identity).
func openBucket(ctx context.Context, loc Location, sec *Secret) (objstore.Bucket, error) {
	opt := func(k string) string {
		if sec == nil {
			return ""
		}
		return sec.Options[k]
	}
	chain := sec == nil || sec.Provider == "credential_chain"
	switch loc.Scheme {
	case S3, R2:
		if loc.Scheme == R2 && sec == nil {
			// Cloudflare is not the machine's cloud: without a secret
			// there is neither an endpoint nor an identity for it.
			return nil, sqlerror.Errorf(sqlerror.InvalidInput, "%s needs an r2 secret (ACCOUNT_ID, KEY_ID, SECRET)", loc.URL)
		}
		cfg := s3Config(loc.Bucket, opt, chain)
		if loc.Scheme == R2 && cfg.Endpoint == "" {
			if id := opt("ACCOUNT_ID"); id != "" {
				cfg.Endpoint = id + ".r2.cloudflarestorage.com"
			}
			cfg.Region = "auto"
		}
		return s3.New(ctx, cfg)
	case GCS:
		if opt("KEY_ID") != "" || (sec != nil && !chain) {
			// GCS through its S3-compatible endpoint, as DuckDB reaches
			// it: signed with HMAC keys, or unsigned without them.
			cfg := s3Config(loc.Bucket, opt, false)
			if opt("ENDPOINT") == "" {
				cfg.Endpoint, cfg.UseSSL = gcsInteropEndpoint, true
			}
			if opt("URL_STYLE") == "" {
				cfg.URLStyle = "path"
			}
			if cfg.Region == "" {
				cfg.Region = "us-east-1" // DuckDB's default; GCS ignores it
			}
			return s3.New(ctx, cfg)
		}
		// The machine's identity speaks Google's own API at Google's own
		// endpoint; an OAuth token must not go anywhere else.
		if ep := opt("ENDPOINT"); ep != "" && !isGCSEndpoint(ep) {
			return nil, sqlerror.Errorf(sqlerror.InvalidInput, "a gcs secret with PROVIDER credential_chain reaches %s only; give HMAC keys (KEY_ID, SECRET) for ENDPOINT %s", gcsInteropEndpoint, ep)
		}
		return gcs.New(ctx, gcs.Config{Bucket: loc.Bucket})
	case Azure:
		return abs.New(ctx, azureConfig(loc, opt, chain))
	}
	return nil, fmt.Errorf("no object store for %s", loc.URL)
}

// azureConfig is the container's configuration: a CONNECTION_STRING
// decides for itself (key, SAS or anonymous); an account name alone is
// anonymous unless the machine's identity is asked for.
func azureConfig(loc Location, opt func(string) string, chain bool) abs.Config {
	account := opt("ACCOUNT_NAME")
	if account == "" {
		account = loc.Account
	}
	return abs.Config{Container: loc.Bucket, AccountName: account, ConnectionString: opt("CONNECTION_STRING"), Ambient: chain}
}

// isGCSEndpoint reports whether an ENDPOINT option names Google's own
// storage host, with or without a scheme.
func isGCSEndpoint(ep string) bool {
	ep = strings.TrimSuffix(strings.TrimSpace(ep), "/")
	if _, rest, ok := strings.Cut(ep, "://"); ok {
		ep = rest
	}
	return strings.EqualFold(ep, gcsInteropEndpoint) || strings.EqualFold(ep, gcsInteropEndpoint+":443")
}

func s3Config(bucket string, opt func(string) string, chain bool) s3.Config {
	cfg := s3.Config{
		Bucket:   bucket,
		Region:   opt("REGION"),
		Endpoint: opt("ENDPOINT"),
		URLStyle: strings.ToLower(opt("URL_STYLE")),
		UseSSL:   !strings.EqualFold(opt("USE_SSL"), "false"),
	}
	if chain {
		cfg.Ambient = true
	} else {
		cfg.KeyID, cfg.Secret, cfg.SessionToken = opt("KEY_ID"), opt("SECRET"), opt("SESSION_TOKEN")
	}
	if cfg.Endpoint == "" {
		// The SDK's own variables for a custom endpoint (an S3-compatible
		// server); such servers want path-style URLs.
		for _, v := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
			if e := os.Getenv(v); e != "" {
				cfg.Endpoint = e
				if cfg.URLStyle == "" {
					cfg.URLStyle = "path"
				}
				break
			}
		}
	}
	return cfg
}
