package cloudfake

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// AWS is a fake EC2 and Auto Scaling query API (one server for both: their
// action names do not overlap). Requests are form-encoded; answers are the
// XML the SDK parses. A call's answer comes from Answer, keyed by action
// (and "?NextToken=X" for later pages); an unanswered action gets an empty
// success.
type AWS struct {
	recorder
	URL string

	mu      sync.Mutex
	answers map[string][]string
	fail    map[string]awsError
}

type awsError struct {
	status    int
	code, msg string
}

const ec2Version = "2016-11-15"

// NewAWS starts the fake.
func NewAWS(t testing.TB) *AWS {
	a := &AWS{answers: map[string][]string{}, fail: map[string]awsError{}}
	a.URL = start(t, http.HandlerFunc(a.serve)).URL
	return a
}

// Answer queues result XML (the inside of <ActionResult> for Auto Scaling,
// of <ActionResponse> for EC2) for key; each call takes the next and the
// last repeats.
func (a *AWS) Answer(key string, xml ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answers[key] = append(a.answers[key], xml...)
}

// Fail makes action answer with an error of the service's shape.
func (a *AWS) Fail(action string, status int, code, message string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[action] = awsError{status, code, message}
}

// Actions returns the actions called so far, with NextToken when sent.
func (a *AWS) Actions() []string {
	var out []string
	for _, r := range a.Requests() {
		s := r.Form.Get("Action")
		if tok := r.Form.Get("NextToken"); tok != "" {
			s += "?NextToken=" + tok
		}
		out = append(out, s)
	}
	return out
}

func (a *AWS) serve(w http.ResponseWriter, r *http.Request) {
	rec := a.record(r)
	action := rec.Form.Get("Action")
	isEC2 := rec.Form.Get("Version") == ec2Version
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.fail[action]; ok {
		code, msg := f.code, f.msg
		body := fmt.Sprintf(`<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>req-1</RequestId></ErrorResponse>`, code, msg)
		if isEC2 {
			body = fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-1</RequestID></Response>`, code, msg)
		}
		write(w, Response{Status: f.status, Body: body, ContentType: "text/xml"})
		return
	}
	key := action
	if tok := rec.Form.Get("NextToken"); tok != "" {
		key += "?NextToken=" + tok
	}
	inner := ""
	if list, ok := a.answers[key]; ok {
		inner = list[0]
		if len(list) > 1 {
			a.answers[key] = list[1:]
		}
	}
	var body string
	if isEC2 {
		body = fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId>%s</%sResponse>`, action, inner, action)
	} else {
		body = fmt.Sprintf(`<%sResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><%sResult>%s</%sResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></%sResponse>`, action, action, inner, action, action)
	}
	write(w, Response{Body: body, ContentType: "text/xml"})
}

// Mutations returns the actions called so far that change something:
// every action but Describe*, List* and Get*.
func (a *AWS) Mutations() []string {
	var out []string
	for _, r := range a.Requests() {
		act := r.Form.Get("Action")
		if !strings.HasPrefix(act, "Describe") && !strings.HasPrefix(act, "List") && !strings.HasPrefix(act, "Get") {
			out = append(out, act)
		}
	}
	return out
}
