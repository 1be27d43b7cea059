// Package gcp runs a Luna fleet as a regional managed instance group on
// Google Compute Engine: an instance template, an HTTP health check on
// /readyz that drives autohealing, and the group itself; rolling updates to
// a new template; and the listing of the group's instances for status, logs
// and restarts. It speaks to the Compute Engine REST API through
// cloud.google.com/go/compute/apiv1.
package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/lunadb/luna/deploy"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// GroupLabel marks the templates a group owns, so that delete removes only
// those.
const GroupLabel = "luna-deploy-group"

// PasswdFromKey is the metadata key telling the startup script which
// --passwd-from source to configure (gcp-metadata:<attribute>).
const PasswdFromKey = "luna-passwd-from"

// Config describes the group. Zero values take the defaults in Defaults.
type Config struct {
	Project string
	Region  string
	// Zones the group spreads over; empty: the region's default zones.
	Zones []string
	// Name of the group; templates are <Name>-<Version>, the health check
	// <Name>-readyz, instances <Name>-xxxx.
	Name string
	Size int32

	MachineType string
	// Image is an image or image family path, e.g.
	// projects/debian-cloud/global/images/family/debian-12.
	Image      string
	DiskSizeGB int64
	// StartupScript is the startup-script metadata (cloud-init for a stock
	// image); empty for a Luna image that needs none.
	StartupScript  string
	ServiceAccount string
	Scopes         []string
	Network        string
	Subnet         string
	Tags           []string
	// ExternalIP gives instances an ephemeral public address.
	ExternalIP bool
	Metadata   map[string]string
	// PasswdAttribute is the metadata attribute that holds the password
	// (read by luna --passwd-from gcp-metadata:<attribute>); Password its
	// value, set only when not empty.
	PasswdAttribute string
	Password        string

	APIPort    int
	HealthPort int
	// Version names the template made by create or update.
	Version string
}

// Defaults fills in what the operator left out.
func (c *Config) Defaults(now time.Time) {
	if c.Name == "" {
		c.Name = "luna"
	}
	if c.Size == 0 {
		c.Size = 2
	}
	if c.MachineType == "" {
		c.MachineType = "e2-standard-4"
	}
	if c.Image == "" {
		c.Image = "projects/debian-cloud/global/images/family/debian-12"
	}
	if c.DiskSizeGB == 0 {
		c.DiskSizeGB = 20
	}
	if c.ServiceAccount == "" {
		c.ServiceAccount = "default"
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"https://www.googleapis.com/auth/cloud-platform"}
	}
	if c.Network == "" {
		c.Network = "default"
	}
	if c.PasswdAttribute == "" {
		c.PasswdAttribute = "luna-passwd"
	}
	if c.APIPort == 0 {
		c.APIPort = deploy.APIPort
	}
	if c.HealthPort == 0 {
		c.HealthPort = deploy.HealthPort
	}
	if c.Version == "" {
		c.Version = now.UTC().Format("20060102-150405")
	}
}

// Check reports the first missing or malformed setting.
func (c *Config) Check() error {
	switch {
	case c.Project == "":
		return errors.New("--project is required (or set CLOUDSDK_CORE_PROJECT or GOOGLE_CLOUD_PROJECT)")
	case c.Region == "":
		return errors.New("--region is required (or set CLOUDSDK_COMPUTE_REGION)")
	case !validName(c.Name):
		return fmt.Errorf("--name %q: use lowercase letters, digits and hyphens, starting with a letter (at most 40 characters)", c.Name)
	case !validName(c.Name + "-" + c.Version):
		return fmt.Errorf("--template-version %q: the template name %s-%s must be lowercase letters, digits and hyphens", c.Version, c.Name, c.Version)
	case c.Size < 0:
		return fmt.Errorf("--size %d: must not be negative", c.Size)
	}
	for _, z := range c.Zones {
		if !strings.HasPrefix(z, c.Region+"-") {
			return fmt.Errorf("--zone %s is not in region %s", z, c.Region)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (c *Config) templateName() string    { return c.Name + "-" + c.Version }
func (c *Config) healthCheckName() string { return c.Name + "-readyz" }
func (c *Config) templateURL(name string) string {
	return "projects/" + c.Project + "/global/instanceTemplates/" + name
}
func (c *Config) healthCheckURL() string {
	return "projects/" + c.Project + "/global/healthChecks/" + c.healthCheckName()
}

// Paths of the REST API, as the client sends them.
func (c *Config) globalPath(kind string) string {
	return "/compute/v1/projects/" + c.Project + "/global/" + kind
}
func (c *Config) migPath() string {
	return "/compute/v1/projects/" + c.Project + "/regions/" + c.Region + "/instanceGroupManagers"
}

func (c *Config) healthCheck() *computepb.HealthCheck {
	return &computepb.HealthCheck{
		Name:        proto.String(c.healthCheckName()),
		Description: proto.String("Luna readiness (/readyz) for group " + c.Name),
		Type:        proto.String("HTTP"),
		HttpHealthCheck: &computepb.HTTPHealthCheck{
			Port:        proto.Int32(int32(c.HealthPort)),
			RequestPath: proto.String("/readyz"),
		},
		CheckIntervalSec:   proto.Int32(10),
		TimeoutSec:         proto.Int32(5),
		HealthyThreshold:   proto.Int32(2),
		UnhealthyThreshold: proto.Int32(3),
	}
}

func (c *Config) template(redact bool) *computepb.InstanceTemplate {
	var items []*computepb.Items
	add := func(k, v string) {
		items = append(items, &computepb.Items{Key: proto.String(k), Value: proto.String(v)})
	}
	for _, k := range sortedKeys(c.Metadata) {
		add(k, c.Metadata[k])
	}
	if c.StartupScript != "" {
		add("startup-script", c.StartupScript)
	}
	if c.Password != "" {
		pw := c.Password
		if redact {
			pw = deploy.Redacted
		}
		add(c.PasswdAttribute, pw)
		add(PasswdFromKey, "gcp-metadata:"+c.PasswdAttribute)
	}
	nic := &computepb.NetworkInterface{Network: proto.String(networkURL(c.Project, c.Network))}
	if c.Subnet != "" {
		nic.Subnetwork = proto.String(subnetURL(c.Project, c.Region, c.Subnet))
	}
	if c.ExternalIP {
		nic.AccessConfigs = []*computepb.AccessConfig{{Name: proto.String("External NAT"), Type: proto.String("ONE_TO_ONE_NAT")}}
	}
	props := &computepb.InstanceProperties{
		MachineType: proto.String(c.MachineType),
		Disks: []*computepb.AttachedDisk{{
			Boot:       proto.Bool(true),
			AutoDelete: proto.Bool(true),
			Type:       proto.String("PERSISTENT"),
			InitializeParams: &computepb.AttachedDiskInitializeParams{
				SourceImage: proto.String(c.Image),
				DiskSizeGb:  proto.Int64(c.DiskSizeGB),
			},
		}},
		NetworkInterfaces: []*computepb.NetworkInterface{nic},
		ServiceAccounts:   []*computepb.ServiceAccount{{Email: proto.String(c.ServiceAccount), Scopes: c.Scopes}},
		Labels:            map[string]string{GroupLabel: c.Name},
		Metadata:          &computepb.Metadata{Items: items},
	}
	if len(c.Tags) > 0 {
		props.Tags = &computepb.Tags{Items: c.Tags}
	}
	return &computepb.InstanceTemplate{
		Name:        proto.String(c.templateName()),
		Description: proto.String("Luna group " + c.Name + ", version " + c.Version),
		Properties:  props,
	}
}

func (c *Config) updatePolicy() *computepb.InstanceGroupManagerUpdatePolicy {
	// A regional group surges by at least one instance per zone.
	surge := int32(len(c.Zones))
	if surge < 3 {
		surge = 3
	}
	return &computepb.InstanceGroupManagerUpdatePolicy{
		Type:           proto.String("PROACTIVE"),
		MinimalAction:  proto.String("REPLACE"),
		MaxSurge:       &computepb.FixedOrPercent{Fixed: proto.Int32(surge)},
		MaxUnavailable: &computepb.FixedOrPercent{Fixed: proto.Int32(0)},
	}
}

func (c *Config) mig() *computepb.InstanceGroupManager {
	m := &computepb.InstanceGroupManager{
		Name:             proto.String(c.Name),
		Description:      proto.String("Luna fleet"),
		BaseInstanceName: proto.String(c.Name),
		InstanceTemplate: proto.String(c.templateURL(c.templateName())),
		TargetSize:       proto.Int32(c.Size),
		NamedPorts:       []*computepb.NamedPort{{Name: proto.String("luna"), Port: proto.Int32(int32(c.APIPort))}},
		AutoHealingPolicies: []*computepb.InstanceGroupManagerAutoHealingPolicy{{
			HealthCheck: proto.String(c.healthCheckURL()),
			// Room for boot, the startup script and the startup SQL.
			InitialDelaySec: proto.Int32(300),
		}},
		UpdatePolicy: c.updatePolicy(),
	}
	if len(c.Zones) > 0 {
		dp := &computepb.DistributionPolicy{}
		for _, z := range c.Zones {
			dp.Zones = append(dp.Zones, &computepb.DistributionPolicyZoneConfiguration{Zone: proto.String("zones/" + z)})
		}
		m.DistributionPolicy = dp
	}
	return m
}

func (c *Config) migPatch() *computepb.InstanceGroupManager {
	return &computepb.InstanceGroupManager{
		Versions: []*computepb.InstanceGroupManagerVersion{{
			Name:             proto.String(c.Version),
			InstanceTemplate: proto.String(c.templateURL(c.templateName())),
		}},
		UpdatePolicy: c.updatePolicy(),
	}
}

func networkURL(project, n string) string {
	if strings.Contains(n, "/") {
		return n
	}
	return "projects/" + project + "/global/networks/" + n
}

func subnetURL(project, region, s string) string {
	if strings.Contains(s, "/") {
		return s
	}
	return "projects/" + project + "/regions/" + region + "/subnetworks/" + s
}

// body turns a resource into the JSON the REST API receives.
func body(m proto.Message) any {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Sprintf("<unprintable: %v>", err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("<unprintable: %v>", err)
	}
	return v
}

// PlanCreate is what create sends.
func (c *Config) PlanCreate() []deploy.Request {
	return []deploy.Request{
		{API: "compute.healthChecks.insert", Method: http.MethodPost, Path: c.globalPath("healthChecks"), Body: body(c.healthCheck())},
		{API: "compute.instanceTemplates.insert", Method: http.MethodPost, Path: c.globalPath("instanceTemplates"), Body: body(c.template(true))},
		{API: "compute.regionInstanceGroupManagers.insert", Method: http.MethodPost, Path: c.migPath(), Body: body(c.mig())},
	}
}

// PlanUpdate is what update sends.
func (c *Config) PlanUpdate() []deploy.Request {
	return []deploy.Request{
		{API: "compute.instanceTemplates.insert", Method: http.MethodPost, Path: c.globalPath("instanceTemplates"), Body: body(c.template(true))},
		{API: "compute.regionInstanceGroupManagers.patch", Method: http.MethodPatch, Path: c.migPath() + "/" + c.Name, Body: body(c.migPatch())},
	}
}

// PlanDelete is what delete sends.
func (c *Config) PlanDelete() []deploy.Request {
	return []deploy.Request{
		{API: "compute.regionInstanceGroupManagers.delete", Method: http.MethodDelete, Path: c.migPath() + "/" + c.Name},
		{API: "compute.healthChecks.delete", Method: http.MethodDelete, Path: c.globalPath("healthChecks") + "/" + c.healthCheckName()},
		{API: "compute.instanceTemplates.list", Method: http.MethodGet, Path: c.globalPath("instanceTemplates") + "?" + url.Values{"filter": {c.templateFilter()}}.Encode(),
			Note: "then compute.instanceTemplates.delete for each listed template labelled " + GroupLabel + "=" + c.Name},
	}
}

func (c *Config) templateFilter() string { return fmt.Sprintf(`name eq "%s-.*"`, c.Name) }

// Client runs the group's operations against the Compute Engine API.
type Client struct {
	cfg       Config
	templates *compute.InstanceTemplatesClient
	migs      *compute.RegionInstanceGroupManagersClient
	checks    *compute.HealthChecksClient
	instances *compute.InstancesClient

	Progress *deploy.Progress
	// PollInterval is the pause between polls of an operation or of the
	// group's update.
	PollInterval time.Duration
	// Timeout bounds each wait for an operation or a rolling update.
	Timeout time.Duration
}

// New makes the REST clients. opts are for tests and special endpoints;
// without them the standard credential chain is used.
func New(ctx context.Context, cfg Config, opts ...option.ClientOption) (*Client, error) {
	c := &Client{cfg: cfg, PollInterval: 2 * time.Second, Timeout: 30 * time.Minute}
	var err error
	if c.templates, err = compute.NewInstanceTemplatesRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("connecting to Compute Engine: %w", err)
	}
	if c.migs, err = compute.NewRegionInstanceGroupManagersRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("connecting to Compute Engine: %w", err)
	}
	if c.checks, err = compute.NewHealthChecksRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("connecting to Compute Engine: %w", err)
	}
	if c.instances, err = compute.NewInstancesRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("connecting to Compute Engine: %w", err)
	}
	return c, nil
}

// Close releases the clients.
func (c *Client) Close() error {
	return errors.Join(c.templates.Close(), c.migs.Close(), c.checks.Close(), c.instances.Close())
}

// wait polls op until it is DONE, reporting progress, and returns its error.
func (c *Client) wait(ctx context.Context, op *compute.Operation, what string, err error) error {
	if err != nil {
		return deploy.CloudError(what, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	for !op.Done() {
		c.Progress.Waiting("operation "+op.Name()+" ("+what+")", op.Proto().GetStatus().String(), start)
		if err := deploy.Sleep(ctx, c.PollInterval); err != nil {
			return fmt.Errorf("%s: waiting for operation %s: %w", what, op.Name(), err)
		}
		if err := op.Poll(ctx); err != nil {
			return deploy.CloudError(what, err)
		}
	}
	if e := op.Proto().GetError(); e != nil && len(e.GetErrors()) > 0 {
		var msgs []string
		for _, it := range e.GetErrors() {
			msgs = append(msgs, it.GetCode()+": "+it.GetMessage())
		}
		code := int(op.Proto().GetHttpErrorStatusCode())
		return deploy.CloudError(what, &googleapi.Error{Code: code, Message: strings.Join(msgs, "; ")})
	}
	c.Progress.Printf("done: %s (%s)", what, time.Since(start).Round(time.Second))
	return nil
}

// Create makes the health check, the template and the group, and returns
// a description of what it made.
func (c *Client) Create(ctx context.Context) (string, error) {
	cfg := &c.cfg
	p := cfg.Project
	what := "creating health check " + cfg.healthCheckName()
	op, err := c.checks.Insert(ctx, &computepb.InsertHealthCheckRequest{Project: p, HealthCheckResource: cfg.healthCheck()})
	if err := c.wait(ctx, op, what, err); err != nil {
		return "", err
	}
	what = "creating instance template " + cfg.templateName()
	op, err = c.templates.Insert(ctx, &computepb.InsertInstanceTemplateRequest{Project: p, InstanceTemplateResource: cfg.template(false)})
	if err := c.wait(ctx, op, what, err); err != nil {
		return "", err
	}
	what = "creating managed instance group " + cfg.Name
	op, err = c.migs.Insert(ctx, &computepb.InsertRegionInstanceGroupManagerRequest{Project: p, Region: cfg.Region, InstanceGroupManagerResource: cfg.mig()})
	if err := c.wait(ctx, op, what, err); err != nil {
		return "", err
	}
	return fmt.Sprintf("created health check %s (HTTP /readyz on port %d)\ncreated instance template %s (%s, %s)\ncreated managed instance group %s in %s: %d instances, named port luna:%d, autohealing on %s\n",
		cfg.healthCheckName(), cfg.HealthPort, cfg.templateName(), cfg.MachineType, cfg.Image,
		cfg.Name, cfg.Region, cfg.Size, cfg.APIPort, cfg.healthCheckName()), nil
}

// Update makes a new template and rolls the group over to it, waiting
// until every instance runs it.
func (c *Client) Update(ctx context.Context) (string, error) {
	cfg := &c.cfg
	what := "creating instance template " + cfg.templateName()
	op, err := c.templates.Insert(ctx, &computepb.InsertInstanceTemplateRequest{Project: cfg.Project, InstanceTemplateResource: cfg.template(false)})
	if err := c.wait(ctx, op, what, err); err != nil {
		return "", err
	}
	what = "starting the rolling update of group " + cfg.Name
	op, err = c.migs.Patch(ctx, &computepb.PatchRegionInstanceGroupManagerRequest{
		Project: cfg.Project, Region: cfg.Region, InstanceGroupManager: cfg.Name, InstanceGroupManagerResource: cfg.migPatch(),
	})
	if err := c.wait(ctx, op, what, err); err != nil {
		return "", err
	}
	if err := c.waitStable(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("created instance template %s\nrolled group %s over to version %s\n", cfg.templateName(), cfg.Name, cfg.Version), nil
}

// waitStable polls the group until it is stable on its target version.
func (c *Client) waitStable(ctx context.Context) error {
	cfg := &c.cfg
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	for {
		m, err := c.migs.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: cfg.Project, Region: cfg.Region, InstanceGroupManager: cfg.Name})
		if err != nil {
			return deploy.CloudError("reading group "+cfg.Name+" during the rolling update", err)
		}
		st := m.GetStatus()
		if st.GetIsStable() && st.GetVersionTarget().GetIsReached() {
			c.Progress.Printf("done: rolling update of group %s (%s)", cfg.Name, time.Since(start).Round(time.Second))
			return nil
		}
		a := m.GetCurrentActions()
		c.Progress.Waiting("rolling update of group "+cfg.Name,
			fmt.Sprintf("creating %d, deleting %d, recreating %d, verifying %d", a.GetCreating(), a.GetDeleting(), a.GetRecreating(), a.GetVerifying()), start)
		if err := deploy.Sleep(ctx, c.PollInterval); err != nil {
			return fmt.Errorf("waiting for the rolling update of group %s: %w", cfg.Name, err)
		}
	}
}

// Instances lists the group's instances with their state, health, zone,
// addresses and template version.
func (c *Client) Instances(ctx context.Context) ([]deploy.Instance, error) {
	cfg := &c.cfg
	what := "listing the instances of group " + cfg.Name
	it := c.migs.ListManagedInstances(ctx, &computepb.ListManagedInstancesRegionInstanceGroupManagersRequest{
		Project: cfg.Project, Region: cfg.Region, InstanceGroupManager: cfg.Name,
	})
	var out []deploy.Instance
	for {
		mi, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, deploy.CloudError(what, err)
		}
		zone, name := zoneAndName(mi.GetInstance())
		in := deploy.Instance{
			Name:    name,
			State:   mi.GetInstanceStatus(),
			Zone:    zone,
			Version: mi.GetVersion().GetName(),
		}
		if in.Version == "" {
			in.Version = path.Base(mi.GetVersion().GetInstanceTemplate())
		}
		if a := mi.GetCurrentAction(); a != "" && a != "NONE" {
			in.State += " (" + strings.ToLower(a) + ")"
		}
		for _, h := range mi.GetInstanceHealth() {
			in.Health = h.GetDetailedHealthState()
		}
		if in.State == "" {
			in.State = strings.ToLower(mi.GetCurrentAction())
		}
		// An instance being created has no VM to read yet.
		if mi.GetInstanceStatus() != "" && zone != "" {
			vm, err := c.instances.Get(ctx, &computepb.GetInstanceRequest{Project: cfg.Project, Zone: zone, Instance: name})
			var gerr *googleapi.Error
			switch {
			case errors.As(err, &gerr) && gerr.Code == http.StatusNotFound:
				// Deleted since the listing.
			case err != nil:
				return nil, deploy.CloudError("reading instance "+name, err)
			default:
				for _, nic := range vm.GetNetworkInterfaces() {
					in.InternalIP = nic.GetNetworkIP()
					for _, ac := range nic.GetAccessConfigs() {
						if ac.GetNatIP() != "" {
							in.ExternalIP = ac.GetNatIP()
						}
					}
					break
				}
			}
		}
		out = append(out, in)
	}
	deploy.SortInstances(out)
	return out, nil
}

// zoneAndName splits an instance URL .../zones/<zone>/instances/<name>.
func zoneAndName(url string) (zone, name string) {
	parts := strings.Split(url, "/")
	for i := 0; i+1 < len(parts); i++ {
		switch parts[i] {
		case "zones":
			zone = parts[i+1]
		case "instances":
			name = parts[i+1]
		}
	}
	if name == "" {
		name = path.Base(url)
	}
	return zone, name
}

// Delete removes the group, its health check and its templates. Resources
// already gone are skipped.
func (c *Client) Delete(ctx context.Context) (string, error) {
	cfg := &c.cfg
	var done []string
	what := "deleting managed instance group " + cfg.Name
	op, err := c.migs.Delete(ctx, &computepb.DeleteRegionInstanceGroupManagerRequest{Project: cfg.Project, Region: cfg.Region, InstanceGroupManager: cfg.Name})
	if ok, err := c.waitDeleted(ctx, op, what, err); err != nil {
		return "", err
	} else if ok {
		done = append(done, "deleted managed instance group "+cfg.Name)
	}
	what = "deleting health check " + cfg.healthCheckName()
	op, err = c.checks.Delete(ctx, &computepb.DeleteHealthCheckRequest{Project: cfg.Project, HealthCheck: cfg.healthCheckName()})
	if ok, err := c.waitDeleted(ctx, op, what, err); err != nil {
		return "", err
	} else if ok {
		done = append(done, "deleted health check "+cfg.healthCheckName())
	}
	it := c.templates.List(ctx, &computepb.ListInstanceTemplatesRequest{Project: cfg.Project, Filter: proto.String(cfg.templateFilter())})
	for {
		t, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return "", deploy.CloudError("listing the instance templates of group "+cfg.Name, err)
		}
		if t.GetProperties().GetLabels()[GroupLabel] != cfg.Name {
			continue // another group's, sharing the name prefix
		}
		what = "deleting instance template " + t.GetName()
		op, err := c.templates.Delete(ctx, &computepb.DeleteInstanceTemplateRequest{Project: cfg.Project, InstanceTemplate: t.GetName()})
		if ok, err := c.waitDeleted(ctx, op, what, err); err != nil {
			return "", err
		} else if ok {
			done = append(done, "deleted instance template "+t.GetName())
		}
	}
	if len(done) == 0 {
		return fmt.Sprintf("nothing to delete: group %s was not found in %s/%s\n", cfg.Name, cfg.Project, cfg.Region), nil
	}
	return strings.Join(done, "\n") + "\n", nil
}

// waitDeleted waits for a delete; a resource that does not exist is not an
// error, and ok is false then.
func (c *Client) waitDeleted(ctx context.Context, op *compute.Operation, what string, err error) (ok bool, _ error) {
	var gerr *googleapi.Error
	if err != nil && errors.As(err, &gerr) && gerr.Code == http.StatusNotFound {
		c.Progress.Printf("skipped: %s (not found)", what)
		return false, nil
	}
	return true, c.wait(ctx, op, what, err)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
