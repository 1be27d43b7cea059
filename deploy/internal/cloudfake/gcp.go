package cloudfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// GCP is a fake Compute Engine REST API.
//
// Mutating calls (POST, PATCH, DELETE, except listManagedInstances) answer
// with a new operation, global or regional like the resource. Polling an
// operation answers RUNNING the first time and DONE after; OpError makes an
// operation end with an error instead. Other calls are answered from
// Answers, keyed by "METHOD path" (a path may end in "?pageToken=X" for a
// later page); anything else is a 404 like the real API's.
type GCP struct {
	recorder
	URL string

	mu      sync.Mutex
	ops     map[string]*gcpOp
	nextOp  int
	answers map[string][]Response
	// Fail makes a call answer with an error, keyed like Answers.
	fail map[string]Response
	// opErrors makes the operation of a call end with this error JSON
	// (the "error" field of an Operation), keyed like Answers.
	opErrors map[string]string
	// queued are one-off answers, consumed in order; see Respond.
	queued map[string][]Response
}

type gcpOp struct {
	name, scope string
	polls       int
	errJSON     string
	httpCode    int
}

var opPath = regexp.MustCompile(`^/compute/v1/projects/[^/]+/(global|regions/[^/]+)/operations/([^/]+)$`)

// NewGCP starts the fake.
func NewGCP(t testing.TB) *GCP {
	g := &GCP{ops: map[string]*gcpOp{}, answers: map[string][]Response{}, fail: map[string]Response{}, opErrors: map[string]string{}, queued: map[string][]Response{}}
	g.URL = start(t, http.HandlerFunc(g.serve)).URL
	return g
}

// Answer queues responses for "METHOD path": each call takes the next one,
// and the last one repeats.
func (g *GCP) Answer(key string, bodies ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range bodies {
		g.answers[key] = append(g.answers[key], Response{Body: b})
	}
}

// Respond queues one answer per call of "METHOD path", in order, before
// anything else applies (Fail, Answer, operations): the zero Response lets
// a call be handled as usual, so that calls of the same path can answer
// differently, e.g. an insert that succeeds and one that conflicts.
func (g *GCP) Respond(key string, resps ...Response) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queued[key] = append(g.queued[key], resps...)
}

// Error is the body of a googleapi error, as Fail sends it.
func Error(code int, reason, message string) string {
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"errors": []map[string]string{{"reason": reason, "message": message, "domain": "global"}},
	}})
	return string(body)
}

// Fail makes "METHOD path" answer with a googleapi error.
func (g *GCP) Fail(key string, code int, reason, message string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail[key] = Response{Status: code, Body: Error(code, reason, message)}
}

// FailOperation makes the operation started by "METHOD path" end DONE with
// an error, as Compute Engine reports quota and capacity failures.
func (g *GCP) FailOperation(key string, httpCode int, code, message string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	g.opErrors[key] = fmt.Sprintf("%d|%s", httpCode, b)
}

func (g *GCP) serve(w http.ResponseWriter, r *http.Request) {
	rec := g.record(r)
	key := r.Method + " " + rec.Path
	g.mu.Lock()
	defer g.mu.Unlock()
	if q := g.queued[key]; len(q) > 0 {
		g.queued[key] = q[1:]
		if q[0] != (Response{}) {
			write(w, q[0])
			return
		}
	}
	if resp, ok := g.fail[key]; ok {
		write(w, resp)
		return
	}
	if m := opPath.FindStringSubmatch(rec.Path); m != nil && r.Method == http.MethodGet {
		op, ok := g.ops[m[2]]
		if !ok {
			g.notFound(w, rec.Path)
			return
		}
		op.polls++
		write(w, Response{Body: op.json(op.polls > 1)})
		return
	}
	if tok := rec.Query.Get("pageToken"); tok != "" {
		key += "?pageToken=" + tok
	}
	if list, ok := g.answers[key]; ok {
		resp := list[0]
		if len(list) > 1 {
			g.answers[key] = list[1:]
		}
		write(w, resp)
		return
	}
	if r.Method != http.MethodGet && !strings.HasSuffix(rec.Path, "/listManagedInstances") {
		g.nextOp++
		op := &gcpOp{name: fmt.Sprintf("operation-%d", g.nextOp), scope: scopeOf(rec.Path)}
		if e, ok := g.opErrors[key]; ok {
			code, js, _ := strings.Cut(e, "|")
			fmt.Sscan(code, &op.httpCode)
			op.errJSON = js
		}
		g.ops[op.name] = op
		write(w, Response{Body: op.json(false)})
		return
	}
	g.notFound(w, rec.Path)
}

func (g *GCP) notFound(w http.ResponseWriter, path string) {
	msg := fmt.Sprintf("The resource '%s' was not found", strings.TrimPrefix(path, "/compute/v1/"))
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": 404, "message": msg, "errors": []map[string]string{{"reason": "notFound", "message": msg, "domain": "global"}},
	}})
	write(w, Response{Status: http.StatusNotFound, Body: string(body)})
}

// scopeOf returns "global" or "regions/<r>" for a resource path.
func scopeOf(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if p == "global" {
			return "global"
		}
		if p == "regions" && i+1 < len(parts) {
			return "regions/" + parts[i+1]
		}
	}
	return "global"
}

func (op *gcpOp) json(done bool) string {
	m := map[string]any{
		"kind":          "compute#operation",
		"name":          op.name,
		"status":        "RUNNING",
		"operationType": "insert",
		"progress":      0,
	}
	if strings.HasPrefix(op.scope, "regions/") {
		m["region"] = strings.TrimPrefix(op.scope, "regions/")
	}
	if done {
		m["status"] = "DONE"
		m["progress"] = 100
		if op.errJSON != "" {
			var e any
			json.Unmarshal([]byte(op.errJSON), &e)
			m["error"] = e
			if op.httpCode != 0 {
				m["httpErrorStatusCode"] = op.httpCode
				m["httpErrorMessage"] = http.StatusText(op.httpCode)
			}
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Mutations returns the recorded calls that change something: every
// request but GETs and listManagedInstances (a POST that only reads).
func (g *GCP) Mutations() []Request {
	var out []Request
	for _, r := range g.Requests() {
		if r.Method != http.MethodGet && !strings.HasSuffix(r.Path, "/listManagedInstances") {
			out = append(out, r)
		}
	}
	return out
}
