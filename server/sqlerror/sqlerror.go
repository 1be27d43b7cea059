// Package sqlerror is the error a statement fails with when Luna, not
// DuckDB, refuses it: typed with DuckDB's error classes, so a client sees
// the same "Binder Error: …" shape whoever found the fault, and the query
// log knows the class without reading it back out of the text.
package sqlerror

import (
	"errors"
	"fmt"
	"strings"
)

// Class is one of DuckDB's error classes, as its messages name them.
type Class string

const (
	Binder         Class = "Binder"
	IO             Class = "IO"
	InvalidInput   Class = "Invalid Input"
	NotImplemented Class = "Not implemented"
	Parser         Class = "Parser"
)

// Error is a statement's failure of a class. Its text is rendered once,
// by Error: "<Class> Error: <message>", as DuckDB writes its own.
type Error struct {
	Class Class
	err   error // the message, and what it wraps
}

// Errorf returns an error of class c; the format may wrap with %w.
func Errorf(c Class, format string, args ...any) *Error {
	return &Error{Class: c, err: fmt.Errorf(format, args...)}
}

// New returns an error of class c with message msg.
func New(c Class, msg string) *Error { return &Error{Class: c, err: errors.New(msg)} }

func (e *Error) Error() string { return string(e.Class) + " Error: " + e.err.Error() }

// Unwrap returns what the message wraps, if anything.
func (e *Error) Unwrap() error { return errors.Unwrap(e.err) }

// Message is the text after the class.
func (e *Error) Message() string { return e.err.Error() }

// Has reports whether err already carries a class: an *Error, or a
// message of DuckDB's own that starts with one.
func Has(err error) bool {
	var e *Error
	return errors.As(err, &e) || ClassOf(err.Error()) != ""
}

// ClassOf reads the class a DuckDB message starts with ("Catalog Error:
// …" is "Catalog"), or "" when it starts with none. DuckDB's errors reach
// Luna as text through its C API, so for them the text is all there is.
func ClassOf(msg string) string {
	i := strings.Index(msg, " Error: ")
	if i <= 0 || i > 40 {
		return ""
	}
	head := msg[:i]
	for _, r := range head {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == ' ') {
			return ""
		}
	}
	return head
}
