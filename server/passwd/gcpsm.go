package passwd

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/compute/metadata"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
)

// A Secret Manager source names a secret, and optionally one of its
// versions (a number, an alias or "latest", the default), in full or for the
// VM's own project:
//
//	projects/<project>/secrets/<secret>[/versions/<version>]
//	<secret>[/versions/<version>]
var (
	gsmFullRE  = regexp.MustCompile(`^projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})/secrets/([A-Za-z0-9_-]{1,255})(?:/versions/([A-Za-z0-9_-]{1,63}))?$`)
	gsmShortRE = regexp.MustCompile(`^([A-Za-z0-9_-]{1,255})(?:/versions/([A-Za-z0-9_-]{1,63}))?$`)
)

// gsmName is a parsed Secret Manager source; project is empty for the short
// form, which takes the VM's project from the metadata server.
type gsmName struct {
	project, secret, version string
}

func parseGSMName(name string) (gsmName, error) {
	if m := gsmFullRE.FindStringSubmatch(name); m != nil {
		return gsmName{project: m[1], secret: m[2], version: defaultVersion(m[3])}, nil
	}
	if strings.HasPrefix(name, "projects/") {
		return gsmName{}, errors.New("want projects/<project>/secrets/<secret>[/versions/<version>] (a project ID or number, a secret ID of letters, digits, '-' and '_')")
	}
	if m := gsmShortRE.FindStringSubmatch(name); m != nil {
		return gsmName{secret: m[1], version: defaultVersion(m[2])}, nil
	}
	return gsmName{}, errors.New("want <secret>[/versions/<version>] or projects/<project>/secrets/<secret>[/versions/<version>] (a secret ID of letters, digits, '-' and '_')")
}

func defaultVersion(v string) string {
	if v == "" {
		return "latest"
	}
	return v
}

func (n gsmName) resource(project string) string {
	return "projects/" + project + "/secrets/" + n.secret + "/versions/" + n.version
}

// gsmClientOptions are added to the Secret Manager client's options; the
// tests point it at a fake on loopback.
var gsmClientOptions []option.ClientOption

// gsmGetter reads a Secret Manager secret version with the official client
// over its REST transport, authenticated by Application Default
// Credentials: on a VM the service account's token from the metadata
// server, which must be allowed roles/secretmanager.secretAccessor on the
// secret.
func gsmGetter(name string, log *slog.Logger) (getter, error) {
	n, err := parseGSMName(name)
	if err != nil {
		return nil, err
	}
	md := metadata.NewWithOptions(&metadata.Options{
		Client: &http.Client{Transport: &http.Transport{
			// The metadata server is link-local: never through a proxy.
			Proxy:       nil,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		}, Timeout: 5 * time.Second},
	})
	var (
		mu      sync.Mutex
		client  *secretmanager.Client
		project = n.project
	)
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if project == "" {
			p, err := md.ProjectIDWithContext(ctx)
			if err != nil {
				return "", fmt.Errorf("asking the metadata server for the project of secret %q: %w", n.secret, err)
			}
			project = p
			log.Debug("secret in the VM's project", "project", project)
		}
		if client == nil {
			// Made on first use, so that credentials a booting VM cannot
			// find yet are looked for again on the next attempt.
			opts := append([]option.ClientOption{
				// The client's own debug log would show the payload.
				option.WithLogger(slog.New(slog.DiscardHandler)),
			}, gsmClientOptions...)
			c, err := secretmanager.NewRESTClient(ctx, opts...)
			if err != nil {
				return "", fmt.Errorf("creating the Secret Manager client: %w", err)
			}
			client = c
		}
		resource := n.resource(project)
		resp, err := client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: resource},
			// One request per attempt: Fetch retries with its own backoff.
			gax.WithRetry(func() gax.Retryer { return nil }))
		if err != nil {
			return "", classifyGSM(resource, err)
		}
		data := resp.GetPayload().GetData()
		if sum := resp.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))) != *sum {
			return "", fmt.Errorf("secret %s: the payload does not match its CRC32C checksum", resource)
		}
		return string(data), nil
	}, nil
}

// classifyGSM sorts a Secret Manager error into final or worth retrying, as
// classifyAWS does: no answer, throttling and server errors are retried; an
// answer that does not find or refuses is final.
func classifyGSM(resource string, err error) error {
	status := gsmHTTPStatus(err)
	wrapped := fmt.Errorf("accessing %s: %w", resource, err)
	switch {
	case status == 0:
		return wrapped
	case status == http.StatusNotFound:
		return final(ErrNotFound, wrapped)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return final(ErrAccessDenied, wrapped)
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return wrapped
	}
	// A disabled or destroyed version (FAILED_PRECONDITION), a malformed
	// name: asking again changes nothing.
	return final(nil, wrapped)
}

// gsmHTTPStatus is the HTTP status of a Secret Manager error, or 0 if the
// request got no answer.
func gsmHTTPStatus(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code != 0 {
		return ge.Code
	}
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		if c := ae.HTTPCode(); c > 0 {
			return c
		}
		if s := ae.GRPCStatus(); s != nil {
			return grpcHTTPStatus[s.Code()]
		}
	}
	return 0
}

// grpcHTTPStatus maps the gRPC codes Secret Manager answers with to their
// HTTP equivalents (google.rpc.Code).
var grpcHTTPStatus = map[codes.Code]int{
	codes.InvalidArgument:    http.StatusBadRequest,
	codes.FailedPrecondition: http.StatusBadRequest,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.NotFound:           http.StatusNotFound,
	codes.ResourceExhausted:  http.StatusTooManyRequests,
	codes.Internal:           http.StatusInternalServerError,
	codes.Unavailable:        http.StatusServiceUnavailable,
	codes.DeadlineExceeded:   http.StatusGatewayTimeout,
}
