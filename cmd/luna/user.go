//go:build duckdb_arrow

package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/users"
)

func init() {
	subcommands["user"] = func(args []string, stdout, stderr io.Writer) int {
		return userCommand(args, stdinTerminal(), stdout, stderr)
	}
}

// defaultUsersFile is where `luna user` edits when neither --users-file
// nor LUNA_USERS_FILE says otherwise.
const defaultUsersFile = "/etc/luna/users"

const userUsage = `Usage:
  luna user add NAME --role read|write|admin [--users-file PATH] [--password-stdin] [--cost N]
  luna user remove NAME [--users-file PATH]
  luna user list [--users-file PATH]

Edits the users file of --users-file (default: LUNA_USERS_FILE, else
/etc/luna/users). add prompts twice for the password on a terminal, or
reads one line from stdin with --password-stdin, and stores its bcrypt
hash, replacing NAME's line if there is one. The file is replaced
atomically; other lines and comments are kept, and so are its mode and
group (0600 for a new file). A running server picks the change up by
itself. list prints names and roles, never hashes.
`

// input is where add reads the password: a terminal it may prompt on, or
// a stream to read one line from.
type input struct {
	r io.Reader
	// readSecret reads a line without echo; nil when r is not a terminal.
	readSecret func() ([]byte, error)
}

func stdinTerminal() input {
	in := input{r: os.Stdin}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		in.readSecret = func() ([]byte, error) { return term.ReadPassword(fd) }
	}
	return in
}

// errUsage marks a malformed command line: exit code 2.
var errUsage = errors.New("usage")

// userCommand is `luna user ...`; it returns the exit code.
func userCommand(args []string, in input, stdout, stderr io.Writer) int {
	err := runUser(args, in, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		io.WriteString(stdout, userUsage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "luna user: %v\n\n%s", err, userUsage)
		return 2
	default:
		fmt.Fprintf(stderr, "luna user: %v\n", err)
		return 1
	}
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func runUser(args []string, in input, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("missing add, remove or list")
	}
	verb := args[0]
	fs := flag.NewFlagSet("luna user "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	path := fs.String("users-file", "", "")
	var role *string
	var fromStdin *bool
	var cost *int
	switch verb {
	case "add":
		role = fs.String("role", "", "")
		fromStdin = fs.Bool("password-stdin", false, "")
		cost = fs.Int("cost", bcrypt.DefaultCost, "")
	case "remove", "list":
	case "-h", "--help", "help":
		return flag.ErrHelp
	default:
		return usageErr("unknown command %q: want add, remove or list", verb)
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	if *path == "" {
		*path = os.Getenv("LUNA_USERS_FILE")
	}
	if *path == "" {
		*path = defaultUsersFile
	}

	if verb == "list" {
		if len(pos) != 0 {
			return usageErr("list takes no arguments")
		}
		return listUsers(*path, stdout)
	}
	if len(pos) != 1 {
		return usageErr("%s takes one user name", verb)
	}
	name := pos[0]
	if !users.ValidName(name) {
		return usageErr("bad user name %q: want 1 to %d characters of A-Z a-z 0-9 . _ @ -", name, users.MaxNameLen)
	}
	if verb == "remove" {
		return editUsers(*path, name, nil, stdout)
	}

	if *role == "" {
		return usageErr("add needs --role read, write or admin")
	}
	r, err := access.ParseRole(*role)
	if err != nil {
		return usageErr("--role: %v", err)
	}
	if *cost < bcrypt.MinCost || *cost > users.MaxCost {
		return usageErr("--cost must be between %d and %d, got %d", bcrypt.MinCost, users.MaxCost, *cost)
	}
	if !*fromStdin && in.readSecret == nil {
		return usageErr("stdin is not a terminal: pipe the password with --password-stdin")
	}
	// Read the file first: a malformed one fails before the prompt.
	if _, _, err := readUsers(*path); err != nil {
		return err
	}
	pw, err := readPassword(name, in, *fromStdin, stderr)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		return fmt.Errorf("hashing the password: %w", err)
	}
	u := users.User{Name: name, Hash: string(hash), Role: r}
	return editUsers(*path, name, &u, stdout)
}

// parseInterspersed parses flags placed before, between or after the
// positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		args = fs.Args()
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// readPassword reads the new password: twice, without echo, on a
// terminal; else one line of stdin.
func readPassword(name string, in input, fromStdin bool, stderr io.Writer) (string, error) {
	var pw string
	if fromStdin {
		line, err := bufio.NewReader(in.r).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	} else {
		fmt.Fprintf(stderr, "Password for %s: ", name)
		first, err := in.readSecret()
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		fmt.Fprintf(stderr, "Again: ")
		again, err := in.readSecret()
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if !bytes.Equal(first, again) {
			return "", errors.New("the passwords differ; nothing changed")
		}
		pw = string(first)
	}
	switch {
	case pw == "":
		return "", errors.New("empty password; nothing changed")
	case len(pw) > 72:
		// bcrypt reads no further: the rest would not count.
		return "", errors.New("password longer than 72 bytes; nothing changed")
	case strings.ContainsAny(pw, "\r\n"):
		return "", errors.New("the password must not contain line breaks")
	}
	return pw, nil
}

// readUsers reads the users file's lines and its state; a missing file
// is an empty one. A malformed file is an error: fix it by hand first.
func readUsers(path string) ([]string, fs.FileInfo, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading the users file: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the users file: %w", err)
	}
	if _, err := users.Parse(string(b)); err != nil {
		return nil, nil, fmt.Errorf("users file %s: %w", path, err)
	}
	text := strings.TrimSuffix(string(b), "\n")
	if text == "" {
		return nil, fi, nil
	}
	return strings.Split(text, "\n"), fi, nil
}

func listUsers(path string, stdout io.Writer) error {
	lines, fi, err := readUsers(path)
	if err != nil {
		return err
	}
	if fi == nil {
		return fmt.Errorf("users file %s does not exist", path)
	}
	for _, line := range lines {
		if u, err := users.ParseLine(strings.TrimSuffix(line, "\r")); err == nil {
			fmt.Fprintf(stdout, "%s\t%s\n", u.Name, u.Role)
		}
	}
	return nil
}

// editUsers sets name's line to u's, or removes it when u is nil, and
// writes the file anew.
func editUsers(path, name string, u *users.User, stdout io.Writer) error {
	lines, fi, err := readUsers(path)
	if err != nil {
		return err
	}
	var out []string
	found := false
	for _, line := range lines {
		if cur, err := users.ParseLine(strings.TrimSuffix(line, "\r")); err == nil && cur.Name == name {
			found = true
			if u != nil {
				out = append(out, users.FormatLine(*u))
			}
			continue
		}
		out = append(out, line)
	}
	switch {
	case u == nil && !found:
		return fmt.Errorf("no user %q in %s", name, path)
	case u != nil && !found:
		out = append(out, users.FormatLine(*u))
	}
	if err := writeAtomic(path, []byte(strings.Join(out, "\n")+"\n"), fi); err != nil {
		return err
	}
	switch {
	case u == nil:
		fmt.Fprintf(stdout, "removed user %s from %s\n", name, path)
	case found:
		fmt.Fprintf(stdout, "updated user %s (role %s) in %s\n", name, u.Role, path)
	default:
		fmt.Fprintf(stdout, "added user %s (role %s) to %s\n", name, u.Role, path)
	}
	return nil
}

// writeAtomic replaces path with data through a temporary file in the
// same directory and a rename, so a reader (the server's poll) sees the
// old file or the new one, never a part. The new file takes the old
// one's mode, owner and group (readable by the service's group, say), or
// mode 0600 when there was none.
func writeAtomic(path string, data []byte, old fs.FileInfo) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the users file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	mode := fs.FileMode(0o600)
	if old != nil {
		mode = old.Mode().Perm()
		if st, ok := old.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("keeping the users file's owner and group: %w", err)
			}
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("writing the users file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing the users file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing the users file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the users file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replacing the users file: %w", err)
	}
	// The rename lasts through a crash only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
