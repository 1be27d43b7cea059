// Package s3 implements objstore.Bucket on Amazon S3 and on services that
// speak its API: MinIO, versitygw, Ceph, and Google Cloud Storage's XML API
// with HMAC keys. Config follows the options of a DuckDB S3 secret.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/lunadb/luna/server/objstore"
)

// Config says which bucket to use and how to reach it.
type Config struct {
	Bucket string
	Region string // default "us-east-1"
	// KeyID, Secret and SessionToken are static credentials.
	KeyID, Secret, SessionToken string
	// Ambient, with no KeyID, signs with the AWS default credential
	// chain: environment variables, shared config files, web identity,
	// the instance role. Without it and without a KeyID requests go
	// unsigned, as DuckDB sends them for a secret without keys, so the
	// machine's identity is never sent anywhere by default.
	Ambient bool
	// Endpoint is a host[:port] or a URL; empty means AWS. As in DuckDB,
	// UseSSL picks the scheme of an endpoint given without one.
	Endpoint string
	// URLStyle is "path" (https://host/bucket/key) or "vhost"
	// (https://bucket.host/key). Empty means vhost, except for an endpoint
	// that is an IP address or localhost, where only path can work.
	URLStyle string
	// UseSSL is DuckDB's USE_SSL, whose default is true: callers mapping
	// DuckDB options must start from true. It matters only for an
	// Endpoint without a scheme; AWS itself is always reached over HTTPS.
	UseSSL bool
}

// String describes c without its secrets, so a logged Config leaks none.
func (c Config) String() string {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "<redacted>"
	}
	return fmt.Sprintf("{Bucket:%s Region:%s KeyID:%s Secret:%s SessionToken:%s Ambient:%t Endpoint:%s URLStyle:%s UseSSL:%t}",
		c.Bucket, c.Region, c.KeyID, redact(c.Secret), redact(c.SessionToken), c.Ambient, c.Endpoint, c.URLStyle, c.UseSSL)
}

// GoString keeps %#v from printing the secrets too.
func (c Config) GoString() string { return "s3.Config" + c.String() }

// Bucket is one S3 bucket. It is safe for concurrent use.
type Bucket struct {
	client  *awss3.Client
	bucket  string
	aws     bool     // no custom endpoint
	secrets []string // scrubbed from error messages
}

var _ objstore.Bucket = (*Bucket)(nil)

// New checks cfg and builds a client. It makes no request: a wrong key or
// missing bucket shows up on first use.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket name")
	}
	if strings.ContainsAny(cfg.Bucket, "/?#") {
		return nil, fmt.Errorf("s3: bucket name %q is not a name", cfg.Bucket)
	}
	if cfg.KeyID == "" && (cfg.Secret != "" || cfg.SessionToken != "") {
		return nil, errors.New("s3: a secret without a key ID")
	}
	if cfg.KeyID != "" && cfg.Secret == "" {
		return nil, errors.New("s3: a key ID without a secret")
	}
	if cfg.KeyID != "" && cfg.Ambient {
		return nil, errors.New("s3: both a key ID and the default credential chain")
	}
	endpoint, pathStyle, err := resolveEndpoint(cfg)
	if err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}

	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	anonymous := cfg.KeyID == "" && !cfg.Ambient
	switch {
	case cfg.KeyID != "":
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.KeyID, cfg.Secret, cfg.SessionToken)))
	case anonymous:
		// Setting a provider keeps LoadDefaultConfig from resolving the
		// default chain at all.
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: loading AWS configuration: %w", err)
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		o.UsePathStyle = pathStyle
		if anonymous {
			// The signer skips anonymous credentials: no Authorization,
			// no X-Amz-Security-Token.
			o.Credentials = aws.AnonymousCredentials{}
		}
		if endpoint == "" {
			return
		}
		o.BaseEndpoint = aws.String(endpoint)
		// Other services reject the aws-chunked bodies and trailing
		// checksums the SDK sends to AWS by default (GCS does), and few
		// return checksums to validate.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// GCS's front end rewrites Accept-Encoding before checking the
		// signature, so a signed Accept-Encoding never verifies there.
		o.APIOptions = append(o.APIOptions, unsignedAcceptEncoding)
	})
	b := &Bucket{client: client, bucket: cfg.Bucket, aws: endpoint == ""}
	for _, s := range []string{cfg.Secret, cfg.SessionToken} {
		if len(s) >= 4 {
			b.secrets = append(b.secrets, s)
		}
	}
	return b, nil
}

// resolveEndpoint gives the base URL ("" for AWS) and whether to address
// the bucket in the path.
func resolveEndpoint(cfg Config) (string, bool, error) {
	var pathStyle bool
	switch cfg.URLStyle {
	case "path":
		pathStyle = true
	case "vhost", "":
	default:
		return "", false, fmt.Errorf(`s3: URL style %q is neither "path" nor "vhost"`, cfg.URLStyle)
	}
	ep := strings.TrimSpace(cfg.Endpoint)
	if ep == "" {
		return "", pathStyle, nil
	}
	if !strings.Contains(ep, "://") {
		scheme := "http"
		if cfg.UseSSL {
			scheme = "https"
		}
		ep = scheme + "://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("s3: endpoint %q: scheme %q is not http or https", cfg.Endpoint, u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("s3: endpoint %q is not host[:port] or a base URL", cfg.Endpoint)
	}
	if cfg.URLStyle == "" {
		// A bucket cannot be a subdomain of an address.
		host := u.Hostname()
		pathStyle = host == "localhost" || net.ParseIP(host) != nil
	}
	return strings.TrimSuffix(u.String(), "/"), pathStyle, nil
}

// unsignedAcceptEncoding leaves Accept-Encoding out of the signature while
// still sending it.
func unsignedAcceptEncoding(stack *middleware.Stack) error {
	type savedKey struct{}
	strip := middleware.FinalizeMiddlewareFunc("LunaStripAcceptEncoding",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				if v, ok := req.Header["Accept-Encoding"]; ok {
					req.Header.Del("Accept-Encoding")
					ctx = context.WithValue(ctx, savedKey{}, v)
				}
			}
			return next.HandleFinalize(ctx, in)
		})
	restore := middleware.FinalizeMiddlewareFunc("LunaRestoreAcceptEncoding",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				if v, ok := ctx.Value(savedKey{}).([]string); ok {
					req.Header["Accept-Encoding"] = v
				}
			}
			return next.HandleFinalize(ctx, in)
		})
	if err := stack.Finalize.Insert(strip, "Signing", middleware.Before); err != nil {
		return err
	}
	return stack.Finalize.Insert(restore, "Signing", middleware.After)
}

// List returns the objects under prefix, page by page.
func (b *Bucket) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	var objs []objstore.Object
	pages := awss3.NewListObjectsV2Paginator(b.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(b.bucket),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, b.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			objs = append(objs, objstore.Object{
				Key:      aws.ToString(o.Key),
				Size:     aws.ToInt64(o.Size),
				Version:  unquote(aws.ToString(o.ETag)),
				Modified: aws.ToTime(o.LastModified),
			})
		}
	}
	// S3 lists in key order already; services that don't would break the
	// interface's promise.
	slices.SortFunc(objs, func(x, y objstore.Object) int { return strings.Compare(x.Key, y.Key) })
	return objs, nil
}

// Download streams the object into w.
func (b *Bucket) Download(ctx context.Context, key string, w io.Writer) (objstore.Object, error) {
	out, err := b.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(b.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return objstore.Object{}, b.wrap("download", key, err)
	}
	defer out.Body.Close()
	n, err := io.Copy(w, out.Body)
	if err != nil {
		return objstore.Object{}, b.wrap("download", key, err)
	}
	if out.ContentLength != nil && n != *out.ContentLength {
		return objstore.Object{}, b.wrap("download", key,
			fmt.Errorf("got %d bytes of %d", n, *out.ContentLength))
	}
	return objstore.Object{
		Key:      key,
		Size:     n,
		Version:  unquote(aws.ToString(out.ETag)),
		Modified: aws.ToTime(out.LastModified),
	}, nil
}

const (
	// maxPut is the most AWS takes in one PUT. Larger objects would need
	// a multipart upload, which Bucket does not do; failing first saves
	// sending 5 GiB to be refused. GCS's XML API takes 5 TiB in one PUT.
	maxPut = 5 << 30
	// bufferLimit is the largest unseekable body held in memory so that a
	// failed PUT can be retried; bigger ones are sent once, as they come.
	bufferLimit = 16 << 20
)

// Upload stores the object with a single PUT. A seekable r (a file, a
// bytes.Reader) is sent as is and can be retried.
func (b *Bucket) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	if size < 0 {
		return b.wrap("upload", key, fmt.Errorf("negative size %d", size))
	}
	if b.aws && size > maxPut {
		return b.wrap("upload", key, fmt.Errorf("%d bytes is more than the 5 GiB one PUT may carry", size))
	}
	var optFns []func(*awss3.Options)
	body, err := seekable(r, size)
	if err != nil {
		return b.wrap("upload", key, err)
	}
	if body == nil && size <= bufferLimit {
		buf := make([]byte, size)
		if _, err := io.ReadFull(ctxReader{ctx, r}, buf); err != nil {
			return b.wrap("upload", key, fmt.Errorf("reading the body: %w", err))
		}
		body = bytes.NewReader(buf)
	}
	var payload io.Reader = body
	if body == nil {
		// Without TLS the SDK hashes the body for the signature, which
		// needs a second pass; and it could not rewind it for a retry.
		payload = io.LimitReader(ctxReader{ctx, r}, size)
		optFns = append(optFns,
			awss3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware),
			func(o *awss3.Options) { o.RetryMaxAttempts = 1 })
	}
	_, err = b.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(key),
		Body:          payload,
		ContentLength: aws.Int64(size),
	}, optFns...)
	if err != nil {
		return b.wrap("upload", key, err)
	}
	return nil
}

// seekable returns r as an io.ReadSeeker if it is one that really seeks,
// after checking it holds size bytes; nil if it is not.
func seekable(r io.Reader, size int64) (io.ReadSeeker, error) {
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		return nil, nil
	}
	// An *os.File may be a pipe, which is a ReadSeeker that cannot seek.
	cur, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, nil
	}
	end, err := rs.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, nil
	}
	if _, err := rs.Seek(cur, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewinding the body: %w", err)
	}
	if end-cur != size {
		return nil, fmt.Errorf("the body holds %d bytes, not %d", end-cur, size)
	}
	return rs, nil
}

// ctxReader stops a read from a slow source once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// opError is a failed operation on one object or prefix. It matches
// objstore.ErrNotFound when S3 said the key or the bucket does not exist,
// and unwraps to the SDK's error (smithy.APIError and friends).
type opError struct {
	msg      string
	notFound bool
	err      error
}

func (e *opError) Error() string { return e.msg }

func (e *opError) Unwrap() []error {
	if e.notFound {
		return []error{objstore.ErrNotFound, e.err}
	}
	return []error{e.err}
}

func (b *Bucket) wrap(op, key string, err error) error {
	notFound, detail := describe(err)
	msg := fmt.Sprintf("s3 %s s3://%s/%s: %s", op, b.bucket, key, detail)
	for _, s := range b.secrets {
		msg = strings.ReplaceAll(msg, s, "<redacted>")
	}
	return &opError{msg: msg, notFound: notFound, err: err}
}

// describe says what went wrong in one line. The SDK's own message for a
// service error buries the code under the operation and transport.
func describe(err error) (notFound bool, msg string) {
	var status interface{ HTTPStatusCode() int }
	var reqID interface{ ServiceRequestID() string }
	var api smithy.APIError
	var noKey *types.NoSuchKey
	var noBucket *types.NoSuchBucket
	code := 0
	if errors.As(err, &status) {
		code = status.HTTPStatusCode()
	}
	notFound = code == 404 || errors.As(err, &noKey) || errors.As(err, &noBucket)
	if !errors.As(err, &api) {
		return notFound, err.Error()
	}
	switch api.ErrorCode() {
	case "NoSuchKey", "NoSuchBucket", "NotFound":
		notFound = true
	}
	var sb strings.Builder
	switch {
	case notFound:
		sb.WriteString("not found: ")
	case code == 401 || code == 403:
		sb.WriteString("access denied: ")
	}
	sb.WriteString(api.ErrorCode())
	if m := api.ErrorMessage(); m != "" {
		sb.WriteString(": " + m)
	}
	if code != 0 {
		fmt.Fprintf(&sb, " (HTTP %d", code)
		if errors.As(err, &reqID) && reqID.ServiceRequestID() != "" {
			sb.WriteString(", request ID " + reqID.ServiceRequestID())
		}
		sb.WriteString(")")
	}
	return notFound, sb.String()
}
