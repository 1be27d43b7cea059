// Package systemd tells systemd about the server's life: readiness,
// status lines, start-timeout extensions, watchdog pings and stopping,
// through the notification socket systemd passes in NOTIFY_SOCKET. Without
// that variable every call is a silent no-op.
package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends state notifications to systemd.
type Notifier struct {
	log *slog.Logger
}

// NewNotifier returns a notifier logging send failures to log.
func NewNotifier(log *slog.Logger) *Notifier { return &Notifier{log: log} }

func (n *Notifier) send(state string) {
	// The variable stays set: the watchdog goroutine and later calls
	// need it too.
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notification failed", "state", state, "err", err)
	}
}

// Ready reports that the service is up, with a status line.
func (n *Notifier) Ready(status string) {
	n.send(daemon.SdNotifyReady + "\nSTATUS=" + status)
}

// Status sets the status line shown by systemctl status.
func (n *Notifier) Status(status string) { n.send("STATUS=" + status) }

// ExtendTimeout asks systemd to wait d more from now for startup (or
// shutdown) to complete.
func (n *Notifier) ExtendTimeout(d time.Duration) {
	n.send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds()))
}

// Stopping reports that the service is shutting down.
func (n *Notifier) Stopping(status string) {
	n.send(daemon.SdNotifyStopping + "\nSTATUS=" + status)
}

// Watchdog pings systemd's watchdog at half the interval it asks for, but
// only while probe succeeds: a process that is alive yet cannot answer is
// then restarted by systemd. probe gets a context that ends at the next
// ping time. Watchdog returns when ctx ends, or at once when systemd set no
// watchdog for this process.
func (n *Notifier) Watchdog(ctx context.Context, probe func(context.Context) error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("reading the systemd watchdog setting", "err", err)
		return
	}
	if interval == 0 {
		return
	}
	every := interval / 2
	n.log.Info("systemd watchdog enabled", "interval", interval, "ping_every", every)
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		err := probe(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				n.log.Error("health probe failed; not feeding the systemd watchdog", "err", err)
			}
			failing = true
		default:
			if failing {
				n.log.Info("health probe passes again; feeding the systemd watchdog")
			}
			failing = false
			n.send(daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
