// Package recovery is the server's safety net for Go panics: every
// goroutine that serves a client (its session, its statement, a shared
// download, the table watcher, the health port) runs under it, so a bug
// reached by one request fails that request alone instead of killing the
// process and every other client with it.
//
// A recovered panic is logged once at ERROR with its stack and where it
// happened, counted in luna_panics_total{where=…}, and turned into an
// *Error for the client that was being served. The panic's value is logged
// only when the runtime made it (nil dereference, failed interface
// conversion, index out of range): any other value may carry data from a
// statement or a secret, so only its type is logged; the stack says where
// it came from.
//
// Inject, a no-op unless built with the lunapanic tag, lets tests raise a
// panic at each guarded place.
package recovery

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Places the server guards, the values of the where label.
const (
	Session   = "session"   // a connection's serving and reading goroutines
	Statement = "statement" // running one request's SQL, on any goroutine
	Download  = "download"  // a shared object download
	Progress  = "progress"  // download progress logging
	Watch     = "watch"     // the table watcher's checks and reloads
	Health    = "health"    // the health port: handlers and metrics collection
	Serve     = "serve"     // the accept loop
	Watchdog  = "watchdog"  // the systemd watchdog's health probe
	Startup   = "startup"   // startup-SQL progress tracking
)

// panics is process-wide, like the panics it counts: every guarded place
// reaches it without being handed a metrics object.
var panics = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "luna_panics_total",
	Help: "Go panics recovered, by where they happened (session, statement, download, watch, health, …): each is a bug, logged with its stack.",
}, []string{"where"})

func init() {
	// Known places show 0 before their first panic, so an alert on the
	// rate has a series to start from.
	for _, w := range []string{Session, Statement, Download, Progress, Watch, Health, Serve, Watchdog, Startup} {
		panics.WithLabelValues(w)
	}
}

// Collector is luna_panics_total, for registering with a metrics registry.
func Collector() prometheus.Collector { return panics }

// Error is what a recovered panic becomes for the client that was being
// served.
type Error struct {
	Where string // the place, as in luna_panics_total
	Doing string // what was being done, in the client's terms
}

func (e *Error) Error() string {
	return fmt.Sprintf("Internal Error: %s failed unexpectedly (a bug; the server logged it)", e.Doing)
}

// Is reports whether err is or wraps a recovered panic.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Recover, deferred, stops a panic in the calling goroutine: it logs and
// counts it, then calls then (if non-nil) with the error for the client.
// attrs are extra log attributes (key, value pairs), never SQL or secrets.
// It must be deferred directly: defer recovery.Recover(…).
func Recover(log *slog.Logger, where, doing string, then func(*Error), attrs ...any) {
	v := recover()
	if v == nil {
		return
	}
	e := handle(log, where, doing, v, attrs)
	if then == nil {
		return
	}
	// A panic while answering would be outside any recovery: stop it too.
	defer func() {
		if v := recover(); v != nil {
			handle(log, where, "answering after "+doing, v, attrs)
		}
	}()
	then(e)
}

// Do runs fn and returns its error; a panic in fn is logged, counted and
// returned as an *Error.
func Do(log *slog.Logger, where, doing string, fn func() error, attrs ...any) (err error) {
	defer Recover(log, where, doing, func(e *Error) { err = e }, attrs...)
	return fn()
}

// Func is fn under Do, for the likes of errgroup.Group.Go: a panic on a
// statement's helper goroutine becomes the statement's error.
func Func(log *slog.Logger, where, doing string, fn func() error, attrs ...any) func() error {
	return func() error { return Do(log, where, doing, fn, attrs...) }
}

// Go runs fn on a new goroutine; a panic in it is logged and counted, and
// ends fn alone.
func Go(log *slog.Logger, where, doing string, fn func(), attrs ...any) {
	go func() {
		defer Recover(log, where, doing, nil, attrs...)
		fn()
	}()
}

func handle(log *slog.Logger, where, doing string, v any, attrs []any) *Error {
	stack := debug.Stack()
	panics.WithLabelValues(where).Inc()
	if log == nil {
		log = slog.Default()
	}
	args := make([]any, 0, len(attrs)+8)
	args = append(args, "where", where, "doing", doing)
	args = append(args, attrs...)
	args = append(args, "panic", describe(v), "stack", string(stack))
	log.Error("recovered from a panic; the server goes on", args...)
	return &Error{Where: where, Doing: doing}
}

// describe is what the log tells of a panic's value: see the package doc.
func describe(v any) string {
	if re, ok := v.(runtime.Error); ok {
		return re.Error()
	}
	return fmt.Sprintf("value of type %T (not logged: it may hold data)", v)
}
