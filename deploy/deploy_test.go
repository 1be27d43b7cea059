package deploy

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	"google.golang.org/api/googleapi"
)

func TestWriteInstances(t *testing.T) {
	in := []Instance{{Name: "luna-a", State: "RUNNING", Health: "HEALTHY", Zone: "z1", InternalIP: "10.0.0.1", Version: "v1"}, {Name: "luna-b"}}
	var b bytes.Buffer
	if err := WriteInstances(&b, "table", in); err != nil {
		t.Fatal(err)
	}
	want := "NAME    STATE    HEALTH   ZONE  INTERNAL IP  VERSION\nluna-a  RUNNING  HEALTHY  z1    10.0.0.1     v1\nluna-b  -        -        -     -            -\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteInstances(&b, "json", nil); err != nil || b.String() != "[]\n" {
		t.Errorf("json of none: %q %v", b.String(), err)
	}
	if err := WriteInstances(&b, "yaml", in); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestConfirm(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, " yes ": true, "n\n": false, "": false, "yep\n": false} {
		var out bytes.Buffer
		got, err := Confirm(strings.NewReader(in), &out, "Delete?")
		if err != nil || got != want || out.String() != "Delete? [y/N]: " {
			t.Errorf("Confirm(%q) = %v, %v (prompt %q)", in, got, err, out.String())
		}
	}
}

type apiErr struct{ code, msg string }

func (e apiErr) Error() string                 { return e.code + ": " + e.msg }
func (e apiErr) ErrorCode() string             { return e.code }
func (e apiErr) ErrorMessage() string          { return e.msg }
func (e apiErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

func TestCloudError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&googleapi.Error{Code: 403, Message: "denied"}, "lack a permission"},
		{&googleapi.Error{Code: 401}, "no valid credentials"},
		{&googleapi.Error{Code: 404, Message: "The resource 'projects/x/global/images/y' was not found"}, "image is missing"},
		{&googleapi.Error{Code: 404, Message: "The resource 'projects/x/regions/r/instanceGroupManagers/luna' was not found"}, "does not exist"},
		{&googleapi.Error{Code: 403, Message: "QUOTA_EXCEEDED: Quota 'CPUS' exceeded"}, "quota is exhausted"},
		{&googleapi.Error{Code: 409, Errors: []googleapi.ErrorItem{{Reason: "alreadyExists"}}}, "exists already"},
		{&googleapi.Error{Code: 503, Message: "ZONE_RESOURCE_POOL_EXHAUSTED"}, "no capacity"},
		{apiErr{"UnauthorizedOperation", "no"}, "lack a permission"},
		{apiErr{"InvalidAMIID.Malformed", "bad"}, "image is missing"},
		{apiErr{"VcpuLimitExceeded", "x"}, "quota is exhausted"},
		{apiErr{"InvalidKeyPair.NotFound", "x"}, "does not exist"},
		{apiErr{"AlreadyExists", "x"}, "exists already"},
		{apiErr{"AuthFailure", "x"}, "no valid credentials"},
	} {
		err := CloudError("doing it", tc.err)
		if !strings.HasPrefix(err.Error(), "doing it: ") || !strings.Contains(err.Error(), "\n  check: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CloudError(%v) = %q, want a hint with %q", tc.err, err, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("CloudError(%v) does not wrap it", tc.err)
		}
	}
	if err := CloudError("x", context.Canceled); err != context.Canceled {
		t.Errorf("cancellation wrapped: %v", err)
	}
	if err := CloudError("x", errors.New("plain")); err.Error() != "x: plain" {
		t.Errorf("plain error: %q", err)
	}
}

func TestInputBody(t *testing.T) {
	type in struct {
		A *string
		B string
		C []string
		D *bool
		E struct{ F *int }
	}
	yes := true
	got := InputBody(in{D: &yes})
	m, ok := got.(map[string]any)
	if !ok || len(m) != 1 || m["D"] != true {
		t.Errorf("InputBody = %#v, want only D", got)
	}
}

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]Amount{"3": {Value: 3}, " 0 ": {}, "50%": {Value: 50, Percent: true}, "100%": {Value: 100, Percent: true}} {
		if got, err := ParseAmount(in); err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"-1": "must not be negative", "101%": "at most 100%", "x": "not a number", "%": "not a number", "2.5": "not a number"} {
		if _, err := ParseAmount(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAmount(%q): %v, want %q", in, err, want)
		}
	}
	if s := (Amount{Value: 25, Percent: true}).String(); s != "25%" {
		t.Errorf("String: %q", s)
	}
}

func TestChange(t *testing.T) {
	if got := Change("machineType", "e2-standard-4", "n2-highmem-8"); got != "machineType: e2-standard-4 → n2-highmem-8" {
		t.Errorf("Change: %q", got)
	}
	if got := Change("x", "", Redacted); got != "x: (none) → <redacted>" {
		t.Errorf("Change: %q", got)
	}
	got := Change("script", "#!/bin/sh\necho a\n", "")
	if !strings.HasPrefix(got, "script: <17 bytes, sha256 ") || !strings.HasSuffix(got, "…> → (none)") {
		t.Errorf("Change of a script: %q", got)
	}
}
