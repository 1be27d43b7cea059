package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lunadb/luna/deploy"
	"golang.org/x/crypto/ssh"
)

// RestartOptions say how to restart and when an instance counts as back.
type RestartOptions struct {
	Unit string // luna
	// HealthPort serves /readyz (7689).
	HealthPort int
	// Timeout bounds the wait for /readyz after each restart.
	Timeout time.Duration
	// Interval is the pause between /readyz polls.
	Interval time.Duration
	// Progress receives one line per step (stderr).
	Progress *deploy.Progress
}

// RollingRestart restarts the service on each instance in turn and waits
// for its /readyz to answer 200 before going on. It stops at the first
// instance that fails, naming the ones left alone.
func RollingRestart(ctx context.Context, instances []deploy.Instance, d *Dialer, opts RestartOptions) error {
	if opts.Unit == "" {
		opts.Unit = "luna"
	}
	if opts.HealthPort == 0 {
		opts.HealthPort = deploy.HealthPort
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if len(instances) == 0 {
		return errors.New("the group has no instances")
	}
	for i, in := range instances {
		if err := restartOne(ctx, in, d, opts); err != nil {
			var left []string
			for _, o := range instances[i+1:] {
				left = append(left, o.Name)
			}
			msg := fmt.Sprintf("rolling restart stopped at %s (%d of %d)", in.Name, i+1, len(instances))
			if len(left) > 0 {
				msg += "; not restarted: " + strings.Join(left, ", ")
			}
			return fmt.Errorf("%s: %w", msg, err)
		}
		opts.Progress.Printf("restarted %s (%d of %d)", in.Name, i+1, len(instances))
	}
	return nil
}

func restartOne(ctx context.Context, in deploy.Instance, d *Dialer, opts RestartOptions) error {
	c, err := d.Dial(ctx, in)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	opts.Progress.Printf("restarting %s on %s", opts.Unit, in.Name)
	sess, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("opening a session: %w", err)
	}
	defer sess.Close()
	var stderr limitedBuffer
	sess.Stderr = &stderr
	cmd := d.sudo("systemctl restart " + shellQuote(opts.Unit))
	if err := sess.Run(cmd); err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return &commandError{host: in.Name, cmd: cmd, status: exit.ExitStatus(), stderr: stderr.String()}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("running %s: %w", cmd, err)
	}
	return waitReady(ctx, in, d, c, opts)
}

// waitReady polls http://<ip>:<port>/readyz until it answers 200. With a
// jump host the instance's address is reached through the bastion.
func waitReady(ctx context.Context, in deploy.Instance, d *Dialer, c *Client, opts RestartOptions) error {
	ip, err := in.Address(d.opts.InternalIP)
	if err != nil {
		return err
	}
	port := opts.HealthPort
	if in.HealthPort != 0 {
		port = in.HealthPort
	}
	url := "http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + "/readyz"
	tr := &http.Transport{DisableKeepAlives: true}
	if c.jump != nil {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.jump.DialContext(ctx, network, addr)
		}
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	last := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				opts.Progress.Printf("%s is ready (%s answered 200 after %s)", in.Name, url, time.Since(start).Round(100*time.Millisecond))
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		opts.Progress.Waiting(url, last, start)
		if err := deploy.Sleep(ctx, opts.Interval); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s did not become ready within %s: %s last answered: %s (see luna-deploy logs, or journalctl -u luna on the instance)",
					in.Name, opts.Timeout, url, last)
			}
			return err
		}
	}
}
