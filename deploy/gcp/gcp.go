// Package gcp runs a Luna fleet as a regional managed instance group on
// Google Compute Engine: an instance template, two HTTP health checks (the
// group autoheals on /healthz; /readyz is for the load balancer in front),
// a firewall rule admitting Google's health checkers to the health port,
// one admitting IAP TCP forwarding to SSH (so that logs and restart reach
// nodes without external addresses), and the group itself; rolling
// updates to a copy of the current template with only the requested
// changes; and the listing of the group's instances for status, logs and
// restarts. It speaks to the Compute Engine REST API through
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
	"strconv"
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

// DefaultInitialDelaySec is the autohealing initial delay when none is
// given: boot, the startup script's install and the server's start, until
// /healthz answers.
const DefaultInitialDelaySec = 300

// HealthCheckRanges are where Google's health checkers (and passthrough
// load balancers' probes) connect from; the firewall rule admits them.
var HealthCheckRanges = []string{"35.191.0.0/16", "130.211.0.0/22"}

// IAPRange is where IAP TCP forwarding connects from ("Using IAP for TCP
// forwarding": all addresses IAP uses for TCP forwarding); the IAP SSH
// rule admits it to port 22.
const IAPRange = "35.235.240.0/20"

// SSHPort is the port the IAP SSH rule opens: sshd's on the images.
const SSHPort = 22

// Config describes the group. Zero values take the defaults in Defaults,
// except the rollout settings, which the command line always sets.
type Config struct {
	Project string
	Region  string
	// Zones the group spreads over; empty: the region's default zones.
	Zones []string
	// Name of the group; templates are <Name>-<Version>, the health checks
	// <Name>-healthz and <Name>-readyz, the firewall rules
	// <Name>-allow-health-check and <Name>-allow-iap-ssh, instances
	// <Name>-xxxx. It is also the network tag every instance carries.
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
	// Tags are further network tags; the group's name is always one.
	Tags []string
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

	// InitialDelaySec is how long autohealing leaves a new instance alone
	// (0 to 3600 seconds).
	InitialDelaySec int32
	// MaxSurge is how many instances a rolling update may add above the
	// size; nil leaves it to Compute Engine (the number of zones).
	MaxSurge *deploy.Amount
	// MaxUnavailable is how many instances a rolling update may take out
	// of service; the zero value keeps every instance serving.
	MaxUnavailable deploy.Amount
	// NoFirewall skips the health-check firewall rule, for networks whose
	// rules are managed elsewhere.
	NoFirewall bool
	// NoIAPSSH skips the rule admitting IAP TCP forwarding to SSH.
	NoIAPSSH bool

	// Update is what update changes; everything else is kept as the
	// group's current template and settings have it.
	Update Changes
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
	case !validName(c.Name) || len(c.Name) > 40:
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

// CheckCreate reports what create needs beyond Check: the rollout
// settings, against the group's zones and size.
func (c *Config) CheckCreate() error {
	if err := checkInitialDelay(c.InitialDelaySec); err != nil {
		return err
	}
	if c.APIPort == c.HealthPort {
		return fmt.Errorf("--api-port and --health-port are both %d: they must differ", c.APIPort)
	}
	return checkRollout(c.MaxSurge, c.MaxUnavailable, len(c.Zones), c.Size)
}

func checkInitialDelay(sec int32) error {
	// The autohealing policy's documented range.
	if sec < 0 || sec > 3600 {
		return fmt.Errorf("--initial-delay %ds: must be from 0s to 1h (Compute Engine allows 0 to 3600 seconds); size it to boot plus install plus the server's start", sec)
	}
	return nil
}

// checkRollout applies Compute Engine's rules for a regional group's update
// policy: a fixed surge or unavailable count is 0 or at least the number of
// zones, a percentage needs at least 10 instances, and one of the two must
// be above 0. zones is 0 when Compute Engine picks them.
func checkRollout(surge *deploy.Amount, unavailable deploy.Amount, zones int, size int32) error {
	check := func(flag string, a deploy.Amount) error {
		switch {
		case a.Percent && size < 10:
			return fmt.Errorf("%s %s: Compute Engine takes a percentage only for groups of 10 or more instances (this one has %d); give a number of instances", flag, a, size)
		case a.Percent || a.Value == 0:
			return nil
		case zones == 0:
			return fmt.Errorf("%s %s needs --zone: a regional group's fixed %s must be 0 or at least its number of zones, and without --zone Compute Engine picks the zones", flag, a, strings.TrimPrefix(flag, "--"))
		case int(a.Value) < zones:
			return fmt.Errorf("%s %s: a regional group's fixed %s must be 0 or at least its number of zones (%d)", flag, a, strings.TrimPrefix(flag, "--"), zones)
		}
		return nil
	}
	if surge != nil {
		if err := check("--max-surge", *surge); err != nil {
			return err
		}
		if surge.Value == 0 && unavailable.Value == 0 {
			return errors.New("--max-surge 0 and --max-unavailable 0: no instance could be replaced; allow a surge (the default) or some unavailable instances")
		}
	}
	return check("--max-unavailable", unavailable)
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

func (c *Config) templateName() string      { return c.Name + "-" + c.Version }
func (c *Config) autohealCheckName() string { return c.Name + "-healthz" }
func (c *Config) readyCheckName() string    { return c.Name + "-readyz" }
func (c *Config) firewallName() string      { return c.Name + "-allow-health-check" }
func (c *Config) iapFirewallName() string   { return c.Name + "-allow-iap-ssh" }

// networkTag is the tag every instance carries and the firewall rule
// targets: the group's name, as the Terraform module does.
func (c *Config) networkTag() string { return c.Name }

func (c *Config) templateURL(name string) string {
	return "projects/" + c.Project + "/global/instanceTemplates/" + name
}
func (c *Config) healthCheckURL(name string) string {
	return "projects/" + c.Project + "/global/healthChecks/" + name
}

// firewallProject is the project that owns the network: the host project
// of a Shared VPC named by its path, else the group's project.
func (c *Config) firewallProject() string {
	parts := strings.Split(strings.TrimPrefix(networkURL(c.Project, c.Network), "https://www.googleapis.com/compute/v1/"), "/")
	if len(parts) > 1 && parts[0] == "projects" {
		return parts[1]
	}
	return c.Project
}

// Paths of the REST API, as the client sends them.
func (c *Config) globalPath(kind string) string {
	return "/compute/v1/projects/" + c.Project + "/global/" + kind
}
func (c *Config) migPath() string {
	return "/compute/v1/projects/" + c.Project + "/regions/" + c.Region + "/instanceGroupManagers"
}
func (c *Config) firewallPath() string {
	return "/compute/v1/projects/" + c.firewallProject() + "/global/firewalls"
}

func (c *Config) healthCheck(name, path, purpose string) *computepb.HealthCheck {
	return &computepb.HealthCheck{
		Name:        proto.String(name),
		Description: proto.String("Luna " + purpose + " (" + path + ") for group " + c.Name),
		Type:        proto.String("HTTP"),
		HttpHealthCheck: &computepb.HTTPHealthCheck{
			Port:        proto.Int32(int32(c.HealthPort)),
			RequestPath: proto.String(path),
		},
		CheckIntervalSec:   proto.Int32(10),
		TimeoutSec:         proto.Int32(5),
		HealthyThreshold:   proto.Int32(2),
		UnhealthyThreshold: proto.Int32(3),
	}
}

// autohealCheck is what the group autoheals on: /healthz, the process is
// alive. A node still loading its tables is not recreated for it, however
// long the preload takes.
func (c *Config) autohealCheck() *computepb.HealthCheck {
	return c.healthCheck(c.autohealCheckName(), "/healthz", "liveness")
}

// readyCheck is for the operator's load balancer backend: /readyz, the
// node serves queries (503 until the startup SQL has run, and while it
// drains).
func (c *Config) readyCheck() *computepb.HealthCheck {
	return c.healthCheck(c.readyCheckName(), "/readyz", "readiness")
}

// firewall admits Google's health checkers to the health port of the
// group's instances; without it, on a network with no such rule (the
// default network has none), every instance stays UNHEALTHY and is
// recreated after each initial delay.
func (c *Config) firewall() *computepb.Firewall {
	return &computepb.Firewall{
		Name:         proto.String(c.firewallName()),
		Description:  proto.String(c.firewallDescription()),
		Network:      proto.String(networkURL(c.Project, c.Network)),
		Direction:    proto.String("INGRESS"),
		Priority:     proto.Int32(1000),
		SourceRanges: append([]string(nil), HealthCheckRanges...),
		TargetTags:   []string{c.networkTag()},
		Allowed: []*computepb.Allowed{{
			IPProtocol: proto.String("tcp"),
			Ports:      []string{fmt.Sprint(c.HealthPort)},
		}},
	}
}

func (c *Config) firewallDescription() string {
	return "Google health checks to the Luna health port, made by luna-deploy for group " + c.Name
}

// iapFirewall admits IAP TCP forwarding to sshd on the group's instances,
// which have no external address by default: luna-deploy logs and restart
// --via iap (gcloud compute start-iap-tunnel) come in through it. Who may
// open a tunnel is IAM's business (roles/iap.tunnelResourceAccessor), not
// the rule's.
func (c *Config) iapFirewall() *computepb.Firewall {
	return &computepb.Firewall{
		Name:         proto.String(c.iapFirewallName()),
		Description:  proto.String(c.iapFirewallDescription()),
		Network:      proto.String(networkURL(c.Project, c.Network)),
		Direction:    proto.String("INGRESS"),
		Priority:     proto.Int32(1000),
		SourceRanges: []string{IAPRange},
		TargetTags:   []string{c.networkTag()},
		Allowed: []*computepb.Allowed{{
			IPProtocol: proto.String("tcp"),
			Ports:      []string{fmt.Sprint(SSHPort)},
		}},
	}
}

func (c *Config) iapFirewallDescription() string {
	return "IAP TCP forwarding to SSH, made by luna-deploy for group " + c.Name
}

// IAPFirewallNeeded says which rule SSH through IAP needs when create
// skips making it.
func (c *Config) IAPFirewallNeeded() string {
	return fmt.Sprintf("an ingress rule on network %s allowing tcp:%d from %s to instances tagged %s",
		c.Network, SSHPort, IAPRange, c.networkTag())
}

// FirewallNeeded says which rule must exist when create skips making it.
func (c *Config) FirewallNeeded() string {
	return fmt.Sprintf("an ingress rule on network %s allowing tcp:%d from %s to instances tagged %s",
		c.Network, c.HealthPort, strings.Join(HealthCheckRanges, ","), c.networkTag())
}

func (c *Config) tags() []string {
	out := []string{c.networkTag()}
	for _, t := range c.Tags {
		if t != c.networkTag() {
			out = append(out, t)
		}
	}
	return out
}

func (c *Config) template(redact bool) *computepb.InstanceTemplate {
	var items []*computepb.Items
	add := func(k, v string) {
		items = append(items, &computepb.Items{Key: proto.String(k), Value: proto.String(v)})
	}
	md := map[string]string{}
	for k, v := range c.Metadata {
		md[k] = v
	}
	// SSH to the nodes goes through OS Login, which IAM governs
	// (roles/compute.osAdminLogin), as in the Terraform module; a
	// --metadata enable-oslogin=FALSE of the operator's wins.
	if _, ok := md["enable-oslogin"]; !ok {
		md["enable-oslogin"] = "TRUE"
	}
	for _, k := range sortedKeys(md) {
		add(k, md[k])
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
		nic.AccessConfigs = []*computepb.AccessConfig{externalNAT()}
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
		Tags:              &computepb.Tags{Items: c.tags()},
	}
	return &computepb.InstanceTemplate{
		Name:        proto.String(c.templateName()),
		Description: proto.String(c.templateDescription()),
		Properties:  props,
	}
}

func (c *Config) templateDescription() string {
	return "Luna group " + c.Name + ", version " + c.Version
}

func externalNAT() *computepb.AccessConfig {
	return &computepb.AccessConfig{Name: proto.String("External NAT"), Type: proto.String("ONE_TO_ONE_NAT")}
}

func fixedOrPercent(a deploy.Amount) *computepb.FixedOrPercent {
	if a.Percent {
		return &computepb.FixedOrPercent{Percent: proto.Int32(a.Value)}
	}
	return &computepb.FixedOrPercent{Fixed: proto.Int32(a.Value)}
}

func (c *Config) updatePolicy() *computepb.InstanceGroupManagerUpdatePolicy {
	p := &computepb.InstanceGroupManagerUpdatePolicy{
		Type:           proto.String("PROACTIVE"),
		MinimalAction:  proto.String("REPLACE"),
		MaxUnavailable: fixedOrPercent(c.MaxUnavailable),
	}
	if c.MaxSurge != nil {
		p.MaxSurge = fixedOrPercent(*c.MaxSurge)
	}
	return p
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
			HealthCheck:     proto.String(c.healthCheckURL(c.autohealCheckName())),
			InitialDelaySec: proto.Int32(c.InitialDelaySec),
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
	reqs := []deploy.Request{
		{API: "compute.healthChecks.insert", Method: http.MethodPost, Path: c.globalPath("healthChecks"), Body: body(c.autohealCheck())},
		{API: "compute.healthChecks.insert", Method: http.MethodPost, Path: c.globalPath("healthChecks"), Body: body(c.readyCheck())},
	}
	if !c.NoFirewall {
		reqs = append(reqs, deploy.Request{API: "compute.firewalls.insert", Method: http.MethodPost, Path: c.firewallPath(), Body: body(c.firewall()),
			Note: "if the rule exists already, compute.firewalls.get checks that it admits the health checkers"})
	}
	if !c.NoIAPSSH {
		reqs = append(reqs, deploy.Request{API: "compute.firewalls.insert", Method: http.MethodPost, Path: c.firewallPath(), Body: body(c.iapFirewall()),
			Note: "if the rule exists already, it is kept (a warning says so if it does not admit IAP to tcp:22)"})
	}
	return append(reqs,
		deploy.Request{API: "compute.instanceTemplates.insert", Method: http.MethodPost, Path: c.globalPath("instanceTemplates"), Body: body(c.template(true))},
		deploy.Request{API: "compute.regionInstanceGroupManagers.insert", Method: http.MethodPost, Path: c.migPath(), Body: body(c.mig())},
	)
}

// PlanDelete is what delete sends.
func (c *Config) PlanDelete() []deploy.Request {
	return []deploy.Request{
		{API: "compute.regionInstanceGroupManagers.delete", Method: http.MethodDelete, Path: c.migPath() + "/" + c.Name},
		{API: "compute.healthChecks.delete", Method: http.MethodDelete, Path: c.globalPath("healthChecks") + "/" + c.autohealCheckName()},
		{API: "compute.healthChecks.delete", Method: http.MethodDelete, Path: c.globalPath("healthChecks") + "/" + c.readyCheckName()},
		{API: "compute.firewalls.get", Method: http.MethodGet, Path: c.firewallPath() + "/" + c.firewallName(),
			Note: "then compute.firewalls.delete if luna-deploy made the rule for this group"},
		{API: "compute.firewalls.get", Method: http.MethodGet, Path: c.firewallPath() + "/" + c.iapFirewallName(),
			Note: "then compute.firewalls.delete if luna-deploy made the rule for this group"},
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
	firewalls *compute.FirewallsClient
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
	if c.firewalls, err = compute.NewFirewallsRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("connecting to Compute Engine: %w", err)
	}
	if c.instances, err = compute.NewInstancesRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("connecting to Compute Engine: %w", err)
	}
	return c, nil
}

// Close releases the clients.
func (c *Client) Close() error {
	return errors.Join(c.templates.Close(), c.migs.Close(), c.checks.Close(), c.firewalls.Close(), c.instances.Close())
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

func isStatus(err error, code int) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == code
}

// Create makes the health checks, the firewall rules, the template and the
// group, and returns a description of what it made.
func (c *Client) Create(ctx context.Context) (string, error) {
	cfg := &c.cfg
	p := cfg.Project
	var out strings.Builder
	for _, hc := range []*computepb.HealthCheck{cfg.autohealCheck(), cfg.readyCheck()} {
		what := "creating health check " + hc.GetName()
		op, err := c.checks.Insert(ctx, &computepb.InsertHealthCheckRequest{Project: p, HealthCheckResource: hc})
		if err := c.wait(ctx, op, what, err); err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "created health check %s (HTTP %s on port %d)\n", hc.GetName(), hc.GetHttpHealthCheck().GetRequestPath(), cfg.HealthPort)
	}
	if cfg.NoFirewall {
		fmt.Fprintf(&out, "made no firewall rule (--no-health-check-firewall): the health checks need %s\n", cfg.FirewallNeeded())
	} else {
		line, err := c.ensureFirewall(ctx)
		if err != nil {
			return "", err
		}
		out.WriteString(line)
	}
	if cfg.NoIAPSSH {
		fmt.Fprintf(&out, "made no IAP SSH firewall rule (--no-iap-ssh): SSH through IAP (logs and restart --via iap) needs %s\n", cfg.IAPFirewallNeeded())
	} else {
		line, err := c.ensureIAPFirewall(ctx)
		if err != nil {
			return "", err
		}
		out.WriteString(line)
	}
	what := "creating instance template " + cfg.templateName()
	op, err := c.templates.Insert(ctx, &computepb.InsertInstanceTemplateRequest{Project: p, InstanceTemplateResource: cfg.template(false)})
	if err := c.wait(ctx, op, what, err); err != nil {
		return "", err
	}
	fmt.Fprintf(&out, "created instance template %s (%s, %s)\n", cfg.templateName(), cfg.MachineType, cfg.Image)
	what = "creating managed instance group " + cfg.Name
	op, err = c.migs.Insert(ctx, &computepb.InsertRegionInstanceGroupManagerRequest{Project: p, Region: cfg.Region, InstanceGroupManagerResource: cfg.mig()})
	if err := c.wait(ctx, op, what, err); err != nil {
		return "", err
	}
	fmt.Fprintf(&out, "created managed instance group %s in %s: %d instances, named port luna:%d, autohealing on %s (/healthz) after %ds\n",
		cfg.Name, cfg.Region, cfg.Size, cfg.APIPort, cfg.autohealCheckName(), cfg.InitialDelaySec)
	fmt.Fprintf(&out, "for a load balancer in front: backend health check %s (/readyz), named port luna\n", cfg.readyCheckName())
	return out.String(), nil
}

// ensureFirewall makes the health-check rule, or accepts an existing rule
// of that name if it admits the health checkers to the health port.
func (c *Client) ensureFirewall(ctx context.Context) (string, error) {
	cfg := &c.cfg
	fw := cfg.firewall()
	what := "creating firewall rule " + fw.GetName()
	op, err := c.firewalls.Insert(ctx, &computepb.InsertFirewallRequest{Project: cfg.firewallProject(), FirewallResource: fw})
	if !isStatus(err, http.StatusConflict) {
		if err := c.wait(ctx, op, what, err); err != nil {
			return "", err
		}
		return fmt.Sprintf("created firewall rule %s (tcp:%d from %s to tag %s)\n", fw.GetName(), cfg.HealthPort, strings.Join(HealthCheckRanges, ","), cfg.networkTag()), nil
	}
	got, err := c.firewalls.Get(ctx, &computepb.GetFirewallRequest{Project: cfg.firewallProject(), Firewall: fw.GetName()})
	if err != nil {
		return "", deploy.CloudError("reading firewall rule "+fw.GetName(), err)
	}
	if why := cfg.admitsHealthChecks(got); why != "" {
		return "", &deploy.OpError{Op: what, Err: errors.New("a rule of that name exists and " + why),
			Hint: "fix or delete the rule, or pass --no-health-check-firewall and make sure " + cfg.FirewallNeeded() + " exists"}
	}
	c.Progress.Printf("skipped: %s (it exists and admits the health checks)", what)
	return fmt.Sprintf("kept firewall rule %s (exists; admits tcp:%d from the health-check ranges)\n", fw.GetName(), cfg.HealthPort), nil
}

// ensureIAPFirewall makes the IAP SSH rule. A rule of that name that
// exists already is kept whatever it says: the fleet serves without it,
// and the operator may have reasons; a warning says when it does not
// admit IAP to SSH.
func (c *Client) ensureIAPFirewall(ctx context.Context) (string, error) {
	cfg := &c.cfg
	fw := cfg.iapFirewall()
	what := "creating firewall rule " + fw.GetName()
	op, err := c.firewalls.Insert(ctx, &computepb.InsertFirewallRequest{Project: cfg.firewallProject(), FirewallResource: fw})
	if !isStatus(err, http.StatusConflict) {
		if err := c.wait(ctx, op, what, err); err != nil {
			return "", err
		}
		return fmt.Sprintf("created firewall rule %s (tcp:%d from %s to tag %s, for SSH through IAP)\n", fw.GetName(), SSHPort, IAPRange, cfg.networkTag()), nil
	}
	c.Progress.Printf("skipped: %s (it exists)", what)
	got, err := c.firewalls.Get(ctx, &computepb.GetFirewallRequest{Project: cfg.firewallProject(), Firewall: fw.GetName()})
	switch {
	case err != nil:
		c.Progress.Printf("warning: cannot read firewall rule %s (%v): SSH through IAP needs %s", fw.GetName(), err, cfg.IAPFirewallNeeded())
	default:
		if why := cfg.admits(got, []string{IAPRange}, SSHPort); why != "" {
			c.Progress.Printf("warning: firewall rule %s %s: SSH through IAP needs %s", fw.GetName(), why, cfg.IAPFirewallNeeded())
		}
	}
	return fmt.Sprintf("kept firewall rule %s (exists)\n", fw.GetName()), nil
}

// admitsHealthChecks says why rule fails to let the health checkers reach
// the group's health port, or "" if it does.
func (c *Config) admitsHealthChecks(rule *computepb.Firewall) string {
	return c.admits(rule, HealthCheckRanges, c.HealthPort)
}

// admits says why rule fails to let ranges reach tcp port on the group's
// instances, or "" if it does.
func (c *Config) admits(rule *computepb.Firewall, ranges []string, port int) string {
	if rule.GetDisabled() {
		return "is disabled"
	}
	if d := rule.GetDirection(); d != "" && d != "INGRESS" {
		return "is not an ingress rule"
	}
	if path.Base(rule.GetNetwork()) != path.Base(networkURL(c.Project, c.Network)) {
		return "is on network " + path.Base(rule.GetNetwork()) + ", not " + path.Base(c.Network)
	}
	for _, r := range ranges {
		if !contains(rule.GetSourceRanges(), r) {
			return "does not admit " + r
		}
	}
	if tt := rule.GetTargetTags(); len(tt) > 0 && !contains(tt, c.networkTag()) {
		return "does not target the instances' tag " + c.networkTag()
	}
	if len(rule.GetTargetServiceAccounts()) > 0 {
		return "targets service accounts, not the instances' tag " + c.networkTag()
	}
	for _, a := range rule.GetAllowed() {
		if p := a.GetIPProtocol(); p != "tcp" && p != "all" && p != "6" {
			continue
		}
		if len(a.GetPorts()) == 0 {
			return ""
		}
		for _, p := range a.GetPorts() {
			if portIn(p, port) {
				return ""
			}
		}
	}
	return fmt.Sprintf("does not allow tcp:%d", port)
}

// portIn reports whether a firewall port spec ("7689" or "7000-8000")
// covers port.
func portIn(spec string, port int) bool {
	lo, hi, isRange := strings.Cut(spec, "-")
	var a, b int
	if _, err := fmt.Sscan(lo, &a); err != nil {
		return false
	}
	b = a
	if isRange {
		if _, err := fmt.Sscan(hi, &b); err != nil {
			return false
		}
	}
	return a <= port && port <= b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
		// An instance recreated by autohealing keeps its name but gets a
		// new id (and host key); one still being created has none yet.
		if id := mi.GetId(); id != 0 {
			in.ID = strconv.FormatUint(id, 10)
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
			switch {
			case isStatus(err, http.StatusNotFound):
				// Deleted since the listing.
			case err != nil:
				return nil, deploy.CloudError("reading instance "+name, err)
			default:
				if in.ID == "" && vm.GetId() != 0 {
					in.ID = strconv.FormatUint(vm.GetId(), 10)
				}
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

// Delete removes the group, its health checks, the firewall rules create
// made and the group's templates. Resources already gone are skipped.
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
	for _, name := range []string{cfg.autohealCheckName(), cfg.readyCheckName()} {
		what = "deleting health check " + name
		op, err = c.checks.Delete(ctx, &computepb.DeleteHealthCheckRequest{Project: cfg.Project, HealthCheck: name})
		if ok, err := c.waitDeleted(ctx, op, what, err); err != nil {
			return "", err
		} else if ok {
			done = append(done, "deleted health check "+name)
		}
	}
	for _, rule := range []struct{ name, description string }{
		{cfg.firewallName(), cfg.firewallDescription()},
		{cfg.iapFirewallName(), cfg.iapFirewallDescription()},
	} {
		line, err := c.deleteFirewall(ctx, rule.name, rule.description)
		if err != nil {
			return "", err
		}
		if line != "" {
			done = append(done, line)
		}
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

// deleteFirewall removes a firewall rule if create made it for this group
// (it carries the description create gave it); a rule someone else made
// under that name is left alone.
func (c *Client) deleteFirewall(ctx context.Context, name, description string) (string, error) {
	cfg := &c.cfg
	rule, err := c.firewalls.Get(ctx, &computepb.GetFirewallRequest{Project: cfg.firewallProject(), Firewall: name})
	switch {
	case isStatus(err, http.StatusNotFound):
		c.Progress.Printf("skipped: deleting firewall rule %s (not found)", name)
		return "", nil
	case err != nil:
		return "", deploy.CloudError("reading firewall rule "+name, err)
	case rule.GetDescription() != description:
		c.Progress.Printf("skipped: deleting firewall rule %s (not made by luna-deploy for group %s)", name, cfg.Name)
		return "", nil
	}
	what := "deleting firewall rule " + name
	op, err := c.firewalls.Delete(ctx, &computepb.DeleteFirewallRequest{Project: cfg.firewallProject(), Firewall: name})
	if ok, err := c.waitDeleted(ctx, op, what, err); err != nil || !ok {
		return "", err
	}
	return "deleted firewall rule " + name, nil
}

// waitDeleted waits for a delete; a resource that does not exist is not an
// error, and ok is false then.
func (c *Client) waitDeleted(ctx context.Context, op *compute.Operation, what string, err error) (ok bool, _ error) {
	if isStatus(err, http.StatusNotFound) {
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
