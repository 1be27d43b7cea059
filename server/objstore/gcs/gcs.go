// Package gcs is the objstore.Bucket for Google Cloud Storage, reached
// through its JSON and XML APIs with Application Default Credentials (on a
// GCE VM, its service account), so it serves only where the machine's
// identity applies: no secret, or PROVIDER credential_chain. HMAC-key and
// keyless (anonymous) access go through the s3 package on GCS's
// S3-compatible endpoint instead, as DuckDB's gcs secrets do.
//
// When STORAGE_EMULATOR_HOST is set, the storage client talks plain HTTP
// to that host and sends no credentials; the tests rely on that to run
// against fake-gcs-server on loopback.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/lunadb/luna/server/objstore"
)

// Config names the bucket to use.
type Config struct {
	// Bucket is the bare bucket name, without gs:// or a path.
	Bucket string
}

// Bucket is one GCS bucket. It is safe for concurrent use.
type Bucket struct {
	name   string
	client *storage.Client
	bucket *storage.BucketHandle
}

var _ objstore.Bucket = (*Bucket)(nil)

// listPageSize is GCS's largest page. Asking for it explicitly also makes
// emulators, which otherwise answer in one page, paginate.
var listPageSize = 1000

// New opens cfg.Bucket. It sends no request: a missing bucket or missing
// permissions show up on the first call, as errors naming the bucket.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("gcs: config: bucket name is empty")
	}
	if strings.ContainsAny(cfg.Bucket, "/:") {
		return nil, fmt.Errorf("gcs: config: bucket %q: want a bare bucket name, without gs:// or a path", cfg.Bucket)
	}
	// Luna only lists, reads and writes objects: ask for no more.
	client, err := storage.NewClient(ctx, option.WithScopes(storage.ScopeReadWrite))
	if err != nil {
		return nil, fmt.Errorf("gcs: bucket %s: %w", cfg.Bucket, err)
	}
	return &Bucket{name: cfg.Bucket, client: client, bucket: client.Bucket(cfg.Bucket)}, nil
}

// Close releases the client's connections.
func (b *Bucket) Close() error { return b.client.Close() }

// List returns the objects under prefix, ordered by key.
func (b *Bucket) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Generation", "Updated"}); err != nil {
		return nil, b.wrap("list", prefix, err)
	}
	var objs []objstore.Object
	it := b.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = listPageSize
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, b.wrap("list", prefix, err)
		}
		objs = append(objs, objstore.Object{
			Key:      a.Name,
			Size:     a.Size,
			Version:  strconv.FormatInt(a.Generation, 10),
			Modified: a.Updated,
		})
	}
	// GCS lists in key order already; sorting keeps the contract even if
	// an emulator or a future listing mode does not.
	slices.SortFunc(objs, func(x, y objstore.Object) int { return strings.Compare(x.Key, y.Key) })
	return objs, nil
}

// Download copies the object to w in one GET. The reader pins the
// generation of its first response, so the Version returned is the one
// whose bytes were written.
func (b *Bucket) Download(ctx context.Context, key string, w io.Writer) (objstore.Object, error) {
	r, err := b.bucket.Object(key).NewReader(ctx)
	if err != nil {
		return objstore.Object{}, b.wrap("download", key, err)
	}
	defer r.Close()
	n, err := io.Copy(w, r)
	if err != nil {
		return objstore.Object{}, b.wrap("download", key, err)
	}
	if r.Attrs.Generation == 0 {
		return objstore.Object{}, fmt.Errorf("download %s: the response carries no generation", b.url(key))
	}
	size := r.Attrs.Size
	if r.Attrs.Decompressed {
		// A gzip-encoded object is served decompressed; report what was
		// written rather than the stored size.
		size = n
	}
	return objstore.Object{
		Key:      key,
		Size:     size,
		Version:  strconv.FormatInt(r.Attrs.Generation, 10),
		Modified: r.Attrs.LastModified,
	}, nil
}

// Upload stores size bytes from r under key. A read error or a short read
// aborts the upload instead of committing a truncated object.
func (b *Bucket) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	// Canceling this context before Close is the client's way to abandon
	// an upload.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := b.bucket.Object(key).NewWriter(ctx)
	n, err := io.Copy(w, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("read %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		cancel()
		w.Close()
		return b.wrap("upload", key, err)
	}
	if err := w.Close(); err != nil {
		return b.wrap("upload", key, err)
	}
	return nil
}

func (b *Bucket) url(key string) string { return "gs://" + b.name + "/" + key }

// wrap names the object in err and makes a missing bucket or object match
// objstore.ErrNotFound.
func (b *Bucket) wrap(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%s %s: %w (%w)", op, b.url(key), objstore.ErrNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, b.url(key), err)
}

func isNotFound(err error) bool {
	if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
		return true
	}
	// An upload into a missing bucket fails with a plain 404.
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}
