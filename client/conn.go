package client

import (
	"github.com/apache/arrow-go/v18/arrow/memory"

	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// DefaultAddr is the server's default listen address.
const DefaultAddr = "127.0.0.1:7688"

const defaultDialTimeout = 10 * time.Second

// Options configures Dial.
type Options struct {
	Password    string        // sent as AUTH on connect when non-empty
	DialTimeout time.Duration // bounds connecting and authenticating; 0 means 10s
	// Dialer replaces net.Dialer.DialContext, e.g. for tests.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, when set, makes the connection TLS with this configuration
	// (on the Dialer's connection, if any). Without ServerName, the host
	// part of addr is the name the server's certificate must carry.
	TLS *tls.Config
	// Allocator holds received record batches. By default the buffers of
	// released batches are reused for the next ones, which saves the
	// clearing and collection of fresh memory on large results: a value
	// (including a string from array.String.Value) is then valid only
	// until its batch is released, as Arrow specifies. Pass
	// memory.DefaultAllocator to leave every buffer to the garbage
	// collector instead.
	Allocator memory.Allocator
}

// Conn is a connection to a Luna server. It runs one request at a time and
// is not safe for concurrent use; a request made while another is in flight
// (including an open Rows) fails with ErrBusy.
type Conn struct {
	nc net.Conn
	// br is shared by every response: arrow's message reader consumes
	// exactly one message at a time, so nothing of the next response is
	// lost between them.
	br *bufio.Reader

	mem memory.Allocator

	mu     sync.Mutex
	busy   bool
	closed bool
	broken error // why the connection became unusable
}

// Dial connects to the server at addr and, when opts.Password is set,
// authenticates. A refused password yields an *Error.
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	timeout := opts.DialTimeout
	if timeout <= 0 {
		timeout = defaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dial := opts.Dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("luna: dial %s: %w", addr, err)
	}
	if opts.TLS != nil {
		if nc, err = handshake(ctx, nc, addr, opts.TLS); err != nil {
			return nil, err
		}
	}
	c := NewConn(nc)
	if opts.Allocator != nil {
		c.mem = opts.Allocator
	}
	if opts.Password != "" {
		if err := c.Auth(ctx, opts.Password); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// handshake runs the TLS client handshake on nc, closing it on failure.
func handshake(ctx context.Context, nc net.Conn, addr string, cfg *tls.Config) (net.Conn, error) {
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("luna: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// NewConn wraps an established connection, such as one end of a net.Pipe.
// No AUTH is sent; call Auth if the server needs it.
func NewConn(nc net.Conn) *Conn {
	return &Conn{nc: nc, br: bufio.NewReader(nc), mem: bodyAllocator}
}

// Auth sends an AUTH line. The server closes the connection after refusing
// a password, so a refusal (an *Error with Message "DENIED") also breaks c.
func (c *Conn) Auth(ctx context.Context, password string) error {
	if strings.ContainsAny(password, "\r\n") {
		return errors.New("luna: password must not contain CR or LF")
	}
	_, err := c.request(ctx, AppendAuth(nil, password), "AUTH", true)
	if err != nil && isStatusError(err) {
		c.breakWith(err)
	}
	return err
}

// Exec runs one or more statements (separated by ';') and returns an
// *Error if the server reports a failure.
func (c *Conn) Exec(ctx context.Context, sql string) error {
	_, err := c.request(ctx, AppendRequest(nil, PrefixExec, sql), sql, true)
	return err
}

// Query runs sql and streams its result. A query that fails before sending
// rows returns an *Error; a statement that produces no result set returns a
// Rows with an empty schema. ctx governs the whole result, including Next
// and the draining done by Close. The Conn stays busy until the Rows is
// closed or read to its end.
func (c *Conn) Query(ctx context.Context, sql string) (*Rows, error) {
	return c.request(ctx, AppendRequest(nil, PrefixQuery, sql), sql, false)
}

// Do sends req, which must be one complete request as built by
// AppendRequest or AppendAuth, and returns its response like Query. It is
// meant for tools that need control over the framing; input only labels
// errors.
func (c *Conn) Do(ctx context.Context, req []byte, input string) (*Rows, error) {
	return c.request(ctx, req, input, false)
}

// Close closes the connection. An open Rows fails on its next read.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.broken != nil {
		return nil // the socket was closed when c broke
	}
	return c.nc.Close()
}

// request sends req and reads the start of its response. A status table is
// consumed here; anything else becomes a streaming Rows unless wantStatus,
// in which case it is drained and reported as unexpected.
func (c *Conn) request(ctx context.Context, req []byte, input string, wantStatus bool) (*Rows, error) {
	w, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.nc.Write(req); err != nil {
		return nil, c.end(w, fmt.Errorf("luna: sending request: %w", err))
	}
	rdr, sr, err := openResult(c.br, c.mem, input)
	if err != nil {
		return nil, c.end(w, err)
	}
	if isStatusTable(rdr.Schema()) {
		status, err := readStatus(rdr, sr, input)
		rdr.Release()
		if err == nil {
			err = status
		}
		if err = c.end(w, err); err != nil {
			return nil, err
		}
		return emptyRows(), nil
	}
	rows := &Rows{c: c, w: w, rdr: rdr, sr: sr, schema: rdr.Schema()}
	rows.refs.Add(1)
	if wantStatus {
		if err := rows.Close(); err != nil {
			return nil, err
		}
		// Read to its end, yet not what the protocol promises: the server
		// is not the one this client speaks to, so stop using it.
		err := errors.New("luna: expected a status table, got a result set")
		c.breakWith(err)
		return nil, err
	}
	return rows, nil
}

// begin claims c for one request and arms ctx on the socket.
func (c *Conn) begin(ctx context.Context) (*watch, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("luna: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.broken != nil:
		return nil, brokenError(c.broken)
	case c.busy:
		return nil, ErrBusy
	}
	c.busy = true
	return watchContext(ctx, c.nc), nil
}

// end releases c after a request and returns err, translated to the
// context's error when ctx interrupted the I/O. Any error other than a
// complete status table leaves the response stream at an unknown position,
// so it breaks c.
func (c *Conn) end(w *watch, err error) error {
	err = w.stop(err)
	if err != nil && !isStatusError(err) {
		c.breakWith(err)
	}
	c.mu.Lock()
	c.busy = false
	c.mu.Unlock()
	return err
}

// breakWith marks c unusable and closes its socket, which also tells the
// server to stop sending.
func (c *Conn) breakWith(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil || c.closed {
		return
	}
	c.broken = cause
	c.nc.Close()
}

// watch applies a context to socket I/O: its deadline becomes the socket
// deadline, and cancelling it sets a deadline in the past, which makes any
// blocked read or write return at once.
type watch struct {
	ctx     context.Context
	nc      net.Conn
	cancel  func() bool
	stopped chan struct{} // closed once the cancellation has touched nc
}

func watchContext(ctx context.Context, nc net.Conn) *watch {
	w := &watch{ctx: ctx, nc: nc}
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	if ctx.Done() != nil {
		w.stopped = make(chan struct{})
		w.cancel = context.AfterFunc(ctx, func() {
			nc.SetDeadline(time.Unix(1, 0))
			close(w.stopped)
		})
	}
	return w
}

// stop disarms the context and clears the socket deadline. If err is a
// timeout caused by the context, the context's error is returned instead.
func (w *watch) stop(err error) error {
	if w.cancel != nil && !w.cancel() {
		// The callback ran or is running; wait so that clearing the
		// deadline below is not undone by it.
		<-w.stopped
	}
	w.nc.SetDeadline(time.Time{})
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := w.ctx.Err(); cerr != nil {
		return fmt.Errorf("luna: %w", cerr)
	}
	if _, ok := w.ctx.Deadline(); ok {
		// The socket deadline can fire just before the context's timer.
		return fmt.Errorf("luna: %w", context.DeadlineExceeded)
	}
	return err
}

// emptyRows is the result of a statement that produced no result set.
func emptyRows() *Rows {
	r := &Rows{schema: arrow.NewSchema(nil, nil), done: true}
	r.refs.Add(1)
	return r
}
