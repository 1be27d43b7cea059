package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// hermetic keeps the SDK from finding anything outside the test: no
// shared config, no credentials in the environment, no instance metadata.
func hermetic(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONFIG_FILE":                        none,
		"AWS_SHARED_CREDENTIALS_FILE":            none,
		"AWS_PROFILE":                            "",
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_ENDPOINT_URL":                       "",
		"AWS_ENDPOINT_URL_S3":                    "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_ROLE_ARN":                           "",
	} {
		t.Setenv(k, v)
	}
}

// gateway starts versitygw with one empty bucket.
func gateway(t *testing.T) (*objstoretest.S3Server, string) {
	t.Helper()
	hermetic(t)
	srv := objstoretest.StartVersityGW(t)
	srv.CreateBucket(t, "luna-test")
	return srv, "luna-test"
}

func testConfig(srv *objstoretest.S3Server, bucket string) Config {
	return Config{
		Bucket:   bucket,
		Region:   srv.Region,
		KeyID:    srv.KeyID,
		Secret:   srv.Secret,
		Endpoint: srv.Endpoint,
		URLStyle: "path",
	}
}

func open(t *testing.T, cfg Config) *Bucket {
	t.Helper()
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	srv, bucket := gateway(t)
	b := open(t, testConfig(srv, bucket))
	objstoretest.Run(t, b, func(key string) error { return srv.DeleteObject(bucket, key) })
}

func TestNotFound(t *testing.T) {
	srv, bucket := gateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := open(t, testConfig(srv, bucket)).Download(ctx, "no/such.csv", io.Discard)
	if !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "s3://luna-test/no/such.csv") {
		t.Errorf("missing key: %v", err)
	}

	nb := open(t, testConfig(srv, "no-such-bucket"))
	if _, err := nb.List(ctx, "x/"); !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "s3://no-such-bucket/x/") {
		t.Errorf("list of a missing bucket: %v", err)
	}
	if _, err := nb.Download(ctx, "k", io.Discard); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("download from a missing bucket: %v", err)
	}
	if err := nb.Upload(ctx, "k", strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("upload to a missing bucket: %v", err)
	}
}

func TestWrongSecret(t *testing.T) {
	srv, bucket := gateway(t)
	cfg := testConfig(srv, bucket)
	cfg.Secret = "wrong-" + srv.Secret
	b := open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	start := time.Now()
	errs := []error{}
	_, err := b.List(ctx, "")
	errs = append(errs, err)
	_, err = b.Download(ctx, "k", io.Discard)
	errs = append(errs, err)
	errs = append(errs, b.Upload(ctx, "k", strings.NewReader("x"), 1))
	for _, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "access denied") || errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("err = %v, want access denied", err)
			continue
		}
		if strings.Contains(err.Error(), srv.Secret) {
			t.Errorf("the secret is in the error: %v", err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("three denied requests took %v", d)
	}
	t.Log(errs[0])
}

func TestUnreachable(t *testing.T) {
	hermetic(t)
	check := func(t *testing.T, endpoint string, timeout time.Duration) {
		b := open(t, Config{Bucket: "b", KeyID: "k", Secret: "s", Endpoint: endpoint})
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		_, err := b.List(ctx, "")
		if err == nil {
			t.Fatal("list succeeded")
		}
		if d := time.Since(start); d > timeout+time.Second {
			t.Errorf("took %v with a %v deadline: %v", d, timeout, err)
		}
		t.Log(err)
	}
	t.Run("nothing listening", func(t *testing.T) {
		check(t, objstoretest.FreeAddr(t), 3*time.Second)
	})
	t.Run("never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
			}
		}()
		check(t, ln.Addr().String(), time.Second)
	})
}

func TestCanceled(t *testing.T) {
	srv, bucket := gateway(t)
	b := open(t, testConfig(srv, bucket))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Download(ctx, "k", io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("download: %v", err)
	}
	if err := b.Upload(ctx, "k", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("upload: %v", err)
	}
	if err := b.Upload(ctx, "k", struct{ io.Reader }{strings.NewReader("x")}, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("unseekable upload: %v", err)
	}
}

func TestDefaultCredentialChain(t *testing.T) {
	srv, bucket := gateway(t)
	srv.Setenv(t)
	cfg := testConfig(srv, bucket)
	cfg.KeyID, cfg.Secret, cfg.Ambient = "", "", true
	b := open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Upload(ctx, "chain.txt", strings.NewReader("hi"), 2); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := b.Download(ctx, "chain.txt", &buf); err != nil || buf.String() != "hi" {
		t.Fatalf("download: %q, %v", buf.String(), err)
	}

	// With nothing in the chain, the error says so promptly.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	start := time.Now()
	if _, err := open(t, cfg).List(ctx, ""); err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("no credentials: %v after %v", err, time.Since(start))
	} else {
		t.Log(err)
	}
}

func TestCounts(t *testing.T) {
	srv, bucket := gateway(t)
	srv.PutObject(t, bucket, "d/a.csv", []byte("a\n1\n"))
	b := open(t, testConfig(srv, bucket))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	want := func(kind string) {
		t.Helper()
		if got := srv.Counts(); len(got) != 1 || got[kind] != 1 {
			t.Fatalf("counts %v, want one %s; requests %q", got, kind, srv.Requests())
		}
		srv.Reset()
	}
	if objs, err := b.List(ctx, "d/"); err != nil || len(objs) != 1 {
		t.Fatalf("list: %v, %v", objs, err)
	}
	want(objstoretest.S3List)
	if _, err := b.Download(ctx, "d/a.csv", io.Discard); err != nil {
		t.Fatal(err)
	}
	want(objstoretest.S3Get)
	if err := b.Upload(ctx, "d/b.csv", strings.NewReader("b"), 1); err != nil {
		t.Fatal(err)
	}
	want(objstoretest.S3Put)
}

// unseekable hides a reader's Seek.
type unseekable struct{ io.Reader }

func TestUploadBodies(t *testing.T) {
	srv, bucket := gateway(t)
	b := open(t, testConfig(srv, bucket))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	roundTrip := func(t *testing.T, key string, r io.Reader, want []byte) {
		t.Helper()
		if err := b.Upload(ctx, key, r, int64(len(want))); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		o, err := b.Download(ctx, key, &buf)
		if err != nil || !bytes.Equal(buf.Bytes(), want) || o.Size != int64(len(want)) {
			t.Fatalf("got %d bytes (size %d), want %d: %v", buf.Len(), o.Size, len(want), err)
		}
	}
	small := bytes.Repeat([]byte("luna"), 256)
	big := bytes.Repeat([]byte("0123456789abcdef"), (bufferLimit+1<<20)/16)

	t.Run("unseekable small", func(t *testing.T) {
		roundTrip(t, "small", unseekable{bytes.NewReader(small)}, small)
	})
	t.Run("unseekable large", func(t *testing.T) {
		roundTrip(t, "big", unseekable{bytes.NewReader(big)}, big)
	})
	t.Run("file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, big, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		roundTrip(t, "file", f, big)
	})
	t.Run("pipe", func(t *testing.T) {
		// An *os.File that cannot seek.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		go func() { w.Write(small); w.Close() }()
		roundTrip(t, "pipe", r, small)
	})
	t.Run("empty", func(t *testing.T) {
		roundTrip(t, "empty", unseekable{strings.NewReader("")}, []byte{})
	})
	t.Run("size mismatch", func(t *testing.T) {
		if err := b.Upload(ctx, "m", strings.NewReader("abc"), 5); err == nil {
			t.Error("seekable body shorter than size")
		}
		if err := b.Upload(ctx, "m", unseekable{strings.NewReader("abc")}, 5); err == nil {
			t.Error("unseekable body shorter than size")
		}
		if err := b.Upload(ctx, "m", unseekable{bytes.NewReader(big[:bufferLimit+2])}, bufferLimit+10); err == nil {
			t.Error("large unseekable body shorter than size")
		}
		if err := b.Upload(ctx, "m", strings.NewReader("abc"), -1); err == nil {
			t.Error("negative size")
		}
	})
}

// TestAcceptEncodingRewritten stands in for GCS, whose front end changes
// Accept-Encoding before checking the signature.
func TestAcceptEncodingRewritten(t *testing.T) {
	srv, bucket := gateway(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := &url.URL{Scheme: "http", Host: srv.DirectEndpoint}
	var rewrites atomic.Int32
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			if ae := r.In.Header.Get("Accept-Encoding"); ae != "" {
				r.Out.Header.Set("Accept-Encoding", ae+",gzip(gfe)")
				rewrites.Add(1)
			}
		},
		Transport: &http.Transport{DisableCompression: true},
	}
	hs := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()

	cfg := testConfig(srv, bucket)
	cfg.Endpoint = ln.Addr().String()
	b := open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Upload(ctx, "gfe.txt", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Download(ctx, "gfe.txt", io.Discard); err != nil {
		t.Fatal(err)
	}
	if rewrites.Load() == 0 {
		t.Fatal("the SDK sent no Accept-Encoding: the test tests nothing")
	}
}

func TestConfigErrors(t *testing.T) {
	hermetic(t)
	for _, cfg := range []Config{
		{},
		{Bucket: "a/b"},
		{Bucket: "b", URLStyle: "virtual"},
		{Bucket: "b", Endpoint: "ftp://host"},
		{Bucket: "b", Endpoint: "http://"},
		{Bucket: "b", Endpoint: "http://user:pw@host"},
		{Bucket: "b", KeyID: "k"},
		{Bucket: "b", Secret: "s"},
		{Bucket: "b", KeyID: "k", Secret: "s", Ambient: true},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New(%v) succeeded", cfg)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	for _, c := range []struct {
		cfg       Config
		url       string
		pathStyle bool
	}{
		{Config{}, "", false},
		{Config{URLStyle: "path"}, "", true},
		{Config{Endpoint: "storage.googleapis.com", UseSSL: true}, "https://storage.googleapis.com", false},
		{Config{Endpoint: "storage.googleapis.com", URLStyle: "path", UseSSL: true}, "https://storage.googleapis.com", true},
		{Config{Endpoint: "minio.internal:9000"}, "http://minio.internal:9000", false},
		{Config{Endpoint: "127.0.0.1:9000"}, "http://127.0.0.1:9000", true},
		{Config{Endpoint: "[::1]:9000", UseSSL: true}, "https://[::1]:9000", true},
		{Config{Endpoint: "localhost:9000"}, "http://localhost:9000", true},
		{Config{Endpoint: "localhost:9000", URLStyle: "vhost"}, "http://localhost:9000", false},
		{Config{Endpoint: "https://s3.example.com/"}, "https://s3.example.com", false},
		{Config{Endpoint: "http://s3.example.com", UseSSL: true}, "http://s3.example.com", false},
	} {
		u, ps, err := resolveEndpoint(c.cfg)
		if err != nil || u != c.url || ps != c.pathStyle {
			t.Errorf("%v: got %q %v %v, want %q %v", c.cfg, u, ps, err, c.url, c.pathStyle)
		}
	}
}

func TestConfigHidesSecrets(t *testing.T) {
	cfg := Config{Bucket: "b", KeyID: "AKIDEXAMPLE", Secret: "top-secret-value", SessionToken: "session-token-value"}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(&cfg)} {
		if strings.Contains(s, "top-secret") || strings.Contains(s, "session-token") {
			t.Errorf("secret shown: %s", s)
		}
	}
}
