package passwd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/compute/metadata"
)

// gcpGetter reads a GCE metadata attribute: the instance's own if it is set,
// else the project-wide one, so a password can be shared by every VM of a
// project and still be overridden per VM. The metadata server is
// 169.254.169.254 unless GCE_METADATA_HOST names another host:port.
func gcpGetter(attr string, log *slog.Logger) getter {
	rt := &lastErrTransport{base: &http.Transport{
		// No proxy: the metadata server is link-local and must be asked
		// directly.
		Proxy:       nil,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}}
	c := metadata.NewWithOptions(&metadata.Options{
		Client: &http.Client{Transport: rt, Timeout: 5 * time.Second},
	})
	return func(ctx context.Context) (string, error) {
		v, err := c.InstanceAttributeValueWithContext(ctx, attr)
		if notDefined(err) {
			log.Debug("no instance attribute, trying the project attribute", "attribute", attr)
			v, err = c.ProjectAttributeValueWithContext(ctx, attr)
			if notDefined(err) {
				return "", final(ErrNotFound, fmt.Errorf("neither the instance nor the project has the metadata attribute %q", attr))
			}
		}
		if err == nil {
			return v, nil
		}
		var me *metadata.Error
		if errors.As(err, &me) {
			switch {
			case me.Code == http.StatusUnauthorized || me.Code == http.StatusForbidden:
				return "", final(ErrAccessDenied, err)
			case me.Code == http.StatusTooManyRequests || me.Code >= 500:
				return "", err
			default:
				return "", final(nil, err)
			}
		}
		// The library retries refused connections itself; when our deadline
		// ends its wait it reports only the context error.
		if ctx.Err() != nil {
			if last := rt.last(); last != nil {
				return "", last
			}
		}
		return "", err
	}
}

func notDefined(err error) bool {
	var nd metadata.NotDefinedError
	return errors.As(err, &nd)
}

// lastErrTransport remembers the most recent transport failure of a request
// whose context was still live.
type lastErrTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	err  error
}

func (t *lastErrTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil && r.Context().Err() == nil {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
	}
	return resp, err
}

func (t *lastErrTransport) last() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
