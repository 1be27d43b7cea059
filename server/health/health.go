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

	"github.com/lunadb/luna/server/recovery"
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
		Handler:           guard(mux, log),
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

// guard answers a request whose handler panicked with 500 and goes on
// serving. net/http would recover the panic too, but drop the connection
// unanswered and log outside Luna's log and luna_panics_total.
func guard(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &startedWriter{ResponseWriter: w}
		err := recovery.Do(log, recovery.Health, "serving "+r.URL.Path, func() error {
			recovery.Inject("health", r.URL.Path)
			h.ServeHTTP(sw, r)
			return nil
		}, "path", r.URL.Path, "remote", r.RemoteAddr)
		if err == nil {
			return
		}
		if sw.started {
			// Part of the answer is out: cut it off rather than append.
			panic(http.ErrAbortHandler)
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	})
}

// startedWriter notes whether a response was begun.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startedWriter) WriteHeader(code int) {
	w.started = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *startedWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *startedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
