package s3

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// The machine's own AWS identity, as the default chain would find it.
const (
	machineKeyID = "AKIAMACHINEIDENTITY1"
	machineToken = "machine-session-token-do-not-send"
)

func machineCredentials(t *testing.T) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", machineKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "machine-secret-access-key")
	t.Setenv("AWS_SESSION_TOKEN", machineToken)
}

// publicRead lets anyone list and read bucket, as a public dataset is.
func publicRead(t *testing.T, srv *objstoretest.S3Server, bucket string) {
	t.Helper()
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
		"Action":["s3:GetObject","s3:ListBucket"],
		"Resource":["arn:aws:s3:::` + bucket + `","arn:aws:s3:::` + bucket + `/*"]}]}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.Client().PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("public bucket policy: %v", err)
	}
}

// A config without keys is DuckDB's keyless config secret: its requests
// go unsigned even though the machine has credentials, and a public
// bucket reads.
func TestNoKeysSendsNoCredentials(t *testing.T) {
	srv, bucket := gateway(t)
	srv.PutObject(t, bucket, "pub/a.csv", []byte("n\n1\n"))
	publicRead(t, srv, bucket)
	machineCredentials(t)
	rec := objstoretest.StartRecorder(t, srv.DirectEndpoint, nil)

	b := open(t, Config{Bucket: bucket, Endpoint: rec.Addr, URLStyle: "path"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objs, err := b.List(ctx, "pub/")
	if err != nil || len(objs) != 1 {
		t.Fatalf("anonymous list of a public bucket: %v, %v", objs, err)
	}
	var sb strings.Builder
	if _, err := b.Download(ctx, "pub/a.csv", &sb); err != nil || sb.String() != "n\n1\n" {
		t.Fatalf("anonymous download: %q, %v", sb.String(), err)
	}
	// Writing is not public: refused, and still unsigned.
	if err := b.Upload(ctx, "pub/b.csv", strings.NewReader("x"), 1); err == nil {
		t.Fatal("anonymous upload succeeded")
	} else if errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("anonymous upload: %v", err)
	}
	if n := len(rec.Requests()); n < 3 {
		t.Fatalf("%d requests recorded: the test tests nothing", n)
	}
	if leaks := rec.Credentials(machineKeyID, machineToken); len(leaks) > 0 {
		t.Fatalf("credentials sent without keys:\n%s", strings.Join(leaks, "\n"))
	}
	t.Logf("%d unsigned requests", len(rec.Requests()))
}

// Static keys sign with those keys, never the machine's.
func TestStaticKeysSignWithThem(t *testing.T) {
	srv, bucket := gateway(t)
	machineCredentials(t)
	rec := objstoretest.StartRecorder(t, srv.DirectEndpoint, nil)
	cfg := testConfig(srv, bucket)
	cfg.Endpoint = rec.Addr
	b := open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	reqs := rec.Requests()
	if len(reqs) == 0 || !strings.Contains(reqs[0].Header.Get("Authorization"), "Credential="+srv.KeyID+"/") {
		t.Fatalf("requests %+v: not signed with the given key", reqs)
	}
	if leaks := rec.Credentials(machineKeyID, machineToken); len(leaks) != 1 || !strings.Contains(leaks[0], "header Authorization") {
		t.Fatalf("want only the Authorization header, got:\n%s", strings.Join(leaks, "\n"))
	}
}

// Ambient is the default credential chain: the machine's key ID and
// session token go out, because the caller asked for them.
func TestAmbientSendsMachineCredentials(t *testing.T) {
	srv, bucket := gateway(t)
	machineCredentials(t)
	rec := objstoretest.StartRecorder(t, srv.DirectEndpoint, nil)
	b := open(t, Config{Bucket: bucket, Endpoint: rec.Addr, URLStyle: "path", Ambient: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.Download(ctx, "k", io.Discard); err == nil {
		t.Fatal("the gateway took a key it does not know")
	}
	reqs := rec.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request")
	}
	h := reqs[0].Header
	if !strings.Contains(h.Get("Authorization"), "Credential="+machineKeyID+"/") || h.Get("X-Amz-Security-Token") != machineToken {
		t.Fatalf("headers %v: not the machine's credentials", h)
	}
}
