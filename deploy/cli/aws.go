package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/lunadb/luna/deploy"
	awsfleet "github.com/lunadb/luna/deploy/aws"
)

// finishAWS completes the auto scaling group's settings from the
// flags: the launch template, the rollout and the changes an update names.
func (r *run) finishAWS(now time.Time, script string) error {
	c := &r.aws
	c.Name, c.Version = r.gcp.Name, r.gcp.Version
	if r.needsRecipe {
		c.Size = int32(r.size)
		c.SecurityGroups, c.Subnets, c.Zones, c.Tags = r.secGroups, r.subnets, r.zones, r.awsTags
		c.Settings = r.settings
		if len(r.sshKeyFiles) > 0 {
			keys, err := awsfleet.ReadAuthorizedKeys(r.sshKeyFiles)
			if err != nil {
				return err
			}
			c.SSHAuthorizedKeys = keys
		}
		c.UserData = script
		c.TargetGroupARNs = r.targetGroups
		c.GracePeriodSec, c.WarmupSec, c.CheckpointPercentages, c.CheckpointDelaySec = r.initialDelay, r.warmup, r.checkpoints, r.checkpointWait
		for flag, a := range map[string]deploy.Amount{"--max-surge": r.maxSurge, "--max-unavailable": r.maxUnavailable} {
			if !a.Percent {
				return fmt.Errorf("%s %s: an instance refresh takes a percentage of the group, e.g. 50%%", flag, a)
			}
		}
		c.MaxSurgePercent, c.MaxUnavailablePercent = r.maxSurge.Value, r.maxUnavailable.Value
	}
	if c.Region == "" {
		c.Region = firstEnv(r.env.Getenv, "AWS_REGION", "AWS_DEFAULT_REGION")
	}
	if c.Profile == "" {
		c.Profile = r.env.Getenv("AWS_PROFILE")
	}
	c.Defaults(now)
	if r.needsRecipe {
		c.Size = int32(r.size) // 0 too
	}
	if c.Region == "" && c.Profile == "" {
		return errors.New("--region is required (or set AWS_REGION, or a region in the --profile)")
	}
	if err := c.Check(); err != nil && c.Region != "" {
		return err
	}
	switch r.cmd {
	case "create":
		if err := c.CheckTemplate(); err != nil {
			return err
		}
		return c.CheckGroup()
	case "update":
		r.awsChanges()
		return c.CheckUpdate()
	}
	return nil
}

// awsChanges records what the update flags name.
func (r *run) awsChanges() {
	c, ch := &r.aws, &r.aws.Update
	s := r.set
	str := func(v string) *string { return &v }
	if s["ami"] {
		ch.AMI = str(c.AMI)
	}
	if s["instance-type"] {
		ch.InstanceType = str(c.InstanceType)
	}
	if s["key-name"] {
		ch.KeyName = str(c.KeyName)
	}
	if s["instance-profile"] {
		ch.InstanceProfile = str(c.InstanceProfile)
	}
	if s["security-group"] {
		ch.SecurityGroups = append([]string{}, r.secGroups...)
	}
	if s["volume-size"] {
		ch.VolumeSizeGB = &c.VolumeSizeGB
	}
	if s["startup-script"] {
		ch.StartupScript = str(c.UserData)
	}
	if s["setting"] {
		ch.Settings = r.settings
	}
	if s["passwd-from"] {
		ch.PasswdFrom = str(c.PasswdFrom)
	}
	if s["tag"] {
		ch.Tags = r.awsTags
	}
	if s["size"] {
		n := int32(r.size)
		ch.Size = &n
	}
	if s["initial-delay"] {
		ch.GracePeriodSec = &r.initialDelay
	}
	if s["warmup"] {
		ch.WarmupSec = &r.warmup
	}
	ch.Rollout = s["max-surge"] || s["max-unavailable"]
}

// awsFleet makes the auto scaling group's clients, from the SDK's
// configuration chain with --region and --profile on top.
func (r *run) awsFleet(ctx context.Context) (fleet, func(), error) {
	opts := []func(*config.LoadOptions) error{}
	if r.aws.Region != "" {
		opts = append(opts, config.WithRegion(r.aws.Region))
	}
	if r.aws.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(r.aws.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if r.env.AWSConfig != nil {
		r.env.AWSConfig(&cfg)
	}
	if cfg.Region == "" {
		return nil, nil, errors.New("no AWS region: pass --region, set AWS_REGION, or set a region in the profile")
	}
	r.aws.Region = cfg.Region
	c := awsfleet.New(r.aws, cfg)
	c.Progress, c.Timeout = r.progress(), r.timeout
	if r.env.PollInterval > 0 {
		c.PollInterval = r.env.PollInterval
	}
	return c, func() {}, nil
}
