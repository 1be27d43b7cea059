// Package health is the server's HTTP side port: /healthz (the process is
// alive), /readyz (it serves queries: 503 until the startup SQL has run and
// again while draining) and /metrics (Prometheus text format).
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves the health endpoints.
type Server struct {
	ready  atomic.Bool
	reason atomic.Value // string: why not ready
	http   *http.Server
}

// New returns a health server exposing the metrics in g.
func New(g prometheus.Gatherer, log *slog.Logger) *Server {
	s := &Server{}
	s.reason.Store("starting")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, s.reason.Load())
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}))
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// SetReady marks the server ready for queries.
func (s *Server) SetReady() { s.ready.Store(true) }

// SetNotReady marks the server not ready, with the reason /readyz gives.
func (s *Server) SetNotReady(reason string) {
	s.reason.Store(reason)
	s.ready.Store(false)
}

// Serve serves on ln until Shutdown; it then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health server on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops the server, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
