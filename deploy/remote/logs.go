package remote

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lunadb/luna/deploy"
	"golang.org/x/crypto/ssh"
)

// LogOptions say what to tail.
type LogOptions struct {
	// Units are the systemd units whose entries are shown, merged
	// (journalctl -u for each); empty: luna.service.
	Units []string
	// Follow keeps streaming new entries until ctx ends.
	Follow bool
	// Since is passed to journalctl --since (e.g. "1 hour ago").
	Since string
	// Lines is how many past entries to show per instance (journalctl -n);
	// negative: all.
	Lines int
	// Relist is how often the group is listed again while following.
	Relist time.Duration
	// MinBackoff and MaxBackoff bound the pause before a reconnection.
	MinBackoff, MaxBackoff time.Duration
	// Color prefixes each instance's lines in its own colour.
	Color bool
	// Queries shows Luna's query log alone: the entries tagged log=query
	// (QueryEntry). Lines counts those entries.
	Queries bool
	// Notices receives reconnection and membership notices (stderr).
	Notices io.Writer
}

// DefaultUnit is the unit Tail shows unless told otherwise.
const DefaultUnit = "luna.service"

func (o *LogOptions) defaults() {
	if len(o.Units) == 0 {
		o.Units = []string{DefaultUnit}
	}
	if o.Relist == 0 {
		o.Relist = 30 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
}

// Tail streams the journals of the group's instances to out, one line per
// entry prefixed with the instance name. It returns nil when ctx is
// cancelled (Ctrl-C), when the entries are shown (without Follow), or the
// first error that retrying cannot fix (host key, login, a failing
// journalctl).
//
// While following, the group is listed again every Relist and each
// instance is tracked by name and address: one listed without an address
// yet (still being created) is tailed once it has one; one that keeps its
// name but turns up at another address (recreated by autohealing) is
// followed there, from its own journal's recent entries; one that leaves
// the group is let go.
func Tail(ctx context.Context, lister deploy.Lister, d *Dialer, opts LogOptions, out io.Writer) error {
	opts.defaults()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := &tailer{d: d, opts: opts, out: out, streams: map[string]*tailStream{}, colors: map[string]int{}, waiting: map[string]bool{}}

	instances, err := lister.Instances(ctx)
	if err != nil {
		return err
	}
	if len(instances) == 0 && !opts.Follow {
		return errors.New("the group has no instances")
	}
	var wg sync.WaitGroup
	start := func(list []deploy.Instance) (noAddress error) {
		seen := map[string]bool{}
		for _, in := range list {
			seen[in.Name] = true
			addr, err := d.Target(in)
			if err != nil {
				noAddress = err
				if s, ok := t.streams[in.Name]; ok {
					t.notice("%s lost its address; following it again once it has one", in.Name)
					s.cancel()
					delete(t.streams, in.Name)
				}
				if !t.waiting[in.Name] && opts.Follow {
					t.notice("%v; following it once it has one", err)
				}
				t.waiting[in.Name] = true
				continue
			}
			delete(t.waiting, in.Name)
			if s, ok := t.streams[in.Name]; ok {
				if s.addr == addr && s.id == in.ID {
					continue
				}
				// Another machine under the same name: the cursor
				// belongs to the old one's journal.
				if s.addr != addr {
					t.notice("%s moved from %s to %s (recreated?); following it there", in.Name, s.addr, addr)
				} else {
					t.notice("%s was recreated (instance %s, was %s); following the new one", in.Name, in.ID, s.id)
				}
				s.cancel()
			}
			sctx, scancel := context.WithCancel(ctx)
			t.streams[in.Name] = &tailStream{addr: addr, id: in.ID, cancel: scancel}
			if _, ok := t.colors[in.Name]; !ok {
				t.colors[in.Name] = len(t.colors)
			}
			wg.Add(1)
			go func(in deploy.Instance, color int) {
				defer wg.Done()
				if err := t.stream(sctx, in, color); err != nil {
					cancel(err)
				}
			}(in, t.colors[in.Name])
		}
		for name, s := range t.streams {
			if !seen[name] {
				t.notice("%s left the group; no longer following it", name)
				s.cancel()
				delete(t.streams, name)
			}
		}
		for name := range t.waiting {
			if !seen[name] {
				delete(t.waiting, name)
			}
		}
		return noAddress
	}
	if err := start(instances); err != nil && !opts.Follow {
		if len(t.streams) == 0 {
			return err
		}
		t.notice("%v; skipped", err)
	}
	if opts.Follow {
		tick := time.NewTicker(opts.Relist)
		defer tick.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-tick.C:
				list, err := lister.Instances(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.notice("listing the group again: %v", err)
					}
					continue
				}
				before := len(t.streams)
				start(list)
				if len(t.streams) > before {
					t.notice("following %d instances", len(t.streams))
				}
			}
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

type tailer struct {
	d    *Dialer
	opts LogOptions
	mu   sync.Mutex // one line at a time on out
	out  io.Writer
	// streams, colors and waiting belong to Tail's goroutine.
	streams map[string]*tailStream // by instance name
	colors  map[string]int
	waiting map[string]bool // listed without an address, already noticed
}

// tailStream is the stream of one machine (instance ID) at one address.
type tailStream struct {
	addr   string
	id     string
	cancel context.CancelFunc
}

func (t *tailer) notice(format string, args ...any) {
	if t.opts.Notices == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.opts.Notices, "luna-deploy: "+format+"\n", args...)
}

// stream tails one instance until ctx ends, reconnecting with backoff.
func (t *tailer) stream(ctx context.Context, in deploy.Instance, color int) error {
	prefix := in.Name + " | "
	if t.opts.Color {
		prefix = fmt.Sprintf("\x1b[%dm%s\x1b[0m | ", 31+color%6, in.Name)
	}
	var cursor string
	backoff := t.opts.MinBackoff
	failures := 0
	streamed := false // entries came from this machine before
	for {
		progressed, err := t.once(ctx, in, prefix, &cursor)
		streamed = streamed || progressed
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && !t.opts.Follow {
			return nil
		}
		var hk *HostKeyError
		if t.opts.Follow && streamed && errors.As(err, &hk) && hk.Mismatch {
			// The machine behind the name changed after it was followed:
			// most often a node recreated at its address that the next
			// listing shows with a new instance ID, which starts a new
			// stream. Until then it is refused, not given up on.
			t.notice("%s: %v; refusing it until the group lists a new instance there", in.Name, err)
		} else if err != nil && permanent(err) {
			return err
		}
		if err == nil {
			err = errors.New("journalctl ended")
		}
		failures++
		if !t.opts.Follow && failures >= 5 {
			return fmt.Errorf("%s: giving up after %d attempts: %w", in.Name, failures, err)
		}
		if progressed {
			backoff = t.opts.MinBackoff
		}
		t.notice("%s: connection lost (%v); reconnecting in %s", in.Name, err, backoff)
		if deploy.Sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(2*backoff, t.opts.MaxBackoff)
	}
}

// commandError is journalctl (or systemctl) failing on the instance, not
// the connection: retrying will not help.
type commandError struct {
	host, cmd string
	status    int
	stderr    string
}

func (e *commandError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = "no error output"
	}
	return fmt.Sprintf("%s: %s exited with status %d: %s", e.host, e.cmd, e.status, msg)
}

// once runs journalctl over one connection, writing entries as they come.
// progressed reports whether any entry arrived.
func (t *tailer) once(ctx context.Context, in deploy.Instance, prefix string, cursor *string) (progressed bool, _ error) {
	c, err := t.d.Dial(ctx, in)
	if err != nil {
		return false, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sess, err := c.NewSession()
	if err != nil {
		return false, fmt.Errorf("%s: opening a session: %w", in.Name, err)
	}
	defer sess.Close()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return false, err
	}
	var stderr limitedBuffer
	sess.Stderr = &stderr
	cmd := t.d.sudo(journalctlCommand(t.opts, *cursor))
	if err := sess.Start(cmd); err != nil {
		return false, fmt.Errorf("%s: starting journalctl: %w", in.Name, err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // not an entry (journalctl's own notes)
		}
		if e.Cursor != "" {
			*cursor = e.Cursor
		}
		progressed = true
		if t.opts.Queries && !QueryEntry(message(e.Message)) {
			continue
		}
		line := prefix + e.format() + "\n"
		t.mu.Lock()
		_, werr := io.WriteString(t.out, line)
		t.mu.Unlock()
		if werr != nil {
			return progressed, werr
		}
	}
	err = sess.Wait()
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		return progressed, &commandError{host: in.Name, cmd: "journalctl", status: exit.ExitStatus(), stderr: stderr.String()}
	}
	if err != nil {
		return progressed, fmt.Errorf("%s: %w", in.Name, err)
	}
	return progressed, sc.Err()
}

// journalctlCommand builds the remote command. After a reconnection it
// resumes right after the last entry shown, so that nothing is shown twice
// or skipped.
func journalctlCommand(o LogOptions, cursor string) string {
	args := []string{"journalctl"}
	for _, u := range o.Units {
		args = append(args, "-u", shellQuote(u))
	}
	args = append(args, "--no-pager", "-o", "json", "--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM")
	if cursor != "" {
		args = append(args, "--after-cursor="+shellQuote(cursor))
	} else {
		if o.Since != "" {
			args = append(args, "--since="+shellQuote(o.Since))
		}
		if o.Lines >= 0 {
			args = append(args, "-n", strconv.Itoa(o.Lines))
		}
	}
	if o.Queries {
		// Matched in the journal too, so that -n counts query lines; the
		// pattern may also match others, which QueryEntry drops.
		args = append(args, "--grep="+shellQuote(queryGrep))
	}
	if o.Follow {
		args = append(args, "--follow")
	}
	return strings.Join(args, " ")
}

// queryGrep is journalctl's pattern for query-log entries, in Luna's JSON
// and text log formats.
const queryGrep = `"log":"query"|log=query`

// QueryEntry reports whether a journal message is a line of Luna's query
// log: a JSON object whose log attribute is "query" (--log-format json),
// or a text line with the attribute log=query.
func QueryEntry(msg string) bool {
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "{") {
		var m struct {
			Log string `json:"log"`
		}
		return json.Unmarshal([]byte(msg), &m) == nil && m.Log == "query"
	}
	for _, f := range strings.Fields(msg) {
		if f == "log=query" {
			return true
		}
	}
	return false
}

// sudo prefixes a command with sudo -n unless logged in as root.
func (d *Dialer) sudo(cmd string) string {
	if d.opts.User == "root" {
		return cmd
	}
	return "sudo -n " + cmd
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// entry is one journal record in journalctl's JSON output.
type entry struct {
	Cursor     string          `json:"__CURSOR"`
	Realtime   string          `json:"__REALTIME_TIMESTAMP"`
	Message    json.RawMessage `json:"MESSAGE"`
	Identifier string          `json:"SYSLOG_IDENTIFIER"`
	Comm       string          `json:"_COMM"`
	PID        string          `json:"_PID"`
}

// format renders an entry like journalctl -o short-iso.
func (e *entry) format() string {
	var b strings.Builder
	if us, err := strconv.ParseInt(e.Realtime, 10, 64); err == nil {
		b.WriteString(time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000Z"))
		b.WriteByte(' ')
	}
	id := e.Identifier
	if id == "" {
		id = e.Comm
	}
	if id != "" {
		b.WriteString(id)
		if e.PID != "" {
			b.WriteString("[" + e.PID + "]")
		}
		b.WriteString(": ")
	}
	b.WriteString(message(e.Message))
	return b.String()
}

// message decodes MESSAGE: a string, or an array of bytes when it is not
// valid UTF-8.
func message(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimRight(s, "\n")
	}
	var bs []byte
	var nums []int
	if json.Unmarshal(raw, &nums) == nil {
		for _, n := range nums {
			bs = append(bs, byte(n))
		}
		return strings.ToValidUTF8(strings.TrimRight(string(bs), "\n"), "\uFFFD")
	}
	return ""
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
