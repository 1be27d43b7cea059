package abs

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lunadb/luna/server/objstore/objstoretest"
)

// machineCredential is the machine's identity: it hands out a token to
// whoever asks.
type machineCredential struct{ calls int }

const machineToken = "machine-entra-token-do-not-send"

func (m *machineCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	m.calls++
	return azcore.AccessToken{Token: machineToken}, nil
}

// An account name without a connection string or Ambient is DuckDB's
// keyless config secret: anonymous requests, no token asked for or sent,
// and a public container reads.
func TestAccountNameAloneIsAnonymous(t *testing.T) {
	// What DefaultAzureCredential's environment source would find.
	t.Setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001")
	t.Setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000002")
	t.Setenv("AZURE_CLIENT_SECRET", "machine-client-secret")
	old := newDefaultCredential
	defer func() { newDefaultCredential = old }()
	cred := &machineCredential{}
	made := 0
	newDefaultCredential = func() (azcore.TokenCredential, error) { made++; return cred, nil }

	s := objstoretest.StartAzurite(t)
	ctx := context.Background()
	access := container.PublicAccessTypeContainer
	if _, err := s.ContainerClient(t, "pub").Create(ctx, &container.CreateOptions{Access: &access}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ContainerClient(t, "pub").NewBlockBlobClient("d/k").UploadBuffer(ctx, []byte("open"), nil); err != nil {
		t.Fatal(err)
	}
	direct := strings.TrimPrefix(strings.TrimSuffix(s.DirectEndpoint, "/"+s.Account), "http://")
	rec := objstoretest.StartRecorder(t, direct, nil)

	b := newBucket(t, Config{Container: "pub", AccountName: s.Account, Endpoint: "http://" + rec.Addr + "/" + s.Account})
	if objs, err := b.List(ctx, "d/"); err != nil || len(objs) != 1 {
		t.Fatalf("anonymous list of a public container: %v %v", objs, err)
	}
	if got := get(t, b, "d/k"); got != "open" {
		t.Fatalf("got %q", got)
	}
	if err := b.Upload(ctx, "d/new", strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "anonymous") {
		t.Fatalf("anonymous upload: %v", err)
	}
	if made != 0 || cred.calls != 0 {
		t.Fatalf("the default credential was made %d times and asked %d times", made, cred.calls)
	}
	if n := len(rec.Requests()); n < 3 {
		t.Fatalf("%d requests recorded: the test tests nothing", n)
	}
	if leaks := rec.Credentials(machineToken, "machine-client-secret"); len(leaks) > 0 {
		t.Fatalf("credentials sent:\n%s", strings.Join(leaks, "\n"))
	}
}
