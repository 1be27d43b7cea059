//go:build duckdb_arrow

package appliance

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reloads are what SIGHUP (systemctl reload) re-reads without a restart:
// certificates, the users file. Each reload keeps what it had when the new
// version is bad, so a failed reload only logs.
type reloads struct {
	mu  sync.Mutex
	fns []reload
}

type reload struct {
	what string
	fn   func(context.Context) error
}

// add registers fn, which re-reads what, for every SIGHUP.
func (r *reloads) add(what string, fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fns = append(r.fns, reload{what, fn})
}

// all runs every registered reload in order.
func (r *reloads) all(ctx context.Context, log *slog.Logger) {
	r.mu.Lock()
	fns := append([]reload(nil), r.fns...)
	r.mu.Unlock()
	for _, rl := range fns {
		if err := rl.fn(ctx); err != nil {
			log.Error("reload failed; keeping the previous version", "what", rl.what, "err", err)
			continue
		}
		log.Info("reloaded", "what", rl.what)
	}
}

// onSIGHUP runs every reload on each SIGHUP until ctx ends. SIGHUP is
// taken from the start, so one sent during startup does not kill the
// process (Go's default for it).
func (r *reloads) onSIGHUP(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ch:
				log.Info("SIGHUP: reloading")
				r.all(ctx, log)
			case <-ctx.Done():
				return
			}
		}
	}()
}
