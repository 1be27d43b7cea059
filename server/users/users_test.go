package users

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/server/access"
	"golang.org/x/crypto/bcrypt"
)

func hash(t testing.TB, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParse(t *testing.T) {
	a, b := hash(t, "pa", bcrypt.MinCost), hash(t, "pb", bcrypt.MinCost)
	// htpasswd -B writes $2y$; the library writes $2a$. Both are bcrypt.
	y := "$2y$" + strings.TrimPrefix(b, "$2a$")
	bb := "$2b$" + strings.TrimPrefix(b, "$2a$")
	text := "# users\n\n  alice:" + a + ":admin\r\nbob@example.com:" + y + "\n  # indented comment\nc.d_e-f:" + bb + ":write\n"
	got, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []User{{"alice", a, access.Admin, 3}, {"bob@example.com", y, access.Read, 4}, {"c.d_e-f", bb, access.Write, 6}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("user %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := Parse(""); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	h := hash(t, "secret-pw", bcrypt.MinCost)
	rest := strings.TrimPrefix(h, "$2a$")
	for _, tc := range []struct {
		name, line, want string
	}{
		{"clear text", "alice:hunter2-secret:read", "not hashed"},
		{"no colon", "hunter2-secret", "want NAME:HASH:ROLE"},
		{"too many fields", "alice:" + h + ":read:extra", "want NAME:HASH:ROLE"},
		{"empty hash", "alice::read", "empty password hash"},
		{"apr1", "alice:$apr1$hunter2$abcdefghijklmnopqrstuv:read", "Apache MD5"},
		{"sha", "alice:{SHA}hunter2-secret=:read", "SHA-1"},
		{"argon2", "alice:$argon2id$v=19$m=65536,t=3,p=4$hunter2-secret:read", "argon2"},
		{"unknown", "alice:$9$hunter2-secret:read", "unknown hash type"},
		{"bcrypt minor x", "alice:$2x$" + rest + ":read", "unknown hash type"},
		{"truncated bcrypt", "alice:" + h[:40] + ":read", "malformed bcrypt hash"},
		{"bad cost", "alice:$2a$99$" + rest[3:] + ":read", "malformed bcrypt hash"},
		{"high cost", "alice:$2a$20$" + rest[3:] + ":read", "bcrypt cost 20 is above 17"},
		{"bad role", "alice:" + h + ":root", `unknown role "root"`},
		{"role that could be a password", "alice:" + h + ":Hunter2-secret", "unknown role: want"},
		{"empty role", "alice:" + h + ":", "empty role"},
		{"empty name", ":" + h + ":read", "bad user name"},
		{"bad name", "al ice:" + h + ":read", "bad user name"},
		{"long name", strings.Repeat("a", 65) + ":" + h + ":read", "bad user name"},
		{"name with slash", "a/b:" + h + ":read", "bad user name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "# header\nok:" + h + ":read\n" + tc.line + "\n"
			_, err := Parse(text)
			if err == nil {
				t.Fatal("no error")
			}
			var le *LineError
			if !errors.As(err, &le) || le.Line != 3 {
				t.Fatalf("error %v does not name line 3", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "line 3: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want line 3 and %q", msg, tc.want)
			}
			for _, secret := range []string{"hunter2", "Hunter2", rest[10:], h[:40]} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q holds part of the hash or password", msg)
				}
			}
		})
	}

	// A duplicate names both lines; several problems are all reported.
	_, err := Parse("alice:" + h + ":read\nbob:" + h + "\nalice:" + h + ":admin\nbad line\n")
	if err == nil || !strings.Contains(err.Error(), `line 3: user "alice" is already defined on line 1`) || !strings.Contains(err.Error(), "line 4: want NAME:HASH") {
		t.Errorf("got %v", err)
	}
	// A file that is not a users file at all: a few errors, not one per line.
	_, err = Parse(strings.Repeat("x\n", 1000))
	if n := strings.Count(err.Error(), "\n") + 1; n != maxErrors+1 {
		t.Errorf("%d error lines for 1000 bad lines", n)
	}
}

func writeUsers(t *testing.T, path string, lines ...string) {
	t.Helper()
	// Via a rename, as editors and `luna user` do: the inode changes.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, "alice:"+hash(t, "alice pw", bcrypt.MinCost)+":write", "bob:"+hash(t, "bob-pw", bcrypt.MinCost))
	s, err := OpenFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pw string
		role     access.Role
		ok       bool
	}{
		{"alice", "alice pw", access.Write, true},
		{"bob", "bob-pw", access.Read, true},
		{"alice", "bob-pw", 0, false},
		{"alice", "", 0, false},
		{"carol", "alice pw", 0, false},
		{"", "", 0, false},
	} {
		role, ok := s.Authenticate(tc.name, tc.pw)
		if role != tc.role || ok != tc.ok {
			t.Errorf("Authenticate(%q, %q) = %v, %v; want %v, %v", tc.name, tc.pw, role, ok, tc.role, tc.ok)
		}
	}
	if c, _ := bcrypt.Cost(s.cur.Load().dummy); c != bcrypt.MinCost {
		t.Errorf("unknown users are checked at cost %d, the users' is %d", c, bcrypt.MinCost)
	}
}

// An unknown user costs what a wrong password costs: one bcrypt check at
// the users' cost. Medians of a few tries, within a loose ratio.
func TestUnknownUserTiming(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, "alice:"+hash(t, "right", 8)+":read")
	s, err := OpenFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	median := func(name string) time.Duration {
		var ds []time.Duration
		for range 7 {
			start := time.Now()
			if _, ok := s.Authenticate(name, "wrong"); ok {
				t.Fatal("accepted")
			}
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	wrong, unknown := median("alice"), median("nobody")
	if r := float64(unknown) / float64(wrong); r < 0.5 || r > 2 {
		t.Errorf("wrong password %v, unknown user %v: ratio %.2f", wrong, unknown, r)
	}
	t.Logf("wrong password %v, unknown user %v", wrong, unknown)
}

func TestReloadKeepsUsersOnError(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users")
	h := hash(t, "pw", bcrypt.MinCost)
	writeUsers(t, path, "alice:"+h+":read")
	s, err := OpenFile(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeUsers(t, path, "bob:"+h+":admin", "carol:plain-text:read")
	err = s.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "users file "+path+": line 2: ") {
		t.Fatalf("bad reload: %v", err)
	}
	if _, ok := s.Authenticate("alice", "pw"); !ok {
		t.Error("a bad reload dropped alice")
	}
	if _, ok := s.Authenticate("bob", "pw"); ok {
		t.Error("a bad reload let bob in")
	}
	os.Remove(path)
	if err := s.Reload(ctx); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reload of a missing file: %v", err)
	}
	if _, ok := s.Authenticate("alice", "pw"); !ok {
		t.Error("a missing file dropped alice")
	}
	writeUsers(t, path, "bob:"+h+":admin")
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if r, ok := s.Authenticate("bob", "pw"); !ok || r != access.Admin {
		t.Error("bob not added")
	}
	if _, ok := s.Authenticate("alice", "pw"); ok {
		t.Error("alice not removed")
	}

	// A malformed file at start is an error, not an empty store.
	writeUsers(t, path, "# ok", "alice:"+h+":superuser")
	if _, err := OpenFile(ctx, path, nil); err == nil || !strings.Contains(err.Error(), "line 2: ") {
		t.Fatalf("malformed file at start: %v", err)
	}
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "users")
	h := hash(t, "pw", bcrypt.MinCost)
	writeUsers(t, path, "alice:"+h+":read")
	var logs testenv.SyncBuffer
	s, err := OpenFile(ctx, path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen\n%s", what, logs.String())
			}
		}
	}
	writeUsers(t, path, "alice:"+h+":read", "bob:"+h+":write")
	eventually("bob added", func() bool { _, ok := s.Authenticate("bob", "pw"); return ok })

	writeUsers(t, path, "bob:"+h+":write", "x")
	eventually("bad version logged", func() bool { return strings.Contains(logs.String(), "line 2: want NAME:HASH") })
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logs.String(), "reload failed"); n != 1 {
		t.Errorf("a bad version logged %d times", n)
	}
	if _, ok := s.Authenticate("alice", "pw"); !ok {
		t.Error("bad version dropped alice")
	}
	if strings.Contains(logs.String(), h[10:]) {
		t.Error("a hash reached the logs")
	}

	// The same size, written in place: the modification time tells.
	fixed := "bob:" + h + ":write\n" + "#"
	if err := os.WriteFile(path, []byte(fixed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually("alice removed", func() bool { _, ok := s.Authenticate("alice", "pw"); return !ok })
}
