package cli

import (
	"context"
	"errors"
	"time"

	"github.com/lunadb/luna/deploy/gcp"
)

// finishGCP completes the managed instance group's settings from the
// flags: the recipe, the rollout and the changes an update names.
func (r *run) finishGCP(now time.Time, script string) error {
	c := &r.gcp
	c.Zones = r.zones
	if r.needsRecipe {
		c.Size = int32(r.size)
		c.Tags, c.Scopes, c.Metadata = r.tags, r.scopes, r.metadata
		c.StartupScript = script
		c.InitialDelaySec, c.MaxUnavailable = r.initialDelay, r.maxUnavailable
		if r.set["max-surge"] {
			c.MaxSurge = &r.maxSurge
		}
		if r.imageFamily != "" {
			if c.Image != "" {
				return errors.New("--image and --image-family contradict each other")
			}
			proj := r.imageProject
			if proj == "" {
				proj = c.Project
			}
			c.Image = "projects/" + proj + "/global/images/family/" + r.imageFamily
		}
		if r.passwdFile != "" {
			pw, err := readPassword(r.passwdFile)
			if err != nil {
				return err
			}
			c.Password = pw
		}
	}
	c.Defaults(now)
	if r.needsRecipe {
		c.Size = int32(r.size) // 0 too
	}
	if err := c.Check(); err != nil {
		return err
	}
	switch r.cmd {
	case "create":
		return c.CheckCreate()
	case "update":
		r.gcpChanges()
		return c.CheckUpdate()
	}
	return nil
}

// gcpChanges records what the update flags name.
func (r *run) gcpChanges() {
	c, ch := &r.gcp, &r.gcp.Update
	s := r.set
	str := func(v string) *string { return &v }
	if s["machine-type"] {
		ch.MachineType = str(c.MachineType)
	}
	if s["image"] || s["image-family"] {
		ch.Image = str(c.Image)
	}
	if s["disk-size"] {
		ch.DiskSizeGB = &c.DiskSizeGB
	}
	if s["startup-script"] || s["no-startup-script"] {
		ch.StartupScript = str(c.StartupScript)
	}
	if s["service-account"] {
		ch.ServiceAccount = str(c.ServiceAccount)
	}
	if s["scopes"] {
		ch.Scopes = c.Scopes
	}
	if s["network"] {
		ch.Network = str(c.Network)
	}
	if s["subnet"] {
		ch.Subnet = str(c.Subnet)
	}
	if s["tags"] {
		ch.Tags = append([]string{}, r.tags...)
	}
	if s["external-ip"] {
		ch.ExternalIP = &c.ExternalIP
	}
	if s["metadata"] {
		ch.Metadata = r.metadata
	}
	if s["passwd-file"] {
		ch.Password = str(c.Password)
	}
	if s["passwd-attribute"] {
		ch.PasswdAttribute = str(c.PasswdAttribute)
	}
	if s["size"] {
		n := int32(r.size)
		ch.Size = &n
	}
	if s["initial-delay"] {
		ch.InitialDelaySec = &r.initialDelay
	}
	if s["max-surge"] {
		ch.MaxSurge = &r.maxSurge
	}
	if s["max-unavailable"] {
		ch.MaxUnavailable = &r.maxUnavailable
	}
}

// gcpFleet makes the managed instance group's clients.
func (r *run) gcpFleet(ctx context.Context) (fleet, func(), error) {
	c, err := gcp.New(ctx, r.gcp, r.env.GCPOptions...)
	if err != nil {
		return nil, nil, err
	}
	c.Progress, c.Timeout = r.progress(), r.timeout
	if r.env.PollInterval > 0 {
		c.PollInterval = r.env.PollInterval
	}
	return c, func() { c.Close() }, nil
}
