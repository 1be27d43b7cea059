package objstoretest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Azurite's development account. Microsoft publishes the key in the
// Azurite documentation: it opens nothing but local emulators.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Request kinds that AzureServer.Counts reports.
const (
	AzureList      = "list"      // a page of a container's blob listing
	AzureGet       = "get"       // GET of a blob, whole or a range
	AzureHead      = "head"      // HEAD of a blob (Get Blob Properties)
	AzurePut       = "put"       // Put Blob, or one block of a large upload
	AzureCommit    = "commit"    // Put Block List, which ends a large upload
	AzureDelete    = "delete"    // Delete Blob
	AzureContainer = "container" // on a container or the account: create, delete, properties, list containers
	AzureOther     = "other"     // any other blob operation (metadata, tags, leases, ...)
)

// AzureServer is an Azurite blob service on loopback, in memory, running
// for the test's lifetime. Code under test should use Endpoint or
// ConnectionString, where a proxy counts requests by kind (see Counts);
// ContainerClient and CreateContainer go to DirectEndpoint, uncounted.
type AzureServer struct {
	// Endpoint is the service URL of the counting proxy,
	// http://127.0.0.1:port/devstoreaccount1.
	Endpoint string
	// DirectEndpoint is Azurite's own service URL.
	DirectEndpoint string
	// Account and Key are the development account's shared key.
	Account, Key string
	// ConnectionString is Endpoint, Account and Key in Azure's
	// AccountName=...;AccountKey=...;BlobEndpoint=... form.
	ConnectionString string

	*counter
}

// StartAzurite runs Azurite's blob service. Create containers with
// CreateContainer.
func StartAzurite(t testing.TB) *AzureServer {
	t.Helper()
	bin := ToolPath(t, "azurite-blob")
	addr := FreeAddr(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	StartProcess(t, addr, bin,
		"--blobHost", "127.0.0.1", "--blobPort", port, "--inMemoryPersistence",
		"--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent")
	s := &AzureServer{
		DirectEndpoint: "http://" + addr + "/" + azuriteAccount,
		Account:        azuriteAccount,
		Key:            azuriteKey,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.counter = startCounter(t, ln, addr, false, AzureRequestKind, AzureGet)
	s.Endpoint = "http://" + ln.Addr().String() + "/" + azuriteAccount
	s.ConnectionString = "DefaultEndpointsProtocol=http;AccountName=" + s.Account +
		";AccountKey=" + s.Key + ";BlobEndpoint=" + s.Endpoint + ";"
	return s
}

// ContainerClient is a client for container name that goes straight to
// Azurite, for setting up or changing data behind the back of the code
// under test without touching the counts.
func (s *AzureServer) ContainerClient(t testing.TB, name string) *container.Client {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(s.DirectEndpoint+"/"+name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CreateContainer creates container name; one that exists already is
// left as it is.
func (s *AzureServer) CreateContainer(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.ContainerClient(t, name).Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("creating container %s: %v", name, err)
	}
}

// AzureRequestKind names a Blob service request for counting: one of
// AzureList, AzureGet, ... It assumes path-style URLs
// (/account/container/blob), which Azurite on 127.0.0.1 uses.
func AzureRequestKind(r *http.Request) string {
	q := r.URL.Query()
	comp := q.Get("comp")
	segs := strings.SplitN(strings.Trim(r.URL.Path, "/"), "/", 3)
	if len(segs) < 3 || segs[2] == "" || q.Get("restype") != "" {
		if comp == "list" && q.Get("restype") == "container" {
			return AzureList
		}
		return AzureContainer
	}
	switch {
	case comp == "" && r.Method == http.MethodGet:
		return AzureGet
	case comp == "" && r.Method == http.MethodHead:
		return AzureHead
	case comp == "" && r.Method == http.MethodPut, comp == "block":
		return AzurePut
	case comp == "blocklist" && r.Method == http.MethodPut:
		return AzureCommit
	case comp == "" && r.Method == http.MethodDelete:
		return AzureDelete
	}
	return AzureOther
}
