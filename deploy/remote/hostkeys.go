package remote

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyPolicy says what to do with a host key that known_hosts does not
// vouch for.
type HostKeyPolicy string

const (
	// AcceptNew is OpenSSH's StrictHostKeyChecking=accept-new: the key of a
	// host that known_hosts has no entry for is recorded there on first
	// contact, and a host whose key changed is refused. Since instances
	// come and go, one exception: when the entry was recorded by
	// luna-deploy for another instance (a node replaced by a new one that
	// got the same address), the entry is replaced and a notice says so.
	AcceptNew HostKeyPolicy = "accept-new"
	// Strict refuses any host whose key is not in known_hosts.
	Strict HostKeyPolicy = "strict"
)

// ParseHostKeyPolicy checks a --host-key-policy value.
func ParseHostKeyPolicy(s string) (HostKeyPolicy, error) {
	switch p := HostKeyPolicy(s); p {
	case AcceptNew, Strict:
		return p, nil
	}
	return "", fmt.Errorf("--host-key-policy %q: use accept-new or strict", s)
}

// instanceMark starts the comment that luna-deploy leaves on the
// known_hosts lines it writes, naming the instance the key belonged to;
// OpenSSH ignores what follows the key.
const instanceMark = "luna-deploy-instance="

// knownHosts checks host keys against known_hosts files and, under
// AcceptNew, records new ones in the first file.
type knownHosts struct {
	policy  HostKeyPolicy
	files   []string // consulted, in order
	notices io.Writer

	mu sync.Mutex
	cb ssh.HostKeyCallback
}

func newKnownHosts(files []string, policy HostKeyPolicy, notices io.Writer) (*knownHosts, error) {
	k := &knownHosts{policy: policy, files: files, notices: notices}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// load (re)reads the files. Under AcceptNew a missing file is an empty one:
// the first is created when a key is recorded.
func (k *knownHosts) load() error {
	var present []string
	for _, f := range k.files {
		if _, err := os.Stat(f); err != nil {
			if errors.Is(err, fs.ErrNotExist) && k.policy == AcceptNew {
				continue
			}
			return fmt.Errorf("known_hosts file %s: %w (add the instances' keys with ssh-keyscan, pass --host-key-policy accept-new to record them on first contact, or --insecure-ignore-host-key to skip host key checking)", f, err)
		}
		present = append(present, f)
	}
	if len(present) == 0 {
		k.cb = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
		return nil
	}
	cb, err := knownhosts.New(present...)
	if err != nil {
		return fmt.Errorf("reading known_hosts: %w", err)
	}
	k.cb = cb
	return nil
}

// lookup runs the known_hosts check alone.
func (k *knownHosts) lookup(host string, remote net.Addr, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cb(host, remote, key)
}

// check vouches for the key that host offers; instance names the instance
// dialled ("" for a jump host, whose key is never replaced).
func (k *knownHosts) check(host, instance string, remote net.Addr, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	err := k.cb(host, remote, key)
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) && len(ke.Want) > 0 && k.policy == AcceptNew && instance != "" {
		// The entries are read back by line number: read the files
		// afresh first, as another luna-deploy (or the operator) may have
		// changed them since.
		if err := k.load(); err != nil {
			return err
		}
		err = k.cb(host, remote, key)
	}
	if !errors.As(err, &ke) {
		return err // accepted, revoked, or unreadable
	}
	he := &HostKeyError{Host: host, Key: key, Mismatch: len(ke.Want) > 0, Files: strings.Join(k.files, ", ")}
	if !he.Mismatch {
		if k.policy != AcceptNew {
			return he
		}
		if err := k.record(host, instance, key, nil); err != nil {
			return err
		}
		k.notice("%s: recorded the host key of %s (%s %s) in %s", label(instance, host), host, key.Type(), ssh.FingerprintSHA256(key), k.files[0])
		return nil
	}
	he.Where = fmt.Sprintf("%s:%d", ke.Want[0].Filename, ke.Want[0].Line)
	if k.policy != AcceptNew || instance == "" {
		return he
	}
	prev, ok := k.recordedFor(ke.Want)
	if !ok {
		return he // an entry the operator made: theirs to change
	}
	if sameMachine(prev, instance) {
		he.Recorded = prev
		return he
	}
	if err := k.record(host, instance, key, ke.Want); err != nil {
		return err
	}
	k.notice("%s: the host key of %s changed (%s %s): known_hosts had it for instance %s, which %s replaced at this address; replaced the entry in %s",
		instance, host, key.Type(), ssh.FingerprintSHA256(key), prev, instance, k.files[0])
	return nil
}

// sameMachine reports whether two instance marks name one machine. A mark
// is the instance's name, or name/ID where the cloud reuses names (a GCP
// node recreated by autohealing); a mark without an ID, as older records
// have, counts as the same machine when the names match, so that a changed
// key is refused rather than accepted on a guess.
func sameMachine(a, b string) bool {
	if a == b {
		return true
	}
	an, _, aok := strings.Cut(a, "/")
	bn, _, bok := strings.Cut(b, "/")
	return (!aok || !bok) && an == bn
}

func label(instance, host string) string {
	if instance == "" {
		return "jump host " + host
	}
	return instance
}

func (k *knownHosts) notice(format string, args ...any) {
	if k.notices != nil {
		fmt.Fprintf(k.notices, "luna-deploy: "+format+"\n", args...)
	}
}

// recordedFor returns the instance that luna-deploy recorded the known keys
// for; ok is false unless every one of them carries its mark (and the same
// instance).
func (k *knownHosts) recordedFor(want []knownhosts.KnownKey) (instance string, ok bool) {
	for i, w := range want {
		line, err := readLine(w.Filename, w.Line)
		if err != nil {
			return "", false
		}
		name := markOf(line)
		if name == "" || i > 0 && name != instance {
			return "", false
		}
		instance = name
	}
	return instance, instance != ""
}

// markOf returns the instance named by a known_hosts line's mark.
func markOf(line string) string {
	f := strings.Fields(line)
	if len(f) < 4 {
		return "" // host, key type and key: no comment
	}
	for _, w := range f[3:] {
		if name, ok := strings.CutPrefix(w, instanceMark); ok {
			return name
		}
	}
	return ""
}

func readLine(file string, n int) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	lines := strings.Split(string(b), "\n")
	if n < 1 || n > len(lines) {
		return "", fmt.Errorf("%s has no line %d", file, n)
	}
	return lines[n-1], nil
}

// record writes host's key, marked with the instance, to the first file,
// first removing the lines of drop (entries luna-deploy recorded for the
// instance this one replaced), and reloads the files.
func (k *knownHosts) record(host, instance string, key ssh.PublicKey, drop []knownhosts.KnownKey) error {
	// Names and IDs come from the cloud's API: one with a space or a line
	// break would write a field or an entry of its own into known_hosts.
	if strings.ContainsFunc(host+instance, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("not recording the host key of %q (instance %q): the name holds a space or control character", host, instance)
	}
	line := knownhosts.Line([]string{host}, key)
	if instance != "" {
		line += " " + instanceMark + instance
	}
	byFile := map[string]map[int]bool{}
	for _, w := range drop {
		if byFile[w.Filename] == nil {
			byFile[w.Filename] = map[int]bool{}
		}
		byFile[w.Filename][w.Line] = true
	}
	for file, lines := range byFile {
		if err := removeLines(file, lines); err != nil {
			return fmt.Errorf("replacing the host key of %s in %s: %w", host, file, err)
		}
	}
	file := k.files[0]
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("recording the host key of %s: %w", host, err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("recording the host key of %s: %w", host, err)
	}
	if err := appendLine(f, line); err != nil {
		f.Close()
		return fmt.Errorf("recording the host key of %s in %s: %w", host, file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("recording the host key of %s in %s: %w", host, file, err)
	}
	return k.load()
}

// appendLine adds line at the end of f, after a newline if the file does
// not end with one.
func appendLine(f *os.File, line string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	_, err = io.WriteString(f, line+"\n")
	return err
}

// removeLines rewrites file without the given line numbers (1-based),
// through a temporary file renamed over it.
func removeLines(file string, drop map[int]bool) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	var keep []string
	for i, l := range strings.SplitAfter(string(b), "\n") {
		if !drop[i+1] {
			keep = append(keep, l)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, strings.Join(keep, "")); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
