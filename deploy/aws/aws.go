// Package aws runs a Luna fleet as an EC2 auto scaling group: a launch
// template (AMI, instance type, key pair, instance profile, security
// groups, IMDSv2 required, gzip-compressed cloud-init user data that
// installs the SSM agent and the operators' SSH keys for access through
// Session Manager) and the group across
// subnets or zones, health-checked through its target groups (/readyz) and
// pinned to a numbered template version; updates that add a template
// version from the current one with only the requested changes and roll
// it out with an instance refresh that launches before it terminates and
// rolls back on failure; and the listing of the group's instances for
// status, logs and restarts. It uses aws-sdk-go-v2's ec2 and autoscaling
// clients.
package aws

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
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

// Defaults of the rollout settings.
const (
	// DefaultGracePeriodSec: boot, install and preload before the target
	// group's /readyz check may mark a new instance unhealthy.
	DefaultGracePeriodSec = 300
	// DefaultWarmupSec: how long a new instance counts as starting up.
	DefaultWarmupSec = 300
	// DefaultMaxSurgePercent: launch a whole new fleet before any old
	// instance goes.
	DefaultMaxSurgePercent = 100
	// DefaultCheckpointDelaySec: the pause at each checkpoint.
	DefaultCheckpointDelaySec = 300
)

// DefaultCheckpoints pause an instance refresh once half of the group is
// new, so a bad version reaches half of the fleet before the rest.
var DefaultCheckpoints = []int32{50, 100}

// UserDataLimit is the most user data EC2 takes: 16 KB before base64
// encoding (the EC2 User Guide, "Work with instance user data"). The user
// data goes gzip-compressed, so this bounds its compressed size.
const UserDataLimit = 16384

// Config describes the group. Zero values take the defaults in Defaults,
// except the rollout settings, which the command line always sets.
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
	// UserData is the cloud-init startup script, sent gzip-compressed and
	// base64-encoded.
	UserData string
	// Settings are exported to the startup script at the top of the user
	// data (LUNA_RELEASE_URL, LUNA_RELEASE_SHA256, ...).
	Settings map[string]string
	// PasswdFrom is a luna --passwd-from source (aws-ssm:..., ...); it is
	// exported as LUNA_PASSWD_FROM and set as an instance tag.
	PasswdFrom string
	// SSHAuthorizedKeys are OpenSSH public key lines (ReadAuthorizedKeys)
	// exported as LUNA_SSH_AUTHORIZED_KEYS, which the startup script adds
	// to the login user's authorized_keys: SSH through Session Manager
	// then needs no EC2 key pair.
	SSHAuthorizedKeys []string
	Tags              map[string]string

	APIPort    int
	HealthPort int
	// Version describes the launch template version made by create or
	// update.
	Version string

	// TargetGroupARNs are the target groups the instances register with;
	// their health checks (HTTP /readyz on the health port) become the
	// group's (ELB health checks).
	TargetGroupARNs []string
	// NoTargetGroup acknowledges a group without target groups: it sees
	// only EC2 status checks, so a node whose Luna never becomes ready
	// stays in service.
	NoTargetGroup bool
	// GracePeriodSec is the health check grace period of new instances.
	GracePeriodSec int32
	// WarmupSec is the group's default instance warmup and the instance
	// refresh's.
	WarmupSec int32
	// MaxSurgePercent is how far above the group's size (percent of it) an
	// instance refresh may launch; MaxUnavailablePercent how much of the
	// group it may take out of service.
	MaxSurgePercent       int32
	MaxUnavailablePercent int32
	// CheckpointPercentages pause an instance refresh for
	// CheckpointDelaySec each time that much of the group is new; empty:
	// no pauses.
	CheckpointPercentages []int32
	CheckpointDelaySec    int32
	// IKnow lets update refresh a group whose health checks cannot see
	// /readyz.
	IKnow bool

	// Update is what update changes; everything else is kept as the
	// group's current launch template version has it.
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

// CheckTemplate reports what create needs to make a launch template.
func (c *Config) CheckTemplate() error {
	switch {
	case c.AMI == "":
		return errors.New("--ami is required: the Luna AMI, or a stock Debian or Amazon Linux AMI with --startup-script")
	case !validAMI(c.AMI):
		return fmt.Errorf("--ami %q: an AMI ID looks like ami-0123456789abcdef0", c.AMI)
	}
	if err := checkSettings(c.Settings); err != nil {
		return err
	}
	return checkUserDataSize(c.userData())
}

func validAMI(s string) bool { return strings.HasPrefix(s, "ami-") && len(s) > 4 }

func checkSettings(settings map[string]string) error {
	for k := range settings {
		if !validSetting(k) {
			return fmt.Errorf("--setting %q: the name must be a shell variable name, e.g. LUNA_RELEASE_URL", k)
		}
	}
	return nil
}

// CheckGroup reports what create needs to make the group.
func (c *Config) CheckGroup() error {
	switch {
	case len(c.Subnets) == 0 && len(c.Zones) == 0:
		return errors.New("--subnet or --zone is required: the group's subnets (VPC) or availability zones")
	case len(c.TargetGroupARNs) > 0 && c.NoTargetGroup:
		return errors.New("--target-group-arn and --no-target-group contradict each other")
	case len(c.TargetGroupARNs) == 0 && !c.NoTargetGroup:
		return fmt.Errorf("--target-group-arn is required: a target group whose health check is HTTP /readyz on port %d, so that Auto Scaling replaces nodes "+
			"that never become ready and an update can roll back on them; pass --no-target-group to run on EC2 status checks only", c.HealthPort)
	}
	for _, arn := range c.TargetGroupARNs {
		if !strings.HasPrefix(arn, "arn:") || !strings.Contains(arn, ":targetgroup/") {
			return fmt.Errorf("--target-group-arn %q: a target group ARN looks like arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID", arn)
		}
	}
	return c.CheckRollout()
}

// CheckRollout reports malformed rollout settings: the ranges of the
// instance refresh preferences (Auto Scaling API reference,
// RefreshPreferences).
func (c *Config) CheckRollout() error {
	switch {
	case c.GracePeriodSec < 0 || c.GracePeriodSec > 7200:
		return fmt.Errorf("--initial-delay %ds: must be from 0s to 2h; size it to boot plus install plus the longest preload", c.GracePeriodSec)
	case c.WarmupSec < 0 || c.WarmupSec > 7200:
		return fmt.Errorf("--warmup %ds: must be from 0s to 2h", c.WarmupSec)
	case c.MaxSurgePercent < 0 || c.MaxSurgePercent > 100:
		return fmt.Errorf("--max-surge %d%%: must be from 0%% to 100%% of the group", c.MaxSurgePercent)
	case c.MaxUnavailablePercent < 0 || c.MaxUnavailablePercent > 100:
		return fmt.Errorf("--max-unavailable %d%%: must be from 0%% to 100%% of the group", c.MaxUnavailablePercent)
	case c.MaxSurgePercent == 0 && c.MaxUnavailablePercent == 0:
		return errors.New("--max-surge 0% and --max-unavailable 0%: no instance could be replaced; allow a surge (the default) or some unavailable instances")
	case c.MaxSurgePercent+c.MaxUnavailablePercent > 100:
		// MaxHealthyPercentage - MinHealthyPercentage <= 100.
		return fmt.Errorf("--max-surge %d%% plus --max-unavailable %d%% exceed 100%%: Auto Scaling allows at most 100 points between its minimum and maximum healthy percentages",
			c.MaxSurgePercent, c.MaxUnavailablePercent)
	case c.CheckpointDelaySec < 0 || c.CheckpointDelaySec > 172800:
		return fmt.Errorf("--checkpoint-delay %ds: must be from 0s to 48h", c.CheckpointDelaySec)
	}
	last := int32(0)
	for _, p := range c.CheckpointPercentages {
		if p <= last || p > 100 {
			return fmt.Errorf("--checkpoints %s: percentages from 1 to 100, ascending, each once", joinInts(c.CheckpointPercentages))
		}
		last = p
	}
	if len(c.CheckpointPercentages) > 0 && last != 100 {
		return fmt.Errorf("--checkpoints %s: the last must be 100, or the refresh stops before replacing the whole group", joinInts(c.CheckpointPercentages))
	}
	return nil
}

func joinInts(ps []int32) string {
	var s []string
	for _, p := range ps {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ",")
}

func (c *Config) healthCheckType() string {
	if len(c.TargetGroupARNs) > 0 {
		return "ELB"
	}
	return "EC2"
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
			DeviceName: aws.String(rootDevice),
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
		d.IamInstanceProfile = instanceProfile(c.InstanceProfile)
	}
	// Settings without a startup script are user data too: the Luna
	// AMI's luna-configure@aws-asg reads them.
	if ud := c.userData(); ud != "" {
		d.UserData = aws.String(encodeUserData(ud))
	}
	return d
}

// rootDevice is the root volume's device on Debian and Amazon Linux AMIs.
const rootDevice = "/dev/xvda"

func instanceProfile(p string) *ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest {
	if strings.HasPrefix(p, "arn:") {
		return &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Arn: aws.String(p)}
	}
	return &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: aws.String(p)}
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

// maintenancePolicy makes replacements of unhealthy instances launch
// before they terminate, within the same bounds as an instance refresh.
func (c *Config) maintenancePolicy() *astypes.InstanceMaintenancePolicy {
	return &astypes.InstanceMaintenancePolicy{
		MinHealthyPercentage: aws.Int32(100 - c.MaxUnavailablePercent),
		MaxHealthyPercentage: aws.Int32(100 + c.MaxSurgePercent),
	}
}

// maxSize leaves the group room for the surge of a refresh above its size.
func (c *Config) maxSize(size int32) int32 {
	return size + (size*c.MaxSurgePercent+99)/100
}

// createGroupInput pins the group to the launch template version create
// made: instance refreshes can roll back only from a numbered version.
func (c *Config) createGroupInput(version int64) *autoscaling.CreateAutoScalingGroupInput {
	in := &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName:      aws.String(c.Name),
		LaunchTemplate:            &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String(c.Name), Version: aws.String(strconv.FormatInt(version, 10))},
		MinSize:                   aws.Int32(c.Size),
		MaxSize:                   aws.Int32(c.maxSize(c.Size)),
		DesiredCapacity:           aws.Int32(c.Size),
		HealthCheckType:           aws.String(c.healthCheckType()),
		HealthCheckGracePeriod:    aws.Int32(c.GracePeriodSec),
		DefaultInstanceWarmup:     aws.Int32(c.WarmupSec),
		InstanceMaintenancePolicy: c.maintenancePolicy(),
		TargetGroupARNs:           c.TargetGroupARNs,
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

// refreshInput rolls the group to template version: new instances are
// launched before old ones terminate (minimum healthy 100% unless
// --max-unavailable), the refresh pauses at the checkpoints, skips
// instances already on the version, and rolls back to the previous version
// if it fails (new instances that fail the target group's /readyz check
// past the grace period fail it). Rollback needs the desired configuration and a numbered
// version (RefreshPreferences.AutoRollback).
func (c *Config) refreshInput(tmpl *astypes.LaunchTemplateSpecification, version string) *autoscaling.StartInstanceRefreshInput {
	lt := &astypes.LaunchTemplateSpecification{Version: aws.String(version)}
	if id := aws.ToString(tmpl.LaunchTemplateId); id != "" && aws.ToString(tmpl.LaunchTemplateName) == "" {
		lt.LaunchTemplateId = aws.String(id)
	} else {
		lt.LaunchTemplateName = aws.String(nonEmpty(aws.ToString(tmpl.LaunchTemplateName), c.Name))
	}
	prefs := &astypes.RefreshPreferences{
		AutoRollback:         aws.Bool(true),
		MinHealthyPercentage: aws.Int32(100 - c.MaxUnavailablePercent),
		MaxHealthyPercentage: aws.Int32(100 + c.MaxSurgePercent),
		SkipMatching:         aws.Bool(true),
	}
	// Without InstanceWarmup the refresh uses the group's default
	// instance warmup, which create set.
	if c.Update.WarmupSec != nil {
		prefs.InstanceWarmup = aws.Int32(*c.Update.WarmupSec)
	}
	if len(c.CheckpointPercentages) > 0 {
		prefs.CheckpointPercentages = c.CheckpointPercentages
		prefs.CheckpointDelay = aws.Int32(c.CheckpointDelaySec)
	}
	return &autoscaling.StartInstanceRefreshInput{
		AutoScalingGroupName: aws.String(c.Name),
		Strategy:             astypes.RefreshStrategyRolling,
		DesiredConfiguration: &astypes.DesiredConfiguration{LaunchTemplate: lt},
		Preferences:          prefs,
	}
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *Config) deleteGroupInput() *autoscaling.DeleteAutoScalingGroupInput {
	return &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(c.Name), ForceDelete: aws.Bool(true)}
}

func (c *Config) deleteTemplateInput() *ec2.DeleteLaunchTemplateInput {
	return &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String(c.Name)}
}

// PlanCreate is what create sends.
func (c *Config) PlanCreate() []deploy.Request {
	ud := c.userData()
	settings, _ := splitUserData(ud)
	what := fmt.Sprintf("the startup script (%d bytes) with %s exported", len(c.UserData), strings.Join(sortedKeys(settings), ", "))
	if c.UserData == "" {
		what = "no startup script, the exports " + strings.Join(sortedKeys(settings), ", ")
	}
	return []deploy.Request{
		{API: "ec2:CreateLaunchTemplate", Body: deploy.InputBody(c.createTemplateInput()),
			Note: fmt.Sprintf("LaunchTemplateData.UserData is base64 of the gzip-compressed user data (%d bytes, %d before compression): %s",
				len(gzipUserData(ud)), len(ud), what)},
		{API: "autoscaling:CreateAutoScalingGroup", Body: deploy.InputBody(c.createGroupInput(1)),
			Note: "LaunchTemplate.Version is the version number CreateLaunchTemplate returns (1 for a new template)"},
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
	made := lt.LaunchTemplate
	if made == nil {
		made = &ec2types.LaunchTemplate{}
	}
	version := aws.ToInt64(made.LatestVersionNumber)
	if version == 0 {
		version = 1 // a new template's first version
	}
	if _, err := c.as.CreateAutoScalingGroup(ctx, cfg.createGroupInput(version)); err != nil {
		return "", deploy.CloudError("creating auto scaling group "+cfg.Name, err)
	}
	if err := c.waitInService(ctx); err != nil {
		return "", err
	}
	where := strings.Join(cfg.Subnets, ",")
	if where == "" {
		where = strings.Join(cfg.Zones, ",")
	}
	checks := fmt.Sprintf("ELB health checks through %s after %ds", strings.Join(cfg.TargetGroupARNs, ","), cfg.GracePeriodSec)
	if len(cfg.TargetGroupARNs) == 0 {
		checks = "EC2 status checks only (--no-target-group): Auto Scaling cannot see whether Luna is ready"
	}
	return fmt.Sprintf("created launch template %s (%s, version %d, %s, %s)\ncreated auto scaling group %s across %s on version %d: %d instances in service, %s\n",
		cfg.Name, aws.ToString(made.LaunchTemplateId), version, cfg.AMI, cfg.InstanceType,
		cfg.Name, where, version, cfg.Size, checks), nil
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
		hint := "see the group's activity history (aws autoscaling describe-scaling-activities) for why instances failed to launch or become healthy"
		switch found.Status {
		case astypes.InstanceRefreshStatusSuccessful:
			c.Progress.Printf("done: %s (%s)", what, time.Since(start).Round(time.Second))
			return nil
		case astypes.InstanceRefreshStatusRollbackSuccessful:
			return &deploy.OpError{Op: what, Err: fmt.Errorf("failed and was rolled back: the group runs its previous launch template version again: %s", aws.ToString(found.StatusReason)), Hint: hint}
		case astypes.InstanceRefreshStatusFailed, astypes.InstanceRefreshStatusCancelled, astypes.InstanceRefreshStatusRollbackFailed:
			return &deploy.OpError{Op: what, Err: fmt.Errorf("%s: %s", found.Status, aws.ToString(found.StatusReason)), Hint: hint}
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
			ID:     id,
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
				// EC2 records the version actually launched; groups made
				// by older releases may only say $Latest.
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
