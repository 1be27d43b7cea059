package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a versitygw S3 gateway over a directory, running for the
// test's lifetime. Code under test should use Endpoint (plain HTTP, path
// style, static KeyID/Secret), where a proxy counts requests by kind (see
// Counts); the helpers here go to DirectEndpoint so they are not counted.
type S3Server struct {
	Endpoint       string // 127.0.0.1:port of the counting proxy
	DirectEndpoint string // 127.0.0.1:port of versitygw itself
	KeyID, Secret  string
	Region         string
	// Dir is the gateway's root: each bucket is a directory in it and each
	// object a file. Files written here directly have no ETag (versitygw
	// keeps it in metadata it writes on PUT), and rewriting one in place
	// keeps the old ETag: put objects through the API.
	Dir string

	client   *awss3.Client
	noConfig string // an AWS config file that does not exist

	*counter
}

// StartVersityGW starts an empty gateway. Create buckets with CreateBucket.
func StartVersityGW(t testing.TB) *S3Server {
	t.Helper()
	bin := ToolPath(t, "versitygw")
	s := &S3Server{
		DirectEndpoint: FreeAddr(t),
		KeyID:          "luna-test",
		Secret:         "luna-" + rand.Text(),
		Region:         "us-east-1",
		Dir:            t.TempDir(),
		noConfig:       filepath.Join(t.TempDir(), "no-such-aws-config"),
	}
	// A sidecar directory holds object metadata, so the gateway needs no
	// extended attributes from the file system under the test's temp dir.
	meta := t.TempDir()
	StartProcess(t, s.DirectEndpoint, bin,
		"--port", s.DirectEndpoint,
		"--access", s.KeyID,
		"--secret", s.Secret,
		"--region", s.Region,
		"--quiet",
		"posix", "--sidecar", meta, s.Dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoint = ln.Addr().String()
	// The Host header is part of the request's signature.
	s.counter = startCounter(t, ln, s.DirectEndpoint, true, S3RequestKind, S3Get)
	s.client = awss3.New(awss3.Options{
		Region:       s.Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.KeyID, s.Secret, "")),
		BaseEndpoint: aws.String("http://" + s.DirectEndpoint),
		UsePathStyle: true,
	})
	return s
}

// Env is the environment for a process that should find the server's
// keys through the AWS default credential chain, and nothing else: no
// shared config files, container or web-identity credentials, or instance
// metadata service.
func (s *S3Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.KeyID,
		"AWS_SECRET_ACCESS_KEY=" + s.Secret,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + s.noConfig,
		"AWS_SHARED_CREDENTIALS_FILE=" + s.noConfig,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=",
		"AWS_ROLE_ARN=",
	}
}

// Setenv sets Env in the test's own environment.
func (s *S3Server) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Client is an SDK client for the gateway that bypasses the proxy.
func (s *S3Server) Client() *awss3.Client { return s.client }

// CreateBucket creates an empty bucket.
func (s *S3Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
}

// PutObject stores data under bucket/key.
func (s *S3Server) PutObject(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		t.Fatalf("putting s3://%s/%s: %v", bucket, key, err)
	}
}

// DeleteObject removes bucket/key. It returns the error rather than
// failing the test so it can serve as Run's del.
func (s *S3Server) DeleteObject(bucket, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
	})
	return err
}

// Request kinds that S3Server.Counts reports. They assume path-style URLs
// (/bucket/key), which is what clients use for a 127.0.0.1 endpoint.
const (
	S3List   = "list"   // GET on a bucket that lists objects (ListObjectsV2, ListObjects)
	S3Get    = "get"    // GET of an object, whole or a range
	S3Head   = "head"   // HEAD of an object
	S3Put    = "put"    // PUT of an object or of a multipart part
	S3Delete = "delete" // DELETE of an object
	S3Post   = "post"   // POST on an object: multipart create and complete
	S3Bucket = "bucket" // anything else, on a bucket or the service: create, delete, location
)

// S3RequestKind names an S3 request for counting: one of S3List, S3Get, ...
func S3RequestKind(r *http.Request) string {
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if key != "" {
		switch r.Method {
		case http.MethodGet:
			return S3Get
		case http.MethodHead:
			return S3Head
		case http.MethodPut:
			return S3Put
		case http.MethodDelete:
			return S3Delete
		case http.MethodPost:
			return S3Post
		}
		return S3Bucket
	}
	if r.Method == http.MethodGet && r.URL.Path != "/" && isListQuery(r.URL.Query()) {
		return S3List
	}
	return S3Bucket
}

// isListQuery tells a listing from a GET of a bucket subresource
// (?location, ?versioning, ...).
func isListQuery(q url.Values) bool {
	if q.Has("list-type") {
		return true
	}
	for k := range q {
		switch k {
		case "prefix", "delimiter", "marker", "max-keys", "encoding-type":
		default:
			return false
		}
	}
	return true
}
