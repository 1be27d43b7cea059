package passwd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// reply is one canned answer of a fake AWS JSON API.
type reply struct {
	status int
	body   string
}

// fakeAWS is an AWS JSON 1.1 endpoint that checks each request is exactly
// the one the real service expects, signed with the test credentials, and
// answers with replies in turn (the last one repeats).
type fakeAWS struct {
	t           *testing.T
	target      string // X-Amz-Target
	signingName string // service name in the credential scope
	wantBody    string // JSON, compared as decoded values
	replies     []reply

	mu    sync.Mutex
	calls int
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := f.calls
	f.calls++
	f.mu.Unlock()

	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = f.check(r, body)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("test-request-%d", n))
	if err != nil {
		f.t.Errorf("request %d: %v", n, err)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"ValidationException","message":%q}`, "test server: "+err.Error())
		return
	}
	rep := f.replies[min(n, len(f.replies)-1)]
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (f *fakeAWS) check(r *http.Request, body []byte) error {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return fmt.Errorf("got %s %s, want POST /", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("X-Amz-Target"); got != f.target {
		return fmt.Errorf("X-Amz-Target %q, want %q", got, f.target)
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
		return fmt.Errorf("Content-Type %q", got)
	}
	var got, want any
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("body %q: %v", body, err)
	}
	if err := json.Unmarshal([]byte(f.wantBody), &want); err != nil {
		return err
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("body %s, want %s", body, f.wantBody)
	}
	return f.checkSignature(r, body)
}

// checkSignature recomputes the SigV4 signature from the signed headers and
// the test secret key, so a pass proves the request was signed with the
// static test credentials, not merely that it carries their key id.
func (f *fakeAWS) checkSignature(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("Authorization %q is not SigV4", auth)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	scope := fmt.Sprintf("%s/%s/%s/%s/aws4_request", testKeyID, when.Format("20060102"), testRegion, f.signingName)
	if fields["Credential"] != scope {
		return fmt.Errorf("credential scope %q, want %q", fields["Credential"], scope)
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h != "host" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), f.signingName, testRegion, when); err != nil {
		return err
	}
	if got := again.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature does not verify with the test key:\n got %s\nwant %s", auth, got)
	}
	return nil
}

func (f *fakeAWS) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// awsAPIEnv gives the SDK static test credentials, a region, IMDS disabled,
// and endpointVar pointing at url.
func awsAPIEnv(t *testing.T, endpointVar, url string) {
	t.Setenv("AWS_ACCESS_KEY_ID", testKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	t.Setenv("AWS_REGION", testRegion)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv(endpointVar, url)
}

type apiCase struct {
	name    string
	replies []reply
	want    string // the password, when the fetch succeeds
	wantErr error  // else the error it wraps
	calls   int
}

type apiService struct {
	source      Source
	endpointVar string
	target      string
	signingName string
	wantBody    string
}

func runAPICases(t *testing.T, svc apiService, cases []apiCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAWS{t: t, target: svc.target, signingName: svc.signingName, wantBody: svc.wantBody, replies: tc.replies}
			srv := httptest.NewServer(f)
			defer srv.Close()
			awsAPIEnv(t, svc.endpointVar, srv.URL)
			opts, logs := testOptions(30 * time.Second)
			start := time.Now()
			got, err := Fetch(context.Background(), svc.source, opts)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("Fetch = %q, want %q", got, tc.want)
				}
				if strings.Contains(logs.String(), tc.want) {
					t.Errorf("log mentions the password:\n%s", logs)
				}
				if tc.calls > 1 && !strings.Contains(logs.String(), "retrying") {
					t.Errorf("retry not logged:\n%s", logs)
				}
			} else {
				checkFailure(t, err, tc.wantErr, svc.source.String(), "", nil)
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("a final error took %s to report", d)
				}
				t.Logf("error: %v", err)
			}
			if n := f.callCount(); n != tc.calls {
				t.Errorf("%d requests, want %d", n, tc.calls)
			}
		})
	}
}

func TestSSM(t *testing.T) {
	svc := apiService{
		source:      Source{KindAWSSSM, "/luna/passwd"},
		endpointVar: "AWS_ENDPOINT_URL_SSM",
		target:      "AmazonSSM.GetParameter",
		signingName: "ssm",
		wantBody:    `{"Name":"/luna/passwd","WithDecryption":true}`,
	}
	param := func(v string) reply {
		return reply{200, fmt.Sprintf(`{"Parameter":{"ARN":"arn:aws:ssm:us-east-1:123456789012:parameter/luna/passwd",`+
			`"DataType":"text","LastModifiedDate":1.7e9,"Name":"/luna/passwd","Type":"SecureString","Value":%q,"Version":1}}`, v)}
	}
	runAPICases(t, svc, []apiCase{
		{name: "value", replies: []reply{param("correct horse\n")}, want: "correct horse", calls: 1},
		{
			name:    "not found",
			replies: []reply{{400, `{"__type":"ParameterNotFound","message":"Parameter /luna/passwd not found."}`}},
			wantErr: ErrNotFound, calls: 1,
		},
		{
			name: "access denied",
			replies: []reply{{400, `{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/luna/i-0123 ` +
				`is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/luna/passwd"}`}},
			wantErr: ErrAccessDenied, calls: 1,
		},
		{
			name:    "server error then value",
			replies: []reply{{500, `{"__type":"InternalServerError","message":"An internal error occurred."}`}, param("pw-after-retry")},
			want:    "pw-after-retry", calls: 2,
		},
		{
			name:    "throttled then value",
			replies: []reply{{400, `{"__type":"ThrottlingException","message":"Rate exceeded"}`}, param("pw-after-throttle")},
			want:    "pw-after-throttle", calls: 2,
		},
		{name: "empty value", replies: []reply{param("")}, wantErr: ErrEmpty, calls: 1},
		{name: "newline only", replies: []reply{param("\n")}, wantErr: ErrEmpty, calls: 1},
	})
}

func TestSecretsManager(t *testing.T) {
	svc := apiService{
		source:      Source{KindAWSSecretsManager, "luna/passwd"},
		endpointVar: "AWS_ENDPOINT_URL_SECRETS_MANAGER",
		target:      "secretsmanager.GetSecretValue",
		signingName: "secretsmanager",
		wantBody:    `{"SecretId":"luna/passwd"}`,
	}
	const head = `"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:luna/passwd-AbCdEf","CreatedDate":1.7e9,"Name":"luna/passwd",` +
		`"VersionId":"a1b2c3d4-5678-90ab-cdef-EXAMPLE11111","VersionStages":["AWSCURRENT"]`
	str := func(v string) reply { return reply{200, fmt.Sprintf(`{%s,"SecretString":%q}`, head, v)} }
	runAPICases(t, svc, []apiCase{
		{name: "string", replies: []reply{str("correct horse\r\n")}, want: "correct horse", calls: 1},
		{
			name:    "binary only",
			replies: []reply{{200, `{` + head + `,"SecretBinary":"YmluYXJ5IHB3Cg=="}`}}, // "binary pw\n"
			want:    "binary pw", calls: 1,
		},
		{
			name:    "not found",
			replies: []reply{{400, `{"__type":"ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}`}},
			wantErr: ErrNotFound, calls: 1,
		},
		{
			name: "access denied",
			replies: []reply{{400, `{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::123456789012:assumed-role/luna/i-0123 ` +
				`is not authorized to perform: secretsmanager:GetSecretValue"}`}},
			wantErr: ErrAccessDenied, calls: 1,
		},
		{
			name:    "server error then value",
			replies: []reply{{500, `{"__type":"InternalServiceError","Message":"An error occurred on the server side."}`}, str("pw-after-retry")},
			want:    "pw-after-retry", calls: 2,
		},
		{name: "empty string", replies: []reply{str("")}, wantErr: ErrEmpty, calls: 1},
		{name: "neither string nor binary", replies: []reply{{200, `{` + head + `}`}}, wantErr: ErrEmpty, calls: 1},
	})
}

func TestAWSAPIUnreachable(t *testing.T) {
	for _, tc := range []struct {
		src         Source
		endpointVar string
	}{
		{Source{KindAWSSSM, "/luna/passwd"}, "AWS_ENDPOINT_URL_SSM"},
		{Source{KindAWSSecretsManager, "luna/passwd"}, "AWS_ENDPOINT_URL_SECRETS_MANAGER"},
	} {
		t.Run(tc.src.Kind, func(t *testing.T) {
			awsAPIEnv(t, tc.endpointVar, "http://"+closedAddr(t))
			opts, _ := testOptions(time.Second)
			start := time.Now()
			_, err := Fetch(context.Background(), tc.src, opts)
			d := time.Since(start)
			checkFailure(t, err, ErrUnreachable, tc.src.String(), "", nil)
			if !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("error %q does not say why", err)
			}
			if d < time.Second || d > 2500*time.Millisecond {
				t.Errorf("gave up after %s, want about 1s", d)
			}
		})
	}
}

func TestAWSAPINoRegion(t *testing.T) {
	awsAPIEnv(t, "AWS_ENDPOINT_URL_SSM", "http://"+closedAddr(t))
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	start := time.Now()
	_, err := Fetch(context.Background(), Source{KindAWSSSM, "/luna/passwd"}, Options{Timeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") || !strings.HasPrefix(err.Error(), "aws-ssm:/luna/passwd: ") {
		t.Fatalf("error = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a missing region took %s to report", d)
	}
}
