package abs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/lunadb/luna/server/objstore"
	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// otherKey is valid base64 but not the emulator's key.
const otherKey = "c2VjcmV0LWJ1dC13cm9uZy1rZXktYnl0ZXMtZm9yLXRlc3RpbmctYXp1cml0ZS0hIQ=="

func newBucket(t *testing.T, cfg Config) *Bucket {
	t.Helper()
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, b objstore.Bucket, key, data string) {
	t.Helper()
	if err := b.Upload(context.Background(), key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, b objstore.Bucket, key string) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := b.Download(context.Background(), key, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestAzurite(t *testing.T) {
	s := objstoretest.StartAzurite(t)
	ctx := context.Background()

	t.Run("conformance", func(t *testing.T) {
		s.CreateContainer(t, "conformance")
		cc := s.ContainerClient(t, "conformance")
		b := newBucket(t, Config{Container: "conformance", ConnectionString: s.ConnectionString})
		objstoretest.Run(t, b, func(key string) error {
			_, err := cc.NewBlobClient(key).Delete(ctx, nil)
			return err
		})
	})

	t.Run("endpoint overrides the derived service URL", func(t *testing.T) {
		s.CreateContainer(t, "endpoint")
		b := newBucket(t, Config{
			Container:        "endpoint",
			ConnectionString: "AccountName=" + s.Account + ";AccountKey=" + s.Key,
			Endpoint:         s.Endpoint,
		})
		put(t, b, "k", "v")
		if got := get(t, b, "k"); got != "v" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("wrong account key", func(t *testing.T) {
		s.CreateContainer(t, "wrongkey")
		b := newBucket(t, Config{
			Container:        "wrongkey",
			ConnectionString: strings.Replace(s.ConnectionString, s.Key, otherKey, 1),
		})
		_, err := b.List(ctx, "")
		checkAuthError(t, err, otherKey)
		_, err = b.Download(ctx, "x", io.Discard)
		checkAuthError(t, err, otherKey)
		if errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("auth failure reported as not found: %v", err)
		}
		err = b.Upload(ctx, "x", strings.NewReader("1"), 1)
		checkAuthError(t, err, otherKey)
	})

	t.Run("unknown container", func(t *testing.T) {
		b := newBucket(t, Config{Container: "nosuch", ConnectionString: s.ConnectionString})
		_, err := b.List(ctx, "p/")
		if !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "az://nosuch/p/") {
			t.Fatalf("list: %v", err)
		}
		_, err = b.Download(ctx, "dir/k.csv", io.Discard)
		if !errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "az://nosuch/dir/k.csv") {
			t.Fatalf("download: %v", err)
		}
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
			t.Fatalf("the SDK's error is not reachable: %v", err)
		}
	})

	t.Run("requests", func(t *testing.T) {
		s.CreateContainer(t, "requests")
		cc := s.ContainerClient(t, "requests")
		for i := range 250 {
			if _, err := cc.NewBlockBlobClient(fmt.Sprintf("p/%03d", i)).UploadBuffer(ctx, []byte("x"), nil); err != nil {
				t.Fatal(err)
			}
		}
		b := newBucket(t, Config{Container: "requests", ConnectionString: s.ConnectionString})
		b.pageSize = 100

		s.Reset()
		objs, err := b.List(ctx, "p/")
		if err != nil || len(objs) != 250 || objs[0].Key != "p/000" || objs[249].Key != "p/249" {
			t.Fatalf("list: %d objects, %v", len(objs), err)
		}
		wantCounts(t, s, map[string]int{objstoretest.AzureList: 3})

		get(t, b, "p/007")
		wantCounts(t, s, map[string]int{objstoretest.AzureGet: 1})

		put(t, b, "small", "data")
		wantCounts(t, s, map[string]int{objstoretest.AzurePut: 1})

		big := bytes.Repeat([]byte("0123456789abcdef"), (17<<20)/16) // 17 MiB: three blocks
		if err := b.Upload(ctx, "big", bytes.NewReader(big), int64(len(big))); err != nil {
			t.Fatal(err)
		}
		wantCounts(t, s, map[string]int{objstoretest.AzurePut: 3, objstoretest.AzureCommit: 1})
		var buf bytes.Buffer
		o, err := b.Download(ctx, "big", &buf)
		if err != nil || !bytes.Equal(buf.Bytes(), big) || o.Size != int64(len(big)) {
			t.Fatalf("big: %d bytes, %+v, %v", buf.Len(), o, err)
		}
	})

	t.Run("versions are unquoted ETags", func(t *testing.T) {
		s.CreateContainer(t, "etags")
		b := newBucket(t, Config{Container: "etags", ConnectionString: s.ConnectionString})
		put(t, b, "e", "1")
		props, err := s.ContainerClient(t, "etags").NewBlobClient("e").GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw := string(*props.ETag)
		o, err := b.Download(ctx, "e", io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := b.List(ctx, "e")
		if err != nil || len(objs) != 1 {
			t.Fatalf("list: %v %v", objs, err)
		}
		if o.Version != strings.Trim(raw, `"`) || objs[0].Version != o.Version || strings.Contains(o.Version, `"`) {
			t.Fatalf("ETag %s: download %q, list %q", raw, o.Version, objs[0].Version)
		}
		if o.Modified.IsZero() || !o.Modified.Equal(objs[0].Modified) {
			t.Fatalf("modified: download %v, list %v", o.Modified, objs[0].Modified)
		}
	})

	t.Run("short source", func(t *testing.T) {
		s.CreateContainer(t, "short")
		b := newBucket(t, Config{Container: "short", ConnectionString: s.ConnectionString})
		put(t, b, "keep", "v1")
		for _, n := range []int{5, 9 << 20} { // one request; staged blocks
			data := strings.Repeat("x", n)
			err := b.Upload(ctx, "keep", strings.NewReader(data), int64(n+10))
			if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "az://short/keep") {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if got := get(t, b, "keep"); got != "v1" {
				t.Fatalf("a failed upload replaced the blob: %d bytes", len(got))
			}
		}
		// Bytes past size are not part of the object.
		if err := b.Upload(ctx, "long", strings.NewReader("abcdef"), 3); err != nil {
			t.Fatal(err)
		}
		if got := get(t, b, "long"); got != "abc" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		s.CreateContainer(t, "canceled")
		b := newBucket(t, Config{Container: "canceled", ConnectionString: s.ConnectionString})
		put(t, b, "k", "v")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Download(cctx, "k", io.Discard); !errors.Is(err, context.Canceled) {
			t.Fatalf("download: %v", err)
		}
		if err := b.Upload(cctx, "k", strings.NewReader("w"), 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("upload: %v", err)
		}
		if got := get(t, b, "k"); got != "v" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("shared access signature", func(t *testing.T) {
		s.CreateContainer(t, "sas")
		cred, err := container.NewSharedKeyCredential(s.Account, s.Key)
		if err != nil {
			t.Fatal(err)
		}
		perms := sas.ContainerPermissions{Read: true, Write: true, Create: true, List: true}
		q, err := sas.BlobSignatureValues{
			Protocol:      sas.ProtocolHTTPSandHTTP,
			ExpiryTime:    time.Now().Add(time.Hour),
			ContainerName: "sas",
			Permissions:   perms.String(),
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		token := q.Encode()
		b := newBucket(t, Config{Container: "sas", ConnectionString: "BlobEndpoint=" + s.Endpoint + ";SharedAccessSignature=" + token})
		put(t, b, "k", "v")
		if got := get(t, b, "k"); got != "v" {
			t.Fatalf("got %q", got)
		}
		if objs, err := b.List(ctx, ""); err != nil || len(objs) != 1 {
			t.Fatalf("list: %v %v", objs, err)
		}

		// A SAS for another container is refused, and errors keep the
		// signature to themselves.
		other := newBucket(t, Config{Container: "conformance", ConnectionString: "BlobEndpoint=" + s.Endpoint + ";SharedAccessSignature=" + token})
		_, err = other.List(ctx, "")
		if err == nil || errors.Is(err, objstore.ErrNotFound) || !strings.Contains(err.Error(), "HTTP 403") {
			t.Fatalf("foreign SAS: %v", err)
		}
		checkNoSecret(t, err, q.Signature())
		down := newBucket(t, Config{Container: "sas", ConnectionString: "BlobEndpoint=http://" + objstoretest.FreeAddr(t) + ";SharedAccessSignature=" + token})
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = down.List(dctx, "")
		if err == nil {
			t.Fatal("list on a closed port succeeded")
		}
		checkNoSecret(t, err, q.Signature())
	})

	t.Run("anonymous access to a public container", func(t *testing.T) {
		access := container.PublicAccessTypeContainer
		if _, err := s.ContainerClient(t, "public").Create(ctx, &container.CreateOptions{Access: &access}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ContainerClient(t, "public").NewBlockBlobClient("d/k").UploadBuffer(ctx, []byte("open"), nil); err != nil {
			t.Fatal(err)
		}
		b := newBucket(t, Config{Container: "public", ConnectionString: "BlobEndpoint=" + s.Endpoint})
		if objs, err := b.List(ctx, "d/"); err != nil || len(objs) != 1 || objs[0].Key != "d/k" {
			t.Fatalf("list: %v %v", objs, err)
		}
		if got := get(t, b, "d/k"); got != "open" {
			t.Fatalf("got %q", got)
		}
	})
}

func checkAuthError(t *testing.T, err error, key string) {
	t.Helper()
	if err == nil {
		t.Fatal("a wrong key was accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "HTTP 403") || !strings.Contains(msg, "check the account name and key") || !strings.Contains(msg, "az://wrongkey/") {
		t.Fatalf("unclear error: %v", err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("not a 403: %v", err)
	}
	checkNoSecret(t, err, key)
}

func checkNoSecret(t *testing.T, err error, secret string) {
	t.Helper()
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		if strings.Contains(s, secret) || strings.Contains(s, strings.TrimRight(secret, "=")) {
			t.Fatalf("error shows a secret: %s", s)
		}
	}
}

func wantCounts(t *testing.T, s *objstoretest.AzureServer, want map[string]int) {
	t.Helper()
	got := s.Counts()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requests %v, want %v:\n%s", got, want, strings.Join(s.Requests(), "\n"))
	}
	s.Reset()
}

// The emulator not running, or hanging, ends in an error within the
// caller's deadline.
func TestUnreachable(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		var conns []net.Conn // accepted and never answered
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	for name, addr := range map[string]string{"closed": objstoretest.FreeAddr(t), "hung": hung.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			b := newBucket(t, Config{
				Container:        "unreachable",
				ConnectionString: "AccountName=devstoreaccount1;AccountKey=" + key,
				Endpoint:         "http://" + addr + "/devstoreaccount1",
			})
			ops := map[string]func(context.Context) error{
				"list": func(ctx context.Context) error { _, err := b.List(ctx, ""); return err },
				"download": func(ctx context.Context) error {
					_, err := b.Download(ctx, "k", io.Discard)
					return err
				},
				"upload": func(ctx context.Context) error { return b.Upload(ctx, "k", strings.NewReader("v"), 1) },
			}
			for op, f := range ops {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				start := time.Now()
				err := f(ctx)
				cancel()
				if err == nil || time.Since(start) > 3*time.Second {
					t.Fatalf("%s: %v after %v", op, err, time.Since(start))
				}
				if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "az://unreachable/") {
					t.Fatalf("%s: %v", op, err)
				}
				checkNoSecret(t, err, key)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	const key = "a2V5a2V5a2V5a2V5"
	tests := []struct {
		name string
		cfg  Config
		url  string   // the container URL, or "" when New must fail
		auth authKind // when url != ""
		sas  string
		err  string // part of the error when url == ""
	}{
		{name: "no container", cfg: Config{AccountName: "acct"}, err: "no container"},
		{name: "no account", cfg: Config{Container: "box"}, err: "account name or a connection string"},
		{name: "container with a slash", cfg: Config{Container: "abc/d", AccountName: "acct"}, err: "invalid container"},
		{name: "container too short", cfg: Config{Container: "x", AccountName: "acct"}, err: "invalid container"},
		{name: "container upper case", cfg: Config{Container: "Data", AccountName: "acct"}, err: "invalid container"},
		{name: "container double hyphen", cfg: Config{Container: "a--b", AccountName: "acct"}, err: "invalid container"},
		{name: "root container", cfg: Config{Container: "$root", AccountName: "acct"}, url: "https://acct.blob.core.windows.net/$root", auth: authAnonymous},
		{
			name: "account only", cfg: Config{Container: "box", AccountName: "acct"},
			url: "https://acct.blob.core.windows.net/box", auth: authAnonymous,
		},
		{
			name: "account with the machine's identity", cfg: Config{Container: "box", AccountName: "acct", Ambient: true},
			url: "https://acct.blob.core.windows.net/box", auth: authDefault,
		},
		{
			name: "account with endpoint", cfg: Config{Container: "box", AccountName: "acct", Endpoint: "http://127.0.0.1:1/acct/", Ambient: true},
			url: "http://127.0.0.1:1/acct/box", auth: authDefault,
		},
		{name: "account not a host name", cfg: Config{Container: "box", AccountName: "evil.com/x"}, err: "invalid account name"},
		{
			name: "connection string with key",
			cfg:  Config{Container: "box", ConnectionString: "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + key + ";EndpointSuffix=core.chinacloudapi.cn"},
			url:  "https://acct.blob.core.chinacloudapi.cn/box", auth: authSharedKey,
		},
		{
			name: "keys are case-insensitive",
			cfg:  Config{Container: "box", ConnectionString: "accountname=acct; accountkey=" + key + ";"},
			url:  "https://acct.blob.core.windows.net/box", auth: authSharedKey,
		},
		{
			name: "blob endpoint",
			cfg:  Config{Container: "box", ConnectionString: "AccountName=devstoreaccount1;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/"},
			url:  "http://127.0.0.1:10000/devstoreaccount1/box", auth: authSharedKey,
		},
		{
			name: "endpoint beats blob endpoint",
			cfg:  Config{Container: "box", Endpoint: "http://127.0.0.1:2/x", ConnectionString: "AccountName=acct;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:1/y"},
			url:  "http://127.0.0.1:2/x/box", auth: authSharedKey,
		},
		{
			name: "shared access signature",
			cfg:  Config{Container: "box", ConnectionString: "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=?sv=2024&sig=abc%3D"},
			url:  "https://acct.blob.core.windows.net/box", auth: authSAS, sas: "sv=2024&sig=abc%3D",
		},
		{
			name: "anonymous",
			cfg:  Config{Container: "box", ConnectionString: "BlobEndpoint=https://acct.blob.core.windows.net"},
			url:  "https://acct.blob.core.windows.net/box", auth: authAnonymous,
		},
		{
			name: "account names agree",
			cfg:  Config{Container: "box", AccountName: "acct", ConnectionString: "AccountName=acct;AccountKey=" + key},
			url:  "https://acct.blob.core.windows.net/box", auth: authSharedKey,
		},
		{
			name: "account names differ",
			cfg:  Config{Container: "box", AccountName: "other", ConnectionString: "AccountName=acct;AccountKey=" + key},
			err:  "differs",
		},
		{name: "key without account", cfg: Config{Container: "box", ConnectionString: "AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:1/a"}, err: "no AccountName"},
		{name: "no endpoint", cfg: Config{Container: "box", ConnectionString: "SharedAccessSignature=sig=x"}, err: "neither BlobEndpoint nor AccountName"},
		{name: "malformed", cfg: Config{Container: "box", ConnectionString: "AccountName=acct;" + key}, err: "part 2 is not key=value"},
		{name: "empty", cfg: Config{Container: "box", ConnectionString: ";;"}, err: "empty connection string"},
		{name: "endpoint not http", cfg: Config{Container: "box", AccountName: "acct", Endpoint: "127.0.0.1:10000"}, err: "not an http(s) URL"},
		{name: "key not base64", cfg: Config{Container: "box", ConnectionString: "AccountName=acct;AccountKey=not*base64" + key}, err: "not valid base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer fakeDefaultCredential()()
			b, err := New(context.Background(), tc.cfg)
			if tc.url == "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one about %q", err, tc.err)
				}
				checkNoSecret(t, err, key)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := resolve(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got.containerURL != tc.url || got.auth != tc.auth || got.sas != tc.sas {
				t.Fatalf("got %s auth %d sas %q", got.containerURL, got.auth, got.sas)
			}
			want := tc.url
			if tc.sas != "" {
				want += "?" + tc.sas
			}
			if b.client.URL() != want {
				t.Fatalf("client URL %s, want %s", b.client.URL(), want)
			}
		})
	}
}

type fakeCredential struct{ calls int }

func (f *fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.calls++
	return azcore.AccessToken{}, errors.New("fake credential")
}

// fakeDefaultCredential stands in for DefaultAzureCredential, whose
// managed identity probe would leave the machine.
func fakeDefaultCredential() (restore func()) {
	old := newDefaultCredential
	newDefaultCredential = func() (azcore.TokenCredential, error) { return &fakeCredential{}, nil }
	return func() { newDefaultCredential = old }
}

// An account name with Ambient authenticates with the default credential
// chain.
func TestDefaultCredential(t *testing.T) {
	old := newDefaultCredential
	defer func() { newDefaultCredential = old }()
	fake := &fakeCredential{}
	made := 0
	newDefaultCredential = func() (azcore.TokenCredential, error) { made++; return fake, nil }

	if _, err := New(context.Background(), Config{Container: "box", ConnectionString: "BlobEndpoint=http://127.0.0.1:1/a"}); err != nil || made != 0 {
		t.Fatalf("a connection string used the default credential: %v, %d", err, made)
	}
	// An https endpoint on loopback: the token is asked for before any
	// connection is made, and the fake refuses it.
	b, err := New(context.Background(), Config{Container: "box", AccountName: "acct", Endpoint: "https://" + objstoretest.FreeAddr(t) + "/acct", Ambient: true})
	if err != nil || made != 1 {
		t.Fatalf("%v, made %d", err, made)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = b.List(ctx, "")
	if err == nil || fake.calls == 0 || !strings.Contains(err.Error(), "fake credential") {
		t.Fatalf("list: %v, %d token requests", err, fake.calls)
	}

	newDefaultCredential = func() (azcore.TokenCredential, error) { return nil, errors.New("no identity") }
	if _, err := New(context.Background(), Config{Container: "box", AccountName: "acct", Ambient: true}); err == nil || !strings.Contains(err.Error(), "no identity") {
		t.Fatalf("credential error: %v", err)
	}
}

// Accounts with a hierarchical namespace list directories as empty blobs.
func TestListSkipsDirectories(t *testing.T) {
	name, dir, file := "d", "directory", "file"
	etag := azcore.ETag(`"0x1"`)
	size := int64(3)
	if _, ok := object(&container.BlobItem{Name: &name, Properties: &container.BlobProperties{ResourceType: &dir}}); ok {
		t.Fatal("a directory was listed")
	}
	o, ok := object(&container.BlobItem{Name: &name, Properties: &container.BlobProperties{ResourceType: &file, ETag: &etag, ContentLength: &size}})
	if !ok || o.Key != "d" || o.Version != "0x1" || o.Size != 3 {
		t.Fatalf("file: %+v %v", o, ok)
	}
}
