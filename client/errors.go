package client

import (
	"errors"
	"fmt"
	"strings"
)

// Error is an error reported by the server: a status table whose error
// column was not OK, a refused AUTH, or a query aborted part-way.
type Error struct {
	Input   string // the statement (or "AUTH") the error belongs to
	Message string // the server's error message
	Aborted bool   // the server aborted a result stream after sending rows
}

func (e *Error) Error() string { return "luna: " + e.Message }

var (
	// ErrBroken is wrapped by errors from a Conn that can no longer be
	// used: an earlier response was cut short, or the server hung up.
	ErrBroken = errors.New("luna: connection broken")

	// ErrBusy is returned when a request is issued while a Rows from an
	// earlier query is still open on the same Conn.
	ErrBusy = errors.New("luna: connection busy: close the previous Rows first")

	// ErrClosed is returned by calls on a closed Conn.
	ErrClosed = errors.New("luna: connection closed")

	// ErrIncompleteResult is returned when the connection ends before a
	// response's end-of-stream marker.
	ErrIncompleteResult = errors.New("luna: connection closed before end of result")
)

// brokenError explains why a Conn is broken while still matching ErrBroken.
func brokenError(cause error) error {
	return fmt.Errorf("%w: %s", ErrBroken, strings.TrimPrefix(cause.Error(), "luna: "))
}

// isStatusError reports whether err came from a complete status table, which
// leaves the connection positioned at the next response.
func isStatusError(err error) bool {
	var e *Error
	return errors.As(err, &e) && !e.Aborted
}
