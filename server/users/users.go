// Package users holds the named users a server accepts (--users-file,
// --users-from): their bcrypt password hashes and roles, read from a
// users file and re-read when it changes, and the check of a name and
// password against them.
//
// A users file has one user per line, NAME:HASH:ROLE:
//
//	# comment
//	alice:$2y$10$…:admin
//	bob:$2b$12$…:read
//
// HASH is a bcrypt hash ($2a$, $2b$ or $2y$), as `htpasswd -B` and
// `luna user add` write it; ROLE is read, write or admin, and a line
// without it (the output of htpasswd) gets read. NAME is 1 to 64 of
// A-Z a-z 0-9 . _ @ -. Blank lines and lines starting with # are skipped.
// Anything else is an error naming the line and the problem; errors never
// hold a hash or a password.
package users

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lunadb/luna/server/access"
	"golang.org/x/crypto/bcrypt"
)

// User is one entry of a users file.
type User struct {
	Name string
	Hash string
	Role access.Role
	Line int // 1-based line number in the file
}

// MaxNameLen is the longest user name.
const MaxNameLen = 64

// MaxCost is the highest bcrypt cost accepted, as for htpasswd -B -C.
const MaxCost = 17

// ValidName reports whether name may name a user.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == '@' || c == '-':
		default:
			return false
		}
	}
	return true
}

// ErrNotEntry is returned by ParseLine for blank and comment lines.
var ErrNotEntry = errors.New("not a user entry")

// ParseLine parses one line of a users file (without its line break).
// Blank and comment lines return ErrNotEntry. Other errors describe the
// problem without the line's content.
func ParseLine(line string) (User, error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return User{}, ErrNotEntry
	}
	fields := strings.Split(line, ":")
	if len(fields) < 2 || len(fields) > 3 {
		return User{}, errors.New("want NAME:HASH:ROLE (or NAME:HASH, as htpasswd -B writes it)")
	}
	u := User{Name: fields[0], Hash: fields[1], Role: access.Read}
	if !ValidName(u.Name) {
		return User{}, fmt.Errorf("bad user name: want 1 to %d characters of A-Z a-z 0-9 . _ @ -", MaxNameLen)
	}
	if err := checkHash(u.Hash); err != nil {
		return User{}, fmt.Errorf("user %q: %w", u.Name, err)
	}
	if len(fields) == 3 {
		r, err := access.ParseRole(fields[2])
		if err != nil {
			return User{}, fmt.Errorf("user %q: %s", u.Name, roleProblem(fields[2]))
		}
		u.Role = r
	}
	return u, nil
}

// roleProblem words a bad role, naming it only when it looks like a word
// someone meant as a role, never something that could be a password.
func roleProblem(role string) string {
	const want = "want read, write or admin"
	if role == "" {
		return "empty role: " + want
	}
	if len(role) > 16 || strings.IndexFunc(role, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
		return "unknown role: " + want
	}
	return fmt.Sprintf("unknown role %q: %s", role, want)
}

// otherSchemes are hash formats htpasswd and crypt(3) write that Luna
// does not take, by prefix, to say which one was found.
var otherSchemes = []struct{ prefix, name string }{
	{"$apr1$", "Apache MD5 (htpasswd -m)"},
	{"{SHA}", "SHA-1 (htpasswd -s)"},
	{"$1$", "MD5-crypt"},
	{"$5$", "SHA-256-crypt"},
	{"$6$", "SHA-512-crypt"},
	{"$argon2", "argon2"},
	{"$scrypt$", "scrypt"},
}

// checkHash accepts a well-formed bcrypt hash.
func checkHash(h string) error {
	const hint = "write a bcrypt hash with `luna user add` or `htpasswd -B`"
	if h == "" {
		return errors.New("empty password hash; " + hint)
	}
	if strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$") {
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil || len(h) != 60 {
			return errors.New("malformed bcrypt hash; " + hint)
		}
		if cost > MaxCost {
			// Each check would take many seconds of a core, for every AUTH.
			return fmt.Errorf("bcrypt cost %d is above %d", cost, MaxCost)
		}
		return nil
	}
	for _, s := range otherSchemes {
		if strings.HasPrefix(h, s.prefix) {
			return fmt.Errorf("unsupported hash type %s: only bcrypt ($2a$, $2b$, $2y$) is accepted; %s", s.name, hint)
		}
	}
	if strings.HasPrefix(h, "$") || strings.HasPrefix(h, "{") {
		return errors.New("unknown hash type: only bcrypt ($2a$, $2b$, $2y$) is accepted; " + hint)
	}
	return errors.New("the password is not hashed (clear text is refused); " + hint)
}

// LineError is a problem on one line of a users file.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// maxErrors caps the problems one parse reports: enough to fix a file in
// one go, not a flood for a file that is not a users file at all.
const maxErrors = 10

// Parse reads a users file. Its error joins a *LineError per bad line
// (the first few of them).
func Parse(text string) ([]User, error) {
	var out []User
	var errs []error
	seen := map[string]int{}
	bad := func(n int, err error) {
		if len(errs) < maxErrors {
			errs = append(errs, &LineError{Line: n, Err: err})
		} else if len(errs) == maxErrors {
			errs = append(errs, errors.New("more errors follow"))
		}
	}
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		u, err := ParseLine(strings.TrimSuffix(line, "\r"))
		if errors.Is(err, ErrNotEntry) {
			continue
		}
		if err != nil {
			bad(n, err)
			continue
		}
		if first, dup := seen[u.Name]; dup {
			bad(n, fmt.Errorf("user %q is already defined on line %d", u.Name, first))
			continue
		}
		seen[u.Name] = n
		u.Line = n
		out = append(out, u)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// FormatLine is the users-file line for u.
func FormatLine(u User) string { return u.Name + ":" + u.Hash + ":" + u.Role.String() }
