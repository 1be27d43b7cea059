package gcp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/internal/cloudfake"
	"google.golang.org/api/option"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const base = "/compute/v1/projects/proj"

func testConfig() Config {
	c := Config{
		Project: "proj", Region: "europe-west1", Zones: []string{"europe-west1-b", "europe-west1-c"},
		Name: "luna", Version: "v2", StartupScript: "#!/bin/sh\necho start\n", Password: "s3cret",
		Tags: []string{"luna", "ops"}, Subnet: "sub", Metadata: map[string]string{"team": "data"},
		InitialDelaySec: 600,
	}
	c.Defaults(time.Time{})
	return c
}

func newClient(t *testing.T, g *cloudfake.GCP, cfg Config) (*Client, *bytes.Buffer) {
	t.Helper()
	c, err := New(context.Background(), cfg, option.WithEndpoint(g.URL), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var progress bytes.Buffer
	c.Progress = &deploy.Progress{W: &progress}
	c.PollInterval = time.Millisecond
	return c, &progress
}

// calls renders the recorded requests as "METHOD path[?query]" lines.
func calls(reqs []cloudfake.Request) []string {
	var out []string
	for _, r := range reqs {
		s := r.Method + " " + r.Path
		if q := r.Query.Encode(); q != "" {
			s += "?" + q
		}
		out = append(out, s)
	}
	return out
}

func checkCalls(t *testing.T, got []cloudfake.Request, want ...string) {
	t.Helper()
	if g := calls(got); !reflect.DeepEqual(g, want) {
		t.Errorf("requests:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}

// field digs a value out of decoded JSON by a dotted path; numbers index
// arrays.
func field(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func checkFields(t *testing.T, what string, body map[string]any, want map[string]any) {
	t.Helper()
	for path, w := range want {
		g := field(body, path)
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Errorf("%s: %s = %s, want %s", what, path, gj, wj)
		}
	}
}

// twice is an operation's two polls: RUNNING, then DONE.
func twice(scope string, n int) []string {
	op := fmt.Sprintf("GET %s/%s/operations/operation-%d", base, scope, n)
	return []string{op, op}
}

func seq(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch x := p.(type) {
		case string:
			out = append(out, x)
		case []string:
			out = append(out, x...)
		}
	}
	return out
}

func TestCreate(t *testing.T) {
	g := cloudfake.NewGCP(t)
	cfg := testConfig()
	surge := deploy.Amount{Value: 2}
	cfg.MaxSurge = &surge
	c, progress := newClient(t, g, cfg)
	out, err := c.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := g.Requests()
	checkCalls(t, reqs, seq(
		"POST "+base+"/global/healthChecks", twice("global", 1),
		"POST "+base+"/global/healthChecks", twice("global", 2),
		"POST "+base+"/global/firewalls", twice("global", 3),
		"POST "+base+"/global/firewalls", twice("global", 4),
		"POST "+base+"/global/instanceTemplates", twice("global", 5),
		"POST "+base+"/regions/europe-west1/instanceGroupManagers", twice("regions/europe-west1", 6),
	)...)
	if len(reqs) != 18 {
		t.FailNow()
	}
	// Compute Engine API reference, healthChecks.insert: an HTTP check
	// (type HTTP) probes httpHealthCheck.port at httpHealthCheck.requestPath
	// and wants a 200. /healthz answers 200 while the server runs, /readyz
	// only once the startup SQL has run.
	checkFields(t, "autohealing health check", reqs[0].JSON(), map[string]any{
		"name": "luna-healthz", "type": "HTTP", "httpHealthCheck.port": 7689, "httpHealthCheck.requestPath": "/healthz",
		"checkIntervalSec": 10, "timeoutSec": 5, "healthyThreshold": 2, "unhealthyThreshold": 3,
	})
	checkFields(t, "load balancer health check", reqs[3].JSON(), map[string]any{
		"name": "luna-readyz", "type": "HTTP", "httpHealthCheck.port": 7689, "httpHealthCheck.requestPath": "/readyz",
	})
	// Cloud Load Balancing "Firewall rules" and "Health checks overview":
	// probes come from 35.191.0.0/16 and 130.211.0.0/22 and need an ingress
	// allow rule to the backends' health port. Compute Engine API
	// reference, firewalls.insert: direction INGRESS, sourceRanges,
	// targetTags (instances with one of these network tags), allowed[]
	// with IPProtocol and ports (strings), network as a partial URL.
	checkFields(t, "firewall rule", reqs[6].JSON(), map[string]any{
		"name":         "luna-allow-health-check",
		"network":      "projects/proj/global/networks/default",
		"direction":    "INGRESS",
		"priority":     1000,
		"sourceRanges": []string{"35.191.0.0/16", "130.211.0.0/22"},
		"targetTags":   []string{"luna"},
		"allowed":      []map[string]any{{"IPProtocol": "tcp", "ports": []string{"7689"}}},
	})
	// "Using IAP for TCP forwarding": a rule admitting 35.235.240.0/20,
	// the range IAP forwards TCP from, to the port to reach (22 for SSH)
	// of the instances, here those tagged with the group's name.
	checkFields(t, "IAP SSH firewall rule", reqs[9].JSON(), map[string]any{
		"name":         "luna-allow-iap-ssh",
		"description":  "IAP TCP forwarding to SSH, made by luna-deploy for group luna",
		"network":      "projects/proj/global/networks/default",
		"direction":    "INGRESS",
		"priority":     1000,
		"sourceRanges": []string{"35.235.240.0/20"},
		"targetTags":   []string{"luna"},
		"allowed":      []map[string]any{{"IPProtocol": "tcp", "ports": []string{"22"}}},
	})
	if n := len(reqs[9].JSON()); n != 8 {
		t.Errorf("the IAP SSH rule has %d fields, want exactly the 8 above: %s", n, reqs[9].Body)
	}
	checkFields(t, "template", reqs[12].JSON(), map[string]any{
		"name":                    "luna-v2",
		"properties.machineType":  "e2-standard-4",
		"properties.disks.0.boot": true,
		"properties.disks.0.initializeParams.sourceImage": "projects/debian-cloud/global/images/family/debian-12",
		"properties.disks.0.initializeParams.diskSizeGb":  "20",
		"properties.networkInterfaces.0.network":          "projects/proj/global/networks/default",
		"properties.networkInterfaces.0.subnetwork":       "projects/proj/regions/europe-west1/subnetworks/sub",
		"properties.networkInterfaces.0.accessConfigs":    nil,
		"properties.serviceAccounts.0.email":              "default",
		"properties.serviceAccounts.0.scopes":             []string{"https://www.googleapis.com/auth/cloud-platform"},
		// The firewall rule's target tag comes first, given once.
		"properties.tags.items": []string{"luna", "ops"},
		"properties.labels":     map[string]string{GroupLabel: "luna"},
		// OS Login on, so that IAM decides who may SSH in (through IAP).
		"properties.metadata.items": []map[string]string{
			{"key": "enable-oslogin", "value": "TRUE"},
			{"key": "team", "value": "data"},
			{"key": "startup-script", "value": "#!/bin/sh\necho start\n"},
			{"key": "luna-passwd", "value": "s3cret"},
			{"key": "luna-passwd-from", "value": "gcp-metadata:luna-passwd"},
		},
	})
	// Compute Engine API reference, regionInstanceGroupManagers.insert:
	// autoHealingPolicies[].initialDelaySec (0 to 3600) is how long after a
	// VM is created autohealing ignores it. updatePolicy.maxSurge and
	// maxUnavailable of a regional group, when fixed, are 0 or at least the
	// number of zones (here 2); at least one of them is above 0.
	checkFields(t, "group", reqs[15].JSON(), map[string]any{
		"name":                                  "luna",
		"baseInstanceName":                      "luna",
		"instanceTemplate":                      "projects/proj/global/instanceTemplates/luna-v2",
		"targetSize":                            2,
		"namedPorts":                            []map[string]any{{"name": "luna", "port": 7688}},
		"autoHealingPolicies.0.healthCheck":     "projects/proj/global/healthChecks/luna-healthz",
		"autoHealingPolicies.0.initialDelaySec": 600,
		"distributionPolicy.zones":              []map[string]string{{"zone": "zones/europe-west1-b"}, {"zone": "zones/europe-west1-c"}},
		"updatePolicy":                          map[string]any{"type": "PROACTIVE", "minimalAction": "REPLACE", "maxSurge": map[string]int{"fixed": 2}, "maxUnavailable": map[string]int{"fixed": 0}},
	})
	for _, want := range []string{"waiting for operation operation-1 (creating health check luna-healthz): RUNNING", "done: creating managed instance group luna"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}
	for _, want := range []string{
		"created health check luna-healthz (HTTP /healthz on port 7689)",
		"created firewall rule luna-allow-health-check (tcp:7689 from 35.191.0.0/16,130.211.0.0/22 to tag luna)",
		"created firewall rule luna-allow-iap-ssh (tcp:22 from 35.235.240.0/20 to tag luna, for SSH through IAP)",
		"created managed instance group luna in europe-west1: 2 instances, named port luna:7688, autohealing on luna-healthz (/healthz) after 600s",
		"backend health check luna-readyz (/readyz)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("create printed:\n%s\nwant %q", out, want)
		}
	}
}

// TestCreateDefaultSurge: without --max-surge the update policy leaves the
// surge to Compute Engine, whose default is the number of zones
// (InstanceGroupManagerUpdatePolicy.maxSurge), and a Shared VPC network's
// firewall rule goes to the host project.
func TestCreateDefaultSurge(t *testing.T) {
	g := cloudfake.NewGCP(t)
	cfg := testConfig()
	cfg.Zones = nil
	cfg.Network = "projects/host/global/networks/shared"
	c, _ := newClient(t, g, cfg)
	if _, err := c.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := g.Requests()
	if len(reqs) != 18 {
		t.Fatalf("requests: %v", calls(reqs))
	}
	for _, i := range []int{6, 9} {
		if reqs[i].Path != "/compute/v1/projects/host/global/firewalls" {
			t.Errorf("firewall rule went to %s", reqs[i].Path)
		}
		checkFields(t, "firewall rule", reqs[i].JSON(), map[string]any{"network": "projects/host/global/networks/shared"})
	}
	checkFields(t, "group", reqs[15].JSON(), map[string]any{
		"updatePolicy":       map[string]any{"type": "PROACTIVE", "minimalAction": "REPLACE", "maxUnavailable": map[string]int{"fixed": 0}},
		"distributionPolicy": nil,
	})
}

// TestCreateFirewallExists: an existing rule of that name is accepted if
// it admits the health checkers (the insert answers 409 alreadyExists, as
// Compute Engine does for a taken name), and refused, before anything
// else is made, if it does not.
func TestCreateFirewallExists(t *testing.T) {
	fw := base + "/global/firewalls"
	good := `{"name":"luna-allow-health-check","network":"https://www.googleapis.com/compute/v1/projects/proj/global/networks/default","direction":"INGRESS",
		"sourceRanges":["130.211.0.0/22","35.191.0.0/16"],"targetTags":["luna"],"allowed":[{"IPProtocol":"tcp","ports":["7000-7999"]}]}`
	g := cloudfake.NewGCP(t)
	g.Fail("POST "+fw, 409, "alreadyExists", "The resource 'projects/proj/global/firewalls/luna-allow-health-check' already exists")
	g.Answer("GET "+fw+"/luna-allow-health-check", good)
	c, progress := newClient(t, g, testConfig())
	out, err := c.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kept firewall rule luna-allow-health-check") || !strings.Contains(progress.String(), "skipped: creating firewall rule") {
		t.Errorf("create printed:\n%s\n%s", out, progress)
	}
	// The insert of the IAP rule is answered 409 too (the fake fails the
	// path), and that rule is kept as it is.
	if n := len(g.Requests()); n != 16 {
		t.Errorf("%d requests, want 16: %v", n, calls(g.Requests()))
	}

	for name, rule := range map[string]string{
		"no 130.211.0.0/22": strings.Replace(good, `"130.211.0.0/22",`, "", 1),
		"another port":      strings.Replace(good, "7000-7999", "22", 1),
		"another tag":       strings.Replace(good, `["luna"]`, `["web"]`, 1),
		"disabled":          strings.Replace(good, `"direction"`, `"disabled":true,"direction"`, 1),
	} {
		g := cloudfake.NewGCP(t)
		g.Fail("POST "+fw, 409, "alreadyExists", "already exists")
		g.Answer("GET "+fw+"/luna-allow-health-check", rule)
		c, _ := newClient(t, g, testConfig())
		_, err := c.Create(context.Background())
		if err == nil || !strings.Contains(err.Error(), "creating firewall rule luna-allow-health-check: a rule of that name exists and ") ||
			!strings.Contains(err.Error(), "--no-health-check-firewall") {
			t.Errorf("%s: %v", name, err)
		}
		for _, r := range g.Requests() {
			if strings.Contains(r.Path, "instanceTemplates") || strings.Contains(r.Path, "instanceGroupManagers") {
				t.Errorf("%s: went on to %s %s", name, r.Method, r.Path)
			}
		}
	}
}

// TestCreateIAPFirewallExists: a rule of the IAP rule's name that exists
// already (409 alreadyExists) is fine, whatever it admits, and create
// goes on; one that does not admit IAP to SSH gets a warning.
func TestCreateIAPFirewallExists(t *testing.T) {
	fw := base + "/global/firewalls"
	good := `{"name":"luna-allow-iap-ssh","network":"https://www.googleapis.com/compute/v1/projects/proj/global/networks/default","direction":"INGRESS",
		"sourceRanges":["35.235.240.0/20"],"targetTags":["luna"],"allowed":[{"IPProtocol":"tcp","ports":["22"]}]}`
	for name, tc := range map[string]struct{ rule, warning string }{
		"admits IAP":      {good, ""},
		"another range":   {strings.Replace(good, "35.235.240.0/20", "10.0.0.0/8", 1), "does not admit 35.235.240.0/20"},
		"another port":    {strings.Replace(good, `["22"]`, `["2222"]`, 1), "does not allow tcp:22"},
		"all ports":       {strings.Replace(good, `,"ports":["22"]`, "", 1), ""},
		"unreadable rule": {"", "cannot read firewall rule luna-allow-iap-ssh"},
	} {
		g := cloudfake.NewGCP(t)
		// The health-check rule is made, the IAP one exists: the fake
		// answers the second insert of the same path with 409.
		g.Respond("POST "+fw, cloudfake.Response{}, cloudfake.Response{Status: 409,
			Body: cloudfake.Error(409, "alreadyExists", "The resource 'projects/proj/global/firewalls/luna-allow-iap-ssh' already exists")})
		if tc.rule != "" {
			g.Answer("GET "+fw+"/luna-allow-iap-ssh", tc.rule)
		}
		c, progress := newClient(t, g, testConfig())
		out, err := c.Create(context.Background())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.Contains(out, "kept firewall rule luna-allow-iap-ssh (exists)") || !strings.Contains(out, "created managed instance group luna") {
			t.Errorf("%s: create printed:\n%s", name, out)
		}
		warned := strings.Contains(progress.String(), "warning: ")
		switch {
		case tc.warning == "" && warned:
			t.Errorf("%s: warned:\n%s", name, progress)
		case tc.warning != "" && (!strings.Contains(progress.String(), tc.warning) || !strings.Contains(progress.String(), "SSH through IAP needs an ingress rule on network default allowing tcp:22 from 35.235.240.0/20 to instances tagged luna")):
			t.Errorf("%s: progress lacks %q:\n%s", name, tc.warning, progress)
		}
		posts := 0
		for _, r := range g.Mutations() {
			if r.Path == fw {
				posts++
			}
		}
		if posts != 2 {
			t.Errorf("%s: %d firewall inserts, want 2", name, posts)
		}
	}
}

// TestOSLoginMetadata: the operator's enable-oslogin, given as metadata,
// replaces the default TRUE.
func TestOSLoginMetadata(t *testing.T) {
	cfg := testConfig()
	cfg.Metadata = map[string]string{"enable-oslogin": "FALSE"}
	var got []string
	for _, it := range cfg.template(true).GetProperties().GetMetadata().GetItems() {
		if it.GetKey() == "enable-oslogin" {
			got = append(got, it.GetValue())
		}
	}
	if !reflect.DeepEqual(got, []string{"FALSE"}) {
		t.Errorf("enable-oslogin items: %q", got)
	}
}

// TestCreateNoIAPSSH: --no-iap-ssh makes no IAP rule and says which one
// SSH through IAP needs.
func TestCreateNoIAPSSH(t *testing.T) {
	g := cloudfake.NewGCP(t)
	cfg := testConfig()
	cfg.NoIAPSSH = true
	c, _ := newClient(t, g, cfg)
	out, err := c.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range g.Requests() {
		if strings.Contains(string(r.Body), "iap") {
			t.Errorf("sent %s %s: %s", r.Method, r.Path, r.Body)
		}
	}
	if !strings.Contains(out, "made no IAP SSH firewall rule (--no-iap-ssh): SSH through IAP (logs and restart --via iap) needs an ingress rule on network default allowing tcp:22 from 35.235.240.0/20 to instances tagged luna") {
		t.Errorf("create printed:\n%s", out)
	}
	for _, p := range cfg.PlanCreate() {
		if b, _ := json.Marshal(p.Body); strings.Contains(string(b), "iap") {
			t.Errorf("the plan holds %s", b)
		}
	}
}

// TestCreateNoFirewall: with the rule skipped, create says which rule the
// network must have.
func TestCreateNoFirewall(t *testing.T) {
	g := cloudfake.NewGCP(t)
	cfg := testConfig()
	cfg.NoFirewall = true
	c, _ := newClient(t, g, cfg)
	out, err := c.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range g.Requests() {
		if strings.Contains(r.Path, "firewalls") && strings.Contains(string(r.Body), "health") {
			t.Errorf("made %s %s: %s", r.Method, r.Path, r.Body)
		}
	}
	if !strings.Contains(out, "an ingress rule on network default allowing tcp:7689 from 35.191.0.0/16,130.211.0.0/22 to instances tagged luna") {
		t.Errorf("create printed:\n%s", out)
	}
}

const migPath = base + "/regions/europe-west1/instanceGroupManagers/luna"

// currentGroup is a group as Compute Engine returns it: on template
// luna-v1 in two zones, autohealing on luna-healthz after 300 s.
const currentGroup = `{"name":"luna","targetSize":2,"instanceTemplate":"https://www.googleapis.com/compute/v1/projects/proj/global/instanceTemplates/luna-v1",
	"versions":[{"name":"v1","instanceTemplate":"https://www.googleapis.com/compute/v1/projects/proj/global/instanceTemplates/luna-v1"}],
	"distributionPolicy":{"zones":[{"zone":"https://www.googleapis.com/compute/v1/projects/proj/zones/europe-west1-b"},{"zone":"https://www.googleapis.com/compute/v1/projects/proj/zones/europe-west1-c"}]},
	"autoHealingPolicies":[{"healthCheck":"https://www.googleapis.com/compute/v1/projects/proj/global/healthChecks/luna-healthz","initialDelaySec":300}],
	"updatePolicy":{"type":"PROACTIVE","minimalAction":"REPLACE","maxSurge":{"fixed":2,"calculated":2},"maxUnavailable":{"fixed":0,"calculated":0}},
	"status":{"isStable":true,"versionTarget":{"isReached":true}}}`

// currentTemplate is the group's template as Compute Engine returns it,
// output-only fields included.
const currentTemplateJSON = `{"kind":"compute#instanceTemplate","id":"123","creationTimestamp":"2026-01-01T00:00:00Z",
	"selfLink":"https://www.googleapis.com/compute/v1/projects/proj/global/instanceTemplates/luna-v1","name":"luna-v1","description":"Luna group luna, version v1",
	"properties":{"machineType":"e2-standard-4","labels":{"luna-deploy-group":"luna"},"tags":{"items":["luna"]},
	 "disks":[{"boot":true,"autoDelete":true,"type":"PERSISTENT","initializeParams":{"sourceImage":"projects/debian-cloud/global/images/family/debian-12","diskSizeGb":"20"}}],
	 "networkInterfaces":[{"network":"https://www.googleapis.com/compute/v1/projects/proj/global/networks/default"}],
	 "serviceAccounts":[{"email":"default","scopes":["https://www.googleapis.com/auth/cloud-platform"]}],
	 "metadata":{"kind":"compute#metadata","fingerprint":"abc=","items":[
	  {"key":"luna-release-url","value":"https://example.com/luna_1.0.0_amd64.deb"},
	  {"key":"luna-release-sha256","value":"1111111111111111111111111111111111111111111111111111111111111111"},
	  {"key":"luna-init-sql","value":"CREATE TABLE t AS SELECT 1;"},
	  {"key":"startup-script","value":"#!/bin/sh\necho start\n"},
	  {"key":"luna-passwd","value":"s3cret"},
	  {"key":"luna-passwd-from","value":"gcp-metadata:luna-passwd"}]}}}`

// updateConfig is an update that names a new release and machine type and
// a longer initial delay, and nothing else.
func updateConfig() Config {
	c := Config{Project: "proj", Region: "europe-west1", Name: "luna", Version: "v2"}
	c.Defaults(time.Time{})
	mt, delay := "n2-highmem-8", int32(900)
	c.Update = Changes{
		MachineType: &mt,
		Metadata: map[string]string{
			"luna-release-url":    "https://example.com/luna_1.1.0_amd64.deb",
			"luna-release-sha256": "2222222222222222222222222222222222222222222222222222222222222222",
		},
		InitialDelaySec: &delay,
	}
	return c
}

// TestUpdate: the new template is the current one with only the named
// fields changed; the password, the startup SQL and the startup script
// carry over; the group is patched to the new version and waited for.
func TestUpdate(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Answer("GET "+migPath, currentGroup,
		`{"name":"luna","status":{"isStable":false,"versionTarget":{"isReached":false}},"currentActions":{"creating":2}}`,
		`{"name":"luna","status":{"isStable":true,"versionTarget":{"isReached":true}}}`)
	g.Answer("GET "+base+"/global/instanceTemplates/luna-v1", currentTemplateJSON)
	c, progress := newClient(t, g, updateConfig())
	out, err := c.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := g.Requests()
	checkCalls(t, reqs, seq(
		"GET "+migPath,
		"GET "+base+"/global/instanceTemplates/luna-v1",
		"POST "+base+"/global/instanceTemplates", twice("global", 1),
		"PATCH "+migPath, twice("regions/europe-west1", 2),
		"GET "+migPath, "GET "+migPath,
	)...)
	if len(reqs) != 10 {
		t.FailNow()
	}
	// Compute Engine API reference, instanceTemplates.insert: the body is
	// a whole InstanceTemplate (templates cannot be changed, only made),
	// so the copy must hold every field of the old one; id, selfLink,
	// creationTimestamp, kind and the metadata fingerprint are output
	// only.
	tmpl := reqs[2].JSON()
	checkFields(t, "new template", tmpl, map[string]any{
		"name":                   "luna-v2",
		"description":            "Luna group luna, version v2",
		"id":                     nil,
		"selfLink":               nil,
		"creationTimestamp":      nil,
		"kind":                   nil,
		"properties.machineType": "n2-highmem-8",
		"properties.disks.0.initializeParams.sourceImage": "projects/debian-cloud/global/images/family/debian-12",
		"properties.networkInterfaces.0.network":          "https://www.googleapis.com/compute/v1/projects/proj/global/networks/default",
		"properties.tags.items":                           []string{"luna"},
		"properties.labels":                               map[string]string{GroupLabel: "luna"},
		"properties.metadata.fingerprint":                 nil,
		"properties.metadata.kind":                        nil,
		"properties.metadata.items": []map[string]string{
			{"key": "luna-release-url", "value": "https://example.com/luna_1.1.0_amd64.deb"},
			{"key": "luna-release-sha256", "value": "2222222222222222222222222222222222222222222222222222222222222222"},
			{"key": "luna-init-sql", "value": "CREATE TABLE t AS SELECT 1;"},
			{"key": "startup-script", "value": "#!/bin/sh\necho start\n"},
			{"key": "luna-passwd", "value": "s3cret"},
			{"key": "luna-passwd-from", "value": "gcp-metadata:luna-passwd"},
		},
	})
	// regionInstanceGroupManagers.patch is a JSON merge patch: versions
	// replaces the list (one version: all instances on the new template);
	// a PROACTIVE policy with minimalAction REPLACE rolls them; the surge
	// and unavailable counts are the group's own; autoHealingPolicies is
	// replaced whole, so it keeps its health check.
	checkFields(t, "patch", reqs[5].JSON(), map[string]any{
		"versions":            []map[string]string{{"name": "v2", "instanceTemplate": "projects/proj/global/instanceTemplates/luna-v2"}},
		"updatePolicy":        map[string]any{"type": "PROACTIVE", "minimalAction": "REPLACE", "maxSurge": map[string]int{"fixed": 2}, "maxUnavailable": map[string]int{"fixed": 0}},
		"autoHealingPolicies": []map[string]any{{"healthCheck": "https://www.googleapis.com/compute/v1/projects/proj/global/healthChecks/luna-healthz", "initialDelaySec": 900}},
		"targetSize":          nil,
	})
	for _, want := range []string{
		"instance template: luna-v1 → luna-v2",
		"machineType: e2-standard-4 → n2-highmem-8",
		"metadata.luna-release-url: https://example.com/luna_1.0.0_amd64.deb → https://example.com/luna_1.1.0_amd64.deb",
		"metadata.luna-release-sha256: 1111111111111111111111111111111111111111111111111111111111111111 → 2222222222222222222222222222222222222222222222222222222222222222",
		"autohealing initial delay: 300s → 900s",
		"rolled group luna over to version v2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("update printed:\n%s\nwant %q", out, want)
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "luna-passwd:") || strings.Contains(out, "luna-init-sql") {
		t.Errorf("update printed unchanged or secret fields:\n%s", out)
	}
	if !strings.Contains(progress.String(), "waiting for rolling update of group luna: creating 2, deleting 0") {
		t.Errorf("progress:\n%s", progress)
	}
}

// TestUpdateDryRun: the plan reads the group and its template and sends
// no change; it shows the diff and redacts the password.
func TestUpdateDryRun(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Answer("GET "+migPath, currentGroup)
	g.Answer("GET "+base+"/global/instanceTemplates/luna-v1", currentTemplateJSON)
	cfg := updateConfig()
	pw := "n3w-secret"
	cfg.Update.Password = &pw
	c, _ := newClient(t, g, cfg)
	reqs, err := c.PlanUpdate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := g.Mutations(); len(m) != 0 {
		t.Errorf("the dry run sent %v", calls(m))
	}
	checkCalls(t, g.Requests(), "GET "+migPath, "GET "+base+"/global/instanceTemplates/luna-v1")
	var buf bytes.Buffer
	if err := deploy.WriteRequests(&buf, reqs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "s3cret") || strings.Contains(buf.String(), pw) {
		t.Errorf("the plan shows a password:\n%s", buf.String())
	}
	if len(reqs) != 2 || reqs[0].API != "compute.instanceTemplates.insert" || reqs[1].API != "compute.regionInstanceGroupManagers.patch" {
		t.Fatalf("plan:\n%s", buf.String())
	}
	want := []string{
		"instance template: luna-v1 → luna-v2",
		"machineType: e2-standard-4 → n2-highmem-8",
		"metadata.luna-passwd: <redacted> → <redacted>",
		"metadata.luna-release-sha256: 1111111111111111111111111111111111111111111111111111111111111111 → 2222222222222222222222222222222222222222222222222222222222222222",
		"metadata.luna-release-url: https://example.com/luna_1.0.0_amd64.deb → https://example.com/luna_1.1.0_amd64.deb",
	}
	if got := reqs[0].Changes; !reflect.DeepEqual(got, want) {
		t.Errorf("template changes:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if got := reqs[1].Changes; !reflect.DeepEqual(got, []string{"autohealing initial delay: 300s → 900s"}) {
		t.Errorf("group changes: %q", got)
	}
}

// TestUpdateResize: --size resizes (regionInstanceGroupManagers.resize,
// size in the query) and waits for the group; no template is made.
func TestUpdateResize(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Answer("GET "+migPath, currentGroup)
	cfg := Config{Project: "proj", Region: "europe-west1", Name: "luna", Version: "v2"}
	cfg.Defaults(time.Time{})
	size := int32(4)
	cfg.Update.Size = &size
	c, _ := newClient(t, g, cfg)
	out, err := c.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, g.Requests(), seq("GET "+migPath, "POST "+migPath+"/resize?size=4", twice("regions/europe-west1", 1), "GET "+migPath)...)
	if !strings.Contains(out, "target size: 2 → 4") || !strings.Contains(out, "resized group luna to 4 instances") {
		t.Errorf("update printed:\n%s", out)
	}
}

// TestUpdateNothing: flags that name what the group has already change
// nothing, and nothing is sent.
func TestUpdateNothing(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Answer("GET "+migPath, currentGroup)
	g.Answer("GET "+base+"/global/instanceTemplates/luna-v1", currentTemplateJSON)
	cfg := Config{Project: "proj", Region: "europe-west1", Name: "luna", Version: "v2"}
	cfg.Defaults(time.Time{})
	mt, size := "e2-standard-4", int32(2)
	cfg.Update = Changes{MachineType: &mt, Size: &size}
	c, _ := newClient(t, g, cfg)
	out, err := c.Update(context.Background())
	if err != nil || !strings.Contains(out, "nothing to change") {
		t.Errorf("update: %q, %v", out, err)
	}
	if m := g.Mutations(); len(m) != 0 {
		t.Errorf("sent %v", calls(m))
	}
}

// TestUpdateRollout: a new surge is checked against the group's zones
// before anything is sent, and patched when valid.
func TestUpdateRollout(t *testing.T) {
	for _, tc := range []struct {
		surge, unavailable *deploy.Amount
		size               *int32
		want               string
	}{
		{surge: &deploy.Amount{Value: 1}, want: "--max-surge 1: a regional group's fixed max-surge must be 0 or at least its number of zones (2)"},
		{unavailable: &deploy.Amount{Value: 50, Percent: true}, want: "--max-unavailable 50%: Compute Engine takes a percentage only for groups of 10 or more instances (this one has 2)"},
		{surge: &deploy.Amount{}, want: "no instance could be replaced"},
		{surge: &deploy.Amount{Value: 20, Percent: true}, size: new(int32), want: "only for groups of 10 or more"},
	} {
		g := cloudfake.NewGCP(t)
		g.Answer("GET "+migPath, currentGroup)
		cfg := Config{Project: "proj", Region: "europe-west1", Name: "luna", Version: "v2"}
		cfg.Defaults(time.Time{})
		cfg.Update = Changes{MaxSurge: tc.surge, MaxUnavailable: tc.unavailable, Size: tc.size}
		c, _ := newClient(t, g, cfg)
		if _, err := c.Update(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("update: %v, want %q", err, tc.want)
		}
		if m := g.Mutations(); len(m) != 0 {
			t.Errorf("sent %v", calls(m))
		}
	}

	g := cloudfake.NewGCP(t)
	g.Answer("GET "+migPath, currentGroup)
	cfg := Config{Project: "proj", Region: "europe-west1", Name: "luna", Version: "v2"}
	cfg.Defaults(time.Time{})
	cfg.Update = Changes{MaxSurge: &deploy.Amount{Value: 4}}
	c, _ := newClient(t, g, cfg)
	if _, err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := g.Requests()
	checkCalls(t, reqs, seq("GET "+migPath, "PATCH "+migPath, twice("regions/europe-west1", 1))...)
	checkFields(t, "patch", reqs[1].JSON(), map[string]any{
		"updatePolicy": map[string]any{"type": "PROACTIVE", "minimalAction": "REPLACE", "maxSurge": map[string]int{"fixed": 4}, "maxUnavailable": map[string]int{"fixed": 0}},
		"versions":     nil,
	})
}

func TestUpdateMissingGroup(t *testing.T) {
	g := cloudfake.NewGCP(t)
	c, _ := newClient(t, g, updateConfig())
	if _, err := c.Update(context.Background()); err == nil || !strings.Contains(err.Error(), "the group does not exist") {
		t.Errorf("update: %v", err)
	}
	if m := g.Mutations(); len(m) != 0 {
		t.Errorf("sent %v", calls(m))
	}
}

func TestInstances(t *testing.T) {
	g := cloudfake.NewGCP(t)
	list := "POST " + base + "/regions/europe-west1/instanceGroupManagers/luna/listManagedInstances"
	g.Answer(list, `{"managedInstances":[
		{"instance":"https://www.googleapis.com/compute/v1/projects/proj/zones/europe-west1-c/instances/luna-bbbb","id":"8340529381029384756","instanceStatus":"RUNNING","currentAction":"NONE",
		 "instanceHealth":[{"detailedHealthState":"HEALTHY"}],"version":{"name":"v1","instanceTemplate":"projects/proj/global/instanceTemplates/luna-v1"}}],
		"nextPageToken":"p2"}`)
	g.Answer(list+"?pageToken=p2", `{"managedInstances":[
		{"instance":"https://www.googleapis.com/compute/v1/projects/proj/zones/europe-west1-b/instances/luna-aaaa","instanceStatus":"STAGING","currentAction":"CREATING",
		 "instanceHealth":[{"detailedHealthState":"UNKNOWN"}],"version":{"instanceTemplate":"projects/proj/global/instanceTemplates/luna-v2"}}]}`)
	g.Answer("GET "+base+"/zones/europe-west1-c/instances/luna-bbbb", `{"name":"luna-bbbb","networkInterfaces":[{"networkIP":"10.0.0.3","accessConfigs":[{"natIP":"34.1.2.3"}]}]}`)
	// The managed instance being created has no id yet; its VM has one.
	g.Answer("GET "+base+"/zones/europe-west1-b/instances/luna-aaaa", `{"name":"luna-aaaa","id":"1234567890123","networkInterfaces":[{"networkIP":"10.0.0.2"}]}`)
	c, _ := newClient(t, g, testConfig())
	got, err := c.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, g.Requests(),
		list,
		"GET "+base+"/zones/europe-west1-c/instances/luna-bbbb",
		list+"?pageToken=p2",
		"GET "+base+"/zones/europe-west1-b/instances/luna-aaaa",
	)
	want := []deploy.Instance{
		{Name: "luna-aaaa", ID: "1234567890123", State: "STAGING (creating)", Health: "UNKNOWN", Zone: "europe-west1-b", InternalIP: "10.0.0.2", Version: "luna-v2"},
		{Name: "luna-bbbb", ID: "8340529381029384756", State: "RUNNING", Health: "HEALTHY", Zone: "europe-west1-c", InternalIP: "10.0.0.3", ExternalIP: "34.1.2.3", Version: "v1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instances:\n%+v\nwant:\n%+v", got, want)
	}
	// Host keys are recorded under name and id: a node autohealing
	// recreated under its name is told apart from the one before.
	if id := got[1].Identity(); id != "luna-bbbb/8340529381029384756" {
		t.Errorf("identity %q", id)
	}
}

func TestDelete(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Answer("GET "+base+"/global/instanceTemplates", `{"items":[
		{"name":"luna-v1","properties":{"labels":{"luna-deploy-group":"luna"}}},
		{"name":"luna-prod-v1","properties":{"labels":{"luna-deploy-group":"luna-prod"}}},
		{"name":"luna-v2","properties":{"labels":{"luna-deploy-group":"luna"}}}]}`)
	g.Answer("GET "+base+"/global/firewalls/luna-allow-health-check", `{"name":"luna-allow-health-check","description":"Google health checks to the Luna health port, made by luna-deploy for group luna"}`)
	g.Answer("GET "+base+"/global/firewalls/luna-allow-iap-ssh", `{"name":"luna-allow-iap-ssh","description":"IAP TCP forwarding to SSH, made by luna-deploy for group luna"}`)
	c, _ := newClient(t, g, testConfig())
	out, err := c.Delete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	filter := `filter=name+eq+%22luna-.%2A%22`
	checkCalls(t, g.Requests(), seq(
		"DELETE "+migPath, twice("regions/europe-west1", 1),
		"DELETE "+base+"/global/healthChecks/luna-healthz", twice("global", 2),
		"DELETE "+base+"/global/healthChecks/luna-readyz", twice("global", 3),
		"GET "+base+"/global/firewalls/luna-allow-health-check",
		"DELETE "+base+"/global/firewalls/luna-allow-health-check", twice("global", 4),
		"GET "+base+"/global/firewalls/luna-allow-iap-ssh",
		"DELETE "+base+"/global/firewalls/luna-allow-iap-ssh", twice("global", 5),
		"GET "+base+"/global/instanceTemplates?"+filter,
		"DELETE "+base+"/global/instanceTemplates/luna-v1", twice("global", 6),
		"DELETE "+base+"/global/instanceTemplates/luna-v2", twice("global", 7),
	)...)
	want := "deleted managed instance group luna\ndeleted health check luna-healthz\ndeleted health check luna-readyz\ndeleted firewall rule luna-allow-health-check\n" +
		"deleted firewall rule luna-allow-iap-ssh\n" +
		"deleted instance template luna-v1\ndeleted instance template luna-v2\n"
	if out != want {
		t.Errorf("delete printed %q, want %q", out, want)
	}
}

// TestDeleteMissing: a group that is gone already is skipped, not an error,
// and a firewall rule luna-deploy did not make is left alone.
func TestDeleteMissing(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Fail("DELETE "+migPath, 404, "notFound", "The resource 'luna' was not found")
	g.Fail("DELETE "+base+"/global/healthChecks/luna-healthz", 404, "notFound", "The resource 'luna-healthz' was not found")
	g.Fail("DELETE "+base+"/global/healthChecks/luna-readyz", 404, "notFound", "The resource 'luna-readyz' was not found")
	g.Answer("GET "+base+"/global/firewalls/luna-allow-health-check", `{"name":"luna-allow-health-check","description":"made by hand"}`)
	g.Answer("GET "+base+"/global/firewalls/luna-allow-iap-ssh", `{"name":"luna-allow-iap-ssh","description":"IAP TCP forwarding to SSH, made by hand"}`)
	g.Answer("GET "+base+"/global/instanceTemplates", `{}`)
	c, progress := newClient(t, g, testConfig())
	out, err := c.Delete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "nothing to delete") || !strings.Contains(progress.String(), "not made by luna-deploy for group luna") {
		t.Errorf("delete printed %q\n%s", out, progress)
	}
	for _, r := range g.Mutations() {
		if strings.Contains(r.Path, "firewalls") {
			t.Errorf("deleted a rule it did not make: %s %s", r.Method, r.Path)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(g *cloudfake.GCP)
		want  []string
	}{
		{"permission", func(g *cloudfake.GCP) {
			g.Fail("POST "+base+"/global/healthChecks", 403, "forbidden", "Required 'compute.healthChecks.create' permission for 'projects/proj/global/healthChecks/luna-healthz'")
		}, []string{"creating health check luna-healthz", "compute.healthChecks.create", "check: the credentials lack a permission"}},
		{"quota", func(g *cloudfake.GCP) {
			g.FailOperation("POST "+base+"/regions/europe-west1/instanceGroupManagers", 403, "QUOTA_EXCEEDED", "Quota 'CPUS' exceeded. Limit: 8.0 in region europe-west1.")
		}, []string{"creating managed instance group luna", "QUOTA_EXCEEDED", "check: a quota is exhausted"}},
		{"image", func(g *cloudfake.GCP) {
			g.Fail("POST "+base+"/global/instanceTemplates", 404, "notFound", "The resource 'projects/debian-cloud/global/images/family/debian-99' was not found; image not found")
		}, []string{"creating instance template luna-v2", "check: the image is missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := cloudfake.NewGCP(t)
			tc.setup(g)
			c, _ := newClient(t, g, testConfig())
			_, err := c.Create(context.Background())
			if err == nil {
				t.Fatal("create succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestPlans compares the dry-run requests with golden files; the password
// never appears in them.
func TestPlans(t *testing.T) {
	cfg := testConfig()
	for name, reqs := range map[string][]deploy.Request{
		"create": cfg.PlanCreate(), "delete": cfg.PlanDelete(),
	} {
		var buf bytes.Buffer
		if err := deploy.WriteRequests(&buf, reqs); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "s3cret") {
			t.Errorf("%s plan shows the password", name)
		}
		cloudfake.Golden(t, filepath.Join("testdata", "plan-"+name+".json"), buf.String(), *update)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Config)
		check func(*Config) error
		want  string
	}{
		{func(c *Config) { c.Project = "" }, (*Config).Check, "--project is required"},
		{func(c *Config) { c.Region = "" }, (*Config).Check, "--region is required"},
		{func(c *Config) { c.Name = "Luna_1" }, (*Config).Check, "--name"},
		{func(c *Config) { c.Name = strings.Repeat("l", 41) }, (*Config).Check, "at most 40 characters"},
		{func(c *Config) { c.Version = "V 2" }, (*Config).Check, "--template-version"},
		{func(c *Config) { c.Zones = []string{"us-east1-b"} }, (*Config).Check, "not in region europe-west1"},
		{func(c *Config) { c.InitialDelaySec = 3601 }, (*Config).CheckCreate, "--initial-delay 3601s: must be from 0s to 1h"},
		{func(c *Config) { c.InitialDelaySec = -1 }, (*Config).CheckCreate, "--initial-delay -1s"},
		{func(c *Config) { c.HealthPort = c.APIPort }, (*Config).CheckCreate, "must differ"},
		{func(c *Config) { c.MaxSurge = &deploy.Amount{Value: 1} }, (*Config).CheckCreate, "at least its number of zones (2)"},
		{func(c *Config) { c.MaxUnavailable = deploy.Amount{Value: 1} }, (*Config).CheckCreate, "--max-unavailable 1"},
		{func(c *Config) { c.Zones = nil; c.MaxSurge = &deploy.Amount{Value: 3} }, (*Config).CheckCreate, "--max-surge 3 needs --zone"},
		{func(c *Config) { c.MaxSurge = &deploy.Amount{Value: 10, Percent: true} }, (*Config).CheckCreate, "groups of 10 or more instances (this one has 2)"},
		{func(c *Config) { c.MaxSurge = &deploy.Amount{} }, (*Config).CheckCreate, "no instance could be replaced"},
		{func(c *Config) { a := "x"; c.Update.PasswdAttribute = &a }, (*Config).CheckUpdate, "needs --passwd-file"},
		{func(c *Config) { d := int32(7200); c.Update.InitialDelaySec = &d }, (*Config).CheckUpdate, "--initial-delay 7200s"},
	} {
		c := testConfig()
		tc.mod(&c)
		if err := tc.check(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check: %v, want %q", err, tc.want)
		}
	}
	c := testConfig()
	c.MaxSurge = &deploy.Amount{Value: 2}
	c.Size = 12
	c.MaxUnavailable = deploy.Amount{Value: 10, Percent: true}
	for _, check := range []func(*Config) error{(*Config).Check, (*Config).CheckCreate, (*Config).CheckUpdate} {
		if err := check(&c); err != nil {
			t.Errorf("valid config: %v", err)
		}
	}
}

func TestPortIn(t *testing.T) {
	for spec, want := range map[string]bool{"7689": true, "7000-8000": true, "7690": false, "22-80": false, "x": false} {
		if got := portIn(spec, 7689); got != want {
			t.Errorf("portIn(%q) = %v", spec, got)
		}
	}
}
