// Package deploy holds what luna-deploy's cloud back ends share: the
// instance record that status, logs and restart work from, the dry-run
// request log, progress lines for long-running operations, the confirmation
// prompt, and the translation of cloud API errors into advice.
//
// The cloud back ends live in deploy/gcp (regional managed instance groups)
// and deploy/aws (auto scaling groups); SSH to the instances (log tailing,
// rolling restarts) lives in deploy/remote. deploy never imports the server:
// they share only the documented ports (API 7688, health 7689 with /readyz)
// and the paths of the systemd unit.
package deploy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Default ports of a Luna instance (the server's --api-host-port and
// --health-host-port defaults).
const (
	APIPort    = 7688
	HealthPort = 7689
)

// Instance is one member of a group as status, logs and restart see it.
type Instance struct {
	Name string `json:"name"`
	// ID is the cloud's own identifier of this machine (the GCE instance
	// id, the EC2 instance id): a node that autohealing recreates keeps
	// its name on GCP but gets a new ID, and a new host key.
	ID         string `json:"id,omitempty"`
	State      string `json:"state"`
	Health     string `json:"health"`
	Zone       string `json:"zone"`
	InternalIP string `json:"internal_ip"`
	ExternalIP string `json:"external_ip,omitempty"`
	Version    string `json:"version"`
	// SSHPort and HealthPort override the fleet-wide ports for this
	// instance, for hosts that share one address (0: the default).
	SSHPort    int `json:"-"`
	HealthPort int `json:"-"`
}

// Identity names the machine for host-key records: the name, and the ID
// when the cloud gives one that differs from it.
func (i Instance) Identity() string {
	if i.ID == "" || i.ID == i.Name {
		return i.Name
	}
	return i.Name + "/" + i.ID
}

// Address returns the IP to reach the instance on: the internal one when
// internal is set, else the external one.
func (i Instance) Address(internal bool) (string, error) {
	ip := i.ExternalIP
	kind := "external"
	if internal {
		ip, kind = i.InternalIP, "internal"
	}
	if ip == "" {
		hint := "pass --internal-ip (and --jump through a bastion) to use its internal IP"
		if internal {
			hint = "it may still be starting"
		}
		return "", fmt.Errorf("instance %s has no %s IP: %s", i.Name, kind, hint)
	}
	return ip, nil
}

// Lister lists the instances of a group.
type Lister interface {
	Instances(ctx context.Context) ([]Instance, error)
}

// ListerFunc adapts a function to Lister.
type ListerFunc func(ctx context.Context) ([]Instance, error)

// Instances calls f.
func (f ListerFunc) Instances(ctx context.Context) ([]Instance, error) { return f(ctx) }

// SortInstances orders instances by zone, then name, so that tables and
// rolling restarts go in a stable order.
func SortInstances(in []Instance) {
	sort.Slice(in, func(a, b int) bool {
		if in[a].Zone != in[b].Zone {
			return in[a].Zone < in[b].Zone
		}
		return in[a].Name < in[b].Name
	})
}

// WriteInstances prints instances as a table or as a JSON array.
func WriteInstances(w io.Writer, format string, in []Instance) error {
	switch format {
	case "json":
		if in == nil {
			in = []Instance{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tHEALTH\tZONE\tINTERNAL IP\tVERSION")
		for _, i := range in {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.Name, dash(i.State), dash(i.Health), dash(i.Zone), dash(i.InternalIP), dash(i.Version))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown format %q: use table or json", format)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Request is one API call as --dry-run prints it: what would be sent, and
// nothing was.
type Request struct {
	// API names the call, e.g. compute.instanceTemplates.insert or
	// ec2:CreateLaunchTemplate.
	API string `json:"api"`
	// Method and Path are the HTTP request line of REST APIs.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Body is the request body (GCP) or the operation's input (AWS).
	Body any `json:"body,omitempty"`
	// Note says what a real run does with the answer, where that matters.
	Note string `json:"note,omitempty"`
	// Changes lists what an update changes with this call, one
	// "field: old → new" a line.
	Changes []string `json:"changes,omitempty"`
}

// WriteRequests prints a dry run's requests as one indented JSON array.
func WriteRequests(w io.Writer, reqs []Request) error {
	if reqs == nil {
		reqs = []Request{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(reqs)
}

// Redacted replaces secrets in dry-run output.
const Redacted = "<redacted>"

// Progress writes the progress lines of long-running operations (to
// stderr, so that stdout stays for results).
type Progress struct {
	W io.Writer
	// Every is how often a still-running wait reports; 0 means every poll.
	Every time.Duration
	last  time.Time
}

// Printf writes one progress line.
func (p *Progress) Printf(format string, args ...any) {
	if p == nil || p.W == nil {
		return
	}
	fmt.Fprintf(p.W, format+"\n", args...)
}

// Waiting reports a wait in progress: "waiting for operation X: RUNNING (12s)".
// Repeated reports are thinned to one per Every.
func (p *Progress) Waiting(what, state string, since time.Time) {
	if p == nil || p.W == nil {
		return
	}
	now := time.Now()
	if p.Every > 0 && !p.last.IsZero() && now.Sub(p.last) < p.Every {
		return
	}
	p.last = now
	fmt.Fprintf(p.W, "waiting for %s: %s (%s)\n", what, state, now.Sub(since).Round(time.Second))
}

// Confirm asks a yes/no question on out and reads the answer from in; only
// "y" or "yes" confirms. End of input counts as no.
func Confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	fmt.Fprintf(out, "%s [y/N]: ", question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// Sleep waits for d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// InputBody turns an SDK input struct into dry-run JSON without the fields
// left unset (nulls, empty strings, empty lists), which the SDK does not
// send either.
func InputBody(in any) any {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Sprintf("<unprintable: %v>", err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("<unprintable: %v>", err)
	}
	return prune(v)
}

func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e = prune(e); e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
		if len(x) == 0 {
			return nil
		}
	case []any:
		var out []any
		for _, e := range x {
			if e = prune(e); e != nil {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case string:
		if x == "" {
			return nil
		}
	}
	return v
}

// Amount is how many instances a rolling update may add above the group's
// size (surge) or take out of service (unavailable): a fixed number of
// instances, or a percentage of the group.
type Amount struct {
	Value   int32
	Percent bool
}

// ParseAmount reads "3" (instances) or "50%" (of the group).
func ParseAmount(s string) (Amount, error) {
	t := strings.TrimSpace(s)
	a := Amount{}
	if strings.HasSuffix(t, "%") {
		a.Percent, t = true, strings.TrimSuffix(t, "%")
	}
	n, err := strconv.ParseInt(t, 10, 32)
	switch {
	case err != nil:
		return Amount{}, fmt.Errorf("%q is not a number of instances (3) or a percentage (50%%)", s)
	case n < 0:
		return Amount{}, fmt.Errorf("%q must not be negative", s)
	case a.Percent && n > 100:
		return Amount{}, fmt.Errorf("%q: a percentage is at most 100%%", s)
	}
	a.Value = int32(n)
	return a, nil
}

func (a Amount) String() string {
	if a.Percent {
		return fmt.Sprintf("%d%%", a.Value)
	}
	return strconv.Itoa(int(a.Value))
}

// Change renders one field an update changes as "field: old → new", with
// long or multi-line values shortened to their size and a hash prefix.
func Change(field, old, new string) string {
	return field + ": " + ShortValue(old) + " → " + ShortValue(new)
}

// ShortValue shows a value in a change line: "(none)" when empty, a size
// and hash prefix when long or multi-line (scripts, SQL), else itself.
func ShortValue(v string) string {
	switch {
	case v == "":
		return "(none)"
	case v == Redacted:
		return v
	case len(v) > 64 || strings.ContainsAny(v, "\n\r"):
		sum := sha256.Sum256([]byte(v))
		return fmt.Sprintf("<%d bytes, sha256 %x…>", len(v), sum[:4])
	}
	return v
}
