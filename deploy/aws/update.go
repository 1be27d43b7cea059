package aws

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/lunadb/luna/deploy"
)

// Changes are what update changes; a nil field keeps what the group has.
// The new launch template version is based on the group's current one
// (SourceVersion) and carries only these fields, so settings the
// operator did not name (the password source, the release URL and
// checksum) carry over.
type Changes struct {
	AMI             *string
	InstanceType    *string
	KeyName         *string
	InstanceProfile *string
	SecurityGroups  []string // nil keeps them
	VolumeSizeGB    *int32
	StartupScript   *string
	// Settings sets these exports of the user data; an empty value
	// removes one.
	Settings   map[string]string
	PasswdFrom *string
	// Tags sets these instance tags; an empty value removes one.
	Tags map[string]string

	// Size resizes the group.
	Size           *int32
	GracePeriodSec *int32
	WarmupSec      *int32
	// Rollout says --max-surge or --max-unavailable was given: they also
	// become the group's instance maintenance policy.
	Rollout bool
}

func (ch *Changes) templateChanged() bool {
	return ch.AMI != nil || ch.InstanceType != nil || ch.KeyName != nil || ch.InstanceProfile != nil || ch.SecurityGroups != nil ||
		ch.VolumeSizeGB != nil || ch.StartupScript != nil || len(ch.Settings) > 0 || ch.PasswdFrom != nil || len(ch.Tags) > 0
}

// CheckUpdate reports malformed changes that need no look at the group.
func (c *Config) CheckUpdate() error {
	ch := &c.Update
	switch {
	case ch.AMI != nil && !validAMI(*ch.AMI):
		return fmt.Errorf("--ami %q: an AMI ID looks like ami-0123456789abcdef0", *ch.AMI)
	case ch.KeyName != nil && *ch.KeyName == "", ch.InstanceProfile != nil && *ch.InstanceProfile == "",
		ch.InstanceType != nil && *ch.InstanceType == "", ch.SecurityGroups != nil && len(ch.SecurityGroups) == 0:
		return errors.New("update changes fields but cannot remove them: give a value, or make a new group")
	case ch.VolumeSizeGB != nil && *ch.VolumeSizeGB <= 0:
		return fmt.Errorf("--volume-size %d: must be positive", *ch.VolumeSizeGB)
	case ch.Size != nil && *ch.Size < 0:
		return fmt.Errorf("--size %d: must not be negative", *ch.Size)
	}
	if err := checkSettings(ch.Settings); err != nil {
		return err
	}
	return c.CheckRollout()
}

// updatePlan is what an update does, worked out from the group as it is.
type updatePlan struct {
	group      *astypes.AutoScalingGroup
	version    *ec2.CreateLaunchTemplateVersionInput // nil: the template stays
	versionLog []string
	settings   *autoscaling.UpdateAutoScalingGroupInput // nil: the group's settings stay
	groupLog   []string
}

func (p *updatePlan) empty() bool { return p.version == nil && p.settings == nil }

// readyChecked reports whether the group's health checks see /readyz:
// ELB health checks through at least one load balancer or target group.
func readyChecked(g *astypes.AutoScalingGroup) bool {
	return aws.ToString(g.HealthCheckType) == "ELB" && (len(g.TargetGroupARNs) > 0 || len(g.TrafficSources) > 0 || len(g.LoadBalancerNames) > 0)
}

// plan reads the group and its current launch template version (the only
// calls it makes) and works out the update.
func (c *Client) plan(ctx context.Context) (*updatePlan, error) {
	cfg := &c.cfg
	ch := &cfg.Update
	g, err := c.group(ctx)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, &deploy.OpError{Op: "reading auto scaling group " + cfg.Name, Err: errors.New("the group does not exist"),
			Hint: "check --name, --region and --profile; create the group first"}
	}
	p := &updatePlan{group: g}
	if ch.templateChanged() {
		if g.LaunchTemplate == nil {
			return nil, &deploy.OpError{Op: "reading auto scaling group " + cfg.Name, Err: errors.New("the group uses no launch template (a launch configuration or a mixed instances policy)"),
				Hint: "luna-deploy updates groups made from one launch template"}
		}
		if !readyChecked(g) && !cfg.IKnow {
			return nil, &deploy.OpError{Op: "updating auto scaling group " + cfg.Name,
				Err: fmt.Errorf("the group's health checks cannot see /readyz (health check type %s, %d target groups): an instance refresh would replace every node "+
					"even if Luna never becomes ready on the new ones, and could not roll back", nonEmpty(aws.ToString(g.HealthCheckType), "EC2"), len(g.TargetGroupARNs)),
				Hint: "attach a target group that checks HTTP /readyz on the health port and use ELB health checks " +
					"(aws autoscaling attach-traffic-sources; update-auto-scaling-group --health-check-type ELB --health-check-grace-period N), or pass --i-know"}
		}
		if err := c.planVersion(ctx, p); err != nil {
			return nil, err
		}
	}
	c.planGroup(p)
	return p, nil
}

// planVersion reads the group's launch template version and works out the
// new version's data: only the changed fields, on top of SourceVersion.
func (c *Client) planVersion(ctx context.Context, p *updatePlan) error {
	cfg := &c.cfg
	lt := p.group.LaunchTemplate
	version := nonEmpty(aws.ToString(lt.Version), "$Default")
	in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{version}}
	if aws.ToString(lt.LaunchTemplateName) != "" {
		in.LaunchTemplateName = lt.LaunchTemplateName
	} else {
		in.LaunchTemplateId = lt.LaunchTemplateId
	}
	what := "reading version " + version + " of launch template " + nonEmpty(aws.ToString(lt.LaunchTemplateName), aws.ToString(lt.LaunchTemplateId))
	out, err := c.ec2.DescribeLaunchTemplateVersions(ctx, in)
	if err != nil {
		return deploy.CloudError(what, err)
	}
	if len(out.LaunchTemplateVersions) == 0 || out.LaunchTemplateVersions[0].LaunchTemplateData == nil {
		return deploy.CloudError(what, errors.New("the version is not listed"))
	}
	src := &out.LaunchTemplateVersions[0]
	data, log, err := cfg.versionData(src.LaunchTemplateData)
	if err != nil {
		return err
	}
	if len(log) == 0 {
		return nil
	}
	srcNum := strconv.FormatInt(aws.ToInt64(src.VersionNumber), 10)
	p.version = &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateName: in.LaunchTemplateName,
		LaunchTemplateId:   in.LaunchTemplateId,
		SourceVersion:      aws.String(srcNum),
		VersionDescription: aws.String(cfg.Version),
		LaunchTemplateData: data,
	}
	p.versionLog = append([]string{deploy.Change("launch template version", srcNum, "new version, based on "+srcNum)}, log...)
	return nil
}

// versionData works out the fields of the new version that differ from
// the current ones, with a change line for each.
func (c *Config) versionData(cur *ec2types.ResponseLaunchTemplateData) (*ec2types.RequestLaunchTemplateData, []string, error) {
	ch := &c.Update
	d := &ec2types.RequestLaunchTemplateData{}
	var log []string
	changed := func(field, old, new string) bool {
		if old == new {
			return false
		}
		log = append(log, deploy.Change(field, old, new))
		return true
	}
	if ch.AMI != nil && changed("ImageId", aws.ToString(cur.ImageId), *ch.AMI) {
		d.ImageId = ch.AMI
	}
	if ch.InstanceType != nil && changed("InstanceType", string(cur.InstanceType), *ch.InstanceType) {
		d.InstanceType = ec2types.InstanceType(*ch.InstanceType)
	}
	if ch.KeyName != nil && changed("KeyName", aws.ToString(cur.KeyName), *ch.KeyName) {
		d.KeyName = ch.KeyName
	}
	if ch.InstanceProfile != nil {
		old := ""
		if p := cur.IamInstanceProfile; p != nil {
			old = aws.ToString(p.Name)
			if strings.HasPrefix(*ch.InstanceProfile, "arn:") || old == "" {
				old = nonEmpty(aws.ToString(p.Arn), old)
			}
		}
		if changed("IamInstanceProfile", old, *ch.InstanceProfile) {
			d.IamInstanceProfile = instanceProfile(*ch.InstanceProfile)
		}
	}
	if ch.SecurityGroups != nil && changed("SecurityGroupIds", strings.Join(cur.SecurityGroupIds, ","), strings.Join(ch.SecurityGroups, ",")) {
		d.SecurityGroupIds = ch.SecurityGroups
	}
	if ch.VolumeSizeGB != nil {
		maps, old := volumeMappings(cur.BlockDeviceMappings, *ch.VolumeSizeGB)
		if changed("root volume size (GiB)", old, strconv.Itoa(int(*ch.VolumeSizeGB))) {
			d.BlockDeviceMappings = maps
		}
	}
	if ud, l, err := c.userDataChange(aws.ToString(cur.UserData)); err != nil {
		return nil, nil, err
	} else if ud != nil {
		d.UserData, log = ud, append(log, l...)
	}
	if tags, l := c.tagChange(cur.TagSpecifications); tags != nil {
		d.TagSpecifications, log = tags, append(log, l...)
	}
	return d, log, nil
}

// volumeMappings copies the current block device mappings with the root
// volume resized (a mapping list in a new version replaces the whole
// list), and returns the old size.
func volumeMappings(cur []ec2types.LaunchTemplateBlockDeviceMapping, size int32) ([]ec2types.LaunchTemplateBlockDeviceMappingRequest, string) {
	var out []ec2types.LaunchTemplateBlockDeviceMappingRequest
	old, root := "", -1
	for i, m := range cur {
		if m.Ebs != nil && (aws.ToString(m.DeviceName) == rootDevice || root < 0) {
			root = i
		}
	}
	for i, m := range cur {
		r := ec2types.LaunchTemplateBlockDeviceMappingRequest{DeviceName: m.DeviceName, NoDevice: m.NoDevice, VirtualName: m.VirtualName}
		if e := m.Ebs; e != nil {
			r.Ebs = &ec2types.LaunchTemplateEbsBlockDeviceRequest{
				DeleteOnTermination: e.DeleteOnTermination, Encrypted: e.Encrypted, Iops: e.Iops, KmsKeyId: e.KmsKeyId,
				SnapshotId: e.SnapshotId, Throughput: e.Throughput, VolumeSize: e.VolumeSize, VolumeType: e.VolumeType,
			}
			if i == root {
				old = strconv.Itoa(int(aws.ToInt32(e.VolumeSize)))
				r.Ebs.VolumeSize = aws.Int32(size)
			}
		}
		out = append(out, r)
	}
	if root < 0 {
		out = append(out, ec2types.LaunchTemplateBlockDeviceMappingRequest{
			DeviceName: aws.String(rootDevice),
			Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{
				VolumeSize: aws.Int32(size), VolumeType: ec2types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true), Encrypted: aws.Bool(true),
			},
		})
	}
	return out, old
}

// userDataChange rebuilds the user data from the current one with the
// changed settings and script; nil if it stays the same.
func (c *Config) userDataChange(curB64 string) (*string, []string, error) {
	ch := &c.Update
	if len(ch.Settings) == 0 && ch.PasswdFrom == nil && ch.StartupScript == nil {
		return nil, nil, nil
	}
	// Gzip-compressed as this release writes it, or plain as older ones
	// did: both read back.
	cur, err := decodeUserData(curB64)
	if err != nil {
		return nil, nil, err
	}
	settings, script := splitUserData(cur)
	oldScript := script
	next := map[string]string{}
	for k, v := range settings {
		next[k] = v
	}
	for k, v := range ch.Settings {
		if v == "" {
			delete(next, k)
		} else {
			next[k] = v
		}
	}
	if ch.PasswdFrom != nil {
		next["LUNA_PASSWD_FROM"] = *ch.PasswdFrom
	}
	if ch.StartupScript != nil {
		script = *ch.StartupScript
	}
	ud := joinUserData(next, script)
	if ud == cur {
		return nil, nil, nil
	}
	if err := checkUserDataSize(ud); err != nil {
		return nil, nil, err
	}
	var log []string
	names := map[string]bool{}
	for k := range settings {
		names[k] = true
	}
	for k := range next {
		names[k] = true
	}
	for _, k := range sortedSet(names) {
		if settings[k] != next[k] {
			log = append(log, deploy.Change("user data "+k, settings[k], next[k]))
		}
	}
	if oldScript != script {
		log = append(log, deploy.Change("user data startup script", oldScript, script))
	}
	if len(log) == 0 {
		log = append(log, deploy.Change("user data", cur, ud))
	}
	return aws.String(encodeUserData(ud)), log, nil
}

// tagChange copies the current tag specifications with the instance tags
// changed (a new version's list replaces the whole list); nil if they stay
// the same.
func (c *Config) tagChange(cur []ec2types.LaunchTemplateTagSpecification) ([]ec2types.LaunchTemplateTagSpecificationRequest, []string) {
	ch := &c.Update
	if len(ch.Tags) == 0 && ch.PasswdFrom == nil {
		return nil, nil
	}
	old := map[string]string{}
	for _, s := range cur {
		if s.ResourceType == ec2types.ResourceTypeInstance {
			for _, t := range s.Tags {
				old[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		}
	}
	next := map[string]string{}
	for k, v := range old {
		next[k] = v
	}
	for k, v := range ch.Tags {
		if v == "" {
			delete(next, k)
		} else {
			next[k] = v
		}
	}
	if ch.PasswdFrom != nil {
		next[PasswdFromTag] = *ch.PasswdFrom
	}
	names := map[string]bool{}
	for k := range old {
		names[k] = true
	}
	for k := range next {
		names[k] = true
	}
	var log []string
	for _, k := range sortedSet(names) {
		if old[k] != next[k] {
			log = append(log, deploy.Change("instance tag "+k, old[k], next[k]))
		}
	}
	if len(log) == 0 {
		return nil, nil
	}
	tags := func(m map[string]string) []ec2types.Tag {
		var out []ec2types.Tag
		for _, k := range sortedKeys(m) {
			out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
		}
		return out
	}
	var out []ec2types.LaunchTemplateTagSpecificationRequest
	found := false
	for _, s := range cur {
		r := ec2types.LaunchTemplateTagSpecificationRequest{ResourceType: s.ResourceType, Tags: s.Tags}
		if s.ResourceType == ec2types.ResourceTypeInstance {
			r.Tags, found = tags(next), true
		}
		out = append(out, r)
	}
	if !found {
		out = append(out, ec2types.LaunchTemplateTagSpecificationRequest{ResourceType: ec2types.ResourceTypeInstance, Tags: tags(next)})
	}
	return out, log
}

// planGroup works out the changes to the group itself: size, grace period,
// warmup and maintenance policy.
func (c *Client) planGroup(p *updatePlan) {
	cfg := &c.cfg
	ch := &cfg.Update
	g := p.group
	in := &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(cfg.Name)}
	changed := false
	desired, min, max := aws.ToInt32(g.DesiredCapacity), aws.ToInt32(g.MinSize), aws.ToInt32(g.MaxSize)
	if ch.Size != nil && *ch.Size != desired {
		p.groupLog = append(p.groupLog, deploy.Change("size", fmt.Sprint(desired), fmt.Sprint(*ch.Size)))
		in.DesiredCapacity = ch.Size
		// A group pinned at its size (as create makes it) stays pinned; a
		// lower size lowers the minimum with it.
		if min == desired || *ch.Size < min {
			in.MinSize = ch.Size
		}
		desired, changed = *ch.Size, true
	}
	// A refresh that launches before it terminates needs room above the
	// size; groups made by older releases had none.
	if need := cfg.maxSize(desired); (p.version != nil || in.DesiredCapacity != nil) && max < need {
		in.MaxSize = aws.Int32(need)
		p.groupLog = append(p.groupLog, deploy.Change("max size", fmt.Sprint(max), fmt.Sprintf("%d (room for the surge)", need)))
		changed = true
	}
	if ch.GracePeriodSec != nil && *ch.GracePeriodSec != aws.ToInt32(g.HealthCheckGracePeriod) {
		in.HealthCheckGracePeriod = ch.GracePeriodSec
		p.groupLog = append(p.groupLog, deploy.Change("health check grace period", fmt.Sprintf("%ds", aws.ToInt32(g.HealthCheckGracePeriod)), fmt.Sprintf("%ds", *ch.GracePeriodSec)))
		changed = true
	}
	if ch.WarmupSec != nil && *ch.WarmupSec != aws.ToInt32(g.DefaultInstanceWarmup) {
		in.DefaultInstanceWarmup = ch.WarmupSec
		p.groupLog = append(p.groupLog, deploy.Change("default instance warmup", fmt.Sprintf("%ds", aws.ToInt32(g.DefaultInstanceWarmup)), fmt.Sprintf("%ds", *ch.WarmupSec)))
		changed = true
	}
	if ch.Rollout {
		mp, old := cfg.maintenancePolicy(), g.InstanceMaintenancePolicy
		oldS := "(none)"
		if old != nil {
			oldS = fmt.Sprintf("%d%%-%d%%", aws.ToInt32(old.MinHealthyPercentage), aws.ToInt32(old.MaxHealthyPercentage))
		}
		if newS := fmt.Sprintf("%d%%-%d%%", aws.ToInt32(mp.MinHealthyPercentage), aws.ToInt32(mp.MaxHealthyPercentage)); newS != oldS {
			in.InstanceMaintenancePolicy = mp
			p.groupLog = append(p.groupLog, deploy.Change("instance maintenance policy (min-max healthy)", oldS, newS))
			changed = true
		}
	}
	if changed {
		p.settings = in
	}
}

// PlanUpdate reads the group and its launch template version and returns
// the requests an update would send, each with the changes it makes.
// Nothing is changed.
func (c *Client) PlanUpdate(ctx context.Context) ([]deploy.Request, error) {
	p, err := c.plan(ctx)
	if err != nil {
		return nil, err
	}
	reqs := []deploy.Request{}
	if p.version != nil {
		reqs = append(reqs, deploy.Request{API: "ec2:CreateLaunchTemplateVersion", Body: deploy.InputBody(p.version), Changes: p.versionLog})
	}
	if p.settings != nil {
		reqs = append(reqs, deploy.Request{API: "autoscaling:UpdateAutoScalingGroup", Body: deploy.InputBody(p.settings), Changes: p.groupLog})
	}
	if p.version != nil {
		in := c.cfg.refreshInput(p.group.LaunchTemplate, "<new version>")
		reqs = append(reqs, deploy.Request{API: "autoscaling:StartInstanceRefresh", Body: deploy.InputBody(in),
			Note: "DesiredConfiguration.LaunchTemplate.Version is the number CreateLaunchTemplateVersion returns; then autoscaling:DescribeInstanceRefreshes until the refresh ends"})
	}
	return reqs, nil
}

// Update adds a launch template version based on the group's current one
// with only the requested changes, changes the group's own settings if
// asked, and replaces the instances with an instance refresh to the new
// version, waiting until it ends. With no change it sends nothing.
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
	out.WriteString("changes:\n")
	for _, l := range append(append([]string{}, p.versionLog...), p.groupLog...) {
		fmt.Fprintf(&out, "  %s\n", l)
	}
	var version int64
	if p.version != nil {
		v, err := c.ec2.CreateLaunchTemplateVersion(ctx, p.version)
		if err != nil {
			return "", deploy.CloudError("creating a version of launch template "+nonEmpty(aws.ToString(p.version.LaunchTemplateName), aws.ToString(p.version.LaunchTemplateId)), err)
		}
		if v.LaunchTemplateVersion == nil || v.LaunchTemplateVersion.VersionNumber == nil {
			return "", deploy.CloudError("creating a version of launch template "+nonEmpty(aws.ToString(p.version.LaunchTemplateName), aws.ToString(p.version.LaunchTemplateId)),
				errors.New("the answer names no version number"))
		}
		version = aws.ToInt64(v.LaunchTemplateVersion.VersionNumber)
		fmt.Fprintf(&out, "created launch template version %d (%s) from version %s\n", version, cfg.Version, aws.ToString(p.version.SourceVersion))
	}
	if p.settings != nil {
		if _, err := c.as.UpdateAutoScalingGroup(ctx, p.settings); err != nil {
			return "", deploy.CloudError("updating auto scaling group "+cfg.Name, err)
		}
		fmt.Fprintf(&out, "updated auto scaling group %s\n", cfg.Name)
	}
	if p.version != nil {
		r, err := c.as.StartInstanceRefresh(ctx, cfg.refreshInput(p.group.LaunchTemplate, strconv.FormatInt(version, 10)))
		if err != nil {
			return "", deploy.CloudError("starting an instance refresh of group "+cfg.Name, err)
		}
		id := aws.ToString(r.InstanceRefreshId)
		if err := c.waitRefresh(ctx, id); err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "instance refresh %s of group %s: Successful, the group runs version %d\n", id, cfg.Name, version)
	} else if p.settings != nil && p.settings.DesiredCapacity != nil {
		if err := c.waitInService(ctx); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
