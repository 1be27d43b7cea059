package remote

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/objstore/objstoretest"
	"github.com/lunadb/luna/server/objstore/s3"
)

// machineIdentity gives this process the credentials a cloud VM has.
func machineIdentity(t *testing.T, tokens string) {
	t.Helper()
	for _, kv := range objstoretest.MachineIdentity(t, tokens) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// publicBucket is a versitygw bucket anyone may list and read, behind a
// recorder.
func publicBucket(t *testing.T, name string) (*objstoretest.S3Server, *objstoretest.Recorder) {
	t.Helper()
	srv := objstoretest.StartVersityGW(t)
	srv.CreateBucket(t, name)
	srv.PutObject(t, name, "d/a.csv", []byte("n\n1\n"))
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],` +
		`"Resource":["arn:aws:s3:::` + name + `","arn:aws:s3:::` + name + `/*"]}]}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.Client().PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	return srv, objstoretest.StartRecorder(t, srv.DirectEndpoint, nil)
}

func listAll(t *testing.T, b objstore.Bucket) ([]objstore.Object, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.List(ctx, "d/")
}

// A secret of the config provider (the default) without keys sends
// unsigned requests to its ENDPOINT, for s3, r2 and gcs alike, however
// much identity the machine has; a public bucket reads.
func TestKeylessSecretsSendNoCredentials(t *testing.T) {
	tokens := objstoretest.StartRecorder(t, "", http.NotFoundHandler())
	machineIdentity(t, tokens.Addr)
	_, rec := publicBucket(t, "public")
	for _, sec := range []*Secret{
		{Name: "s3", Type: "s3", Provider: "config", Options: map[string]string{"ENDPOINT": rec.Addr, "USE_SSL": "false", "URL_STYLE": "path"}},
		{Name: "s3-default-style", Type: "s3", Provider: "config", Options: map[string]string{"ENDPOINT": rec.Addr, "USE_SSL": "false"}},
		{Name: "r2", Type: "r2", Provider: "config", Options: map[string]string{"ENDPOINT": rec.Addr, "USE_SSL": "false"}},
		{Name: "gcs", Type: "gcs", Provider: "config", Options: map[string]string{"ENDPOINT": rec.Addr, "USE_SSL": "false"}},
	} {
		t.Run(sec.Name, func(t *testing.T) {
			rec.Reset()
			scheme := map[string]Scheme{"s3": S3, "r2": R2, "gcs": GCS}[sec.Type]
			loc := Location{URL: string(scheme) + "://public/d/", Scheme: scheme, Bucket: "public", Key: "d/"}
			b, err := openBucket(context.Background(), loc, sec)
			if err != nil {
				t.Fatal(err)
			}
			// Checked before any request: Google's own client would send
			// the machine's token to Google.
			if _, ok := b.(*s3.Bucket); !ok {
				t.Fatalf("a keyless %s secret with an ENDPOINT opened a %T", sec.Type, b)
			}
			if objs, err := listAll(t, b); err != nil || len(objs) != 1 {
				t.Fatalf("anonymous list: %v %v", objs, err)
			}
			if len(rec.Requests()) == 0 {
				t.Fatal("no request recorded: the test tests nothing")
			}
			if leaks := rec.Credentials(objstoretest.MachineKeyID, objstoretest.MachineToken); len(leaks) > 0 {
				t.Fatalf("credentials sent to the secret's endpoint:\n%s", strings.Join(leaks, "\n"))
			}
		})
	}
	if n := len(tokens.Requests()); n != 0 {
		t.Fatalf("%d requests for a Google token", n)
	}
}

// Keys sign with those keys; PROVIDER credential_chain with an ENDPOINT
// sends the machine's identity there, because the secret asks for it.
func TestSecretKeysAndCredentialChain(t *testing.T) {
	tokens := objstoretest.StartRecorder(t, "", http.NotFoundHandler())
	machineIdentity(t, tokens.Addr)
	srv, rec := publicBucket(t, "keys")
	loc := Location{URL: "s3://keys/d/", Scheme: S3, Bucket: "keys", Key: "d/"}
	ep := map[string]string{"ENDPOINT": rec.Addr, "USE_SSL": "false", "URL_STYLE": "path"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range ep {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	b, err := openBucket(context.Background(), loc, &Secret{Name: "k", Type: "s3", Provider: "config", Options: with("KEY_ID", srv.KeyID, "SECRET", srv.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listAll(t, b); err != nil {
		t.Fatal(err)
	}
	reqs := rec.Requests()
	if len(reqs) == 0 || !strings.Contains(reqs[0].Header.Get("Authorization"), "Credential="+srv.KeyID+"/") {
		t.Fatalf("keys: requests %v", reqs)
	}
	for _, q := range reqs {
		if strings.Contains(q.Header.Get("Authorization"), objstoretest.MachineKeyID) || q.Header.Get("X-Amz-Security-Token") != "" {
			t.Fatalf("keys: the machine's credentials were sent: %v", q.Header)
		}
	}

	rec.Reset()
	b, err = openBucket(context.Background(), loc, &Secret{Name: "c", Type: "s3", Provider: "credential_chain", Options: with()})
	if err != nil {
		t.Fatal(err)
	}
	listAll(t, b) // versitygw does not know the machine's key
	reqs = rec.Requests()
	if len(reqs) == 0 || !strings.Contains(reqs[0].Header.Get("Authorization"), "Credential="+objstoretest.MachineKeyID+"/") || reqs[0].Header.Get("X-Amz-Security-Token") != objstoretest.MachineToken {
		t.Fatalf("credential_chain: requests %v", reqs)
	}
}

// The machine's identity goes only to the cloud's own endpoint unless a
// secret says credential_chain.
func TestMachineIdentityStaysWithItsCloud(t *testing.T) {
	tokens := objstoretest.StartRecorder(t, "", http.NotFoundHandler())
	machineIdentity(t, tokens.Addr)
	none := func(string) string { return "" }

	// No secret: the cloud's default endpoint, with the machine's identity.
	if cfg := s3Config("b", none, true); cfg.Endpoint != "" || !cfg.Ambient || cfg.KeyID != "" {
		t.Fatalf("no secret: %v", cfg)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://operator.internal:9000")
	if cfg := s3Config("b", none, true); cfg.Endpoint != "http://operator.internal:9000" || !cfg.Ambient {
		t.Fatalf("no secret, operator endpoint: %v", cfg)
	}
	if _, err := openBucket(context.Background(), Location{URL: "r2://b/k", Scheme: R2, Bucket: "b", Key: "k"}, nil); err == nil || !strings.Contains(err.Error(), "needs an r2 secret") {
		t.Fatalf("r2 without a secret: %v", err)
	}

	// A gcs credential_chain secret cannot send a Google token elsewhere.
	gloc := Location{URL: "gs://b/k", Scheme: GCS, Bucket: "b", Key: "k"}
	_, err := openBucket(context.Background(), gloc, &Secret{Name: "g", Type: "gcs", Provider: "credential_chain", Options: map[string]string{"ENDPOINT": tokens.Addr}})
	if err == nil || !strings.Contains(err.Error(), "Invalid Input Error") {
		t.Fatalf("gcs credential_chain with an ENDPOINT: %v", err)
	}
	for _, ep := range []string{"", "storage.googleapis.com", "https://storage.googleapis.com/"} {
		sec := &Secret{Name: "g", Type: "gcs", Provider: "credential_chain", Options: map[string]string{}}
		if ep != "" {
			sec.Options["ENDPOINT"] = ep
		}
		if b, err := openBucket(context.Background(), gloc, sec); err != nil {
			t.Fatalf("gcs credential_chain, ENDPOINT %q: %v", ep, err)
		} else if _, ok := b.(*s3.Bucket); ok {
			t.Fatalf("gcs credential_chain, ENDPOINT %q: an S3 client", ep)
		}
	}
	if n := len(tokens.Requests()); n != 0 {
		t.Fatalf("%d requests for a Google token", n)
	}

	// Azure: an account name alone is anonymous; the machine's identity
	// only without a secret or with credential_chain.
	aloc := Location{URL: "az://c/k", Scheme: Azure, Bucket: "c", Key: "k"}
	for _, c := range []struct {
		sec     *Secret
		ambient bool
	}{
		{&Secret{Type: "azure", Provider: "config", Options: map[string]string{"ACCOUNT_NAME": "acct"}}, false},
		{&Secret{Type: "azure", Provider: "config", Options: map[string]string{"CONNECTION_STRING": "BlobEndpoint=http://127.0.0.1:1/a"}}, false},
		{&Secret{Type: "azure", Provider: "credential_chain", Options: map[string]string{"ACCOUNT_NAME": "acct"}}, true},
		{nil, true},
	} {
		opt := func(k string) string {
			if c.sec == nil {
				return ""
			}
			return c.sec.Options[k]
		}
		if cfg := azureConfig(aloc, opt, c.sec == nil || c.sec.Provider == "credential_chain"); cfg.Ambient != c.ambient {
			t.Errorf("azure %+v: Ambient %v", c.sec, cfg.Ambient)
		}
	}
}
