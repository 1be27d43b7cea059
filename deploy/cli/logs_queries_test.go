package cli

import (
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

// journalEntry is a journalctl -o json line with msg as its MESSAGE.
func journalEntry(t *testing.T, cursor, msg string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{
		"__CURSOR": cursor, "__REALTIME_TIMESTAMP": "1767323045000000",
		"SYSLOG_IDENTIFIER": "luna", "_PID": "7", "MESSAGE": msg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestLogsQueries: --queries asks the journal of Luna's unit for the query
// log's entries and shows those alone, in either log format, even when
// the journal's pattern lets others through.
func TestLogsQueries(t *testing.T) {
	h := newHarness(t)
	h.twoInstances("127.0.0.1")
	query := `{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"query","log":"query","session":3,"kind":"query","outcome":"ok","statement":"SELECT 1"}`
	textQuery := `time=2026-01-02T03:04:05Z level=WARN msg=query log=query session=4 kind=exec outcome=error error_class=catalog`
	f := newSSH(t, func(cmd string, out, _ io.Writer) int {
		io.WriteString(out, journalEntry(t, "c1", `{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"luna is serving"}`))
		io.WriteString(out, journalEntry(t, "c2", query))
		// Matched by the pattern, but a statement's text, not the attribute.
		io.WriteString(out, journalEntry(t, "c3", `{"level":"WARN","msg":"request failed","statement":"SELECT '\"log\":\"query\"'"}`))
		io.WriteString(out, journalEntry(t, "c4", textQuery))
		io.WriteString(out, journalEntry(t, "c5", `time=x level=INFO msg="catalog=log=query"`))
		return 0
	})
	r := h.run("", append(append([]string{"mig", "logs", "--user", "root", "--queries", "-n", "20"}, gcpFlags...), f.flags()...)...)
	if r.code != 0 {
		t.Fatalf("logs --queries: exit %d\n%s", r.code, r.stderr)
	}
	var a []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if s, ok := strings.CutPrefix(l, "luna-a | "); ok {
			a = append(a, s)
		}
	}
	want := []string{"2026-01-02T03:04:05.000Z luna[7]: " + query, "2026-01-02T03:04:05.000Z luna[7]: " + textQuery}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("logs --queries showed:\n%s", r.stdout)
	}
	wantCmd := `journalctl -u luna.service --no-pager -o json --output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM -n 20 --grep='"log":"query"|log=query'`
	if got := f.srv.Commands(); len(got) != 2 || got[0] != wantCmd {
		t.Errorf("remote commands:\n%q\nwant:\n%q", got, wantCmd)
	}

	// --unit still names the units.
	f = newSSH(t, func(cmd string, out, _ io.Writer) int { return 0 })
	r = h.run("", append(append([]string{"mig", "logs", "--user", "root", "--queries", "--unit", "luna-canary.service"}, gcpFlags...), f.flags()...)...)
	if got := f.srv.Commands(); r.code != 0 || len(got) != 2 || !strings.HasPrefix(got[0], "journalctl -u luna-canary.service --no-pager ") {
		t.Errorf("logs --queries --unit: exit %d, commands %q\n%s", r.code, got, r.stderr)
	}
}
