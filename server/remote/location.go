// Package remote makes object-store URLs in SQL work without DuckDB's
// cloud extensions: string literals such as 's3://bucket/x*.csv' are
// listed, downloaded into a validated local cache and handed to DuckDB as
// local paths; COPY … TO a bucket writes to a staging directory that is
// uploaded once the statement succeeded; CREATE SECRET statements for
// s3, gcs, r2 and azure are kept here, with DuckDB's option names and
// scope rules.
package remote

import (
	"strings"
)

// Scheme is a cloud's URL scheme family.
type Scheme string

const (
	S3    Scheme = "s3"
	GCS   Scheme = "gcs"
	R2    Scheme = "r2"
	Azure Scheme = "azure"
)

// Location is a parsed object-store URL.
type Location struct {
	URL     string // as written
	Scheme  Scheme
	Bucket  string // bucket or container
	Account string // Azure storage account, from abfss:// URLs
	Key     string // the object key or key pattern, without a leading '/'
}

// ParseLocation recognizes the object-store URLs Luna resolves: s3://,
// r2://, gs://, gcs://, az://, azure:// and
// abfss://container@account.dfs.core.windows.net/path.
func ParseLocation(s string) (Location, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Location{}, false
	}
	loc := Location{URL: s}
	switch strings.ToLower(scheme) {
	case "s3", "s3a", "s3n":
		loc.Scheme = S3
	case "r2":
		loc.Scheme = R2
	case "gs", "gcs":
		loc.Scheme = GCS
	case "az", "azure":
		loc.Scheme = Azure
	case "abfss":
		loc.Scheme = Azure
		host, key, _ := strings.Cut(rest, "/")
		container, account, ok := strings.Cut(host, "@")
		if !ok || !validBucket(container) {
			return Location{}, false
		}
		loc.Bucket, loc.Key = container, key
		loc.Account, _, _ = strings.Cut(account, ".")
		return loc, loc.Account != ""
	default:
		return Location{}, false
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if !validBucket(bucket) {
		return Location{}, false
	}
	loc.Bucket, loc.Key = bucket, key
	return loc, true
}

// validBucket refuses bucket names that could not be a directory of a
// statement's view ("", ".", "..", backslashes, control characters); no
// cloud allows them anyway.
func validBucket(name string) bool {
	return checkKey(name) == nil
}

// Prefix is the part of the key before its first glob character: what to
// list to find every match.
func (l Location) Prefix() string {
	if i := strings.IndexAny(l.Key, "*?["); i >= 0 {
		return l.Key[:i]
	}
	return l.Key
}

// IsGlob reports whether the key is a pattern.
func (l Location) IsGlob() bool { return strings.ContainsAny(l.Key, "*?[") }

// bucketURL is the URL of the bucket, for cache keys and messages.
func (l Location) bucketURL() string {
	if l.Account != "" {
		return string(l.Scheme) + "://" + l.Account + "/" + l.Bucket
	}
	return string(l.Scheme) + "://" + l.Bucket
}
