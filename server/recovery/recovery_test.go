package recovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lunadb/luna/internal/testenv"
)

// newLog logs JSON into a buffer.
func newLog() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewJSONHandler(&buf, nil)), &buf
}

func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func count(where string) float64 { return testutil.ToFloat64(panics.WithLabelValues(where)) }

func nilConversion() {
	var v any
	_ = v.(string)
}

func TestDoRecoversLogsAndCounts(t *testing.T) {
	log, buf := newLog()
	before := count("test-do")
	err := Do(log, "test-do", "running the thing", func() error {
		nilConversion()
		return nil
	}, "remote", "127.0.0.1:1")
	var e *Error
	if !errors.As(err, &e) || e.Where != "test-do" || !Is(err) {
		t.Fatalf("Do returned %v (%T), want an *Error", err, err)
	}
	if want := "Internal Error: running the thing failed unexpectedly (a bug; the server logged it)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := count("test-do"); got != before+1 {
		t.Errorf("luna_panics_total{where=test-do} = %v, want %v", got, before+1)
	}
	recs := records(t, buf)
	if len(recs) != 1 {
		t.Fatalf("%d log records, want 1:\n%s", len(recs), buf)
	}
	r := recs[0]
	if r["level"] != "ERROR" || r["where"] != "test-do" || r["remote"] != "127.0.0.1:1" {
		t.Errorf("log record %v", r)
	}
	if p, _ := r["panic"].(string); !strings.Contains(p, "interface conversion") {
		t.Errorf("panic value %q: a runtime error should be logged", p)
	}
	stack, _ := r["stack"].(string)
	if !strings.Contains(stack, "recovery.nilConversion") || !strings.Contains(stack, "TestDoRecoversLogsAndCounts") {
		t.Errorf("stack does not show where the panic happened:\n%s", stack)
	}
}

func TestDoWithoutPanic(t *testing.T) {
	log, buf := newLog()
	before := count("test-calm")
	want := errors.New("plain failure")
	if err := Do(log, "test-calm", "x", func() error { return want }); err != want {
		t.Fatalf("Do = %v, want fn's own error", err)
	}
	if err := Do(log, "test-calm", "x", func() error { return nil }); err != nil {
		t.Fatalf("Do = %v", err)
	}
	if count("test-calm") != before || buf.Len() != 0 {
		t.Errorf("no panic, yet counted or logged: %s", buf)
	}
}

// Values other than runtime errors may carry a statement's data.
func TestOtherValuesAreNotLogged(t *testing.T) {
	log, buf := newLog()
	Do(log, "test-value", "x", func() error { panic("secret 'hunter2' in a literal") })
	Do(log, "test-value", "x", func() error { panic(errors.New("row value 'hunter2'")) })
	if strings.Contains(buf.String(), "hunter2") {
		t.Fatalf("a panic's value reached the log:\n%s", buf)
	}
	for _, r := range records(t, buf) {
		if p, _ := r["panic"].(string); !strings.Contains(p, "of type") {
			t.Errorf("panic attribute %q should name the value's type", p)
		}
	}
}

func TestRecoverCallsThenOnce(t *testing.T) {
	log, _ := newLog()
	var got []*Error
	func() {
		defer Recover(log, "test-then", "answering", func(e *Error) { got = append(got, e) })
		nilConversion()
	}()
	if len(got) != 1 || got[0].Doing != "answering" {
		t.Fatalf("then called with %v", got)
	}
	// No panic: then is not called.
	func() {
		defer Recover(log, "test-then", "answering", func(e *Error) { got = append(got, e) })
	}()
	if len(got) != 1 {
		t.Fatalf("then called without a panic")
	}
}

// A panic while answering is stopped too, not re-raised.
func TestPanicInThenIsRecovered(t *testing.T) {
	log, buf := newLog()
	before := count("test-nested")
	func() {
		defer Recover(log, "test-nested", "serving", func(*Error) { nilConversion() })
		nilConversion()
	}()
	if got := count("test-nested"); got != before+2 {
		t.Errorf("counted %v, want both panics", got-before)
	}
	if recs := records(t, buf); len(recs) != 2 || recs[1]["doing"] != "answering after serving" {
		t.Errorf("log:\n%s", buf)
	}
}

func TestGoRecoversOnItsGoroutine(t *testing.T) {
	var buf testenv.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	before := count("test-go")
	Go(log, "test-go", "background work", func() { nilConversion() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "background work") {
		if time.Now().After(deadline) {
			t.Fatal("the goroutine's panic was not logged")
		}
		time.Sleep(time.Millisecond)
	}
	if got := count("test-go"); got != before+1 {
		t.Fatalf("counted %v", got-before)
	}
}

func TestFuncWrapsForErrgroup(t *testing.T) {
	log, _ := newLog()
	fn := Func(log, "test-func", "fetching", func() error { nilConversion(); return nil })
	if err := fn(); !Is(err) {
		t.Fatalf("Func's function returned %v", err)
	}
}

// Known places have a series before their first panic.
func TestCollectorShowsKnownPlaces(t *testing.T) {
	if n := testutil.CollectAndCount(Collector(), "luna_panics_total"); n < 9 {
		t.Fatalf("%d series of luna_panics_total, want one per known place at least", n)
	}
}
