//go:build duckdb_arrow

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// The identity the server's machine has: what the AWS default chain and
// Google's Application Default Credentials would find.
// TestKeylessSecretSendsNoCredentials is issue 11 item 6: a secret
// without keys that names a third party's ENDPOINT must not hand that
// party the machine's credentials. Each secret's endpoint is its own
// recorder in front of versitygw.
func TestKeylessSecretSendsNoCredentials(t *testing.T) {
	srv := objstoretest.StartVersityGW(t)
	ctx := context.Background()
	for _, b := range []string{"public", "private", "keyed", "chain"} {
		srv.CreateBucket(t, b)
		srv.PutObject(t, b, "x.csv", []byte("n\n1\n2\n"))
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],` +
		`"Resource":["arn:aws:s3:::public","arn:aws:s3:::public/*"]}]}`
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := srv.Client().PutBucketPolicy(pctx, &awss3.PutBucketPolicyInput{Bucket: aws.String("public"), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	googleTokens := objstoretest.StartRecorder(t, "", http.NotFoundHandler())
	rec := map[string]*objstoretest.Recorder{}
	for _, name := range []string{"anon", "gcs", "keyed", "chain"} {
		rec[name] = objstoretest.StartRecorder(t, srv.DirectEndpoint, nil)
	}

	p := startLuna(t, true, objstoretest.MachineIdentity(t, googleTokens.Addr))
	c := p.dial(t, client.Options{})
	secrets := []string{
		// The statement: no KEY_ID, a stranger's endpoint.
		fmt.Sprintf("CREATE SECRET anon (TYPE s3, ENDPOINT '%s', URL_STYLE 'path', USE_SSL false, SCOPE ['s3://public', 's3://private'])", rec["anon"].Addr),
		fmt.Sprintf("CREATE SECRET g (TYPE gcs, ENDPOINT '%s', USE_SSL false)", rec["gcs"].Addr),
		fmt.Sprintf("CREATE SECRET keyed (TYPE s3, KEY_ID '%s', SECRET '%s', ENDPOINT '%s', URL_STYLE 'path', USE_SSL false, SCOPE 's3://keyed')", srv.KeyID, srv.Secret, rec["keyed"].Addr),
		fmt.Sprintf("CREATE SECRET chain (TYPE s3, PROVIDER credential_chain, ENDPOINT '%s', URL_STYLE 'path', USE_SSL false, SCOPE 's3://chain')", rec["chain"].Addr),
	}
	for _, s := range secrets {
		if err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}

	// Keyless: a public bucket reads unsigned, over S3 and over GCS's
	// S3-compatible API; a private one is refused, still unsigned.
	if got := scalar(t, c, "SELECT sum(n) FROM 's3://public/*.csv'"); got != "3" {
		t.Fatalf("public s3 sum %s", got)
	}
	if got := scalar(t, c, "SELECT sum(n) FROM 'gs://public/x.csv'"); got != "3" {
		t.Fatalf("public gcs sum %s", got)
	}
	if err := c.Exec(ctx, "SELECT * FROM 's3://private/x.csv'"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("private bucket without keys: %v", err)
	}
	for _, name := range []string{"anon", "gcs"} {
		r := rec[name]
		if n := len(r.Requests()); n < 2 {
			t.Fatalf("%s: %d requests recorded: the test tests nothing", name, n)
		}
		if leaks := r.Credentials(objstoretest.MachineKeyID, objstoretest.MachineSecret, objstoretest.MachineToken); len(leaks) > 0 {
			t.Fatalf("%s: the machine's credentials reached the secret's endpoint:\n%s", name, strings.Join(leaks, "\n"))
		}
		t.Logf("%s: %d requests, none with credentials", name, len(r.Requests()))
	}
	if n := len(googleTokens.Requests()); n != 0 {
		t.Fatalf("%d requests for a Google token", n)
	}

	// Keys: signed with those keys, nothing of the machine's.
	if got := scalar(t, c, "SELECT sum(n) FROM 's3://keyed/x.csv'"); got != "3" {
		t.Fatalf("keyed sum %s", got)
	}
	for _, q := range rec["keyed"].Requests() {
		if !strings.Contains(q.Header.Get("Authorization"), "Credential="+srv.KeyID+"/") {
			t.Fatalf("keyed: %s %s not signed with the secret's key: %v", q.Method, q.URI, q.Header)
		}
	}
	// The secret's own Authorization header is expected; a "holds" line
	// is one of the machine's values found somewhere.
	if leaks := rec["keyed"].Credentials(objstoretest.MachineKeyID, objstoretest.MachineSecret, objstoretest.MachineToken); strings.Contains(strings.Join(leaks, "\n"), " holds ") {
		t.Fatalf("keyed: the machine's credentials were sent:\n%s", strings.Join(leaks, "\n"))
	}

	// credential_chain: the machine's identity, which the secret asked
	// for (versitygw does not know it, so the read fails).
	if err := c.Exec(ctx, "SELECT * FROM 's3://chain/x.csv'"); err == nil {
		t.Fatal("versitygw took the machine's key")
	}
	reqs := rec["chain"].Requests()
	if len(reqs) == 0 {
		t.Fatal("credential_chain: no request")
	}
	for _, q := range reqs {
		if !strings.Contains(q.Header.Get("Authorization"), "Credential="+objstoretest.MachineKeyID+"/") || q.Header.Get("X-Amz-Security-Token") != objstoretest.MachineToken {
			t.Fatalf("credential_chain: %s %s without the machine's credentials: %v", q.Method, q.URI, q.Header)
		}
	}
}
