package systemd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// The two package versions the tests build: the git describe input and the
// Debian version luna-package makes of it.
const (
	describeV1 = "v0.0.1"
	describeV2 = "v0.0.2-3-gabc1234"
	debV1      = "0.0.1"
	debV2      = "0.0.2+git3.abc1234"
)

var (
	debsOnce sync.Once
	debsDir  string
	debsErr  error
	pkgTool  string
)

// releaseDir builds luna-package and, with it, the release artifacts of two
// versions of the same binaries (release for the first, deb for the second)
// once per test binary, and returns the directory holding them.
func releaseDir(t *testing.T) string {
	t.Helper()
	luna, lunactl := binaries(t)
	debsOnce.Do(func() {
		// Next to the binaries, removed with them.
		buildDir := filepath.Dir(luna)
		pkgTool = filepath.Join(buildDir, "luna-package")
		cmd := exec.Command("go", "build", "-o", pkgTool, "./cmd/luna-package")
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			debsErr = fmt.Errorf("go build ./cmd/luna-package: %v\n%s", err, out)
			return
		}
		debsDir = filepath.Join(buildDir, "dist")
		for _, c := range []struct{ cmd, version string }{{"release", describeV1}, {"deb", describeV2}} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			_, _, err := run(ctx, testenv.RepoRoot(), pkgTool, c.cmd, "-version", c.version,
				"-luna", luna, "-lunactl", lunactl, "-source", testenv.RepoRoot(), "-out", debsDir)
			cancel()
			if err != nil {
				debsErr = err
				return
			}
		}
	})
	if debsErr != nil {
		t.Fatal(debsErr)
	}
	return debsDir
}

func debPath(t *testing.T, version string) string {
	return filepath.Join(releaseDir(t), "luna_"+version+"_amd64.deb")
}

// newBareAppliance is a copy of the root file system without Luna: the
// package or the startup scripts install it. files maps host paths to
// paths inside the copy.
func newBareAppliance(t *testing.T, lunactl string, files map[string]string) *appliance {
	t.Helper()
	a := copyAppliance(t, applianceRootfs(t), lunactl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for src, dst := range files {
		dst = filepath.Join(a.Root, dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, _, err := run(ctx, "", "cp", "-p", src, dst); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// must runs a command in the container and fails the test if it fails.
func (a *appliance) must(args ...string) string {
	a.t.Helper()
	out, err := a.ExecEnv(nil, args...)
	if err != nil {
		a.t.Fatal(err)
	}
	return out
}

// exists reports whether a path exists in the container (symlinks count).
func (a *appliance) exists(path string) bool {
	_, err := a.ExecEnv(nil, "test", "-e", path, "-o", "-L", path)
	return err == nil
}

// queryPass runs one query with a password and returns the single value.
func (a *appliance) queryPass(sql, pass string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdout, _, err := run(ctx, "", a.lunactl, "-addr", a.api, "-pass", pass, "-p", sql, "--format", "csv")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		return "", fmt.Errorf("lunactl -p %q: want a header and one row, got:\n%s", sql, stdout)
	}
	return lines[1], nil
}

// fileStamp identifies a file's content and inode in the container, to see
// whether a second run rewrote it.
func (a *appliance) fileStamp(path string) string {
	a.t.Helper()
	return strings.TrimSpace(a.must("stat", "-c", "%i %Y.%y %s", path))
}

// waitBooted waits until the container's boot is over, as it is when a
// cloud runs its startup scripts (after local-fs.target, so no tmpfs is
// mounted over /tmp under them) and when an operator runs apt-get.
func (a *appliance) waitBooted() {
	a.t.Helper()
	// Exits non-zero when the system is degraded, which is fine here.
	out, _ := a.ExecEnv(nil, "systemctl", "is-system-running", "--wait")
	if s := strings.TrimSpace(out); s != "running" && s != "degraded" {
		a.t.Fatalf("the container did not finish booting: %q", s)
	}
}

// recorder remembers the requests a fake server answered.
type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, s)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// fakeGCEMetadata serves instance attributes the way the GCE metadata
// server does: only to requests with Metadata-Flavor: Google, 404 for an
// attribute that is not set. With a token set it also hands out the
// default service account's access token. Every request is recorded as
// "METHOD PATH" (and " NO-FLAVOR" when the header was missing).
type fakeGCEMetadata struct {
	recorder
	mu    sync.Mutex
	attrs map[string]string
	token string
}

func (f *fakeGCEMetadata) set(name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attrs[name] = value
}

func (f *fakeGCEMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Header.Get("Metadata-Flavor") != "Google" {
		f.add(r.Method + " " + r.URL.Path + " NO-FLAVOR")
		http.Error(w, "Missing required header: Metadata-Flavor", http.StatusForbidden)
		return
	}
	f.add(r.Method + " " + r.URL.Path)
	f.mu.Lock()
	token := f.token
	f.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/computeMetadata/v1/instance/service-accounts/default/token" && token != "" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, token)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/computeMetadata/v1/instance/attributes/")
	f.mu.Lock()
	v, set := f.attrs[name]
	f.mu.Unlock()
	if r.Method != http.MethodGet || !ok || !set {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/text")
	io.WriteString(w, v)
}

// fakeIMDS is the part of EC2's IMDSv2 the AWS startup script and the
// AWS SDK use: a session token, then with that token the region, the
// instance role's credentials, the user data and instance tags. Requests
// are recorded as "METHOD PATH"; any other request, or one without the
// token, is recorded as unexpected and refused.
type fakeIMDS struct {
	recorder
	region   string
	role     string // with keyID and secret: the instance role's credentials
	keyID    string
	secret   string
	session  string // their session token
	userData string
	tags     map[string]string
}

const imdsToken = "imds-test-token"

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != "" {
		f.add("PUT /latest/api/token")
		// As IMDS does; the SDK takes a token without it for a failure.
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		io.WriteString(w, imdsToken)
		return
	}
	if r.Method != http.MethodGet || r.Header.Get("X-aws-ec2-metadata-token") != imdsToken {
		f.add(fmt.Sprintf("unexpected %s %s token=%q", r.Method, r.URL.Path, r.Header.Get("X-aws-ec2-metadata-token")))
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	creds, isCreds := strings.CutPrefix(p, "/latest/meta-data/iam/security-credentials/")
	tag, isTag := strings.CutPrefix(p, "/latest/meta-data/tags/instance/")
	switch {
	case p == "/latest/meta-data/placement/region":
		io.WriteString(w, f.region)
	case isCreds && creds == "" && f.role != "":
		io.WriteString(w, f.role)
	case isCreds && creds == f.role && f.role != "":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : %q,\n  \"Type\" : \"AWS-HMAC\",\n"+
			"  \"AccessKeyId\" : %q,\n  \"SecretAccessKey\" : %q,\n  \"Token\" : %q,\n  \"Expiration\" : %q\n}",
			time.Now().UTC().Format(time.RFC3339), f.keyID, f.secret, f.session, time.Now().Add(6*time.Hour).UTC().Format(time.RFC3339))
	case p == "/latest/user-data" && f.userData != "":
		io.WriteString(w, f.userData)
	case isTag && f.tags[tag] != "":
		io.WriteString(w, f.tags[tag])
	default:
		// The SDK asks for paths it may do without (extended role
		// credentials); a 404 is what an instance without them answers.
		f.add("404 GET " + p)
		http.NotFound(w, r)
		return
	}
	f.add("GET " + p)
}

// fakeSSM answers SSM GetParameter for SecureString parameters, and
// records each request as the target, the decoded body and the credential
// scope of its signature, so the test can assert exactly what was asked.
type fakeSSM struct {
	recorder
	params map[string]string
}

func (f *fakeSSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct {
		Name           string
		WithDecryption bool
	}
	_ = json.Unmarshal(body, &in)
	scope := ""
	if _, after, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		// AKID/date/region/service/aws4_request: keep all but the date.
		parts := strings.Split(strings.SplitN(after, ",", 2)[0], "/")
		if len(parts) == 5 {
			scope = strings.Join([]string{parts[0], parts[2], parts[3], parts[4]}, "/")
		}
	}
	f.add(fmt.Sprintf("%s %s %s name=%s decrypt=%v scope=%s", r.Method, r.URL.Path, r.Header.Get("X-Amz-Target"), in.Name, in.WithDecryption, scope))
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	value, ok := f.params[in.Name]
	if r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" || !ok {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"ParameterNotFound","message":"test server: unexpected request"}`)
		return
	}
	fmt.Fprintf(w, `{"Parameter":{"Name":%q,"Type":"SecureString","Value":%q,"Version":1,"DataType":"text"}}`, in.Name, value)
}

// s3Front stands in front of versitygw for clients that sign with session
// credentials, which the gateway does not accept: it checks each request's
// SigV4 signature against keyID, secret and session in region, records it
// as "METHOD PATH ok" (or why not), and answers a valid GET from the
// gateway. An unsigned GET of the bucket public, as AWS's amazon-ssm-REGION
// buckets allow, is answered too ("METHOD PATH public").
type s3Front struct {
	recorder
	keyID, secret, session, region string
	public                         string
	s3                             *objstoretest.S3Server
}

func (f *s3Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.public != "" && r.Method == http.MethodGet && r.Header.Get("Authorization") == "" && strings.HasPrefix(r.URL.Path, "/"+f.public+"/") {
		f.add(r.Method + " " + r.URL.EscapedPath() + " public")
		f.answer(w, r)
		return
	}
	if err := f.checkSignature(r); err != nil {
		f.add(r.Method + " " + r.URL.EscapedPath() + " " + err.Error())
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	f.add(r.Method + " " + r.URL.EscapedPath() + " ok")
	f.answer(w, r)
}

// answer serves r's object from the gateway.
func (f *s3Front) answer(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	out, err := f.s3.Client().GetObject(r.Context(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer out.Body.Close()
	io.Copy(w, out.Body)
}

// checkSignature signs a copy of r holding only the headers r says it
// signed, as the SDK does for S3, and compares the signatures.
func (f *s3Front) checkSignature(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	m := regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/[0-9]{8}/([^/]+)/s3/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$`).FindStringSubmatch(auth)
	switch {
	case m == nil:
		return fmt.Errorf("not a SigV4 Authorization: %q", auth)
	case m[1] != f.keyID || m[2] != f.region:
		return fmt.Errorf("signed by %s in %s, want %s in %s", m[1], m[2], f.keyID, f.region)
	case r.Header.Get("X-Amz-Security-Token") != f.session:
		return fmt.Errorf("session token %q", r.Header.Get("X-Amz-Security-Token"))
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	c, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return err
	}
	for _, h := range strings.Split(m[3], ";") {
		if h != "host" {
			c.Header.Set(h, r.Header.Get(h))
		}
	}
	creds := aws.Credentials{AccessKeyID: f.keyID, SecretAccessKey: f.secret, SessionToken: f.session}
	err = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).
		SignHTTP(r.Context(), creds, c, r.Header.Get("X-Amz-Content-Sha256"), "s3", f.region, when)
	if err != nil {
		return err
	}
	if want := c.Header.Get("Authorization"); want != auth {
		return fmt.Errorf("bad signature: got %q, want %q", auth, want)
	}
	return nil
}

// serve starts h on loopback for the test's lifetime and returns host:port.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
