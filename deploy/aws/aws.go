// Package aws runs a Luna fleet as an EC2 auto scaling group: a launch
// template (AMI, instance type, key pair, instance profile, security
// groups, IMDSv2 required, cloud-init user data) and the group across
// subnets or zones; rolling replacement through instance refreshes; and the
// listing of the group's instances for status, logs and restarts. It uses
// aws-sdk-go-v2's ec2 and autoscaling clients.
package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/lunadb/luna/deploy"
)

// GroupTag marks the instances and the launch template of a group.
const GroupTag = "luna-deploy-group"

// PasswdFromTag is the instance tag telling the startup script which
// --passwd-from source to configure; IMDS exposes it (instance metadata
// tags are enabled).
const PasswdFromTag = "luna-passwd-from"

// Config describes the group. Zero values take the defaults in Defaults.
type Config struct {
	Region  string
	Profile string
	// Name of the group and of its launch template.
	Name string
	Size int32

	AMI             string
	InstanceType    string
	KeyName         string
	InstanceProfile string // a name, or an ARN
	SecurityGroups  []string
	Subnets         []string
	Zones           []string
	VolumeSizeGB    int32
	// UserData is the cloud-init startup script, sent base64-encoded.
	UserData string
	// Settings are exported to the startup script at the top of the user
	// data (LUNA_RELEASE_URL, LUNA_RELEASE_SHA256, ...).
	Settings map[string]string
	// PasswdFrom is a luna --passwd-from source (aws-ssm:..., ...); it is
	// exported as LUNA_PASSWD_FROM and set as an instance tag.
	PasswdFrom string
	Tags       map[string]string

	APIPort    int
	HealthPort int
	// Version describes the launch template version made by create or
	// update.
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
	if c.InstanceType == "" {
		c.InstanceType = "m7i.xlarge"
	}
	if c.VolumeSizeGB == 0 {
		c.VolumeSizeGB = 20
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

// Check reports the first missing or malformed setting for any command.
func (c *Config) Check() error {
	switch {
	case c.Region == "":
		return errors.New("--region is required (or set AWS_REGION, or a region in the --profile)")
	case c.Name == "" || len(c.Name) > 128 || strings.ContainsAny(c.Name, " :/\t\n"):
		return fmt.Errorf("--name %q: use letters, digits, - and _ (at most 128 characters)", c.Name)
	case c.Size < 0:
		return fmt.Errorf("--size %d: must not be negative", c.Size)
	}
	return nil
}

// CheckTemplate reports what create and update need to make a launch
// template.
func (c *Config) CheckTemplate() error {
	switch {
	case c.AMI == "":
		return errors.New("--ami is required: the Luna AMI, or a stock Debian or Amazon Linux AMI with --startup-script")
	case !strings.HasPrefix(c.AMI, "ami-"):
		return fmt.Errorf("--ami %q: an AMI ID looks like ami-0123456789abcdef0", c.AMI)
	}
	for k := range c.Settings {
		if !validSetting(k) {
			return fmt.Errorf("--setting %q: the name must be a shell variable name, e.g. LUNA_RELEASE_URL", k)
		}
	}
	return nil
}

// CheckGroup reports what create needs to make the group.
func (c *Config) CheckGroup() error {
	if len(c.Subnets) == 0 && len(c.Zones) == 0 {
		return errors.New("--subnet or --zone is required: the group's subnets (VPC) or availability zones")
	}
	return nil
}

func (c *Config) templateData() *ec2types.RequestLaunchTemplateData {
	d := &ec2types.RequestLaunchTemplateData{
		ImageId:      aws.String(c.AMI),
		InstanceType: ec2types.InstanceType(c.InstanceType),
		MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpTokens:   ec2types.LaunchTemplateHttpTokensStateRequired,
			HttpEndpoint: ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
			// Containers on the instance may need one more hop.
			HttpPutResponseHopLimit: aws.Int32(2),
			InstanceMetadataTags:    ec2types.LaunchTemplateInstanceMetadataTagsStateEnabled,
		},
		BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMappingRequest{{
			DeviceName: aws.String("/dev/xvda"),
			Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{
				VolumeSize: aws.Int32(c.VolumeSizeGB), VolumeType: ec2types.VolumeTypeGp3,
				DeleteOnTermination: aws.Bool(true), Encrypted: aws.Bool(true),
			},
		}},
		SecurityGroupIds: c.SecurityGroups,
		TagSpecifications: []ec2types.LaunchTemplateTagSpecificationRequest{{
			ResourceType: ec2types.ResourceTypeInstance,
			Tags:         c.instanceTags(),
		}},
	}
	if c.KeyName != "" {
		d.KeyName = aws.String(c.KeyName)
	}
	if c.InstanceProfile != "" {
		if strings.HasPrefix(c.InstanceProfile, "arn:") {
			d.IamInstanceProfile = &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Arn: aws.String(c.InstanceProfile)}
		} else {
			d.IamInstanceProfile = &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: aws.String(c.InstanceProfile)}
		}
	}
	if c.UserData != "" {
		d.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(c.userData())))
	}
	return d
}

// userData is the startup script with the settings exported before it.
func (c *Config) userData() string {
	settings := map[string]string{}
	for k, v := range c.Settings {
		settings[k] = v
	}
	if c.PasswdFrom != "" {
		settings["LUNA_PASSWD_FROM"] = c.PasswdFrom
	}
	if len(settings) == 0 {
		return c.UserData
	}
	shebang, body := "#!/bin/bash", c.UserData
	if strings.HasPrefix(body, "#!") {
		shebang, body, _ = strings.Cut(body, "\n")
	}
	var b strings.Builder
	b.WriteString(shebang + "\n# Settings added by luna-deploy.\n")
	for _, k := range sortedKeys(settings) {
		b.WriteString("export " + k + "='" + strings.ReplaceAll(settings[k], "'", `'\''`) + "'\n")
	}
	b.WriteString(body)
	return b.String()
}

// validSetting reports whether name is a shell variable name.
func validSetting(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, r := range name {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func (c *Config) instanceTags() []ec2types.Tag {
	tags := []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String(c.Name)}, {Key: aws.String(GroupTag), Value: aws.String(c.Name)}}
	if c.PasswdFrom != "" {
		tags = append(tags, ec2types.Tag{Key: aws.String(PasswdFromTag), Value: aws.String(c.PasswdFrom)})
	}
	for _, k := range sortedKeys(c.Tags) {
		tags = append(tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(c.Tags[k])})
	}
	return tags
}

func (c *Config) createTemplateInput() *ec2.CreateLaunchTemplateInput {
	return &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(c.Name),
		VersionDescription: aws.String(c.Version),
		LaunchTemplateData: c.templateData(),
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeLaunchTemplate,
			Tags:         []ec2types.Tag{{Key: aws.String(GroupTag), Value: aws.String(c.Name)}},
		}},
	}
}

func (c *Config) createTemplateVersionInput() *ec2.CreateLaunchTemplateVersionInput {
	return &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateName: aws.String(c.Name),
		VersionDescription: aws.String(c.Version),
		LaunchTemplateData: c.templateData(),
	}
}

func (c *Config) createGroupInput() *autoscaling.CreateAutoScalingGroupInput {
	in := &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(c.Name),
		// The group follows the newest template version; update adds one
		// and refreshes the instances onto it.
		LaunchTemplate:         &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(c.Name), Version: aws.String("$Latest")},
		MinSize:                aws.Int32(c.Size),
		MaxSize:                aws.Int32(c.Size),
		DesiredCapacity:        aws.Int32(c.Size),
		HealthCheckType:        aws.String("EC2"),
		HealthCheckGracePeriod: aws.Int32(300),
		Tags: []astypes.Tag{{
			Key: aws.String(GroupTag), Value: aws.String(c.Name), PropagateAtLaunch: aws.Bool(true),
			ResourceId: aws.String(c.Name), ResourceType: aws.String("auto-scaling-group"),
		}},
	}
	if len(c.Subnets) > 0 {
		in.VPCZoneIdentifier = aws.String(strings.Join(c.Subnets, ","))
	} else {
		in.AvailabilityZones = c.Zones
	}
	return in
}

func (c *Config) refreshInput() *autoscaling.StartInstanceRefreshInput {
	return &autoscaling.StartInstanceRefreshInput{
		AutoScalingGroupName: aws.String(c.Name),
		Strategy:             astypes.RefreshStrategyRolling,
		Preferences: &astypes.RefreshPreferences{
			// Launch the replacement before terminating the old instance.
			MinHealthyPercentage: aws.Int32(100),
			MaxHealthyPercentage: aws.Int32(200),
			InstanceWarmup:       aws.Int32(300),
			SkipMatching:         aws.Bool(true),
		},
	}
}

func (c *Config) deleteGroupInput() *autoscaling.DeleteAutoScalingGroupInput {
	return &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(c.Name), ForceDelete: aws.Bool(true)}
}

func (c *Config) deleteTemplateInput() *ec2.DeleteLaunchTemplateInput {
	return &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String(c.Name)}
}

// PlanCreate is what create sends.
func (c *Config) PlanCreate() []deploy.Request {
	return []deploy.Request{
		{API: "ec2:CreateLaunchTemplate", Body: deploy.InputBody(c.createTemplateInput())},
		{API: "autoscaling:CreateAutoScalingGroup", Body: deploy.InputBody(c.createGroupInput())},
	}
}

// PlanUpdate is what update sends.
func (c *Config) PlanUpdate() []deploy.Request {
	return []deploy.Request{
		{API: "ec2:CreateLaunchTemplateVersion", Body: deploy.InputBody(c.createTemplateVersionInput())},
		{API: "autoscaling:StartInstanceRefresh", Body: deploy.InputBody(c.refreshInput())},
	}
}

// PlanDelete is what delete sends.
func (c *Config) PlanDelete() []deploy.Request {
	return []deploy.Request{
		{API: "autoscaling:DeleteAutoScalingGroup", Body: deploy.InputBody(c.deleteGroupInput()), Note: "then autoscaling:DescribeAutoScalingGroups until the group is gone"},
		{API: "ec2:DeleteLaunchTemplate", Body: deploy.InputBody(c.deleteTemplateInput())},
	}
}

// Client runs the group's operations.
type Client struct {
	cfg Config
	ec2 *ec2.Client
	as  *autoscaling.Client

	Progress     *deploy.Progress
	PollInterval time.Duration
	Timeout      time.Duration
}

// New makes the clients from an SDK configuration (credentials, region,
// endpoint).
func New(cfg Config, awsCfg aws.Config) *Client {
	return &Client{
		cfg: cfg, ec2: ec2.NewFromConfig(awsCfg), as: autoscaling.NewFromConfig(awsCfg),
		PollInterval: 5 * time.Second, Timeout: 30 * time.Minute,
	}
}

// Create makes the launch template and the group, then waits until the
// group's instances are in service.
func (c *Client) Create(ctx context.Context) (string, error) {
	cfg := &c.cfg
	lt, err := c.ec2.CreateLaunchTemplate(ctx, cfg.createTemplateInput())
	if err != nil {
		return "", deploy.CloudError("creating launch template "+cfg.Name, err)
	}
	if _, err := c.as.CreateAutoScalingGroup(ctx, cfg.createGroupInput()); err != nil {
		return "", deploy.CloudError("creating auto scaling group "+cfg.Name, err)
	}
	if err := c.waitInService(ctx); err != nil {
		return "", err
	}
	where := strings.Join(cfg.Subnets, ",")
	if where == "" {
		where = strings.Join(cfg.Zones, ",")
	}
	return fmt.Sprintf("created launch template %s (%s, version %d, %s, %s)\ncreated auto scaling group %s across %s: %d instances in service\n",
		cfg.Name, aws.ToString(lt.LaunchTemplate.LaunchTemplateId), aws.ToInt64(lt.LaunchTemplate.LatestVersionNumber), cfg.AMI, cfg.InstanceType,
		cfg.Name, where, cfg.Size), nil
}

// group reads the group, following NextToken.
func (c *Client) group(ctx context.Context) (*astypes.AutoScalingGroup, error) {
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(c.as, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{c.cfg.Name}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, deploy.CloudError("reading auto scaling group "+c.cfg.Name, err)
		}
		for i := range page.AutoScalingGroups {
			if g := &page.AutoScalingGroups[i]; aws.ToString(g.AutoScalingGroupName) == c.cfg.Name {
				return g, nil
			}
		}
	}
	return nil, nil
}

func (c *Client) waitInService(ctx context.Context) error {
	return c.pollGroup(ctx, "group "+c.cfg.Name, "the instances of group "+c.cfg.Name, func(g *astypes.AutoScalingGroup, since time.Duration) (bool, string, error) {
		if g == nil {
			return false, "", deploy.CloudError("waiting for auto scaling group "+c.cfg.Name, errors.New("the group does not exist"))
		}
		n := 0
		for _, in := range g.Instances {
			if in.LifecycleState == astypes.LifecycleStateInService {
				n++
			}
		}
		if int32(n) >= aws.ToInt32(g.DesiredCapacity) {
			c.Progress.Printf("done: %d instances of group %s in service (%s)", n, c.cfg.Name, since.Round(time.Second))
			return true, "", nil
		}
		return false, fmt.Sprintf("%d/%d in service", n, aws.ToInt32(g.DesiredCapacity)), nil
	})
}

// pollGroup reads the group (nil once it is gone) every poll interval until
// check says done, reporting check's state as progress on label; what
// names the wait in errors.
func (c *Client) pollGroup(ctx context.Context, label, what string, check func(g *astypes.AutoScalingGroup, since time.Duration) (done bool, state string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	for {
		g, err := c.group(ctx)
		if err != nil {
			return err
		}
		done, state, err := check(g, time.Since(start))
		if done || err != nil {
			return err
		}
		c.Progress.Waiting(label, state, start)
		if err := deploy.Sleep(ctx, c.PollInterval); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
	}
}

// Update adds a launch template version and replaces the instances with an
// instance refresh, waiting until it ends.
func (c *Client) Update(ctx context.Context) (string, error) {
	cfg := &c.cfg
	v, err := c.ec2.CreateLaunchTemplateVersion(ctx, cfg.createTemplateVersionInput())
	if err != nil {
		return "", deploy.CloudError("creating a version of launch template "+cfg.Name, err)
	}
	version := aws.ToInt64(v.LaunchTemplateVersion.VersionNumber)
	r, err := c.as.StartInstanceRefresh(ctx, cfg.refreshInput())
	if err != nil {
		return "", deploy.CloudError("starting an instance refresh of group "+cfg.Name, err)
	}
	id := aws.ToString(r.InstanceRefreshId)
	if err := c.waitRefresh(ctx, id); err != nil {
		return "", err
	}
	return fmt.Sprintf("created launch template %s version %d (%s)\ninstance refresh %s of group %s: Successful\n", cfg.Name, version, cfg.Version, id, cfg.Name), nil
}

func (c *Client) waitRefresh(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	what := "instance refresh " + id + " of group " + c.cfg.Name
	for {
		var found *astypes.InstanceRefresh
		p := autoscaling.NewDescribeInstanceRefreshesPaginator(c.as, &autoscaling.DescribeInstanceRefreshesInput{
			AutoScalingGroupName: aws.String(c.cfg.Name), InstanceRefreshIds: []string{id},
		})
		for p.HasMorePages() && found == nil {
			page, err := p.NextPage(ctx)
			if err != nil {
				return deploy.CloudError("reading "+what, err)
			}
			for i := range page.InstanceRefreshes {
				if aws.ToString(page.InstanceRefreshes[i].InstanceRefreshId) == id {
					found = &page.InstanceRefreshes[i]
				}
			}
		}
		if found == nil {
			return deploy.CloudError("reading "+what, errors.New("the refresh is not listed"))
		}
		switch found.Status {
		case astypes.InstanceRefreshStatusSuccessful:
			c.Progress.Printf("done: %s (%s)", what, time.Since(start).Round(time.Second))
			return nil
		case astypes.InstanceRefreshStatusFailed, astypes.InstanceRefreshStatusCancelled,
			astypes.InstanceRefreshStatusRollbackSuccessful, astypes.InstanceRefreshStatusRollbackFailed:
			return &deploy.OpError{Op: what, Err: fmt.Errorf("%s: %s", found.Status, aws.ToString(found.StatusReason)),
				Hint: "see the group's activity history (aws autoscaling describe-scaling-activities) for why instances failed to launch or become healthy"}
		}
		c.Progress.Waiting(what, fmt.Sprintf("%s %d%%", found.Status, aws.ToInt32(found.PercentageComplete)), start)
		if err := deploy.Sleep(ctx, c.PollInterval); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
	}
}

// Instances lists the group's instances with their state, health, zone,
// addresses and launch template version.
func (c *Client) Instances(ctx context.Context) ([]deploy.Instance, error) {
	g, err := c.group(ctx)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, &deploy.OpError{Op: "listing the instances of group " + c.cfg.Name, Err: errors.New("auto scaling group not found"),
			Hint: "check the group name (--name), --region and --profile"}
	}
	ips := map[string]ec2types.Instance{}
	p := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{
			{Name: aws.String("tag:aws:autoscaling:groupName"), Values: []string{c.cfg.Name}},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
		},
		MaxResults: aws.Int32(100),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, deploy.CloudError("describing the instances of group "+c.cfg.Name, err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				ips[aws.ToString(in.InstanceId)] = in
			}
		}
	}
	var out []deploy.Instance
	for _, in := range g.Instances {
		id := aws.ToString(in.InstanceId)
		inst := deploy.Instance{
			Name:   id,
			State:  string(in.LifecycleState),
			Health: aws.ToString(in.HealthStatus),
			Zone:   aws.ToString(in.AvailabilityZone),
		}
		if in.LaunchTemplate != nil {
			inst.Version = aws.ToString(in.LaunchTemplate.Version)
		}
		if vm, ok := ips[id]; ok {
			inst.InternalIP = aws.ToString(vm.PrivateIpAddress)
			inst.ExternalIP = aws.ToString(vm.PublicIpAddress)
			for _, t := range vm.Tags {
				// EC2 records the version actually launched; the group
				// may only say $Latest.
				if aws.ToString(t.Key) == "aws:ec2launchtemplate:version" {
					inst.Version = aws.ToString(t.Value)
				}
			}
		}
		out = append(out, inst)
	}
	deploy.SortInstances(out)
	return out, nil
}

// Delete removes the group (terminating its instances), waits until it is
// gone, then removes the launch template. Resources already gone are
// skipped.
func (c *Client) Delete(ctx context.Context) (string, error) {
	cfg := &c.cfg
	var done []string
	_, err := c.as.DeleteAutoScalingGroup(ctx, cfg.deleteGroupInput())
	switch {
	case isNotFound(err):
		c.Progress.Printf("skipped: deleting auto scaling group %s (not found)", cfg.Name)
	case err != nil:
		return "", deploy.CloudError("deleting auto scaling group "+cfg.Name, err)
	default:
		if err := c.waitGone(ctx); err != nil {
			return "", err
		}
		done = append(done, "deleted auto scaling group "+cfg.Name)
	}
	_, err = c.ec2.DeleteLaunchTemplate(ctx, cfg.deleteTemplateInput())
	switch {
	case isNotFound(err):
		c.Progress.Printf("skipped: deleting launch template %s (not found)", cfg.Name)
	case err != nil:
		return "", deploy.CloudError("deleting launch template "+cfg.Name, err)
	default:
		done = append(done, "deleted launch template "+cfg.Name)
	}
	if len(done) == 0 {
		return fmt.Sprintf("nothing to delete: group %s was not found in %s\n", cfg.Name, cfg.Region), nil
	}
	return strings.Join(done, "\n") + "\n", nil
}

func (c *Client) waitGone(ctx context.Context) error {
	return c.pollGroup(ctx, "deletion of group "+c.cfg.Name, "the deletion of group "+c.cfg.Name, func(g *astypes.AutoScalingGroup, since time.Duration) (bool, string, error) {
		if g == nil {
			c.Progress.Printf("done: deleting auto scaling group %s (%s)", c.cfg.Name, since.Round(time.Second))
			return true, "", nil
		}
		return false, aws.ToString(g.Status) + fmt.Sprintf(", %d instances", len(g.Instances)), nil
	})
}

func isNotFound(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	code := ae.ErrorCode()
	return strings.HasSuffix(code, ".NotFoundException") || strings.HasSuffix(code, ".NotFound") ||
		(code == "ValidationError" && strings.Contains(ae.ErrorMessage(), "not found"))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
