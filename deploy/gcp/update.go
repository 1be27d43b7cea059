package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"

	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/lunadb/luna/deploy"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Changes are what update changes; a nil field keeps what the group has.
// The new template is a copy of the group's current one with only these
// fields replaced, so metadata the operator did not name (the password,
// the release URL and checksum, the startup SQL) carries over.
type Changes struct {
	MachineType    *string
	Image          *string
	DiskSizeGB     *int64
	StartupScript  *string // "" removes it
	ServiceAccount *string
	Scopes         []string // nil keeps them
	Network        *string
	Subnet         *string
	Tags           []string // nil keeps them
	ExternalIP     *bool
	// Metadata sets these attributes; an empty value removes one.
	Metadata map[string]string
	// Password sets the password attribute: PasswdAttribute, else the one
	// the template's luna-passwd-from names, else luna-passwd.
	Password        *string
	PasswdAttribute *string

	// Size resizes the group.
	Size            *int32
	InitialDelaySec *int32
	MaxSurge        *deploy.Amount
	MaxUnavailable  *deploy.Amount
}

// templateChanged reports whether the changes touch the template.
func (ch *Changes) templateChanged() bool {
	return ch.MachineType != nil || ch.Image != nil || ch.DiskSizeGB != nil || ch.StartupScript != nil ||
		ch.ServiceAccount != nil || ch.Scopes != nil || ch.Network != nil || ch.Subnet != nil || ch.Tags != nil ||
		ch.ExternalIP != nil || len(ch.Metadata) > 0 || ch.Password != nil || ch.PasswdAttribute != nil
}

// CheckUpdate reports malformed changes that need no look at the group.
func (c *Config) CheckUpdate() error {
	ch := &c.Update
	if ch.PasswdAttribute != nil && ch.Password == nil {
		return errors.New("--passwd-attribute on update needs --passwd-file: the new template gets the password under that attribute")
	}
	if ch.InitialDelaySec != nil {
		if err := checkInitialDelay(*ch.InitialDelaySec); err != nil {
			return err
		}
	}
	if ch.Size != nil && *ch.Size < 0 {
		return fmt.Errorf("--size %d: must not be negative", *ch.Size)
	}
	return nil
}

// updatePlan is what an update does, worked out from the group as it is.
type updatePlan struct {
	group       *computepb.InstanceGroupManager
	oldTemplate string
	template    *computepb.InstanceTemplate // nil: the template stays
	templateLog []string
	resize      *int32
	resizeLog   []string
	patch       *computepb.InstanceGroupManager // nil: nothing to patch
	patchLog    []string
}

func (p *updatePlan) empty() bool { return p.template == nil && p.resize == nil && p.patch == nil }

// plan reads the group and its current template (the only calls it
// makes) and works out the update.
func (c *Client) plan(ctx context.Context) (*updatePlan, error) {
	cfg := &c.cfg
	ch := &cfg.Update
	m, err := c.migs.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: cfg.Project, Region: cfg.Region, InstanceGroupManager: cfg.Name})
	if isStatus(err, http.StatusNotFound) {
		return nil, &deploy.OpError{Op: "reading managed instance group " + cfg.Name, Err: errors.New("the group does not exist"),
			Hint: "check --name, --project and --region; create the group first"}
	}
	if err != nil {
		return nil, deploy.CloudError("reading managed instance group "+cfg.Name, err)
	}
	p := &updatePlan{group: m}

	// Validate the rollout against the group's real zones and size.
	size := m.GetTargetSize()
	if ch.Size != nil {
		size = *ch.Size
	}
	zones := len(m.GetDistributionPolicy().GetZones())
	surge, unavailable := amountOf(m.GetUpdatePolicy().GetMaxSurge()), amountOf(m.GetUpdatePolicy().GetMaxUnavailable())
	if ch.MaxSurge != nil {
		surge = ch.MaxSurge
	}
	if ch.MaxUnavailable != nil {
		unavailable = ch.MaxUnavailable
	}
	if ch.MaxSurge != nil || ch.MaxUnavailable != nil || ch.Size != nil {
		u := deploy.Amount{}
		if unavailable != nil {
			u = *unavailable
		}
		if err := checkRollout(surge, u, zones, size); err != nil {
			return nil, err
		}
	}

	if ch.templateChanged() {
		cur := currentTemplate(m)
		if cur == "" {
			return nil, &deploy.OpError{Op: "reading group " + cfg.Name, Err: errors.New("the group names no instance template")}
		}
		if strings.Contains(cur, "/regions/") {
			return nil, &deploy.OpError{Op: "reading group " + cfg.Name, Err: fmt.Errorf("the group runs the regional instance template %s", cur),
				Hint: "luna-deploy copies global instance templates only"}
		}
		p.oldTemplate = path.Base(cur)
		if p.oldTemplate == cfg.templateName() {
			return nil, fmt.Errorf("--template-version %s: the group runs template %s already; name a new version", cfg.Version, p.oldTemplate)
		}
		old, err := c.templates.Get(ctx, &computepb.GetInstanceTemplateRequest{Project: cfg.Project, InstanceTemplate: p.oldTemplate})
		if err != nil {
			return nil, deploy.CloudError("reading instance template "+p.oldTemplate, err)
		}
		t, err := cfg.applyChanges(old)
		if err != nil {
			return nil, err
		}
		p.templateLog = diffTemplates(old, t, passwordKeys(old, t))
		if len(p.templateLog) > 0 {
			p.template = t
			p.templateLog = append([]string{deploy.Change("instance template", p.oldTemplate, t.GetName())}, p.templateLog...)
		}
	}

	if ch.Size != nil && *ch.Size != m.GetTargetSize() {
		p.resize = ch.Size
		p.resizeLog = []string{deploy.Change("target size", fmt.Sprint(m.GetTargetSize()), fmt.Sprint(*ch.Size))}
	}

	patch := &computepb.InstanceGroupManager{}
	changed := false
	if p.template != nil {
		patch.Versions = []*computepb.InstanceGroupManagerVersion{{
			Name:             proto.String(cfg.Version),
			InstanceTemplate: proto.String(cfg.templateURL(p.template.GetName())),
		}}
		changed = true
	}
	policyChanged := false
	if ch.MaxSurge != nil && !sameAmount(amountOf(m.GetUpdatePolicy().GetMaxSurge()), ch.MaxSurge) {
		p.patchLog = append(p.patchLog, deploy.Change("update policy max surge", amountString(m.GetUpdatePolicy().GetMaxSurge()), ch.MaxSurge.String()))
		policyChanged = true
	}
	if ch.MaxUnavailable != nil && !sameAmount(amountOf(m.GetUpdatePolicy().GetMaxUnavailable()), ch.MaxUnavailable) {
		p.patchLog = append(p.patchLog, deploy.Change("update policy max unavailable", amountString(m.GetUpdatePolicy().GetMaxUnavailable()), ch.MaxUnavailable.String()))
		policyChanged = true
	}
	if p.template != nil || policyChanged {
		// A new template is rolled out proactively, replacing instances
		// within the group's surge and unavailable limits.
		up := &computepb.InstanceGroupManagerUpdatePolicy{Type: proto.String("PROACTIVE"), MinimalAction: proto.String("REPLACE")}
		if surge != nil {
			up.MaxSurge = fixedOrPercent(*surge)
		}
		if unavailable != nil {
			up.MaxUnavailable = fixedOrPercent(*unavailable)
		}
		patch.UpdatePolicy = up
		changed = true
	}
	if ch.InitialDelaySec != nil {
		hp := m.GetAutoHealingPolicies()
		if len(hp) == 0 {
			return nil, &deploy.OpError{Op: "changing the autohealing initial delay of group " + cfg.Name, Err: errors.New("the group has no autohealing policy")}
		}
		if old := hp[0].GetInitialDelaySec(); old != *ch.InitialDelaySec {
			p.patchLog = append(p.patchLog, deploy.Change("autohealing initial delay", fmt.Sprintf("%ds", old), fmt.Sprintf("%ds", *ch.InitialDelaySec)))
			for _, h := range hp {
				patch.AutoHealingPolicies = append(patch.AutoHealingPolicies, &computepb.InstanceGroupManagerAutoHealingPolicy{
					HealthCheck: proto.String(h.GetHealthCheck()), InitialDelaySec: proto.Int32(*ch.InitialDelaySec),
				})
			}
			changed = true
		}
	}
	if changed {
		p.patch = patch
	}
	return p, nil
}

// currentTemplate is the template the group's instances are rolled to.
func currentTemplate(m *computepb.InstanceGroupManager) string {
	if vs := m.GetVersions(); len(vs) > 0 {
		return vs[len(vs)-1].GetInstanceTemplate()
	}
	return m.GetInstanceTemplate()
}

// amountOf reads a policy's surge or unavailable setting; nil when it has
// none (only the calculated value Compute Engine derived).
func amountOf(f *computepb.FixedOrPercent) *deploy.Amount {
	switch {
	case f == nil:
		return nil
	case f.Percent != nil:
		return &deploy.Amount{Value: f.GetPercent(), Percent: true}
	case f.Fixed != nil:
		return &deploy.Amount{Value: f.GetFixed()}
	}
	return nil
}

func amountString(f *computepb.FixedOrPercent) string {
	if a := amountOf(f); a != nil {
		return a.String()
	}
	return "default (the number of zones)"
}

func sameAmount(a, b *deploy.Amount) bool {
	return a != nil && b != nil && *a == *b
}

// applyChanges copies the current template under the new name and applies
// the changes to the copy.
func (c *Config) applyChanges(old *computepb.InstanceTemplate) (*computepb.InstanceTemplate, error) {
	ch := &c.Update
	t := proto.Clone(old).(*computepb.InstanceTemplate)
	// Output-only fields of the read template.
	t.Id, t.CreationTimestamp, t.SelfLink, t.Kind, t.Region = nil, nil, nil, nil, nil
	t.Name = proto.String(c.templateName())
	t.Description = proto.String(c.templateDescription())
	if t.Properties == nil {
		t.Properties = &computepb.InstanceProperties{}
	}
	props := t.Properties
	if props.Metadata == nil {
		props.Metadata = &computepb.Metadata{}
	}
	props.Metadata.Fingerprint, props.Metadata.Kind = nil, nil
	if props.Labels == nil {
		props.Labels = map[string]string{}
	}
	props.Labels[GroupLabel] = c.Name

	if ch.MachineType != nil {
		props.MachineType = proto.String(*ch.MachineType)
	}
	if ch.Image != nil || ch.DiskSizeGB != nil {
		boot := bootDisk(props)
		if boot == nil {
			return nil, fmt.Errorf("instance template %s has no boot disk to change", old.GetName())
		}
		if boot.InitializeParams == nil {
			boot.InitializeParams = &computepb.AttachedDiskInitializeParams{}
		}
		if ch.Image != nil {
			boot.InitializeParams.SourceImage = proto.String(*ch.Image)
		}
		if ch.DiskSizeGB != nil {
			boot.InitializeParams.DiskSizeGb = proto.Int64(*ch.DiskSizeGB)
		}
	}
	if ch.StartupScript != nil {
		setItem(props.Metadata, "startup-script", *ch.StartupScript)
	}
	for _, k := range sortedKeys(ch.Metadata) {
		setItem(props.Metadata, k, ch.Metadata[k])
	}
	if ch.Password != nil {
		attr := c.PasswdAttribute
		if ch.PasswdAttribute != nil {
			attr = *ch.PasswdAttribute
		} else if from, ok := item(props.Metadata, PasswdFromKey); ok && strings.HasPrefix(from, "gcp-metadata:") {
			attr = strings.TrimPrefix(from, "gcp-metadata:")
		}
		setItem(props.Metadata, attr, *ch.Password)
		setItem(props.Metadata, PasswdFromKey, "gcp-metadata:"+attr)
	}
	if ch.ServiceAccount != nil || ch.Scopes != nil {
		if len(props.ServiceAccounts) == 0 {
			props.ServiceAccounts = []*computepb.ServiceAccount{{Email: proto.String("default")}}
		}
		sa := props.ServiceAccounts[0]
		if ch.ServiceAccount != nil {
			sa.Email = proto.String(*ch.ServiceAccount)
		}
		if ch.Scopes != nil {
			sa.Scopes = ch.Scopes
		}
	}
	if ch.Network != nil || ch.Subnet != nil || ch.ExternalIP != nil {
		if len(props.NetworkInterfaces) == 0 {
			props.NetworkInterfaces = []*computepb.NetworkInterface{{}}
		}
		nic := props.NetworkInterfaces[0]
		if ch.Network != nil {
			nic.Network = proto.String(networkURL(c.Project, *ch.Network))
		}
		if ch.Subnet != nil {
			nic.Subnetwork = proto.String(subnetURL(c.Project, c.Region, *ch.Subnet))
			if *ch.Subnet == "" {
				nic.Subnetwork = nil
			}
		}
		if ch.ExternalIP != nil {
			switch {
			case !*ch.ExternalIP:
				nic.AccessConfigs = nil
			case len(nic.AccessConfigs) == 0:
				nic.AccessConfigs = []*computepb.AccessConfig{externalNAT()}
			}
		}
	}
	if ch.Tags != nil {
		c.Tags = ch.Tags
		if props.Tags == nil {
			props.Tags = &computepb.Tags{}
		}
		props.Tags.Items, props.Tags.Fingerprint = c.tags(), nil
	}
	return t, nil
}

func bootDisk(p *computepb.InstanceProperties) *computepb.AttachedDisk {
	for _, d := range p.GetDisks() {
		if d.GetBoot() {
			return d
		}
	}
	return nil
}

func item(md *computepb.Metadata, key string) (string, bool) {
	for _, it := range md.GetItems() {
		if it.GetKey() == key {
			return it.GetValue(), true
		}
	}
	return "", false
}

// setItem sets a metadata attribute in place (keeping the order of the
// others); an empty value removes it.
func setItem(md *computepb.Metadata, key, value string) {
	for i, it := range md.Items {
		if it.GetKey() == key {
			if value == "" {
				md.Items = append(md.Items[:i], md.Items[i+1:]...)
			} else {
				it.Value = proto.String(value)
			}
			return
		}
	}
	if value != "" {
		md.Items = append(md.Items, &computepb.Items{Key: proto.String(key), Value: proto.String(value)})
	}
}

// passwordKeys are the metadata attributes holding a password in either
// template: their values never appear in a diff.
func passwordKeys(ts ...*computepb.InstanceTemplate) map[string]bool {
	keys := map[string]bool{}
	for _, t := range ts {
		if from, ok := item(t.GetProperties().GetMetadata(), PasswdFromKey); ok && strings.HasPrefix(from, "gcp-metadata:") {
			keys[strings.TrimPrefix(from, "gcp-metadata:")] = true
		}
	}
	return keys
}

// diffTemplates lists the fields that differ between two templates, as
// "field: old → new" in field order; metadata is keyed by attribute, and
// secret attributes show only that they changed.
func diffTemplates(old, new *computepb.InstanceTemplate, secret map[string]bool) []string {
	a, b := flatTemplate(old), flatTemplate(new)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		if a[k] != b[k] {
			o, n := a[k], b[k]
			if strings.HasPrefix(k, "metadata.") && secret[strings.TrimPrefix(k, "metadata.")] {
				o, n = redactIfSet(o), redactIfSet(n)
			}
			out = append(out, deploy.Change(k, o, n))
		}
	}
	return out
}

func redactIfSet(v string) string {
	if v == "" {
		return ""
	}
	return deploy.Redacted
}

// flatTemplate maps a template's properties to dotted field names and
// their values.
func flatTemplate(t *computepb.InstanceTemplate) map[string]string {
	out := map[string]string{}
	p := proto.Clone(t.GetProperties()).(*computepb.InstanceProperties)
	if p == nil {
		return out
	}
	for _, it := range p.GetMetadata().GetItems() {
		out["metadata."+it.GetKey()] = it.GetValue()
	}
	p.Metadata = nil
	b, err := protojson.Marshal(p)
	if err != nil {
		return out
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return out
	}
	flatten("", v, out)
	return out
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			flatten(join(prefix, k), e, out)
		}
	case []any:
		// Lists of plain values read best whole: tags, scopes.
		plain := true
		var parts []string
		for _, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				plain = false
			default:
				parts = append(parts, fmt.Sprint(e))
			}
		}
		if plain {
			out[prefix] = strings.Join(parts, ",")
			return
		}
		for i, e := range x {
			flatten(join(prefix, fmt.Sprint(i)), e, out)
		}
	case nil:
	default:
		out[prefix] = fmt.Sprint(x)
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// PlanUpdate reads the group and its template and returns the requests
// an update would send, each with the changes it makes. Nothing is
// changed.
func (c *Client) PlanUpdate(ctx context.Context) ([]deploy.Request, error) {
	p, err := c.plan(ctx)
	if err != nil {
		return nil, err
	}
	cfg := &c.cfg
	reqs := []deploy.Request{}
	if p.template != nil {
		redacted := proto.Clone(p.template).(*computepb.InstanceTemplate)
		for k := range passwordKeys(redacted) {
			if _, ok := item(redacted.GetProperties().GetMetadata(), k); ok {
				setItem(redacted.Properties.Metadata, k, deploy.Redacted)
			}
		}
		reqs = append(reqs, deploy.Request{API: "compute.instanceTemplates.insert", Method: http.MethodPost, Path: cfg.globalPath("instanceTemplates"),
			Body: body(redacted), Changes: p.templateLog, Note: "a copy of " + p.oldTemplate + " with only these changes"})
	}
	if p.resize != nil {
		reqs = append(reqs, deploy.Request{API: "compute.regionInstanceGroupManagers.resize", Method: http.MethodPost,
			Path: fmt.Sprintf("%s/%s/resize?size=%d", cfg.migPath(), cfg.Name, *p.resize), Changes: p.resizeLog})
	}
	if p.patch != nil {
		note := ""
		if p.template != nil {
			note = "then compute.regionInstanceGroupManagers.get until the group is stable on the new version"
		}
		reqs = append(reqs, deploy.Request{API: "compute.regionInstanceGroupManagers.patch", Method: http.MethodPatch, Path: cfg.migPath() + "/" + cfg.Name,
			Body: body(p.patch), Changes: p.patchLog, Note: note})
	}
	return reqs, nil
}

// Update makes a copy of the group's current template with only the
// requested changes, resizes the group if asked, and rolls it over to the
// new template, waiting until every instance runs it. With no change it
// sends nothing.
func (c *Client) Update(ctx context.Context) (string, error) {
	cfg := &c.cfg
	p, err := c.plan(ctx)
	if err != nil {
		return "", err
	}
	if p.empty() {
		return fmt.Sprintf("nothing to change: group %s already has what the flags name\n", cfg.Name), nil
	}
	var out strings.Builder
	for _, l := range append(append(append([]string{}, p.templateLog...), p.resizeLog...), p.patchLog...) {
		fmt.Fprintf(&out, "  %s\n", l)
	}
	if p.template != nil {
		what := "creating instance template " + p.template.GetName()
		op, err := c.templates.Insert(ctx, &computepb.InsertInstanceTemplateRequest{Project: cfg.Project, InstanceTemplateResource: p.template})
		if err := c.wait(ctx, op, what, err); err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "created instance template %s from %s\n", p.template.GetName(), p.oldTemplate)
	}
	if p.resize != nil {
		what := fmt.Sprintf("resizing group %s to %d", cfg.Name, *p.resize)
		op, err := c.migs.Resize(ctx, &computepb.ResizeRegionInstanceGroupManagerRequest{Project: cfg.Project, Region: cfg.Region, InstanceGroupManager: cfg.Name, Size: *p.resize})
		if err := c.wait(ctx, op, what, err); err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "resized group %s to %d instances\n", cfg.Name, *p.resize)
	}
	if p.patch != nil {
		what := "updating group " + cfg.Name
		if p.template != nil {
			what = "starting the rolling update of group " + cfg.Name
		}
		op, err := c.migs.Patch(ctx, &computepb.PatchRegionInstanceGroupManagerRequest{
			Project: cfg.Project, Region: cfg.Region, InstanceGroupManager: cfg.Name, InstanceGroupManagerResource: p.patch,
		})
		if err := c.wait(ctx, op, what, err); err != nil {
			return "", err
		}
	}
	if p.template != nil || p.resize != nil {
		if err := c.waitStable(ctx); err != nil {
			return "", err
		}
	}
	if p.template != nil {
		fmt.Fprintf(&out, "rolled group %s over to version %s\n", cfg.Name, cfg.Version)
	} else if p.patch != nil {
		fmt.Fprintf(&out, "updated group %s\n", cfg.Name)
	}
	return "changes:\n" + out.String(), nil
}
