//go:build duckdb_arrow

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lunadb/luna/server/access"
	"github.com/lunadb/luna/server/users"
)

func runUserCmd(t *testing.T, in input, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = userCommand(args, in, &out, &errOut)
	return code, out.String(), errOut.String()
}

func stdin(s string) input { return input{r: strings.NewReader(s)} }

// terminal answers each prompt with the next of answers.
func terminal(answers ...string) input {
	return input{r: strings.NewReader(""), readSecret: func() ([]byte, error) {
		if len(answers) == 0 {
			return nil, errors.New("no more input")
		}
		a := answers[0]
		answers = answers[1:]
		return []byte(a), nil
	}}
}

func authenticate(t *testing.T, path, name, pw string) (access.Role, bool) {
	t.Helper()
	s, err := users.OpenFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.Authenticate(name, pw)
}

func TestUserAddListRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	t.Setenv("LUNA_USERS_FILE", "")

	code, out, errOut := runUserCmd(t, stdin("alice pw\n"), "add", "alice", "--role", "write", "--users-file", path, "--password-stdin", "--cost", "4")
	if code != 0 || !strings.Contains(out, "added user alice (role write)") {
		t.Fatalf("add: exit %d, %q %q", code, out, errOut)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %v, mode %v", err, fi.Mode())
	}
	if r, ok := authenticate(t, path, "alice", "alice pw"); !ok || r != access.Write {
		t.Fatalf("alice: %v %v", r, ok)
	}

	// Comments and other lines stay; an existing user's line is replaced
	// where it is; the file's mode stays.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, append([]byte("# team\n\n"), b...), 0o640)
	os.Chmod(path, 0o640)
	// Flags before the name, and the password from a terminal, typed twice.
	code, out, errOut = runUserCmd(t, terminal("bob-secret", "bob-secret"), "add", "--users-file", path, "--cost=4", "--role=read", "bob")
	if code != 0 || !strings.Contains(out, "added user bob") || !strings.Contains(errOut, "Password for bob: ") || strings.Contains(errOut, "bob-secret") {
		t.Fatalf("add bob: exit %d, %q %q", code, out, errOut)
	}
	code, out, _ = runUserCmd(t, stdin("new alice\n"), "add", "alice", "--role", "admin", "--users-file", path, "--password-stdin", "--cost", "4")
	if code != 0 || !strings.Contains(out, "updated user alice (role admin)") {
		t.Fatalf("update: exit %d, %q", code, out)
	}
	b, _ = os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 || lines[0] != "# team" || lines[1] != "" || !strings.HasPrefix(lines[2], "alice:$2a$04$") || !strings.HasSuffix(lines[2], ":admin") || !strings.HasPrefix(lines[3], "bob:") {
		t.Fatalf("file:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v after an edit, was 0640", fi.Mode().Perm())
	}
	if _, ok := authenticate(t, path, "alice", "alice pw"); ok {
		t.Error("the old password still works")
	}
	if r, ok := authenticate(t, path, "alice", "new alice"); !ok || r != access.Admin {
		t.Errorf("new alice: %v %v", r, ok)
	}

	// list: names and roles, no hash; LUNA_USERS_FILE names the file.
	t.Setenv("LUNA_USERS_FILE", path)
	code, out, _ = runUserCmd(t, stdin(""), "list")
	if code != 0 || out != "alice\tadmin\nbob\tread\n" {
		t.Fatalf("list: exit %d, %q", code, out)
	}

	code, out, _ = runUserCmd(t, stdin(""), "remove", "alice")
	if code != 0 || !strings.Contains(out, "removed user alice") {
		t.Fatalf("remove: exit %d, %q", code, out)
	}
	if code, _, errOut = runUserCmd(t, stdin(""), "remove", "alice"); code != 1 || !strings.Contains(errOut, `no user "alice"`) {
		t.Fatalf("remove again: exit %d, %q", code, errOut)
	}
	code, out, _ = runUserCmd(t, stdin(""), "list")
	if code != 0 || out != "bob\tread\n" {
		t.Fatalf("list after remove: exit %d, %q", code, out)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestUserErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	t.Setenv("LUNA_USERS_FILE", path)
	for _, tc := range []struct {
		name string
		in   input
		args []string
		code int
		want string
	}{
		{"no verb", stdin(""), nil, 2, "missing add, remove or list"},
		{"unknown verb", stdin(""), []string{"rename"}, 2, `unknown command "rename"`},
		{"no name", stdin("pw\n"), []string{"add", "--role", "read", "--password-stdin"}, 2, "add takes one user name"},
		{"two names", stdin("pw\n"), []string{"add", "a", "b", "--role", "read", "--password-stdin"}, 2, "add takes one user name"},
		{"bad name", stdin("pw\n"), []string{"add", "a b", "--role", "read", "--password-stdin"}, 2, "bad user name"},
		{"no role", stdin("pw\n"), []string{"add", "alice", "--password-stdin"}, 2, "add needs --role"},
		{"bad role", stdin("pw\n"), []string{"add", "alice", "--role", "root", "--password-stdin"}, 2, "--role: unknown role"},
		{"unknown flag", stdin("pw\n"), []string{"add", "alice", "--role", "read", "--pasword-stdin"}, 2, "flag provided but not defined"},
		{"bad cost", stdin("pw\n"), []string{"add", "alice", "--role", "read", "--password-stdin", "--cost", "40"}, 2, "--cost must be between"},
		{"not a terminal", stdin("pw\n"), []string{"add", "alice", "--role", "read"}, 2, "--password-stdin"},
		{"list args", stdin(""), []string{"list", "x"}, 2, "list takes no arguments"},
		{"remove flag on list", stdin(""), []string{"list", "--role", "read"}, 2, "flag provided but not defined"},
		{"empty password", stdin("\n"), []string{"add", "alice", "--role", "read", "--password-stdin"}, 1, "empty password"},
		{"no stdin", stdin(""), []string{"add", "alice", "--role", "read", "--password-stdin"}, 1, "reading the password from stdin"},
		{"long password", stdin(strings.Repeat("x", 73) + "\n"), []string{"add", "alice", "--role", "read", "--password-stdin"}, 1, "longer than 72 bytes"},
		{"passwords differ", terminal("one", "two"), []string{"add", "alice", "--role", "read"}, 1, "the passwords differ"},
		{"list missing file", stdin(""), []string{"list"}, 1, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runUserCmd(t, tc.in, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed command wrote the file")
			}
		})
	}

	// A malformed file is left alone, and the error names its line.
	os.WriteFile(path, []byte("# ok\nalice:plain-secret:read\n"), 0o600)
	code, _, errOut := runUserCmd(t, stdin("pw\n"), "add", "bob", "--role", "read", "--password-stdin", "--cost", "4")
	if code != 1 || !strings.Contains(errOut, "line 2: ") || strings.Contains(errOut, "plain-secret") {
		t.Fatalf("malformed file: exit %d, %q", code, errOut)
	}
	if b, _ := os.ReadFile(path); string(b) != "# ok\nalice:plain-secret:read\n" {
		t.Fatalf("malformed file changed:\n%s", b)
	}
	if code, out, _ := runUserCmd(t, stdin(""), "--help"); code != 0 || !strings.Contains(out, "luna user add NAME") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
}

func TestUserSubcommandRegistered(t *testing.T) {
	if _, ok := subcommands["user"]; !ok {
		t.Fatal("luna user is not a subcommand")
	}
}
