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
)

// gcsInteropEndpoint is GCS's S3-compatible XML API, which takes HMAC keys.
const gcsInteropEndpoint = "storage.googleapis.com"

// openBucket builds the client for a location from its secret, or from
// the machine's own identity when there is none: the AWS default
// credential chain (instance profile), Application Default Credentials
// for GCS (the VM's service account), DefaultAzureCredential (managed
// identity).
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
		cfg := s3Config(loc.Bucket, opt, chain)
		if loc.Scheme == R2 && cfg.Endpoint == "" {
			if id := opt("ACCOUNT_ID"); id != "" {
				cfg.Endpoint = id + ".r2.cloudflarestorage.com"
			}
			cfg.Region = "auto"
		}
		return s3.New(ctx, cfg)
	case GCS:
		if opt("KEY_ID") != "" {
			// HMAC keys: GCS through its S3-compatible endpoint.
			cfg := s3Config(loc.Bucket, opt, false)
			if cfg.Endpoint == "" {
				cfg.Endpoint = gcsInteropEndpoint
			}
			if opt("URL_STYLE") == "" {
				cfg.URLStyle = "path"
			}
			if cfg.Region == "" {
				cfg.Region = "us-east-1" // DuckDB's default; GCS ignores it
			}
			return s3.New(ctx, cfg)
		}
		return gcs.New(ctx, gcs.Config{Bucket: loc.Bucket})
	case Azure:
		account := opt("ACCOUNT_NAME")
		if account == "" {
			account = loc.Account
		}
		return abs.New(ctx, abs.Config{Container: loc.Bucket, AccountName: account, ConnectionString: opt("CONNECTION_STRING")})
	}
	return nil, fmt.Errorf("no object store for %s", loc.URL)
}

func s3Config(bucket string, opt func(string) string, chain bool) s3.Config {
	cfg := s3.Config{
		Bucket:   bucket,
		Region:   opt("REGION"),
		Endpoint: opt("ENDPOINT"),
		URLStyle: strings.ToLower(opt("URL_STYLE")),
		UseSSL:   !strings.EqualFold(opt("USE_SSL"), "false"),
	}
	if !chain {
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
