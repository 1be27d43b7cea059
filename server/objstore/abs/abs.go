// Package abs is objstore.Bucket on an Azure Blob Storage container.
//
// It takes the settings DuckDB's azure secrets take: a connection string
// (account key, SAS token, or anonymous access to a public container), or
// just an account name, in which case requests are anonymous unless
// Config.Ambient asks for Microsoft Entra tokens from
// DefaultAzureCredential (managed identity on an Azure VM, workload
// identity, AZURE_* environment variables, the Azure CLI).
//
// Errors name the blob as az://container/key and never carry an account
// key or SAS signature.
package abs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lunadb/luna/server/objstore"
)

// Config says which container to use and how to authenticate.
type Config struct {
	Container string
	// AccountName is DuckDB's ACCOUNT_NAME. Without a connection string
	// the service is https://<account>.blob.core.windows.net and requests
	// are anonymous (DuckDB's config provider), or authenticate with
	// DefaultAzureCredential when Ambient is set.
	AccountName string
	// Ambient uses the machine's identity (DefaultAzureCredential) for an
	// account name without a connection string: DuckDB's credential_chain
	// provider. It is off by default so that the machine's tokens go
	// nowhere unless asked for.
	Ambient bool
	// ConnectionString is DuckDB's CONNECTION_STRING, the semicolon
	// separated AccountName=...;AccountKey=...;BlobEndpoint=... form the
	// Azure portal shows. An AccountKey signs requests with the shared key;
	// a SharedAccessSignature is appended to every request; neither gives
	// anonymous access.
	ConnectionString string
	// Endpoint, when set, is the service URL
	// (http://127.0.0.1:10000/devstoreaccount1 for Azurite). It overrides
	// the one derived from the account name or connection string.
	Endpoint string
}

// Bucket is an Azure Blob Storage container. It is safe for concurrent use.
type Bucket struct {
	container string
	client    *container.Client
	auth      authKind
	// pageSize caps list pages; zero leaves the service default (5000).
	// Tests lower it to make paging observable.
	pageSize int32
}

var _ objstore.Bucket = (*Bucket)(nil)

// newDefaultCredential is replaced in tests: the real chain probes the
// instance metadata service, which must not be reached from a test.
var newDefaultCredential = func() (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(nil)
}

type authKind int

const (
	authSharedKey authKind = iota
	authSAS
	authAnonymous
	authDefault
)

// target is a resolved Config.
type target struct {
	containerURL string // without the SAS query
	sas          string // query string without '?', or ""
	account, key string
	auth         authKind
}

// New returns a Bucket for cfg. It does no I/O: a wrong key or a missing
// container shows up on the first request.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	var c *container.Client
	switch t.auth {
	case authSharedKey:
		cred, cerr := container.NewSharedKeyCredential(t.account, t.key)
		if cerr != nil {
			return nil, errors.New("abs: the account key is not valid base64")
		}
		c, err = container.NewClientWithSharedKeyCredential(t.containerURL, cred, nil)
	case authSAS:
		c, err = container.NewClientWithNoCredential(t.containerURL+"?"+t.sas, nil)
	case authAnonymous:
		c, err = container.NewClientWithNoCredential(t.containerURL, nil)
	case authDefault:
		cred, cerr := newDefaultCredential()
		if cerr != nil {
			return nil, fmt.Errorf("abs: Azure default credential: %w", cerr)
		}
		c, err = container.NewClient(t.containerURL, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("abs: %w", err)
	}
	return &Bucket{container: cfg.Container, client: c, auth: t.auth}, nil
}

// resolve works out the container URL and credential cfg describes.
func resolve(cfg Config) (target, error) {
	if cfg.Container == "" {
		return target{}, errors.New("abs: no container")
	}
	if !validContainer(cfg.Container) {
		return target{}, fmt.Errorf("abs: invalid container name %q: 3 to 63 lower-case letters, digits and single hyphens", cfg.Container)
	}
	var t target
	service := cfg.Endpoint
	switch {
	case cfg.ConnectionString != "":
		kv, err := parseConnectionString(cfg.ConnectionString)
		if err != nil {
			return target{}, err
		}
		t.account = kv["accountname"]
		if t.account == "" {
			t.account = cfg.AccountName
		} else if cfg.AccountName != "" && cfg.AccountName != t.account {
			return target{}, fmt.Errorf("abs: account %q differs from the connection string's %q", cfg.AccountName, t.account)
		}
		t.key = kv["accountkey"]
		t.sas = strings.TrimPrefix(kv["sharedaccesssignature"], "?")
		switch {
		case t.key != "" && t.account == "":
			return target{}, errors.New("abs: connection string has an AccountKey but no AccountName")
		case t.key != "":
			t.auth = authSharedKey
		case t.sas != "":
			t.auth = authSAS
		default:
			t.auth = authAnonymous
		}
		if service == "" {
			service = kv["blobendpoint"]
		}
		if service == "" {
			if t.account == "" {
				return target{}, errors.New("abs: connection string has neither BlobEndpoint nor AccountName")
			}
			proto := kv["defaultendpointsprotocol"]
			if proto == "" {
				proto = "https"
			}
			suffix := kv["endpointsuffix"]
			if suffix == "" {
				suffix = "core.windows.net"
			}
			if !validAccount(t.account) {
				return target{}, fmt.Errorf("abs: invalid account name %q", t.account)
			}
			service = proto + "://" + t.account + ".blob." + suffix
		}
	case cfg.AccountName != "":
		t.account = cfg.AccountName
		t.auth = authAnonymous
		if cfg.Ambient {
			t.auth = authDefault
		}
		if service == "" {
			if !validAccount(t.account) {
				return target{}, fmt.Errorf("abs: invalid account name %q", t.account)
			}
			service = "https://" + t.account + ".blob.core.windows.net"
		}
	default:
		return target{}, errors.New("abs: set an account name or a connection string")
	}

	u, err := url.Parse(service)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may carry a SAS token: name only the problem.
		return target{}, errors.New("abs: the blob endpoint is not an http(s) URL")
	}
	if u.RawQuery != "" {
		// A SAS token written into the endpoint URL itself.
		if t.sas == "" && t.auth != authSharedKey && t.auth != authDefault {
			t.sas, t.auth = u.RawQuery, authSAS
		}
		u.RawQuery = ""
	}
	u.Fragment = ""
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + cfg.Container
	u.RawPath = ""
	t.containerURL = u.String()
	return t, nil
}

// parseConnectionString splits key=value;... into a map with lower-cased
// keys (Azure treats them case-insensitively). Values keep any '=' (account
// keys end in "=="); errors never echo a value.
func parseConnectionString(s string) (map[string]string, error) {
	kv := make(map[string]string)
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("abs: malformed connection string: part %d is not key=value", i+1)
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if len(kv) == 0 {
		return nil, errors.New("abs: empty connection string")
	}
	return kv, nil
}

// validContainer reports whether name follows Azure's container naming
// rules, which the service otherwise enforces with an opaque HTTP 400.
func validContainer(name string) bool {
	switch name {
	case "$root", "$web", "$logs":
		return true
	}
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--") {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// validAccount reports whether name can stand in a host name as Azure
// storage account names do: 3 to 24 lower-case letters and digits.
func validAccount(name string) bool {
	if len(name) < 3 || len(name) > 24 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// List returns the blobs whose names start with prefix, ordered by name.
func (b *Bucket) List(ctx context.Context, prefix string) ([]objstore.Object, error) {
	opts := &container.ListBlobsFlatOptions{}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	if b.pageSize > 0 {
		opts.MaxResults = &b.pageSize
	}
	var objs []objstore.Object
	pager := b.client.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, b.fail(ctx, "list", prefix, err)
		}
		if page.Segment == nil {
			continue
		}
		for _, it := range page.Segment.BlobItems {
			if o, ok := object(it); ok {
				objs = append(objs, o)
			}
		}
	}
	// The service lists in name order already; sorting keeps the
	// interface's promise without relying on it.
	slices.SortFunc(objs, func(x, y objstore.Object) int { return strings.Compare(x.Key, y.Key) })
	return objs, nil
}

// object converts a listed blob. Directories of accounts with a
// hierarchical namespace are listed as empty blobs; they hold no data.
func object(it *container.BlobItem) (objstore.Object, bool) {
	if it == nil || it.Name == nil {
		return objstore.Object{}, false
	}
	o := objstore.Object{Key: *it.Name}
	if p := it.Properties; p != nil {
		if p.ResourceType != nil && *p.ResourceType == "directory" {
			return objstore.Object{}, false
		}
		if p.ContentLength != nil {
			o.Size = *p.ContentLength
		}
		o.Version = version(p.ETag)
		if p.LastModified != nil {
			o.Modified = *p.LastModified
		}
	}
	return o, true
}

// version is an ETag without its quotes: Azure and Azurite send "0x8D...".
func version(etag *azcore.ETag) string {
	if etag == nil {
		return ""
	}
	return strings.Trim(string(*etag), `"`)
}

// Download writes the blob's content to w. A dropped connection resumes
// where it stopped, pinned to the same ETag, so w never mixes versions.
func (b *Bucket) Download(ctx context.Context, key string, w io.Writer) (objstore.Object, error) {
	resp, err := b.client.NewBlobClient(key).DownloadStream(ctx, nil)
	if err != nil {
		return objstore.Object{}, b.fail(ctx, "download", key, err)
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{})
	defer body.Close()
	if _, err := io.Copy(w, body); err != nil {
		return objstore.Object{}, b.fail(ctx, "download", key, err)
	}
	o := objstore.Object{Key: key, Version: version(resp.ETag)}
	if resp.ContentLength != nil {
		o.Size = *resp.ContentLength
	}
	if resp.LastModified != nil {
		o.Modified = *resp.LastModified
	}
	return o, nil
}

const (
	blockSize = 8 << 20 // the part size of large uploads
	maxBlocks = 50000   // blocks per blob, a service limit
)

// Upload stores size bytes from r as a block blob. Objects under
// blockSize go up in one request; larger ones as blocks, four at a time,
// committed only once all of them arrived, so a failed upload leaves any
// previous version in place.
func (b *Bucket) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	if size < 0 {
		return &opError{op: "upload", url: b.url(key), msg: fmt.Sprintf("negative size %d", size)}
	}
	opts := &blockblob.UploadStreamOptions{BlockSize: blockSize, Concurrency: 4}
	if size < blockSize {
		// One request, and a buffer no larger than the object. The SDK
		// only sends a single request when the data is shorter than a block.
		opts.BlockSize, opts.Concurrency = size+1, 1
	} else if n := (size + maxBlocks - 1) / maxBlocks; n > opts.BlockSize {
		opts.BlockSize = n
	}
	src := &exactReader{r: r, left: size, size: size}
	_, err := b.client.NewBlockBlobClient(key).UploadStream(ctx, src, opts)
	if err != nil {
		return b.fail(ctx, "upload", key, err)
	}
	return nil
}

// exactReader yields exactly size bytes of r. A short r is an error, so
// the upload fails rather than commit a truncated blob.
type exactReader struct {
	r          io.Reader
	left, size int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			return n, fmt.Errorf("source ended after %d of %d bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// authHint says what to check when the service refuses a request.
func (b *Bucket) authHint() string {
	switch b.auth {
	case authSharedKey:
		return "check the account name and key"
	case authSAS:
		return "check that the SAS token is current and grants this container and operation"
	case authAnonymous:
		return "the container does not allow anonymous access; give an account key or SAS token, or use PROVIDER credential_chain"
	default:
		return "check that the Azure identity has a Storage Blob Data role on the container"
	}
}

// url names a blob in errors.
func (b *Bucket) url(key string) string {
	return "az://" + b.container + "/" + key
}

// opError is a failed request. Its message is built from the parts of the
// SDK's error that cannot hold secrets; the SDK's error stays reachable
// with errors.As.
type opError struct {
	op, url string
	msg     string
	kind    error // what else errors.Is should match (objstore.ErrNotFound), or nil
	err     error
}

func (e *opError) Error() string { return "abs: " + e.op + " " + e.url + ": " + e.msg }

func (e *opError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.kind, e.err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (b *Bucket) fail(ctx context.Context, op, key string, err error) error {
	e := &opError{op: op, url: b.url(key), err: err}
	var re *azcore.ResponseError
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		status := fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
		switch {
		case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound):
			e.kind = objstore.ErrNotFound
			e.msg = "not found (" + status + ")"
		case bloberror.HasCode(err, bloberror.AuthenticationFailed):
			e.msg = "authentication failed (" + status + "): " + b.authHint()
		case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
			// Azurite reports a wrong key as AuthorizationFailure, and a
			// SAS or identity lacking a permission looks the same.
			e.msg = "access denied (" + status + "): " + b.authHint()
		default:
			e.msg = status
		}
	case ctx.Err() != nil:
		e.msg = ctx.Err().Error()
		if !errors.Is(err, ctx.Err()) {
			e.kind = ctx.Err()
		}
	case errors.As(err, &ue):
		// url.Error's text holds the request URL, and with it a SAS.
		e.msg = ue.Err.Error()
	default:
		e.msg = err.Error()
	}
	return e
}
