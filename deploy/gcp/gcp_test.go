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
		Tags: []string{"luna"}, Subnet: "sub", Metadata: map[string]string{"team": "data"},
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

func TestCreate(t *testing.T) {
	g := cloudfake.NewGCP(t)
	c, progress := newClient(t, g, testConfig())
	out, err := c.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := g.Requests()
	// Each operation is polled twice: RUNNING, then DONE.
	checkCalls(t, reqs,
		"POST "+base+"/global/healthChecks",
		"GET "+base+"/global/operations/operation-1",
		"GET "+base+"/global/operations/operation-1",
		"POST "+base+"/global/instanceTemplates",
		"GET "+base+"/global/operations/operation-2",
		"GET "+base+"/global/operations/operation-2",
		"POST "+base+"/regions/europe-west1/instanceGroupManagers",
		"GET "+base+"/regions/europe-west1/operations/operation-3",
		"GET "+base+"/regions/europe-west1/operations/operation-3",
	)
	if len(reqs) != 9 {
		t.FailNow()
	}
	checkFields(t, "health check", reqs[0].JSON(), map[string]any{
		"name": "luna-readyz", "type": "HTTP", "httpHealthCheck.port": 7689, "httpHealthCheck.requestPath": "/readyz",
	})
	checkFields(t, "template", reqs[3].JSON(), map[string]any{
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
		"properties.tags.items":                           []string{"luna"},
		"properties.labels":                               map[string]string{GroupLabel: "luna"},
		"properties.metadata.items": []map[string]string{
			{"key": "team", "value": "data"},
			{"key": "startup-script", "value": "#!/bin/sh\necho start\n"},
			{"key": "luna-passwd", "value": "s3cret"},
			{"key": "luna-passwd-from", "value": "gcp-metadata:luna-passwd"},
		},
	})
	checkFields(t, "group", reqs[6].JSON(), map[string]any{
		"name":                                  "luna",
		"baseInstanceName":                      "luna",
		"instanceTemplate":                      "projects/proj/global/instanceTemplates/luna-v2",
		"targetSize":                            2,
		"namedPorts":                            []map[string]any{{"name": "luna", "port": 7688}},
		"autoHealingPolicies.0.healthCheck":     "projects/proj/global/healthChecks/luna-readyz",
		"autoHealingPolicies.0.initialDelaySec": 300,
		"distributionPolicy.zones":              []map[string]string{{"zone": "zones/europe-west1-b"}, {"zone": "zones/europe-west1-c"}},
		"updatePolicy.type":                     "PROACTIVE",
	})
	for _, want := range []string{"waiting for operation operation-1 (creating health check luna-readyz): RUNNING", "done: creating managed instance group luna"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}
	if !strings.Contains(out, "created managed instance group luna in europe-west1: 2 instances") {
		t.Errorf("create printed:\n%s", out)
	}
}

func TestUpdate(t *testing.T) {
	g := cloudfake.NewGCP(t)
	mig := base + "/regions/europe-west1/instanceGroupManagers/luna"
	g.Answer("GET "+mig,
		`{"name":"luna","status":{"isStable":false,"versionTarget":{"isReached":false}},"currentActions":{"creating":2}}`,
		`{"name":"luna","status":{"isStable":true,"versionTarget":{"isReached":true}}}`)
	c, progress := newClient(t, g, testConfig())
	if _, err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := g.Requests()
	checkCalls(t, reqs,
		"POST "+base+"/global/instanceTemplates",
		"GET "+base+"/global/operations/operation-1",
		"GET "+base+"/global/operations/operation-1",
		"PATCH "+mig,
		"GET "+base+"/regions/europe-west1/operations/operation-2",
		"GET "+base+"/regions/europe-west1/operations/operation-2",
		"GET "+mig,
		"GET "+mig,
	)
	if len(reqs) != 8 {
		t.FailNow()
	}
	checkFields(t, "patch", reqs[3].JSON(), map[string]any{
		"versions":                          []map[string]string{{"name": "v2", "instanceTemplate": "projects/proj/global/instanceTemplates/luna-v2"}},
		"updatePolicy.type":                 "PROACTIVE",
		"updatePolicy.minimalAction":        "REPLACE",
		"updatePolicy.maxSurge.fixed":       3,
		"updatePolicy.maxUnavailable.fixed": 0,
	})
	if !strings.Contains(progress.String(), "waiting for rolling update of group luna: creating 2, deleting 0") {
		t.Errorf("progress:\n%s", progress)
	}
}

func TestInstances(t *testing.T) {
	g := cloudfake.NewGCP(t)
	list := "POST " + base + "/regions/europe-west1/instanceGroupManagers/luna/listManagedInstances"
	g.Answer(list, `{"managedInstances":[
		{"instance":"https://www.googleapis.com/compute/v1/projects/proj/zones/europe-west1-c/instances/luna-bbbb","instanceStatus":"RUNNING","currentAction":"NONE",
		 "instanceHealth":[{"detailedHealthState":"HEALTHY"}],"version":{"name":"v1","instanceTemplate":"projects/proj/global/instanceTemplates/luna-v1"}}],
		"nextPageToken":"p2"}`)
	g.Answer(list+"?pageToken=p2", `{"managedInstances":[
		{"instance":"https://www.googleapis.com/compute/v1/projects/proj/zones/europe-west1-b/instances/luna-aaaa","instanceStatus":"STAGING","currentAction":"CREATING",
		 "instanceHealth":[{"detailedHealthState":"UNKNOWN"}],"version":{"instanceTemplate":"projects/proj/global/instanceTemplates/luna-v2"}}]}`)
	g.Answer("GET "+base+"/zones/europe-west1-c/instances/luna-bbbb", `{"name":"luna-bbbb","networkInterfaces":[{"networkIP":"10.0.0.3","accessConfigs":[{"natIP":"34.1.2.3"}]}]}`)
	g.Answer("GET "+base+"/zones/europe-west1-b/instances/luna-aaaa", `{"name":"luna-aaaa","networkInterfaces":[{"networkIP":"10.0.0.2"}]}`)
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
		{Name: "luna-aaaa", State: "STAGING (creating)", Health: "UNKNOWN", Zone: "europe-west1-b", InternalIP: "10.0.0.2", Version: "luna-v2"},
		{Name: "luna-bbbb", State: "RUNNING", Health: "HEALTHY", Zone: "europe-west1-c", InternalIP: "10.0.0.3", ExternalIP: "34.1.2.3", Version: "v1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instances:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestDelete(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Answer("GET "+base+"/global/instanceTemplates", `{"items":[
		{"name":"luna-v1","properties":{"labels":{"luna-deploy-group":"luna"}}},
		{"name":"luna-prod-v1","properties":{"labels":{"luna-deploy-group":"luna-prod"}}},
		{"name":"luna-v2","properties":{"labels":{"luna-deploy-group":"luna"}}}]}`)
	c, _ := newClient(t, g, testConfig())
	out, err := c.Delete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	filter := `filter=name+eq+%22luna-.%2A%22`
	checkCalls(t, g.Requests(),
		"DELETE "+base+"/regions/europe-west1/instanceGroupManagers/luna",
		"GET "+base+"/regions/europe-west1/operations/operation-1",
		"GET "+base+"/regions/europe-west1/operations/operation-1",
		"DELETE "+base+"/global/healthChecks/luna-readyz",
		"GET "+base+"/global/operations/operation-2",
		"GET "+base+"/global/operations/operation-2",
		"GET "+base+"/global/instanceTemplates?"+filter,
		"DELETE "+base+"/global/instanceTemplates/luna-v1",
		"GET "+base+"/global/operations/operation-3",
		"GET "+base+"/global/operations/operation-3",
		"DELETE "+base+"/global/instanceTemplates/luna-v2",
		"GET "+base+"/global/operations/operation-4",
		"GET "+base+"/global/operations/operation-4",
	)
	if want := "deleted managed instance group luna\ndeleted health check luna-readyz\ndeleted instance template luna-v1\ndeleted instance template luna-v2\n"; out != want {
		t.Errorf("delete printed %q, want %q", out, want)
	}
}

// TestDeleteMissing: a group that is gone already is skipped, not an error.
func TestDeleteMissing(t *testing.T) {
	g := cloudfake.NewGCP(t)
	g.Fail("DELETE "+base+"/regions/europe-west1/instanceGroupManagers/luna", 404, "notFound", "The resource 'luna' was not found")
	g.Fail("DELETE "+base+"/global/healthChecks/luna-readyz", 404, "notFound", "The resource 'luna-readyz' was not found")
	g.Answer("GET "+base+"/global/instanceTemplates", `{}`)
	c, _ := newClient(t, g, testConfig())
	out, err := c.Delete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "nothing to delete") {
		t.Errorf("delete printed %q", out)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(g *cloudfake.GCP)
		want  []string
	}{
		{"permission", func(g *cloudfake.GCP) {
			g.Fail("POST "+base+"/global/healthChecks", 403, "forbidden", "Required 'compute.healthChecks.create' permission for 'projects/proj/global/healthChecks/luna-readyz'")
		}, []string{"creating health check luna-readyz", "compute.healthChecks.create", "check: the credentials lack a permission"}},
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
		"create": cfg.PlanCreate(), "update": cfg.PlanUpdate(), "delete": cfg.PlanDelete(),
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
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Project = "" }, "--project is required"},
		{func(c *Config) { c.Region = "" }, "--region is required"},
		{func(c *Config) { c.Name = "Luna_1" }, "--name"},
		{func(c *Config) { c.Version = "V 2" }, "--template-version"},
		{func(c *Config) { c.Zones = []string{"us-east1-b"} }, "not in region europe-west1"},
	} {
		c := testConfig()
		tc.mod(&c)
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check: %v, want %q", err, tc.want)
		}
	}
	c := testConfig()
	if err := c.Check(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
