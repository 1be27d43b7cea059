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
	// Settle is how long /readyz must go on answering 200 before the next
	// instance is restarted. A load balancer puts an instance back in
	// rotation only after its healthy threshold of passing checks; moving
	// on sooner takes the next one out while this one is not yet back, and
	// with two nodes nothing serves. Set it to the healthy threshold times
	// the check interval, plus one interval. 0: move on at the first 200.
	Settle time.Duration
	// Interval is the pause between /readyz polls.
	Interval time.Duration
	// Progress receives one line per step (stderr).
	Progress *deploy.Progress
}

// RollingRestart restarts the service on each instance in turn and waits
// for its /readyz to answer 200, and to keep answering it for Settle,
// before going on. It stops at the first instance that fails, naming the
// ones left alone. A restart takes at least the server's drain delay: on
// SIGTERM it answers /readyz 503 but keeps serving for that long, so that
// the load balancer stops sending it clients before it stops accepting
// them, and systemctl restart returns once the new process is ready.
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
	opts.Progress.Printf("restarting %s on %s (it drains first: --drain-delay, then running requests finish)", opts.Unit, in.Name)
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

// waitReady polls http://<ip>:<port>/readyz until it answers 200 and has
// kept answering 200 for opts.Settle. With a jump host the instance's
// address is reached through the bastion.
func waitReady(ctx context.Context, in deploy.Instance, d *Dialer, c *Client, opts RestartOptions) error {
	port := opts.HealthPort
	if in.HealthPort != 0 {
		port = in.HealthPort
	}
	tr := &http.Transport{DisableKeepAlives: true}
	var url string
	if d.Proxied() {
		// Through a proxy command only SSH reaches the instance: ask its
		// health port from the instance itself, over the SSH connection.
		url = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/readyz"
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.DialContext(ctx, network, addr)
		}
	} else {
		ip, err := in.Address(d.opts.InternalIP)
		if err != nil {
			return err
		}
		url = "http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + "/readyz"
	}
	if c.jump != nil {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.jump.DialContext(ctx, network, addr)
		}
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout+opts.Settle)
	defer cancel()
	start := time.Now()
	var readySince time.Time // zero: not answering 200
	last := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		ok := false
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
			last = resp.Status
		} else {
			last = err.Error()
		}
		pause := opts.Interval
		switch {
		case ok && readySince.IsZero():
			readySince = time.Now()
			opts.Progress.Printf("%s is ready (%s answered 200 after %s)", in.Name, url, time.Since(start).Round(100*time.Millisecond))
			fallthrough
		case ok:
			held := time.Since(readySince)
			if held >= opts.Settle {
				if opts.Settle > 0 {
					opts.Progress.Printf("%s stayed ready for %s (--settle): the load balancer counts it healthy again", in.Name, opts.Settle)
				}
				return nil
			}
			pause = min(pause, opts.Settle-held)
		case !readySince.IsZero():
			opts.Progress.Printf("%s stopped being ready after %s: %s answered %s", in.Name, time.Since(readySince).Round(100*time.Millisecond), url, last)
			readySince = time.Time{}
		default:
			opts.Progress.Waiting(url, last, start)
		}
		if !ok && time.Since(start) >= opts.Timeout {
			return notReady(in, url, last, opts)
		}
		if err := deploy.Sleep(ctx, pause); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return notReady(in, url, last, opts)
			}
			return err
		}
	}
}

func notReady(in deploy.Instance, url, last string, opts RestartOptions) error {
	within := opts.Timeout.String()
	if opts.Settle > 0 {
		within = fmt.Sprintf("%s and stay ready for %s", opts.Timeout, opts.Settle)
	}
	return fmt.Errorf("%s did not become ready within %s: %s last answered: %s (see luna-deploy logs, or journalctl -u luna on the instance)",
		in.Name, within, url, last)
}
