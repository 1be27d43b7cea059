//go:build duckdb_arrow

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lunadb/luna/client"
)

// usersCost is the bcrypt cost of the test users: high enough that a
// check is most of an AUTH's time (the timing test depends on it), low
// enough for a race-enabled server.
const usersCost = 6

func bcryptHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), usersCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// replaceFile writes path anew through a rename, as editors and
// `luna user` do.
func replaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// authAs dials p and sends AUTH text; the error is the server's refusal.
func authAs(p *proc, text string) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, p.addr, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := c.Auth(ctx, text); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// canAuth reports whether AUTH text succeeds, and checks the session
// runs a query when it does.
func canAuth(t *testing.T, p *proc, text string) bool {
	t.Helper()
	c, err := authAs(p, text)
	if err != nil {
		if !strings.Contains(err.Error(), "DENIED") {
			t.Fatalf("AUTH failed other than by a denial: %v", err)
		}
		return false
	}
	defer c.Close()
	if got := scalar(t, c, "SELECT 40 + 2"); got != "42" {
		t.Fatalf("query after AUTH: %s", got)
	}
	return true
}

// awaitAuth waits until AUTH text gets the answer want, within timeout.
func awaitAuth(t *testing.T, p *proc, text string, want bool, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); canAuth(t, p, text) != want; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("AUTH %s: still %v after %v", strings.SplitN(text, " ", 2)[0], !want, timeout)
		}
	}
}

// identities are the "authenticated" debug lines: who each session is.
func identities(p *proc) []string {
	var out []string
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var ev struct {
			Msg  string `json:"msg"`
			User string `json:"user"`
			Role string `json:"role"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "authenticated" {
			out = append(out, ev.User+"/"+ev.Role)
		}
	}
	return out
}

func TestUsersFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	hAlice, hBob := bcryptHash(t, "alice pw"), bcryptHash(t, "bob-pw")
	// htpasswd -B writes $2y$ and no role: bob gets read.
	hBobY := "$2y$" + strings.TrimPrefix(hBob, "$2a$")
	replaceFile(t, path, "# users\nalice:"+hAlice+":write\n\nbob:"+hBobY+"\n")
	const seed = "seed pw" // a --passwd with a space: still taken whole
	p := startLuna(t, true, nil, "--passwd", seed, "--users-file", path, "--log-level", "debug")

	if !canAuth(t, p, "alice alice pw") {
		t.Fatal("alice refused")
	}
	if !canAuth(t, p, "bob bob-pw") {
		t.Fatal("bob refused")
	}
	// The seed's form: AUTH <password> is the --passwd password, admin.
	c := p.dial(t, client.Options{Password: seed})
	if got := scalar(t, c, "SELECT 1"); got != "1" {
		t.Fatal(got)
	}
	if !p.logs.Await(`"user":"","role":"admin"`) {
		t.Fatal("no admin identity logged")
	}
	want := []string{"alice/write", "bob/read", "/admin"}
	if got := identities(p); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("identities %v, want %v", got, want)
	}

	// Wrong password and unknown user: the same answer.
	_, wrongErr := authAs(p, "alice bob-pw")
	_, unknownErr := authAs(p, "mallory alice pw")
	_, halfErr := authAs(p, "alice")
	if wrongErr == nil || unknownErr == nil || halfErr == nil {
		t.Fatalf("accepted: wrong %v, unknown %v, name only %v", wrongErr, unknownErr, halfErr)
	}
	if wrongErr.Error() != unknownErr.Error() || wrongErr.Error() != halfErr.Error() {
		t.Fatalf("answers differ: wrong password %q, unknown user %q, name only %q", wrongErr, unknownErr, halfErr)
	}
	for _, secret := range []string{"alice pw", "bob-pw", hAlice[7:], seed} {
		if strings.Contains(p.logs.String(), secret) {
			t.Fatalf("the logs hold a password or hash: %q", secret)
		}
	}

	// And about the same time. Each try follows a success so the
	// source's AUTH penalty (which precedes the check) is not in it.
	timeAuth := func(text string) time.Duration {
		if !canAuth(t, p, "bob bob-pw") {
			t.Fatal("bob refused")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, p.addr, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if err := c.Auth(ctx, text); err == nil {
			t.Fatalf("accepted")
		}
		return time.Since(start)
	}
	median := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	var wrong, unknown []time.Duration
	for range 5 {
		wrong = append(wrong, timeAuth("alice wrong"))
		unknown = append(unknown, timeAuth("nobody wrong"))
	}
	mw, mu := median(wrong), median(unknown)
	t.Logf("AUTH median: wrong password %v, unknown user %v", mw, mu)
	if r := float64(mu) / float64(mw); r < 0.5 || r > 2 {
		t.Fatalf("unknown user answered in %v, wrong password in %v: ratio %.2f", mu, mw, r)
	}
}

func TestUsersFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	h := map[string]string{}
	for _, n := range []string{"alice", "bob", "carol", "erin1"} {
		h[n] = bcryptHash(t, n+"-pw")
	}
	line := func(name, role string) string { return name + ":" + h[name] + ":" + role + "\n" }
	replaceFile(t, path, line("alice", "write")+line("bob", "read"))
	p := startLuna(t, true, nil, "--users-file", path)

	// Sessions authenticated before each change keep working after it.
	alice := p.dial(t, client.Options{Password: "alice alice-pw"})
	bob := p.dial(t, client.Options{Password: "bob bob-pw"})
	if err := alice.Exec(context.Background(), "CREATE TABLE t AS SELECT 7 AS n"); err != nil {
		t.Fatal(err)
	}

	// By the poll: alice removed, carol added.
	replaceFile(t, path, "# alice left\n"+line("bob", "read")+line("carol", "admin"))
	awaitAuth(t, p, "carol carol-pw", true, 15*time.Second)
	if canAuth(t, p, "alice alice-pw") {
		t.Fatal("alice removed but still let in")
	}
	if got := scalar(t, alice, "SELECT n FROM t"); got != "7" {
		t.Fatalf("alice's open session after her removal: %s", got)
	}

	// A malformed version is kept out: logged with its line, the users
	// of the last good one still get in.
	replaceFile(t, path, line("bob", "read")+"carol:carol-pw:admin\n")
	if !p.logs.Await(`line 2: user \"carol\": the password is not hashed`) {
		t.Fatal("malformed users file not reported with its line")
	}
	if !canAuth(t, p, "carol carol-pw") || !canAuth(t, p, "bob bob-pw") {
		t.Fatal("a malformed reload dropped users")
	}
	if strings.Contains(p.logs.String(), h["bob"][7:]) {
		t.Fatal("a hash reached the logs")
	}

	// By SIGHUP: a change the poll cannot see (written in place, same
	// size, modification time put back) is read on SIGHUP alone.
	replaceFile(t, path, line("bob", "read")+line("carol", "admin"))
	awaitAuth(t, p, "carol carol-pw", true, 15*time.Second) // the good version again
	time.Sleep(3 * time.Second)                             // polled once more at least
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(line("bob", "read")+line("erin1", "write")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if canAuth(t, p, "erin1 erin1-pw") {
		t.Fatal("the poll saw a change it should not have: the SIGHUP check would test nothing")
	}
	p.signal(syscall.SIGHUP)
	awaitAuth(t, p, "erin1 erin1-pw", true, 10*time.Second)
	if canAuth(t, p, "carol carol-pw") {
		t.Fatal("carol removed on SIGHUP but still let in")
	}
	// A malformed version on SIGHUP is kept out too.
	if err := os.WriteFile(path, []byte("bob:"+h["bob"]+":sudo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	if !p.logs.Await(`line 1: user \"bob\": unknown role \"sudo\"`) {
		t.Fatal("malformed users file on SIGHUP not reported")
	}
	if !canAuth(t, p, "erin1 erin1-pw") {
		t.Fatal("a malformed SIGHUP reload dropped users")
	}
	for _, c := range []*client.Conn{alice, bob} {
		if got := scalar(t, c, "SELECT count(*) FROM t"); got != "1" {
			t.Fatalf("open session after reloads: %s", got)
		}
	}
}

func TestUsersFileMalformedAtStart(t *testing.T) {
	dir := t.TempDir()
	hash := bcryptHash(t, "pw")
	bin := binary(t, "luna", true)
	for _, tc := range []struct {
		content, want string
	}{
		{"# ok\nalice:" + hash + ":read\nbob:hunter2-clear:read\n", "line 3: user \"bob\": the password is not hashed"},
		{"alice:" + hash + ":read\nalice:" + hash + ":admin\n", "line 2: user \"alice\" is already defined on line 1"},
		{"alice:$apr1$hunter2$abcdefghijklmnopqrstuv:read\n", "line 1: user \"alice\": unsupported hash type Apache MD5"},
		{"bad name:" + hash + ":read\n", "line 1: bad user name"},
	} {
		path := filepath.Join(dir, "users")
		replaceFile(t, path, tc.content)
		_, errOut, code := run(t, "", nil, bin, "--api-host-port", "127.0.0.1:0", "--users-file", path)
		errOut = strings.ReplaceAll(errOut, `\"`, `"`) // as the log quotes it
		if code != 1 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, path) {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errOut, tc.want)
		}
		if strings.Contains(errOut, "hunter2") || strings.Contains(errOut, hash[7:]) {
			t.Errorf("the error holds a password or hash: %q", errOut)
		}
	}
	_, errOut, code := run(t, "", nil, bin, "--api-host-port", "127.0.0.1:0", "--users-file", filepath.Join(dir, "absent"))
	if code != 1 || !strings.Contains(errOut, "--users-file") || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing users file: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, "", nil, bin, "--users-file", filepath.Join(dir, "users"), "--users-from", "aws-ssm:/luna/users")
	if code != 2 || !strings.Contains(errOut, "cannot be combined") {
		t.Errorf("both sources: exit %d, stderr %q", code, errOut)
	}
}

// fakeSecrets is an AWS SSM and Secrets Manager endpoint that serves one
// value, which a test may change.
type fakeSecrets struct {
	mu    sync.Mutex
	value string
	calls map[string]int
}

func (f *fakeSecrets) set(v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = v
}

func (f *fakeSecrets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	v := f.value
	target := r.Header.Get("X-Amz-Target")
	f.calls[target]++
	f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	var req struct{ Name, SecretId string }
	json.Unmarshal(body, &req)
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDUSERSTEST/") {
		http.Error(w, `{"__type":"UnrecognizedClientException","message":"unsigned"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	val, _ := json.Marshal(v)
	switch {
	case target == "AmazonSSM.GetParameter" && req.Name == "/luna/users":
		fmt.Fprintf(w, `{"Parameter":{"Name":"/luna/users","Type":"SecureString","Value":%s,"Version":1}}`, val)
	case target == "secretsmanager.GetSecretValue" && req.SecretId == "luna/users":
		fmt.Fprintf(w, `{"Name":"luna/users","SecretString":%s,"VersionStages":["AWSCURRENT"]}`, val)
	default:
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"ParameterNotFound","message":"not found"}`)
	}
}

func (f *fakeSecrets) count(target string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[target]
}

func TestUsersFrom(t *testing.T) {
	hAlice, hBob := bcryptHash(t, "alice-pw"), bcryptHash(t, "bob-pw")
	fake := &fakeSecrets{value: "alice:" + hAlice + ":write\n", calls: map[string]int{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	env := []string{
		"AWS_ACCESS_KEY_ID=AKIDUSERSTEST", "AWS_SECRET_ACCESS_KEY=test-secret", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_SSM=" + srv.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + srv.URL,
	}

	t.Run("ssm", func(t *testing.T) {
		fake.set("alice:" + hAlice + ":write\n")
		p := startLuna(t, true, env, "--users-from", "aws-ssm:/luna/users", "--passwd-timeout", "5s")
		alice := p.dial(t, client.Options{Password: "alice alice-pw"})
		if canAuth(t, p, "bob bob-pw") {
			t.Fatal("bob let in before he was added")
		}
		// Fetched again on SIGHUP: bob added, alice removed, her session
		// open; a malformed value kept out.
		before := fake.count("AmazonSSM.GetParameter")
		fake.set("bob:" + hBob + ":read\n")
		p.signal(syscall.SIGHUP)
		awaitAuth(t, p, "bob bob-pw", true, 10*time.Second)
		if canAuth(t, p, "alice alice-pw") {
			t.Fatal("alice removed but let in")
		}
		if fake.count("AmazonSSM.GetParameter") <= before {
			t.Fatal("SIGHUP did not fetch the users again")
		}
		fake.set("bob:" + hBob + ":read:extra\n")
		p.signal(syscall.SIGHUP)
		if !p.logs.Await("line 1: want NAME:HASH:ROLE") {
			t.Fatal("malformed fetched users not reported")
		}
		if !canAuth(t, p, "bob bob-pw") {
			t.Fatal("a malformed fetch dropped bob")
		}
		if got := scalar(t, alice, "SELECT 5"); got != "5" {
			t.Fatalf("alice's session after reloads: %s", got)
		}
	})

	t.Run("secretsmanager", func(t *testing.T) {
		fake.set("alice:" + hAlice + ":write\nbob:" + hBob + "\n")
		p := startLuna(t, true, env, "--users-from", "aws-secretsmanager:luna/users", "--passwd-timeout", "5s")
		if !canAuth(t, p, "bob bob-pw") || !canAuth(t, p, "alice alice-pw") {
			t.Fatal("users from Secrets Manager refused")
		}
		if fake.count("secretsmanager.GetSecretValue") == 0 {
			t.Fatal("Secrets Manager not asked")
		}
	})

	t.Run("malformed at start", func(t *testing.T) {
		fake.set("alice:alice-pw:write\n")
		_, errOut, code := run(t, "", env, binary(t, "luna", true), "--api-host-port", "127.0.0.1:0", "--users-from", "aws-ssm:/luna/users", "--passwd-timeout", "5s")
		if code != 1 || !strings.Contains(errOut, "--users-from") || !strings.Contains(errOut, "line 1: ") || strings.Contains(errOut, "alice-pw") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}

// AUTH as another identity on an open connection starts a fresh DuckDB
// connection: a statement PREPAREd as admin (checked against admin's
// role) cannot be EXECUTEd by the read user, and the admin's temporary
// table and settings are gone.
func TestReauthStartsAfresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	replaceFile(t, path, "reader:"+bcryptHash(t, "reader-pw")+":read\n")
	p := startLuna(t, true, nil, "--passwd", "admin-pw", "--users-file", path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := p.dial(t, client.Options{Password: "admin-pw"})
	for _, sql := range []string{
		"CREATE TABLE kept(a INT)",
		"CREATE TEMP TABLE scratch(a INT)",
		"PREPARE ins AS INSERT INTO kept VALUES (1)",
	} {
		if err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := c.Auth(ctx, "reader reader-pw"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "EXECUTE ins"); err == nil || !strings.Contains(err.Error(), "ins") {
		t.Errorf("EXECUTE of the admin's prepared INSERT as reader: %v, want DuckDB's unknown prepared statement", err)
	}
	if err := c.Exec(ctx, "SELECT * FROM scratch"); err == nil {
		t.Error("the admin's temporary table survived the change of identity")
	}
	if got := scalar(t, c, "SELECT count(*) FROM kept"); got != "0" {
		t.Errorf("kept has %s rows, want 0", got)
	}
	// The same identity again keeps the connection's state.
	if err := c.Auth(ctx, "reader reader-pw"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "SET VARIABLE v = 7"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(ctx, "reader reader-pw"); err != nil {
		t.Fatal(err)
	}
	if got := scalar(t, c, "SELECT getvariable('v')"); got != "7" {
		t.Errorf("a repeated AUTH of the same user lost the session's state: %s", got)
	}
}
