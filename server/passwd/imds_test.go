package passwd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// mockBinary finds AWS's ec2-metadata-mock where scripts/tools.sh installs
// it. A missing mock fails the test: skipping would let the IMDS path go
// untested without anyone noticing.
func mockBinary(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command(filepath.Join(root, "scripts", "tools.sh"), "path", "ec2-metadata-mock")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/tools.sh path ec2-metadata-mock: %v", err)
	}
	bin := strings.TrimSpace(string(out))
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("ec2-metadata-mock is not installed at %s: run `make tools`", bin)
	}
	return bin
}

// startIMDS runs ec2-metadata-mock on a free loopback port in IMDSv2-only
// mode, serving the given instance tags, and returns its base URL. The mock
// has no setting for arbitrary tags: it serves the paths named in its
// metadata.paths config, so each tag re-points one of its two stock tag keys.
func startIMDS(t *testing.T, tags map[string]string) string {
	t.Helper()
	bin := mockBinary(t)
	stock := []string{"tags-instance-name", "tags-instance-test"}
	if len(tags) > len(stock) {
		t.Fatalf("the mock can serve at most %d tags", len(stock))
	}
	paths, values := map[string]string{}, map[string]string{}
	i := 0
	for k, v := range tags {
		paths[stock[i]] = "/latest/meta-data/tags/instance/" + k
		values[stock[i]] = v
		i++
	}
	addr := closedAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	cfg, err := json.Marshal(map[string]any{
		"imdsv2":   true,
		"server":   map[string]string{"hostname": host, "port": port},
		"metadata": map[string]any{"paths": paths, "values": values},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", cfgFile)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("ec2-metadata-mock output:\n%s", out.String())
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPut, base+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("ec2-metadata-mock did not come up on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// imdsEnv points the SDK at endpoint, with IMDS enabled.
func imdsEnv(t *testing.T, endpoint string) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
}

func TestIMDSTag(t *testing.T) {
	base := startIMDS(t, map[string]string{
		"luna-passwd": "correct horse\n",
		"empty-tag":   "",
	})
	imdsEnv(t, base)

	// The mock enforces IMDSv2: a tokenless request is refused, so a value
	// read below proves the SDK used a session token.
	resp, err := http.Get(base + "/latest/meta-data/tags/instance/luna-passwd")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tokenless GET: status %d, want 401", resp.StatusCode)
	}

	t.Run("value", func(t *testing.T) {
		opts, logs := testOptions(10 * time.Second)
		got, err := Fetch(context.Background(), Source{KindAWSIMDS, "luna-passwd"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got != "correct horse" {
			t.Errorf("Fetch = %q, want %q", got, "correct horse")
		}
		if strings.Contains(logs.String(), "correct horse") {
			t.Errorf("log mentions the password:\n%s", logs)
		}
	})
	t.Run("missing tag", func(t *testing.T) {
		opts, _ := testOptions(30 * time.Second)
		start := time.Now()
		_, err := Fetch(context.Background(), Source{KindAWSIMDS, "no-such-tag"}, opts)
		checkFailure(t, err, ErrNotFound, "aws-imds:no-such-tag", "", nil)
		if !strings.Contains(err.Error(), `"no-such-tag"`) {
			t.Errorf("error %q does not name the tag", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a missing tag took %s to report; it should not be retried", d)
		}
	})
	t.Run("empty tag", func(t *testing.T) {
		opts, _ := testOptions(30 * time.Second)
		_, err := Fetch(context.Background(), Source{KindAWSIMDS, "empty-tag"}, opts)
		checkFailure(t, err, ErrEmpty, "aws-imds:empty-tag", "", nil)
	})
}

func TestIMDSUnreachable(t *testing.T) {
	imdsEnv(t, "http://"+closedAddr(t))
	opts, _ := testOptions(time.Second)
	start := time.Now()
	_, err := Fetch(context.Background(), Source{KindAWSIMDS, "luna-passwd"}, opts)
	d := time.Since(start)
	checkFailure(t, err, ErrUnreachable, "aws-imds:luna-passwd", "", nil)
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not say why", err)
	}
	if d < time.Second || d > 2500*time.Millisecond {
		t.Errorf("gave up after %s, want about 1s", d)
	}
}

func TestIMDSDisabled(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := Fetch(context.Background(), Source{KindAWSIMDS, "luna-passwd"}, Options{Timeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "AWS_EC2_METADATA_DISABLED") ||
		!strings.HasPrefix(err.Error(), "aws-imds:luna-passwd: ") {
		t.Fatalf("error = %v", err)
	}
}
