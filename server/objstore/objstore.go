// Package objstore is the one small interface for "a place objects live":
// a bucket (S3, GCS) or container (Azure) that can list, download and
// upload objects. Each cloud has its own package (s3, gcs, abs); the rest
// of Luna sees only this interface and never a cloud SDK.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// Object describes one stored object.
type Object struct {
	Key  string // the full key within the bucket
	Size int64
	// Version changes whenever the content changes: the S3 ETag, the GCS
	// generation, the Azure ETag (without quotes). Two reads with the same
	// Version saw the same bytes.
	Version  string
	Modified time.Time
}

// Bucket is a place objects live.
type Bucket interface {
	// List returns every object whose key starts with prefix, recursively,
	// ordered by key. An empty prefix lists the whole bucket.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Download writes the object's content to w and returns the metadata
	// of the version it wrote. A missing object gives an error matching
	// ErrNotFound.
	Download(ctx context.Context, key string, w io.Writer) (Object, error)
	// Upload stores size bytes from r under key, replacing any object
	// there.
	Upload(ctx context.Context, key string, r io.Reader, size int64) error
}

// ErrNotFound reports a key or bucket that does not exist.
var ErrNotFound = errors.New("not found")
