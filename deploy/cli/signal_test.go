package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/lunadb/luna/deploy/internal/sshtest"
	"github.com/lunadb/luna/internal/testenv"
	"google.golang.org/api/option"
)

// The signal tests run the command line in a child process (this test
// binary again) wired the way cmd/luna-deploy is: a context that SIGINT
// and SIGTERM cancel. The child's clouds are the parent's fakes.
const (
	childEnv     = "LUNA_DEPLOY_TEST_CHILD"
	childArgsEnv = "LUNA_DEPLOY_TEST_ARGS"
	childGCPEnv  = "LUNA_DEPLOY_TEST_GCP"
	childAWSEnv  = "LUNA_DEPLOY_TEST_AWS"
	proxyToEnv   = "LUNA_DEPLOY_TEST_PROXY_TO"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain())
	}
	if to := os.Getenv(proxyToEnv); to != "" {
		os.Exit(sshtest.ProxyMain(to))
	}
	os.Exit(m.Run())
}

func childMain() int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &args); err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Main(ctx, args, Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		GCPOptions: []option.ClientOption{option.WithEndpoint(os.Getenv(childGCPEnv)), option.WithoutAuthentication()},
		AWSConfig: func(c *aws.Config) {
			c.BaseEndpoint = aws.String(os.Getenv(childAWSEnv))
			c.Credentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret-key", "")
		},
		PollInterval: 10 * time.Millisecond,
	})
}

// blocker stands in front of a cloud fake: requests that block says so
// hang until the client goes away (a cloud that takes its time); the rest
// go through to the fake.
type blocker struct {
	URL     string
	reached chan struct{} // closed at the first blocked request
	once    sync.Once
}

func newBlocker(t *testing.T, fake string, block func(r *http.Request, body []byte) bool) *blocker {
	u, err := url.Parse(fake)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	b := &blocker{reached: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if block(r, body) {
			b.once.Do(func() { close(b.reached) })
			<-r.Context().Done()
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	b.URL = srv.URL
	return b
}

// child starts the command line in a child process.
func child(t *testing.T, gcpURL, awsURL string, args ...string) (*exec.Cmd, *testenv.SyncBuffer) {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childArgsEnv+"="+string(a), childGCPEnv+"="+gcpURL, childAWSEnv+"="+awsURL)
	var stderr testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stderr
}

func isAction(name string) func(*http.Request, []byte) bool {
	return func(_ *http.Request, body []byte) bool {
		q, _ := url.ParseQuery(string(body))
		return name == "" || q.Get("Action") == name
	}
}

// gcpWait blocks the polls of long-running operations.
func gcpWait(r *http.Request, _ []byte) bool { return strings.Contains(r.URL.Path, "/operations/") }

// TestSignalExitCodes: SIGINT or SIGTERM while create, update or restart
// waits makes luna-deploy exit with 130 or 143 and say what may still be
// going on; Ctrl-C ending logs --follow is a success.
func TestSignalExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness) (gcpURL, awsURL string, reached <-chan struct{}, args []string)
		sig   syscall.Signal
		code  int
		want  string
	}{
		{"mig create", func(h *harness) (string, string, <-chan struct{}, []string) {
			b := newBlocker(h.t, h.gcp.URL, gcpWait)
			return b.URL, h.aws.URL, b.reached, append([]string{"mig", "create", "--no-startup-script"}, gcpFlags...)
		}, syscall.SIGINT, 130, "luna-deploy mig create: stopped (SIGINT): an operation already sent goes on in the cloud; check with luna-deploy mig status"},
		{"mig update", func(h *harness) (string, string, <-chan struct{}, []string) {
			h.answerGroup()
			b := newBlocker(h.t, h.gcp.URL, gcpWait)
			return b.URL, h.aws.URL, b.reached, append([]string{"mig", "update", "--machine-type", "n2-standard-8"}, gcpFlags...)
		}, syscall.SIGTERM, 143, "luna-deploy mig update: stopped (SIGTERM): an operation already sent goes on"},
		{"asg create", func(h *harness) (string, string, <-chan struct{}, []string) {
			b := newBlocker(h.t, h.aws.URL, isAction("CreateLaunchTemplate"))
			return h.gcp.URL, b.URL, b.reached, asgCreate(h)
		}, syscall.SIGTERM, 143, "luna-deploy asg create: stopped (SIGTERM)"},
		{"asg update", func(h *harness) (string, string, <-chan struct{}, []string) {
			b := newBlocker(h.t, h.aws.URL, isAction(""))
			return h.gcp.URL, b.URL, b.reached, []string{"asg", "update", "--region", "eu-west-1", "--ami", "ami-0fedcba9876543210"}
		}, syscall.SIGINT, 130, "luna-deploy asg update: stopped (SIGINT)"},
		{"mig restart", func(h *harness) (string, string, <-chan struct{}, []string) {
			h.twoInstances("127.0.0.1")
			reached := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			// systemctl restart that takes its time (a drain).
			f := newSSH(h.t, func(string, io.Writer, io.Writer) int {
				once.Do(func() { close(reached) })
				<-release
				return 0
			})
			h.t.Cleanup(func() { close(release) })
			return h.gcp.URL, h.aws.URL, reached, append(append([]string{"mig", "restart", "--user", "root"}, gcpFlags...), f.flags()...)
		}, syscall.SIGTERM, 143, "luna-deploy mig restart: stopped (SIGTERM): the instance being restarted may still be starting"},
		{"mig logs --follow", func(h *harness) (string, string, <-chan struct{}, []string) {
			h.twoInstances("127.0.0.1")
			reached := make(chan struct{})
			var once sync.Once
			f := newSSH(h.t, func(_ string, out io.Writer, _ io.Writer) int {
				once.Do(func() { close(reached) })
				for {
					if _, err := io.WriteString(out, journalLine("c", "tick")); err != nil {
						return 0
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
			return h.gcp.URL, h.aws.URL, reached, append(append([]string{"mig", "logs", "--user", "root", "--follow"}, gcpFlags...), f.flags()...)
		}, syscall.SIGINT, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			gcpURL, awsURL, reached, args := tc.setup(h)
			cmd, stderr := child(t, gcpURL, awsURL, args...)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-reached:
			case err := <-exited:
				t.Fatalf("exited before the blocking call: %v\n%s", err, stderr.String())
			case <-time.After(30 * time.Second):
				t.Fatalf("the blocking call was not reached\n%s", stderr.String())
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-exited:
			case <-time.After(15 * time.Second):
				t.Fatalf("no exit after %v\n%s", tc.sig, stderr.String())
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("after %v: exit %d, want %d; stderr:\n%s\nwant %q", tc.sig, code, tc.code, stderr.String(), tc.want)
			}
		})
	}
}

// TestSignalled: the exit code comes from the signal that cancelled the
// context, whether NotifyContext or a caller set the cause.
func TestSignalled(t *testing.T) {
	if _, _, ok := signalled(context.Background()); ok {
		t.Error("a live context counts as signalled")
	}
	for _, tc := range []struct {
		cause error
		code  int
		name  string
	}{
		{SignalError{syscall.SIGTERM}, 143, "SIGTERM"},
		{SignalError{syscall.SIGINT}, 130, "SIGINT"},
		{errors.New("terminated signal received"), 143, "SIGTERM"}, // os/signal's text
		{errors.New("something else"), 130, "cancelled"},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(tc.cause)
		code, name, ok := signalled(ctx)
		if !ok || code != tc.code || name != tc.name {
			t.Errorf("cause %v: %d %s %v, want %d %s", tc.cause, code, name, ok, tc.code, tc.name)
		}
	}
	if !errors.Is(SignalError{syscall.SIGINT}, context.Canceled) {
		t.Error("SignalError does not match context.Canceled")
	}
}
