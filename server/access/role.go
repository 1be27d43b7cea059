// Package access decides who may run what: the roles a connection can
// hold, and (in later files) the check of a request's statements against
// the connection's role before anything of it runs.
package access

import "fmt"

// Role is what a connection may do. Roles are ordered: each may do all
// that the ones before it may.
type Role uint8

const (
	// Read runs statements that only read: queries, DESCRIBE, SHOW,
	// EXPLAIN, session-local SET/RESET.
	Read Role = iota + 1
	// Write also creates, changes and drops tables and views, and writes
	// files with COPY … TO.
	Write
	// Admin may do everything: secrets, global settings, ATTACH, INSTALL,
	// LOAD, CHECKPOINT, and other connections' sessions. The --passwd
	// password and a server without any password give it.
	Admin
)

// String is the role's name as written in a users file.
func (r Role) String() string {
	switch r {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return Read, nil
	case "write":
		return Write, nil
	case "admin":
		return Admin, nil
	}
	return 0, fmt.Errorf("unknown role %q: expected read, write or admin", s)
}

// Allows reports whether r may do what need requires.
func (r Role) Allows(need Role) bool { return r >= need }
