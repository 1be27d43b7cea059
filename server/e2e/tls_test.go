//go:build duckdb_arrow

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/lunadb/luna/client"
	"github.com/lunadb/luna/internal/testpki"
)

// tlsSetup is a CA and a server certificate written to files.
type tlsSetup struct {
	dir, certFile, keyFile string
	ca                     *testpki.CA
	caFile                 string // the CA certificate, PEM
	notAfter               time.Time
}

func newTLSSetup(t testing.TB) *tlsSetup {
	t.Helper()
	dir := t.TempDir()
	s := &tlsSetup{dir: dir, certFile: filepath.Join(dir, "server.crt"), keyFile: filepath.Join(dir, "server.key"),
		ca: testpki.New(t, "luna-test"), notAfter: time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)}
	s.caFile = s.ca.WritePEM(t, filepath.Join(dir, "luna-test-ca.pem"))
	s.serve(t, 100)
	return s
}

// serverCert is a certificate of ca for 127.0.0.1 and localhost, expiring
// with the setup's.
func (s *tlsSetup) serverCert(t testing.TB, ca *testpki.CA, cn string, serial int64) *testpki.Cert {
	t.Helper()
	return ca.Server(t, cn, serial, s.notAfter, "127.0.0.1", "localhost")
}

// serve writes a new server certificate with the given serial.
func (s *tlsSetup) serve(t testing.TB, serial int64) {
	t.Helper()
	s.serverCert(t, s.ca, "luna server", serial).WriteFiles(t, s.certFile, s.keyFile)
}

func (s *tlsSetup) args() []string {
	return []string{"--tls-cert-file", s.certFile, "--tls-key-file", s.keyFile}
}

// clientConfig trusts the setup's CA.
func (s *tlsSetup) clientConfig(t testing.TB) *tls.Config {
	t.Helper()
	return &tls.Config{RootCAs: s.ca.Pool()}
}

// servedSerial opens a fresh TLS connection and returns the serial of the
// certificate the server presented.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) int64 {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed (scripts/test-deps.sh installs it)")
	}
	return path
}

// request frames one q: or x: request as the wire format specifies.
func request(prefix, sql string) string {
	return fmt.Sprintf("$%d\r\n%s%s\r\n", len(prefix)+len(sql), prefix, sql)
}

func TestTLSOpenSSLQueryOnSharedPort(t *testing.T) {
	openssl := needOpenSSL(t)
	s := newTLSSetup(t)
	p := startLuna(t, true, nil, append(s.args(), "--passwd", "sesame", "--log-level", "debug")...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", p.addr, "-tls1_3", "-quiet",
		"-CAfile", s.caFile, "-verify_return_error", "-verify_ip", "127.0.0.1")
	cmd.Stdin = strings.NewReader("AUTH sesame\r\n" + request("q:", "SELECT 42::BIGINT AS answer, 'über' AS name FROM range(3)"))
	var stderr logBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	// s_client prints the decrypted bytes: two Arrow IPC streams, the
	// AUTH status table and the result.
	br := bufio.NewReader(stdout)
	auth, err := ipc.NewReader(br)
	if err != nil {
		t.Fatalf("decoding the AUTH answer: %v (openssl: %s)", err, stderr.String())
	}
	if !auth.Next() {
		t.Fatalf("empty AUTH answer: %v", auth.Err())
	}
	if got := auth.RecordBatch().Column(1).ValueStr(0); got != "OK" {
		t.Fatalf("AUTH answered %q", got)
	}
	for auth.Next() {
	}
	auth.Release()
	res, err := ipc.NewReader(br)
	if err != nil {
		t.Fatalf("decoding the result: %v (openssl: %s)", err, stderr.String())
	}
	defer res.Release()
	if f := res.Schema().Fields(); len(f) != 2 || f[0].Name != "answer" || f[1].Name != "name" {
		t.Fatalf("schema %v", res.Schema())
	}
	rows := 0
	for res.Next() {
		rec := res.RecordBatch()
		answers, names := rec.Column(0).(*array.Int64), rec.Column(1).(*array.String)
		for i := range int(rec.NumRows()) {
			if answers.Value(i) != 42 || names.Value(i) != "über" {
				t.Fatalf("row %d: %d %q", rows, answers.Value(i), names.Value(i))
			}
			rows++
		}
	}
	if err := res.Err(); err != nil || rows != 3 {
		t.Fatalf("%d rows, err %v", rows, err)
	}
	if !p.logs.Await(`"msg":"TLS handshake done"`) || !strings.Contains(p.logs.String(), `"version":"TLS 1.3"`) {
		t.Fatal("the server did not log a TLS 1.3 handshake")
	}

	// The same port still speaks the plain protocol to the original client.
	c := p.dial(t, client.Options{Password: "sesame"})
	if got := scalar(t, c, "SELECT 6 * 7"); got != "42" {
		t.Fatalf("plain client got %s", got)
	}
	// And our own client speaks TLS, naming the host it dialed.
	tc := p.dial(t, client.Options{Password: "sesame", TLS: s.clientConfig(t)})
	if got := scalar(t, tc, "SELECT 'tls'"); got != "tls" {
		t.Fatalf("TLS client got %s", got)
	}
}

func TestTLSOldVersionsRefused(t *testing.T) {
	openssl := needOpenSSL(t)
	s := newTLSSetup(t)
	p := startLuna(t, true, nil, s.args()...)
	// SECLEVEL=0 lets this openssl offer TLS 1.1 at all: the refusal must
	// come from the server.
	out, err := exec.Command(openssl, "s_client", "-connect", p.addr, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0").CombinedOutput()
	if err == nil {
		t.Fatalf("TLS 1.1 handshake succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "protocol version") {
		t.Fatalf("TLS 1.1 not refused with a protocol_version alert:\n%s", out)
	}
	if !p.logs.Await("TLS handshake failed") {
		t.Fatal("the refused handshake was not logged")
	}
	// TLS 1.2 is the minimum, and accepted.
	cmd := exec.Command(openssl, "s_client", "-connect", p.addr, "-tls1_2", "-CAfile", s.caFile, "-verify_return_error", "-verify_ip", "127.0.0.1")
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Protocol  : TLSv1.2") {
		t.Fatalf("TLS 1.2: %v\n%s", err, out)
	}
}

func TestTLSMutual(t *testing.T) {
	s := newTLSSetup(t)
	other := testpki.New(t, "other")
	p := startLuna(t, true, nil, append(s.args(), "--tls-client-ca-file", s.caFile, "--passwd", "sesame")...)

	clientCert := func(ca *testpki.CA) tls.Certificate { return ca.Client(t, "alice", 7).TLS }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, certs := range map[string][]tls.Certificate{
		"no certificate":       nil,
		"signed by another CA": {clientCert(other)},
	} {
		cfg := s.clientConfig(t)
		// Sent whatever CAs the server names: Go's client would otherwise
		// keep a certificate quiet that no named CA signed.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if len(certs) == 0 {
				return &tls.Certificate{}, nil
			}
			return &certs[0], nil
		}
		c, err := client.Dial(ctx, p.addr, client.Options{Password: "sesame", TLS: cfg})
		if err == nil {
			c.Close()
			t.Fatalf("%s: accepted", name)
		}
		var ae tls.AlertError
		if !errors.As(err, &ae) && !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%s: refused with %v, not a TLS alert", name, err)
		}
	}
	// A plain connection presents no certificate either: with a client
	// CA, TLS is required.
	_, err := client.Dial(ctx, p.addr, client.Options{Password: "sesame"})
	var le *client.Error
	if !errors.As(err, &le) || !strings.HasPrefix(le.Message, "TLS required") {
		t.Fatalf("plain client: got %v", err)
	}
	cfg := s.clientConfig(t)
	cfg.Certificates = []tls.Certificate{clientCert(s.ca)}
	c := p.dial(t, client.Options{Password: "sesame", TLS: cfg})
	if got := scalar(t, c, "SELECT 'mutual'"); got != "mutual" {
		t.Fatalf("got %s", got)
	}
	for _, why := range []string{"client didn't provide a certificate", "certificate signed by unknown authority"} {
		if !p.logs.Await(why) {
			t.Fatalf("no refusal logged for %q", why)
		}
	}

	// A client nobody here wrote presents its certificate too.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		cf, kf := filepath.Join(s.dir, "bob.crt"), filepath.Join(s.dir, "bob.key")
		s.ca.Client(t, "bob", 8).WriteFiles(t, cf, kf)
		cmd := exec.Command(openssl, "s_client", "-connect", p.addr, "-quiet", "-CAfile", s.caFile, "-cert", cf, "-key", kf)
		cmd.Stdin = strings.NewReader("AUTH sesame\r\n")
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		rdr, err := ipc.NewReader(stdout)
		if err != nil {
			t.Fatalf("openssl with a client certificate: %v", err)
		}
		if !rdr.Next() || rdr.RecordBatch().Column(1).ValueStr(0) != "OK" {
			t.Fatalf("openssl with a client certificate: AUTH not OK (%v)", rdr.Err())
		}
		rdr.Release()
	}
}

func TestTLSCertificateRotation(t *testing.T) {
	s := newTLSSetup(t)
	p := startLuna(t, true, nil, s.args()...)
	cfg := s.clientConfig(t)
	if got := servedSerial(t, p.addr, cfg); got != 100 {
		t.Fatalf("serving serial %d, want 100", got)
	}
	open := p.dial(t, client.Options{TLS: cfg})
	if got := scalar(t, open, "SELECT 1"); got != "1" {
		t.Fatal(got)
	}

	awaitSerial := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := servedSerial(t, p.addr, cfg)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("still serving serial %d, want %d", got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Replaced files are noticed by polling.
	s.serve(t, 101)
	awaitSerial(101)
	if got := scalar(t, open, "SELECT 2"); got != "2" {
		t.Fatalf("the open session broke after the renewal: %s", got)
	}

	// SIGHUP reloads at once.
	s.serve(t, 102)
	p.signal(syscall.SIGHUP)
	if !p.logs.Await(`"msg":"reloaded","what":"TLS certificate"`) {
		t.Fatal("SIGHUP did not reload the certificate")
	}
	if got := servedSerial(t, p.addr, cfg); got != 102 {
		t.Fatalf("after SIGHUP serving serial %d, want 102", got)
	}

	// A key that does not match the new certificate is refused, on
	// SIGHUP and by the poll: the previous pair stays.
	wrongKey := s.serverCert(t, testpki.New(t, "other"), "x", 1).KeyPEM
	testpki.WriteFile(t, s.certFile, s.serverCert(t, s.ca, "luna server", 103).CertPEM)
	testpki.WriteFile(t, s.keyFile, wrongKey)
	p.signal(syscall.SIGHUP)
	if !p.logs.Await(`"msg":"reload failed; keeping the previous version","what":"TLS certificate"`) {
		t.Fatal("a mismatched key was not reported on SIGHUP")
	}
	testpki.WriteFile(t, s.certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"))
	if !p.logs.Await("TLS certificate files changed but cannot be used") {
		t.Fatal("garbage PEM was not reported by the poll")
	}
	if got := servedSerial(t, p.addr, cfg); got != 102 {
		t.Fatalf("after bad files serving serial %d, want 102", got)
	}
	if got := scalar(t, open, "SELECT 3"); got != "3" {
		t.Fatal(got)
	}
	// Once the files are good again, they are served.
	s.serve(t, 104)
	awaitSerial(104)
	if got := scalar(t, open, "SELECT 4"); got != "4" {
		t.Fatal(got)
	}
}

func TestRequireTLS(t *testing.T) {
	s := newTLSSetup(t)
	haddr := freePort(t)
	p := startLuna(t, true, nil, append(s.args(), "--require-tls", "--passwd", "sesame", "--health-host-port", haddr)...)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, p.addr, client.Options{Password: "sesame"})
	var le *client.Error
	if !errors.As(err, &le) || le.Message != "TLS required: this server accepts only TLS connections (--require-tls)" || le.Input != "" {
		t.Fatalf("plain client: got %v", err)
	}
	c := p.dial(t, client.Options{Password: "sesame", TLS: s.clientConfig(t)})
	if got := scalar(t, c, "SELECT 'only tls'"); got != "only tls" {
		t.Fatal(got)
	}

	// /metrics reports when the certificate expires.
	_, body := httpGet(t, "http://"+haddr+"/metrics")
	m := regexp.MustCompile(`(?m)^luna_tls_certificate_expiry_timestamp_seconds (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no expiry gauge in /metrics:\n%s", body)
	}
	if v, err := strconv.ParseFloat(m[1], 64); err != nil || int64(v) != s.notAfter.Unix() {
		t.Fatalf("expiry gauge %s, want %d", m[1], s.notAfter.Unix())
	}

	// lunactl speaks TLS too.
	lunactl := binary(t, "lunactl", true)
	out, errOut, code := run(t, "", nil, lunactl, "-addr", p.addr, "-pass", "sesame", "-tls-ca-file", s.caFile, "-format", "csv", "-p", "SELECT 40 + 2 AS n")
	if code != 0 || !strings.Contains(out, "42") {
		t.Fatalf("lunactl -tls-ca-file: exit %d, %q %q", code, out, errOut)
	}
	out, errOut, code = run(t, "", nil, lunactl, "-addr", p.addr, "-pass", "sesame", "-tls", "-p", "SELECT 1")
	if code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("lunactl -tls with an unknown CA: exit %d, %q %q", code, out, errOut)
	}
	out, errOut, code = run(t, "", nil, lunactl, "-addr", p.addr, "-pass", "sesame", "-p", "SELECT 1")
	if code != 1 || !strings.Contains(errOut, "TLS required") {
		t.Fatalf("lunactl without TLS: exit %d, %q %q", code, out, errOut)
	}
}

// The watchdog's probe connects to the API port; it must not need TLS,
// nor a client certificate.
func TestTLSHealthProbe(t *testing.T) {
	ns := listenNotify(t)
	s := newTLSSetup(t)
	p := startLuna(t, true, []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=600000"},
		append(s.args(), "--require-tls", "--tls-client-ca-file", s.caFile)...)
	ns.waitFor(t, "READY=1", 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if n := count(ns.since(time.Now().Add(-1200*time.Millisecond)), "WATCHDOG=1"); n < 2 {
		t.Fatalf("watchdog fed %d times in 1.2s with TLS required", n)
	}
	logs := p.logs.String()
	for _, bad := range []string{"health probe failed", "TLS handshake failed", "plain connection refused"} {
		if strings.Contains(logs, bad) {
			t.Fatalf("probe connections logged %q:\n%s", bad, logs)
		}
	}
}

func TestTLSBadConfiguration(t *testing.T) {
	s := newTLSSetup(t)
	garbage := filepath.Join(s.dir, "garbage.pem")
	testpki.WriteFile(t, garbage, []byte("not a certificate\n"))
	wrongKeyFile := filepath.Join(s.dir, "wrong.key")
	testpki.WriteFile(t, wrongKeyFile, s.serverCert(t, testpki.New(t, "other"), "x", 1).KeyPEM)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--tls-cert-file", s.certFile}, 2, "--tls-cert-file: needs --tls-key-file"},
		{[]string{"--tls-key-file", s.keyFile}, 2, "--tls-key-file: needs --tls-cert-file"},
		{[]string{"--tls-client-ca-file", s.caFile}, 2, "--tls-client-ca-file: needs --tls-cert-file"},
		{[]string{"--require-tls"}, 2, "--require-tls: needs --tls-cert-file"},
		{[]string{"--tls-client-cert-user"}, 2, "--tls-client-cert-user: needs --tls-client-ca-file"},
		{[]string{"--tls-cert-file", s.certFile, "--tls-key-file", wrongKeyFile}, 1, "private key does not match public key"},
		{[]string{"--tls-cert-file", garbage, "--tls-key-file", s.keyFile}, 1, "failed to find any PEM data in certificate input"},
		{[]string{"--tls-cert-file", filepath.Join(s.dir, "missing.crt"), "--tls-key-file", s.keyFile}, 1, "missing.crt: no such file"},
		{append(s.args(), "--tls-client-ca-file", garbage), 1, "garbage.pem holds no PEM certificate"},
	} {
		p := launchLuna(t, true, nil, tc.args...)
		if code := p.wait(60 * time.Second); code != tc.code || !strings.Contains(p.logs.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, p.logs)
		}
	}
}

// BenchmarkTLS compares TLS with plain connections to one server: the
// 10M-row stream (median of 3 runs each, interleaved) and SELECT 1 round
// trips. Run with -benchtime 1x.
func BenchmarkTLS(b *testing.B) {
	s := newTLSSetup(b)
	p := startLuna(b, false, nil, s.args()...)
	cfg := s.clientConfig(b)
	ctx := context.Background()
	sides := []struct {
		name string
		opts client.Options
	}{{"plain", client.Options{}}, {"TLS", client.Options{TLS: cfg}}}
	var stream, rtt [2][]time.Duration
	conns := [2]lunaConn{}
	for i, side := range sides {
		conns[i] = lunaConn{p.dial(b, side.opts)}
	}
	for run := range 4 {
		for i := range sides {
			d := timeRows(b, ctx, conns[i])
			if run > 0 { // the first is a warm-up
				stream[i] = append(stream[i], d)
			}
		}
	}
	for i := range sides {
		for range 500 {
			start := time.Now()
			if err := conns[i].query(ctx, "SELECT 1", func(arrow.RecordBatch) {}); err != nil {
				b.Fatal(err)
			}
			rtt[i] = append(rtt[i], time.Since(start))
		}
	}
	median := func(ds []time.Duration) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	rate := func(d time.Duration) float64 { return streamRows / d.Seconds() / 1e6 }
	fmt.Printf("\n== TLS against plain TCP, one server (%s)\n", loadAvg())
	for i, side := range sides {
		fmt.Printf("  %-6s stream 10M rows x 4 BIGINT: %6.1f M rows/s (%v); SELECT 1 p50 %v\n",
			side.name+":", rate(median(stream[i])), median(stream[i]).Round(time.Millisecond), median(rtt[i]))
	}
	ratio := rate(median(stream[1])) / rate(median(stream[0]))
	fmt.Printf("  stream throughput TLS / plain: %.2f; SELECT 1 p50 TLS - plain: %v\n", ratio, median(rtt[1])-median(rtt[0]))
	b.ReportMetric(ratio, "tls-stream-ratio")
	b.ReportMetric(float64((median(rtt[1]) - median(rtt[0])).Microseconds()), "tls-p50-extra-us")
}

// With --tls-client-cert-user a verified certificate naming a user is that
// user, with its role and no AUTH; a certificate naming nobody still needs
// AUTH, and a plain or unsigned client gets nowhere.
func TestTLSClientCertificateUser(t *testing.T) {
	s := newTLSSetup(t)
	users := filepath.Join(s.dir, "users")
	replaceFile(t, users, "carol:"+bcryptHash(t, "carol-pw")+":read\nadmin1:"+bcryptHash(t, "admin-pw")+":admin\n")
	p := startLuna(t, true, nil, append(s.args(), "--tls-client-ca-file", s.caFile, "--users-file", users,
		"--tls-client-cert-user")...)
	withCert := func(cn string) *tls.Config {
		cfg := s.clientConfig(t)
		cfg.Certificates = []tls.Certificate{s.ca.Client(t, cn, int64(len(cn))+40).TLS}
		return cfg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// No password at all: the certificate is carol, a reader.
	c := p.dial(t, client.Options{TLS: withCert("carol")})
	if got := scalar(t, c, "SELECT 'by certificate'"); got != "by certificate" {
		t.Fatalf("got %s", got)
	}
	err := c.Exec(ctx, "CREATE TABLE t(a INT)")
	if err == nil || !strings.Contains(err.Error(), "permission denied: role read cannot run CREATE") {
		t.Fatalf("carol's CREATE: %v, want her role's denial", err)
	}
	if got := scalar(t, c, "SELECT \"user\" || ' ' || role || ' ' || tls FROM luna_sessions()"); got != "carol read true" {
		t.Fatalf("luna_sessions() shows %q", got)
	}

	// A certificate naming no user: AUTH as usual, nothing before it.
	nobody, err := client.Dial(ctx, p.addr, client.Options{TLS: withCert("mallory")})
	if err != nil {
		t.Fatal(err)
	}
	defer nobody.Close()
	if err := nobody.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a certificate naming no user ran SQL without AUTH")
	}
	named := p.dial(t, client.Options{TLS: withCert("mallory"), Password: "admin1 admin-pw"})
	if got := scalar(t, named, "SELECT 'named'"); got != "named" {
		t.Fatalf("got %s", got)
	}
}
