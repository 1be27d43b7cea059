package aws

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/lunadb/luna/deploy"
	"github.com/lunadb/luna/deploy/internal/cloudfake"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testConfig() Config {
	c := Config{
		Region: "eu-west-1", Name: "luna", AMI: "ami-0123456789abcdef0", KeyName: "ops", InstanceProfile: "luna-node",
		SecurityGroups: []string{"sg-1", "sg-2"}, Subnets: []string{"subnet-a", "subnet-b"}, Version: "v2",
		UserData: "#!/bin/sh\necho start\n", PasswdFrom: "aws-ssm:/luna/passwd",
		Settings: map[string]string{"LUNA_RELEASE_URL": "https://example.com/luna.deb", "LUNA_ENV": "LUNA_THREADS=4\nLUNA_X='y'"},
	}
	c.Defaults(time.Time{})
	return c
}

func newClient(t *testing.T, a *cloudfake.AWS, cfg Config) (*Client, *bytes.Buffer) {
	t.Helper()
	c := New(cfg, aws.Config{
		Region:       cfg.Region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret-key", ""),
		BaseEndpoint: aws.String(a.URL),
	})
	var progress bytes.Buffer
	c.Progress = &deploy.Progress{W: &progress}
	c.PollInterval = time.Millisecond
	return c, &progress
}

func checkActions(t *testing.T, a *cloudfake.AWS, want ...string) {
	t.Helper()
	if got := a.Actions(); !reflect.DeepEqual(got, want) {
		t.Errorf("actions:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkForm compares form fields of a recorded request.
func checkForm(t *testing.T, what string, form url.Values, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g := form.Get(k); g != w {
			t.Errorf("%s: %s = %q, want %q", what, k, g, w)
		}
	}
}

const groupXML = `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><DesiredCapacity>2</DesiredCapacity><MinSize>2</MinSize><MaxSize>2</MaxSize>
<Instances>%s</Instances></member></AutoScalingGroups>`

func member(id, state, zone string) string {
	return `<member><InstanceId>` + id + `</InstanceId><LifecycleState>` + state + `</LifecycleState><HealthStatus>Healthy</HealthStatus><AvailabilityZone>` + zone +
		`</AvailabilityZone><LaunchTemplate><LaunchTemplateName>luna</LaunchTemplateName><Version>$Latest</Version></LaunchTemplate><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>`
}

func group(members ...string) string {
	return strings.Replace(groupXML, "%s", strings.Join(members, ""), 1)
}

func TestCreate(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("CreateLaunchTemplate", `<launchTemplate><launchTemplateId>lt-0abc</launchTemplateId><launchTemplateName>luna</launchTemplateName><latestVersionNumber>1</latestVersionNumber></launchTemplate>`)
	a.Answer("DescribeAutoScalingGroups",
		group(member("i-1", "Pending", "eu-west-1a")),
		group(member("i-1", "InService", "eu-west-1a"), member("i-2", "InService", "eu-west-1b")))
	c, progress := newClient(t, a, testConfig())
	out, err := c.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkActions(t, a, "CreateLaunchTemplate", "CreateAutoScalingGroup", "DescribeAutoScalingGroups", "DescribeAutoScalingGroups")
	reqs := a.Requests()
	if len(reqs) < 2 {
		t.FailNow()
	}
	checkForm(t, "launch template", reqs[0].Form, map[string]string{
		"LaunchTemplateName":                                      "luna",
		"VersionDescription":                                      "v2",
		"LaunchTemplateData.ImageId":                              "ami-0123456789abcdef0",
		"LaunchTemplateData.InstanceType":                         "m7i.xlarge",
		"LaunchTemplateData.KeyName":                              "ops",
		"LaunchTemplateData.IamInstanceProfile.Name":              "luna-node",
		"LaunchTemplateData.SecurityGroupId.1":                    "sg-1",
		"LaunchTemplateData.SecurityGroupId.2":                    "sg-2",
		"LaunchTemplateData.MetadataOptions.HttpTokens":           "required",
		"LaunchTemplateData.MetadataOptions.InstanceMetadataTags": "enabled",
		"LaunchTemplateData.UserData": base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\n# Settings added by luna-deploy.\n" +
			"export LUNA_ENV='LUNA_THREADS=4\nLUNA_X='\\''y'\\'''\n" +
			"export LUNA_PASSWD_FROM='aws-ssm:/luna/passwd'\n" +
			"export LUNA_RELEASE_URL='https://example.com/luna.deb'\n" +
			"echo start\n")),
		"LaunchTemplateData.TagSpecification.1.ResourceType": "instance",
		"LaunchTemplateData.TagSpecification.1.Tag.3.Key":    "luna-passwd-from",
		"LaunchTemplateData.TagSpecification.1.Tag.3.Value":  "aws-ssm:/luna/passwd",
	})
	checkForm(t, "group", reqs[1].Form, map[string]string{
		"AutoScalingGroupName":              "luna",
		"LaunchTemplate.LaunchTemplateName": "luna",
		"LaunchTemplate.Version":            "$Latest",
		"MinSize":                           "2",
		"MaxSize":                           "2",
		"DesiredCapacity":                   "2",
		"VPCZoneIdentifier":                 "subnet-a,subnet-b",
		"HealthCheckGracePeriod":            "300",
	})
	if !strings.Contains(progress.String(), "waiting for group luna: 0/2 in service") {
		t.Errorf("progress:\n%s", progress)
	}
	if !strings.Contains(out, "created launch template luna (lt-0abc, version 1") || !strings.Contains(out, "created auto scaling group luna across subnet-a,subnet-b: 2 instances") {
		t.Errorf("create printed:\n%s", out)
	}
}

func TestUpdate(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("CreateLaunchTemplateVersion", `<launchTemplateVersion><launchTemplateName>luna</launchTemplateName><versionNumber>2</versionNumber></launchTemplateVersion>`)
	a.Answer("StartInstanceRefresh", `<InstanceRefreshId>ir-1</InstanceRefreshId>`)
	// The first poll pages: the refresh is on the second page.
	a.Answer("DescribeInstanceRefreshes",
		`<InstanceRefreshes></InstanceRefreshes><NextToken>p2</NextToken>`,
		`<InstanceRefreshes></InstanceRefreshes><NextToken>p2</NextToken>`)
	a.Answer("DescribeInstanceRefreshes?NextToken=p2",
		`<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>InProgress</Status><PercentageComplete>50</PercentageComplete></member></InstanceRefreshes>`,
		`<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Successful</Status><PercentageComplete>100</PercentageComplete></member></InstanceRefreshes>`)
	c, progress := newClient(t, a, testConfig())
	out, err := c.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkActions(t, a, "CreateLaunchTemplateVersion", "StartInstanceRefresh",
		"DescribeInstanceRefreshes", "DescribeInstanceRefreshes?NextToken=p2",
		"DescribeInstanceRefreshes", "DescribeInstanceRefreshes?NextToken=p2")
	reqs := a.Requests()
	checkForm(t, "version", reqs[0].Form, map[string]string{
		"LaunchTemplateName": "luna", "VersionDescription": "v2", "LaunchTemplateData.ImageId": "ami-0123456789abcdef0",
		"LaunchTemplateData.MetadataOptions.HttpTokens": "required",
	})
	checkForm(t, "refresh", reqs[1].Form, map[string]string{
		"AutoScalingGroupName": "luna", "Strategy": "Rolling",
		"Preferences.MinHealthyPercentage": "100", "Preferences.MaxHealthyPercentage": "200", "Preferences.SkipMatching": "true",
	})
	checkForm(t, "describe", reqs[2].Form, map[string]string{"AutoScalingGroupName": "luna", "InstanceRefreshIds.member.1": "ir-1"})
	if !strings.Contains(progress.String(), "waiting for instance refresh ir-1 of group luna: InProgress 50%") {
		t.Errorf("progress:\n%s", progress)
	}
	if !strings.Contains(out, "launch template luna version 2") {
		t.Errorf("update printed:\n%s", out)
	}
}

func TestUpdateFailedRefresh(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("CreateLaunchTemplateVersion", `<launchTemplateVersion><versionNumber>2</versionNumber></launchTemplateVersion>`)
	a.Answer("StartInstanceRefresh", `<InstanceRefreshId>ir-1</InstanceRefreshId>`)
	a.Answer("DescribeInstanceRefreshes", `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Failed</Status><StatusReason>instances failed health checks</StatusReason></member></InstanceRefreshes>`)
	c, _ := newClient(t, a, testConfig())
	_, err := c.Update(context.Background())
	if err == nil || !strings.Contains(err.Error(), "instance refresh ir-1 of group luna: Failed: instances failed health checks") || !strings.Contains(err.Error(), "check: ") {
		t.Errorf("update: %v", err)
	}
}

func TestInstances(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups></AutoScalingGroups><NextToken>g2</NextToken>`)
	a.Answer("DescribeAutoScalingGroups?NextToken=g2", group(member("i-2", "InService", "eu-west-1b"), member("i-1", "Pending", "eu-west-1a")))
	a.Answer("DescribeInstances", `<reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>i-1</instanceId><privateIpAddress>10.0.1.5</privateIpAddress>
		<tagSet><item><key>aws:ec2launchtemplate:version</key><value>3</value></item></tagSet></item></instancesSet></item></reservationSet><nextToken>n2</nextToken>`)
	a.Answer("DescribeInstances?NextToken=n2", `<reservationSet><item><reservationId>r-2</reservationId><instancesSet><item><instanceId>i-2</instanceId><privateIpAddress>10.0.2.6</privateIpAddress><ipAddress>3.3.3.3</ipAddress></item></instancesSet></item></reservationSet>`)
	c, _ := newClient(t, a, testConfig())
	got, err := c.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkActions(t, a, "DescribeAutoScalingGroups", "DescribeAutoScalingGroups?NextToken=g2", "DescribeInstances", "DescribeInstances?NextToken=n2")
	reqs := a.Requests()
	checkForm(t, "describe groups", reqs[0].Form, map[string]string{"AutoScalingGroupNames.member.1": "luna"})
	checkForm(t, "describe instances", reqs[2].Form, map[string]string{
		"Filter.1.Name": "tag:aws:autoscaling:groupName", "Filter.1.Value.1": "luna", "Filter.2.Name": "instance-state-name", "MaxResults": "100",
	})
	want := []deploy.Instance{
		{Name: "i-1", State: "Pending", Health: "Healthy", Zone: "eu-west-1a", InternalIP: "10.0.1.5", Version: "3"},
		{Name: "i-2", State: "InService", Health: "Healthy", Zone: "eu-west-1b", InternalIP: "10.0.2.6", ExternalIP: "3.3.3.3", Version: "$Latest"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instances:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestInstancesNoGroup(t *testing.T) {
	a := cloudfake.NewAWS(t)
	c, _ := newClient(t, a, testConfig())
	if _, err := c.Instances(context.Background()); err == nil || !strings.Contains(err.Error(), "auto scaling group not found") {
		t.Errorf("instances of a missing group: %v", err)
	}
}

func TestDelete(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups",
		`<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><Status>Delete in progress</Status><DesiredCapacity>0</DesiredCapacity></member></AutoScalingGroups>`,
		`<AutoScalingGroups></AutoScalingGroups>`)
	c, progress := newClient(t, a, testConfig())
	out, err := c.Delete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkActions(t, a, "DeleteAutoScalingGroup", "DescribeAutoScalingGroups", "DescribeAutoScalingGroups", "DeleteLaunchTemplate")
	reqs := a.Requests()
	checkForm(t, "delete group", reqs[0].Form, map[string]string{"AutoScalingGroupName": "luna", "ForceDelete": "true"})
	checkForm(t, "delete template", reqs[3].Form, map[string]string{"LaunchTemplateName": "luna"})
	if !strings.Contains(progress.String(), "waiting for deletion of group luna: Delete in progress") {
		t.Errorf("progress:\n%s", progress)
	}
	if out != "deleted auto scaling group luna\ndeleted launch template luna\n" {
		t.Errorf("delete printed %q", out)
	}
}

func TestDeleteMissing(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Fail("DeleteAutoScalingGroup", 400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup 'luna' not found")
	a.Fail("DeleteLaunchTemplate", 400, "InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name luna, does not exist.")
	c, _ := newClient(t, a, testConfig())
	out, err := c.Delete(context.Background())
	if err != nil || !strings.Contains(out, "nothing to delete") {
		t.Errorf("delete: %q, %v", out, err)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		action, code, msg string
		want              []string
	}{
		{"CreateLaunchTemplate", "UnauthorizedOperation", "You are not authorized to perform this operation.", []string{"creating launch template luna", "UnauthorizedOperation", "check: the credentials lack a permission"}},
		{"CreateLaunchTemplate", "InvalidAMIID.NotFound", "The image id '[ami-0123456789abcdef0]' does not exist", []string{"creating launch template luna", "check: the image is missing"}},
		{"CreateAutoScalingGroup", "LimitExceeded", "You have reached your quota of 200 groups", []string{"creating auto scaling group luna", "check: a quota is exhausted"}},
	} {
		t.Run(tc.code, func(t *testing.T) {
			a := cloudfake.NewAWS(t)
			a.Fail(tc.action, 400, tc.code, tc.msg)
			c, _ := newClient(t, a, testConfig())
			_, err := c.Create(context.Background())
			if err == nil {
				t.Fatal("create succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-key") {
				t.Errorf("error shows the secret key: %v", err)
			}
		})
	}
}

func TestPlans(t *testing.T) {
	cfg := testConfig()
	for name, reqs := range map[string][]deploy.Request{
		"create": cfg.PlanCreate(), "update": cfg.PlanUpdate(), "delete": cfg.PlanDelete(),
	} {
		var buf bytes.Buffer
		if err := deploy.WriteRequests(&buf, reqs); err != nil {
			t.Fatal(err)
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
		{func(c *Config) { c.Region = "" }, (*Config).Check, "--region is required"},
		{func(c *Config) { c.Name = "a b" }, (*Config).Check, "--name"},
		{func(c *Config) { c.AMI = "" }, (*Config).CheckTemplate, "--ami is required"},
		{func(c *Config) { c.AMI = "debian-12" }, (*Config).CheckTemplate, "an AMI ID looks like"},
		{func(c *Config) { c.Subnets = nil }, (*Config).CheckGroup, "--subnet or --zone is required"},
		{func(c *Config) { c.Settings = map[string]string{"LUNA-X": "1"} }, (*Config).CheckTemplate, `--setting "LUNA-X"`},
	} {
		c := testConfig()
		tc.mod(&c)
		if err := tc.check(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check: %v, want %q", err, tc.want)
		}
	}
}

// TestUserDataWithStartupScript: the settings put in front of the real
// startup script leave a valid bash script that exports them.
func TestUserDataWithStartupScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "scripts", "startup-aws-asg.sh"))
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig()
	c.UserData = string(script)
	ud := c.userData()
	if !strings.HasPrefix(ud, "#!/usr/bin/env bash\n# Settings added by luna-deploy.\nexport LUNA_ENV=") {
		t.Errorf("user data starts:\n%s", ud[:min(len(ud), 300)])
	}
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(ud)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("bash -n on the user data: %v\n%s", err, out)
	}
	// The exports alone, run: the values arrive intact.
	head := ud[:strings.Index(ud, "export LUNA_RELEASE_URL")]
	head += "export LUNA_RELEASE_URL=x\nprintf '%s|%s' \"$LUNA_ENV\" \"$LUNA_PASSWD_FROM\"\n"
	out, err := exec.Command("bash", "-c", head).Output()
	if err != nil || string(out) != "LUNA_THREADS=4\nLUNA_X='y'|aws-ssm:/luna/passwd" {
		t.Errorf("exported values: %q, %v", out, err)
	}
}
