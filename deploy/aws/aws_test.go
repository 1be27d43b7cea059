package aws

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"math/rand"
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

const targetGroup = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/luna/0123456789abcdef"

// withRollout sets the rollout settings as the command line's defaults do.
func withRollout(c Config) Config {
	c.GracePeriodSec, c.WarmupSec = 600, 300
	c.MaxSurgePercent, c.MaxUnavailablePercent = DefaultMaxSurgePercent, 0
	c.CheckpointPercentages, c.CheckpointDelaySec = DefaultCheckpoints, DefaultCheckpointDelaySec
	return c
}

// testKeys are OpenSSH public keys, as ssh-keygen writes them.
var testKeys = []string{
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeTMeXba6g45lEQlFJurzL44thKbnq+UbtlraoSfw0G alice@laptop",
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKuL2H5krWDGGUZvDIosqIa7glMwpCBQ4ip8cFfTSJHk bob@ops",
	"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKI8t8uR1Q3z/Yg3wddPMR9aLz5U5DX0mufbzHbHS8ZV96WcbaCSokOq7m/hT2A2vUeb1vj7bWZc3Esis2BWMKs= carol",
}

func testConfig() Config {
	c := Config{
		Region: "eu-west-1", Name: "luna", AMI: "ami-0123456789abcdef0", KeyName: "ops", InstanceProfile: "luna-node",
		SecurityGroups: []string{"sg-1", "sg-2"}, Subnets: []string{"subnet-a", "subnet-b"}, Version: "v2",
		UserData: "#!/bin/sh\necho start\n", PasswdFrom: "aws-ssm:/luna/passwd",
		Settings:        map[string]string{"LUNA_RELEASE_URL": "https://example.com/luna.deb", "LUNA_ENV": "LUNA_THREADS=4\nLUNA_X='y'"},
		TargetGroupARNs: []string{targetGroup},
	}
	c.Defaults(time.Time{})
	return withRollout(c)
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

// gunzipField decodes a user data field as cloud-init does: base64, then
// gzip (the magic 1f 8b is what cloud-init looks for).
func gunzipField(t *testing.T, field string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(field)
	if err != nil {
		t.Fatalf("user data is not base64: %v", err)
	}
	if !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		t.Fatalf("user data is not gzip-compressed: %q", raw[:min(len(raw), 20)])
	}
	r, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gzipField is user data as a launch template made by this release holds
// it.
func gzipField(ud string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(ud))
	w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// randomText is n printable ASCII characters that compress about as badly
// as text can.
func randomText(n int, seed int64) string {
	r := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(' ' + r.Intn(95))
	}
	return string(b)
}

func checkActions(t *testing.T, a *cloudfake.AWS, want ...string) {
	t.Helper()
	if got := a.Actions(); !reflect.DeepEqual(got, want) {
		t.Errorf("actions:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkForm compares form fields of a recorded request; "" wants the field
// absent.
func checkForm(t *testing.T, what string, form url.Values, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g := form.Get(k); g != w {
			t.Errorf("%s: %s = %q, want %q", what, k, g, w)
		}
	}
}

// noFormPrefix fails if the form sends any field under prefix.
func noFormPrefix(t *testing.T, what string, form url.Values, prefixes ...string) {
	t.Helper()
	for k := range form {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				t.Errorf("%s: sends %s = %q, which should be inherited", what, k, form.Get(k))
			}
		}
	}
}

const groupXML = `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><DesiredCapacity>2</DesiredCapacity><MinSize>2</MinSize><MaxSize>4</MaxSize>
<Instances>%s</Instances></member></AutoScalingGroups>`

func member(id, state, zone string) string {
	return `<member><InstanceId>` + id + `</InstanceId><LifecycleState>` + state + `</LifecycleState><HealthStatus>Healthy</HealthStatus><AvailabilityZone>` + zone +
		`</AvailabilityZone><LaunchTemplate><LaunchTemplateName>luna</LaunchTemplateName><Version>3</Version></LaunchTemplate><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>`
}

func group(members ...string) string {
	return strings.Replace(groupXML, "%s", strings.Join(members, ""), 1)
}

func TestCreate(t *testing.T) {
	a := cloudfake.NewAWS(t)
	// A template's first version is 1; the group must use whatever number
	// comes back.
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
		"LaunchTemplateData.TagSpecification.1.ResourceType":      "instance",
		"LaunchTemplateData.TagSpecification.1.Tag.3.Key":         "luna-passwd-from",
		"LaunchTemplateData.TagSpecification.1.Tag.3.Value":       "aws-ssm:/luna/passwd",
	})
	// EC2 API reference, RequestLaunchTemplateData.UserData: the user data,
	// base64-encoded. It is gzip data, which cloud-init detects by its
	// magic and unpacks: the startup script with the settings exported
	// first, the SSM agent's install among them.
	if got, want := gunzipField(t, reqs[0].Form.Get("LaunchTemplateData.UserData")), "#!/bin/sh\n# Settings added by luna-deploy.\n"+
		"export LUNA_ENV='LUNA_THREADS=4\nLUNA_X='\\''y'\\'''\n"+
		"export LUNA_PASSWD_FROM='aws-ssm:/luna/passwd'\n"+
		"export LUNA_RELEASE_URL='https://example.com/luna.deb'\n"+
		"export LUNA_SSM_AGENT='yes'\n"+
		"echo start\n"; got != want {
		t.Errorf("user data:\n%s\nwant:\n%s", got, want)
	}
	// Auto Scaling API reference, CreateAutoScalingGroup:
	// - LaunchTemplate.Version a number, not $Latest: an instance refresh
	//   can roll back only a group on a numbered version
	//   (RefreshPreferences.AutoRollback), and the group does not follow
	//   template edits behind its back.
	// - HealthCheckType ELB: "considers the instance unhealthy if it fails
	//   either the EC2 status checks or the load balancer health checks";
	//   the target group's check is HTTP /readyz on the health port.
	// - HealthCheckGracePeriod: seconds a new InService instance may fail
	//   checks before it is replaced (the preload time).
	// - DefaultInstanceWarmup: the warmup instance refreshes use when they
	//   set none.
	// - InstanceMaintenancePolicy: MinHealthyPercentage 0-100,
	//   MaxHealthyPercentage 100-200, at most 100 apart; 100/200 launches a
	//   replacement before terminating.
	// - MaxSize leaves room for that surge above DesiredCapacity.
	checkForm(t, "group", reqs[1].Form, map[string]string{
		"AutoScalingGroupName":              "luna",
		"LaunchTemplate.LaunchTemplateName": "luna",
		"LaunchTemplate.Version":            "1",
		"MinSize":                           "2",
		"MaxSize":                           "4",
		"DesiredCapacity":                   "2",
		"VPCZoneIdentifier":                 "subnet-a,subnet-b",
		"HealthCheckType":                   "ELB",
		"HealthCheckGracePeriod":            "600",
		"DefaultInstanceWarmup":             "300",
		"TargetGroupARNs.member.1":          targetGroup,
		"InstanceMaintenancePolicy.MinHealthyPercentage": "100",
		"InstanceMaintenancePolicy.MaxHealthyPercentage": "200",
	})
	if !strings.Contains(progress.String(), "waiting for group luna: 0/2 in service") {
		t.Errorf("progress:\n%s", progress)
	}
	for _, want := range []string{"created launch template luna (lt-0abc, version 1", "created auto scaling group luna across subnet-a,subnet-b on version 1: 2 instances",
		"ELB health checks through " + targetGroup + " after 600s"} {
		if !strings.Contains(out, want) {
			t.Errorf("create printed:\n%s\nwant %q", out, want)
		}
	}
}

// TestCreateAccess: --ssh-authorized-key puts the keys in the user data
// for the startup script (LUNA_SSH_AUTHORIZED_KEYS, one a line, quoted for
// the shell), the SSM agent is installed unless a setting says no, and a
// Luna AMI without a startup script still gets the settings.
func TestCreateAccess(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", group(member("i-1", "InService", "eu-west-1a"), member("i-2", "InService", "eu-west-1b")))
	cfg := testConfig()
	cfg.SSHAuthorizedKeys = []string{testKeys[0], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKuL2H5krWDGGUZvDIosqIa7glMwpCBQ4ip8cFfTSJHk bob's key"}
	cfg.Settings = map[string]string{SSMAgentSetting: "no"}
	cfg.UserData = ""
	c, _ := newClient(t, a, cfg)
	if _, err := c.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := gunzipField(t, a.Requests()[0].Form.Get("LaunchTemplateData.UserData"))
	want := "#!/bin/bash\n# Settings added by luna-deploy.\n" +
		"export LUNA_PASSWD_FROM='aws-ssm:/luna/passwd'\n" +
		"export LUNA_SSH_AUTHORIZED_KEYS='" + testKeys[0] + "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKuL2H5krWDGGUZvDIosqIa7glMwpCBQ4ip8cFfTSJHk bob'\\''s key'\n" +
		"export LUNA_SSM_AGENT='no'\n"
	if got != want {
		t.Errorf("user data:\n%s\nwant:\n%s", got, want)
	}
	// What the shell makes of it.
	out, err := exec.Command("bash", "-c", got+`printf '%s|%s' "$LUNA_SSH_AUTHORIZED_KEYS" "$LUNA_SSM_AGENT"`).Output()
	if err != nil || string(out) != testKeys[0]+"\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKuL2H5krWDGGUZvDIosqIa7glMwpCBQ4ip8cFfTSJHk bob's key|no" {
		t.Errorf("exports: %q, %v", out, err)
	}
}

// TestReadAuthorizedKeys: keys come from .pub and authorized_keys files
// (comments and blank lines skipped); options, private keys, DSA keys and
// other text are refused, naming the file and line.
func TestReadAuthorizedKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub := write("id_ed25519.pub", testKeys[0]+"\n")
	ak := write("authorized_keys", "# the on-call team\n\n"+testKeys[1]+"\n  "+strings.Replace(testKeys[2], " carol", "\tcarol", 1)+"  \n")
	keys, err := ReadAuthorizedKeys([]string{pub, ak})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys, testKeys) {
		t.Errorf("keys:\n%q\nwant:\n%q", keys, testKeys)
	}
	dsa := "ssh-dss AAAAB3NzaC1kc3MAAACBAONogFg5b367CvAAK0F7uwJ6Pwu2hzZLLxHoOYPkRZ3wZgybh1ly5k5b3npTlG3gUMH/3lKJgPCVfC8u8jzBtbiOvPW0Mx4i6ctloTQh/1MF792kxmGYxatEbTIj3IgB5WWPn9JRh3RMF4tYomOSlmCFAP7gxEUpoYCt6xbZrL+VAAAAFQDTnvCDdAfIVeGtMjqj3+0VB2IDywAAAIBuP8jxXS/blIUaD3xkeiqYHX0GaNomO+ZfFI1dybU0mtEh7HATME5KgbpGTFRAwcCEpibMHj/nAYm2x6kR5Vhklq+p02hBap/x74kTU9eeoWAh3uq1YO1xxLiMJ1x0I5xrjhw6EVS8pM1mi4o76iacVIUqlzmzyVLDvVUBZflz0QAAAIEAzpYwJiJKB7FyCyOd575TAJjp/1bSiMWLe92zS9F4ifZ/Tnm8dHbxD9jpPayuaT5yPjzO/s9P61Okl2CnHEo/L/54TysKr68MQw2r3KrssIH8xK001QF/xWxpbyfmfWmJwgyNUffv9UwDiboYXZ+IJvcV+4nY+xdEuZRc4ce3v1E= dsa"
	for name, tc := range map[string]struct{ content, want string }{
		"options":     {`command="/bin/date" ` + testKeys[0], "line 1: options (command=\"/bin/date\") are not supported"},
		"private key": {"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "holds a private key: give the public one (.pub)"},
		"dsa":         {dsa, "key type ssh-dss is not supported"},
		"garbage":     {testKeys[0] + "\nnot a key\n", "line 2: not an OpenSSH public key"},
	} {
		_, err := ReadAuthorizedKeys([]string{write(name, tc.content)})
		if err == nil || !strings.Contains(err.Error(), "--ssh-authorized-key "+filepath.Join(dir, name)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := ReadAuthorizedKeys([]string{filepath.Join(dir, "missing.pub")}); err == nil || !strings.Contains(err.Error(), "reading --ssh-authorized-key") {
		t.Errorf("missing file: %v", err)
	}
}

// TestCreateNoTargetGroup: the operator chose EC2 checks; create says what
// that means.
func TestCreateNoTargetGroup(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("CreateLaunchTemplate", `<launchTemplate><launchTemplateId>lt-0abc</launchTemplateId><latestVersionNumber>1</latestVersionNumber></launchTemplate>`)
	a.Answer("DescribeAutoScalingGroups", group(member("i-1", "InService", "eu-west-1a"), member("i-2", "InService", "eu-west-1b")))
	cfg := testConfig()
	cfg.TargetGroupARNs, cfg.NoTargetGroup = nil, true
	c, _ := newClient(t, a, cfg)
	out, err := c.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := a.Requests()
	checkForm(t, "group", reqs[1].Form, map[string]string{"HealthCheckType": "EC2", "TargetGroupARNs.member.1": ""})
	if !strings.Contains(out, "EC2 status checks only (--no-target-group): Auto Scaling cannot see whether Luna is ready") {
		t.Errorf("create printed:\n%s", out)
	}
}

// currentGroup is the group update starts from: version 3 of template
// luna, ELB health checks through a target group.
const currentGroup = `<AutoScalingGroups><member><AutoScalingGroupName>luna</AutoScalingGroupName><DesiredCapacity>2</DesiredCapacity><MinSize>2</MinSize><MaxSize>4</MaxSize>
<LaunchTemplate><LaunchTemplateId>lt-0abc</LaunchTemplateId><LaunchTemplateName>luna</LaunchTemplateName><Version>3</Version></LaunchTemplate>
<HealthCheckType>ELB</HealthCheckType><HealthCheckGracePeriod>300</HealthCheckGracePeriod><DefaultInstanceWarmup>300</DefaultInstanceWarmup>
<TargetGroupARNs><member>` + targetGroup + `</member></TargetGroupARNs></member></AutoScalingGroups>`

// currentUserData is what create wrote for version 3.
const currentUserData = "#!/bin/sh\n# Settings added by luna-deploy.\n" +
	"export LUNA_PASSWD_FROM='aws-ssm:/luna/passwd'\n" +
	"export LUNA_RELEASE_SHA256='1111111111111111111111111111111111111111111111111111111111111111'\n" +
	"export LUNA_RELEASE_URL='https://example.com/luna_1.0.0_amd64.deb'\n" +
	"echo start\n"

func currentVersion() string {
	return `<launchTemplateVersionSet><item><launchTemplateId>lt-0abc</launchTemplateId><launchTemplateName>luna</launchTemplateName><versionNumber>3</versionNumber>
<launchTemplateData><imageId>ami-0123456789abcdef0</imageId><instanceType>m7i.xlarge</instanceType><keyName>ops</keyName>
<iamInstanceProfile><name>luna-node</name></iamInstanceProfile><securityGroupIdSet><item>sg-1</item></securityGroupIdSet>
<blockDeviceMappingSet><item><deviceName>/dev/xvda</deviceName><ebs><volumeSize>20</volumeSize><volumeType>gp3</volumeType><deleteOnTermination>true</deleteOnTermination><encrypted>true</encrypted></ebs></item></blockDeviceMappingSet>
<tagSpecificationSet><item><resourceType>instance</resourceType><tagSet><item><key>Name</key><value>luna</value></item><item><key>luna-deploy-group</key><value>luna</value></item>
<item><key>luna-passwd-from</key><value>aws-ssm:/luna/passwd</value></item></tagSet></item></tagSpecificationSet>
<metadataOptions><httpTokens>required</httpTokens><httpEndpoint>enabled</httpEndpoint></metadataOptions>
<userData>` + base64.StdEncoding.EncodeToString([]byte(currentUserData)) + `</userData></launchTemplateData></item></launchTemplateVersionSet>`
}

// updateConfig names a new AMI and release, and nothing else.
func updateConfig() Config {
	c := withRollout(Config{Region: "eu-west-1", Name: "luna", Version: "v4"})
	c.Defaults(time.Time{})
	ami := "ami-0fedcba9876543210"
	c.Update = Changes{AMI: &ami, Settings: map[string]string{
		"LUNA_RELEASE_URL":    "https://example.com/luna_1.1.0_amd64.deb",
		"LUNA_RELEASE_SHA256": "2222222222222222222222222222222222222222222222222222222222222222",
	}}
	return c
}

func refreshAnswers(a *cloudfake.AWS, final string) {
	a.Answer("CreateLaunchTemplateVersion", `<launchTemplateVersion><launchTemplateName>luna</launchTemplateName><versionNumber>4</versionNumber></launchTemplateVersion>`)
	a.Answer("StartInstanceRefresh", `<InstanceRefreshId>ir-1</InstanceRefreshId>`)
	// The first poll pages: the refresh is on the second page.
	a.Answer("DescribeInstanceRefreshes",
		`<InstanceRefreshes></InstanceRefreshes><NextToken>p2</NextToken>`,
		`<InstanceRefreshes></InstanceRefreshes><NextToken>p2</NextToken>`)
	a.Answer("DescribeInstanceRefreshes?NextToken=p2",
		`<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>InProgress</Status><PercentageComplete>50</PercentageComplete></member></InstanceRefreshes>`,
		final)
}

func TestUpdate(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup)
	a.Answer("DescribeLaunchTemplateVersions", currentVersion())
	refreshAnswers(a, `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Successful</Status><PercentageComplete>100</PercentageComplete></member></InstanceRefreshes>`)
	c, progress := newClient(t, a, updateConfig())
	out, err := c.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkActions(t, a, "DescribeAutoScalingGroups", "DescribeLaunchTemplateVersions", "CreateLaunchTemplateVersion", "StartInstanceRefresh",
		"DescribeInstanceRefreshes", "DescribeInstanceRefreshes?NextToken=p2",
		"DescribeInstanceRefreshes", "DescribeInstanceRefreshes?NextToken=p2")
	reqs := a.Requests()
	checkForm(t, "describe version", reqs[1].Form, map[string]string{"LaunchTemplateName": "luna", "LaunchTemplateVersion.1": "3"})
	// EC2 API reference, CreateLaunchTemplateVersion: with SourceVersion
	// "the new version inherits the launch parameters from the source
	// version"; what LaunchTemplateData names overwrites them. So only the
	// changed fields are sent: the AMI, and the user data rebuilt from the
	// current one with the new release (the password source carries over).
	want := strings.Replace(strings.Replace(currentUserData, "luna_1.0.0", "luna_1.1.0", 1), strings.Repeat("1", 64), strings.Repeat("2", 64), 1)
	checkForm(t, "version", reqs[2].Form, map[string]string{
		"LaunchTemplateName":         "luna",
		"SourceVersion":              "3",
		"VersionDescription":         "v4",
		"LaunchTemplateData.ImageId": "ami-0fedcba9876543210",
	})
	// The current version's user data was plain (an older release wrote
	// it); the new one is gzip-compressed.
	if got := gunzipField(t, reqs[2].Form.Get("LaunchTemplateData.UserData")); got != want {
		t.Errorf("new user data:\n%s\nwant:\n%s", got, want)
	}
	noFormPrefix(t, "version", reqs[2].Form, "LaunchTemplateData.InstanceType", "LaunchTemplateData.KeyName", "LaunchTemplateData.SecurityGroup",
		"LaunchTemplateData.BlockDeviceMapping", "LaunchTemplateData.TagSpecification", "LaunchTemplateData.IamInstanceProfile", "LaunchTemplateData.MetadataOptions")
	// Auto Scaling API reference, StartInstanceRefresh and
	// RefreshPreferences:
	// - DesiredConfiguration.LaunchTemplate with the new version number:
	//   rollback needs a desired configuration and no $Latest/$Default;
	//   on success the group is set to it.
	// - AutoRollback true: a failed refresh puts the previous version back.
	// - MinHealthyPercentage 100, MaxHealthyPercentage 200 (100 to 200, at
	//   most 100 apart): new instances launch and pass the health checks
	//   before old ones terminate.
	// - CheckpointPercentages ascending, ending in 100 to replace every
	//   instance; CheckpointDelay 0-172800 s, sent only with them.
	// - SkipMatching: instances already on the version stay.
	// - No InstanceWarmup: the group's DefaultInstanceWarmup applies.
	checkForm(t, "refresh", reqs[3].Form, map[string]string{
		"AutoScalingGroupName": "luna",
		"Strategy":             "Rolling",
		"DesiredConfiguration.LaunchTemplate.LaunchTemplateName": "luna",
		"DesiredConfiguration.LaunchTemplate.Version":            "4",
		"Preferences.AutoRollback":                               "true",
		"Preferences.MinHealthyPercentage":                       "100",
		"Preferences.MaxHealthyPercentage":                       "200",
		"Preferences.SkipMatching":                               "true",
		"Preferences.CheckpointPercentages.member.1":             "50",
		"Preferences.CheckpointPercentages.member.2":             "100",
		"Preferences.CheckpointDelay":                            "300",
		"Preferences.InstanceWarmup":                             "",
	})
	checkForm(t, "describe", reqs[4].Form, map[string]string{"AutoScalingGroupName": "luna", "InstanceRefreshIds.member.1": "ir-1"})
	if !strings.Contains(progress.String(), "waiting for instance refresh ir-1 of group luna: InProgress 50%") {
		t.Errorf("progress:\n%s", progress)
	}
	for _, w := range []string{
		"launch template version: 3 → new version, based on 3",
		"ImageId: ami-0123456789abcdef0 → ami-0fedcba9876543210",
		"user data LUNA_RELEASE_URL: https://example.com/luna_1.0.0_amd64.deb → https://example.com/luna_1.1.0_amd64.deb",
		"created launch template version 4 (v4) from version 3",
		"the group runs version 4",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("update printed:\n%s\nwant %q", out, w)
		}
	}
	if strings.Contains(out, "LUNA_PASSWD_FROM") {
		t.Errorf("update lists an unchanged setting:\n%s", out)
	}
}

// TestUpdateDryRun: the plan reads the group and its version, and sends
// no change.
func TestUpdateDryRun(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup)
	a.Answer("DescribeLaunchTemplateVersions", currentVersion())
	cfg := updateConfig()
	size, grace := int32(3), int32(900)
	cfg.Update.Size, cfg.Update.GracePeriodSec = &size, &grace
	c, _ := newClient(t, a, cfg)
	reqs, err := c.PlanUpdate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := a.Mutations(); len(m) != 0 {
		t.Errorf("the dry run sent %v", m)
	}
	checkActions(t, a, "DescribeAutoScalingGroups", "DescribeLaunchTemplateVersions")
	var apis []string
	for _, r := range reqs {
		apis = append(apis, r.API)
	}
	if !reflect.DeepEqual(apis, []string{"ec2:CreateLaunchTemplateVersion", "autoscaling:UpdateAutoScalingGroup", "autoscaling:StartInstanceRefresh"}) {
		t.Fatalf("plan: %v", apis)
	}
	wantVersion := []string{
		"launch template version: 3 → new version, based on 3",
		"ImageId: ami-0123456789abcdef0 → ami-0fedcba9876543210",
		"user data LUNA_RELEASE_SHA256: 1111111111111111111111111111111111111111111111111111111111111111 → 2222222222222222222222222222222222222222222222222222222222222222",
		"user data LUNA_RELEASE_URL: https://example.com/luna_1.0.0_amd64.deb → https://example.com/luna_1.1.0_amd64.deb",
	}
	if !reflect.DeepEqual(reqs[0].Changes, wantVersion) {
		t.Errorf("version changes:\n  %s\nwant:\n  %s", strings.Join(reqs[0].Changes, "\n  "), strings.Join(wantVersion, "\n  "))
	}
	if want := []string{"size: 2 → 3", "max size: 4 → 6 (room for the surge)", "health check grace period: 300s → 900s"}; !reflect.DeepEqual(reqs[1].Changes, want) {
		t.Errorf("group changes: %q", reqs[1].Changes)
	}
	body := reqs[1].Body.(map[string]any)
	if body["MinSize"] != 3.0 || body["DesiredCapacity"] != 3.0 || body["MaxSize"] != 6.0 || body["HealthCheckGracePeriod"] != 900.0 || body["LaunchTemplate"] != nil {
		t.Errorf("UpdateAutoScalingGroup body %v", body)
	}
}

// TestUpdateRefusesUncheckedGroup: a group that cannot see /readyz is not
// refreshed without --i-know, and nothing is sent.
func TestUpdateRefusesUncheckedGroup(t *testing.T) {
	unchecked := strings.Replace(strings.Replace(currentGroup, "<HealthCheckType>ELB</HealthCheckType>", "<HealthCheckType>EC2</HealthCheckType>", 1),
		"<TargetGroupARNs><member>"+targetGroup+"</member></TargetGroupARNs>", "", 1)
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", unchecked)
	c, _ := newClient(t, a, updateConfig())
	_, err := c.Update(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the group's health checks cannot see /readyz (health check type EC2, 0 target groups)") || !strings.Contains(err.Error(), "--i-know") {
		t.Errorf("update: %v", err)
	}
	if m := a.Mutations(); len(m) != 0 {
		t.Errorf("sent %v", m)
	}

	a = cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", unchecked)
	a.Answer("DescribeLaunchTemplateVersions", currentVersion())
	refreshAnswers(a, `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Successful</Status></member></InstanceRefreshes>`)
	cfg := updateConfig()
	cfg.IKnow = true
	c, _ = newClient(t, a, cfg)
	if _, err := c.Update(context.Background()); err != nil {
		t.Errorf("update --i-know: %v", err)
	}
}

func TestUpdateRolledBack(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup)
	a.Answer("DescribeLaunchTemplateVersions", currentVersion())
	refreshAnswers(a, `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>RollbackSuccessful</Status><StatusReason>instances failed ELB health checks</StatusReason></member></InstanceRefreshes>`)
	c, _ := newClient(t, a, updateConfig())
	_, err := c.Update(context.Background())
	if err == nil || !strings.Contains(err.Error(), "instance refresh ir-1 of group luna: failed and was rolled back: the group runs its previous launch template version again: instances failed ELB health checks") ||
		!strings.Contains(err.Error(), "check: ") {
		t.Errorf("update: %v", err)
	}
}

// TestUpdateGroupOnly: --size, --initial-delay, --warmup and the rollout
// change the group (UpdateAutoScalingGroup) and need no new version.
func TestUpdateGroupOnly(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup, group(member("i-1", "InService", "eu-west-1a"), member("i-2", "InService", "eu-west-1b"), member("i-3", "InService", "eu-west-1c")))
	cfg := withRollout(Config{Region: "eu-west-1", Name: "luna", Version: "v4"})
	cfg.Defaults(time.Time{})
	size, grace, warm := int32(3), int32(900), int32(120)
	cfg.MaxSurgePercent, cfg.MaxUnavailablePercent = 50, 10
	cfg.Update = Changes{Size: &size, GracePeriodSec: &grace, WarmupSec: &warm, Rollout: true}
	c, _ := newClient(t, a, cfg)
	out, err := c.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkActions(t, a, "DescribeAutoScalingGroups", "UpdateAutoScalingGroup", "DescribeAutoScalingGroups")
	// UpdateAutoScalingGroup changes only the parameters it is given; no
	// LaunchTemplate, so the group stays on its version.
	checkForm(t, "group", a.Requests()[1].Form, map[string]string{
		"AutoScalingGroupName": "luna", "MinSize": "3", "DesiredCapacity": "3", "MaxSize": "5",
		"HealthCheckGracePeriod": "900", "DefaultInstanceWarmup": "120",
		"InstanceMaintenancePolicy.MinHealthyPercentage": "90", "InstanceMaintenancePolicy.MaxHealthyPercentage": "150",
	})
	noFormPrefix(t, "group", a.Requests()[1].Form, "LaunchTemplate")
	if !strings.Contains(out, "size: 2 → 3") || !strings.Contains(out, "instance maintenance policy (min-max healthy): (none) → 90%-150%") {
		t.Errorf("update printed:\n%s", out)
	}
}

func TestUpdateNothing(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup)
	a.Answer("DescribeLaunchTemplateVersions", currentVersion())
	cfg := updateConfig()
	ami := "ami-0123456789abcdef0"
	cfg.Update = Changes{AMI: &ami, Settings: map[string]string{"LUNA_RELEASE_URL": "https://example.com/luna_1.0.0_amd64.deb"}}
	c, _ := newClient(t, a, cfg)
	out, err := c.Update(context.Background())
	if err != nil || !strings.Contains(out, "nothing to change") {
		t.Errorf("update: %q, %v", out, err)
	}
	if m := a.Mutations(); len(m) != 0 {
		t.Errorf("sent %v", m)
	}
}

// TestUpdateGzipUserData: a version whose user data is gzip-compressed,
// as create now writes it, reads back the same: the update changes only
// the named settings and keeps the others (the password source, the SSM
// agent, the SSH keys), and leaving the settings as they are sends no new
// version.
func TestUpdateGzipUserData(t *testing.T) {
	cur := "#!/bin/sh\n# Settings added by luna-deploy.\n" +
		"export LUNA_PASSWD_FROM='aws-ssm:/luna/passwd'\n" +
		"export LUNA_RELEASE_URL='https://example.com/luna_1.0.0_amd64.deb'\n" +
		"export LUNA_SSH_AUTHORIZED_KEYS='" + testKeys[0] + "\n" + testKeys[1] + "'\n" +
		"export LUNA_SSM_AGENT='yes'\n" +
		"echo start\n"
	version := strings.Replace(currentVersion(), base64.StdEncoding.EncodeToString([]byte(currentUserData)), gzipField(cur), 1)
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup)
	a.Answer("DescribeLaunchTemplateVersions", version)
	refreshAnswers(a, `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Successful</Status></member></InstanceRefreshes>`)
	cfg := updateConfig()
	cfg.Update = Changes{Settings: map[string]string{"LUNA_RELEASE_URL": "https://example.com/luna_1.1.0_amd64.deb"}}
	c, _ := newClient(t, a, cfg)
	out, err := c.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := a.Requests()
	if len(reqs) < 3 || reqs[2].Form.Get("Action") != "CreateLaunchTemplateVersion" {
		t.Fatalf("actions %v", a.Actions())
	}
	want := strings.Replace(cur, "luna_1.0.0", "luna_1.1.0", 1)
	if got := gunzipField(t, reqs[2].Form.Get("LaunchTemplateData.UserData")); got != want {
		t.Errorf("new user data:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(out, "user data LUNA_RELEASE_URL: https://example.com/luna_1.0.0_amd64.deb → https://example.com/luna_1.1.0_amd64.deb") ||
		strings.Contains(out, "LUNA_SSH_AUTHORIZED_KEYS") || strings.Contains(out, "startup script") {
		t.Errorf("update printed:\n%s", out)
	}

	// The same settings again: nothing to send.
	a = cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup)
	a.Answer("DescribeLaunchTemplateVersions", version)
	cfg.Update = Changes{Settings: map[string]string{"LUNA_RELEASE_URL": "https://example.com/luna_1.0.0_amd64.deb", SSMAgentSetting: "yes"}}
	c, _ = newClient(t, a, cfg)
	if out, err := c.Update(context.Background()); err != nil || !strings.Contains(out, "nothing to change") {
		t.Errorf("update: %q, %v", out, err)
	}
	if m := a.Mutations(); len(m) != 0 {
		t.Errorf("sent %v", m)
	}
}

// TestUpdateSettingsOnly: a Luna AMI's launch template may hold settings
// without a startup script, or no user data at all; settings are changed
// in either without one.
func TestUpdateSettingsOnly(t *testing.T) {
	for name, field := range map[string]string{
		"no user data":  "",
		"settings only": gzipField("#!/bin/bash\n# Settings added by luna-deploy.\nexport LUNA_SSM_AGENT='yes'\n"),
	} {
		version := strings.Replace(currentVersion(), base64.StdEncoding.EncodeToString([]byte(currentUserData)), field, 1)
		a := cloudfake.NewAWS(t)
		a.Answer("DescribeAutoScalingGroups", currentGroup)
		a.Answer("DescribeLaunchTemplateVersions", version)
		refreshAnswers(a, `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Successful</Status></member></InstanceRefreshes>`)
		cfg := updateConfig()
		cfg.Update = Changes{Settings: map[string]string{"LUNA_RELEASE_URL": "https://example.com/luna_1.1.0_amd64.deb"}}
		c, _ := newClient(t, a, cfg)
		if _, err := c.Update(context.Background()); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := gunzipField(t, a.Requests()[2].Form.Get("LaunchTemplateData.UserData"))
		want := "#!/bin/bash\n# Settings added by luna-deploy.\n"
		if name == "settings only" {
			want += "export LUNA_RELEASE_URL='https://example.com/luna_1.1.0_amd64.deb'\nexport LUNA_SSM_AGENT='yes'\n"
		} else {
			want += "export LUNA_RELEASE_URL='https://example.com/luna_1.1.0_amd64.deb'\n"
		}
		if got != want {
			t.Errorf("%s: user data\n%q\nwant\n%q", name, got, want)
		}
	}
}

// TestUpdateUserDataLimit: an update whose user data would exceed EC2's
// 16 KB is refused before anything is sent.
func TestUpdateUserDataLimit(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", currentGroup)
	a.Answer("DescribeLaunchTemplateVersions", currentVersion())
	cfg := updateConfig()
	cfg.Update.Settings["LUNA_INIT_SQL_B64"] = base64.StdEncoding.EncodeToString([]byte(randomText(UserDataLimit, 1)))
	c, _ := newClient(t, a, cfg)
	if _, err := c.Update(context.Background()); err == nil || !strings.Contains(err.Error(), "and 16384 bytes of startup SQL in LUNA_INIT_SQL_B64); EC2 takes at most 16384 bytes of user data") {
		t.Errorf("update: %v", err)
	}
	if m := a.Mutations(); len(m) != 0 {
		t.Errorf("sent %v", m)
	}
}

func TestInstances(t *testing.T) {
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", `<AutoScalingGroups></AutoScalingGroups><NextToken>g2</NextToken>`)
	a.Answer("DescribeAutoScalingGroups?NextToken=g2", group(member("i-2", "InService", "eu-west-1b"), member("i-1", "Pending", "eu-west-1a")))
	a.Answer("DescribeInstances", `<reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>i-1</instanceId><privateIpAddress>10.0.1.5</privateIpAddress>
		<tagSet><item><key>aws:ec2launchtemplate:version</key><value>4</value></item></tagSet></item></instancesSet></item></reservationSet><nextToken>n2</nextToken>`)
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
		{Name: "i-1", ID: "i-1", State: "Pending", Health: "Healthy", Zone: "eu-west-1a", InternalIP: "10.0.1.5", Version: "4"},
		{Name: "i-2", ID: "i-2", State: "InService", Health: "Healthy", Zone: "eu-west-1b", InternalIP: "10.0.2.6", ExternalIP: "3.3.3.3", Version: "3"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instances:\n%+v\nwant:\n%+v", got, want)
	}
	// An EC2 instance's name is its id: a replacement always has a new one.
	if id := got[0].Identity(); id != "i-1" {
		t.Errorf("identity %q", id)
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
		"create": cfg.PlanCreate(), "delete": cfg.PlanDelete(),
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
		{func(c *Config) { c.TargetGroupARNs = nil }, (*Config).CheckGroup, "--target-group-arn is required"},
		{func(c *Config) { c.NoTargetGroup = true }, (*Config).CheckGroup, "contradict"},
		{func(c *Config) { c.TargetGroupARNs = []string{"luna-tg"} }, (*Config).CheckGroup, "a target group ARN looks like"},
		{func(c *Config) { c.GracePeriodSec = 7201 }, (*Config).CheckGroup, "--initial-delay 7201s"},
		{func(c *Config) { c.WarmupSec = -1 }, (*Config).CheckRollout, "--warmup -1s"},
		{func(c *Config) { c.MaxSurgePercent = 101 }, (*Config).CheckRollout, "--max-surge 101%"},
		{func(c *Config) { c.MaxSurgePercent, c.MaxUnavailablePercent = 0, 0 }, (*Config).CheckRollout, "no instance could be replaced"},
		{func(c *Config) { c.MaxSurgePercent, c.MaxUnavailablePercent = 100, 10 }, (*Config).CheckRollout, "at most 100 points"},
		{func(c *Config) { c.CheckpointPercentages = []int32{50} }, (*Config).CheckRollout, "the last must be 100"},
		{func(c *Config) { c.CheckpointPercentages = []int32{50, 50, 100} }, (*Config).CheckRollout, "ascending, each once"},
		{func(c *Config) { c.CheckpointPercentages = []int32{0, 100} }, (*Config).CheckRollout, "from 1 to 100"},
		{func(c *Config) { c.CheckpointDelaySec = 172801 }, (*Config).CheckRollout, "--checkpoint-delay 172801s"},
		{func(c *Config) {
			c.Settings = map[string]string{"LUNA_INIT_SQL_B64": base64.StdEncoding.EncodeToString([]byte(randomText(20000, 2)))}
		}, (*Config).CheckTemplate, "and 20000 bytes of startup SQL in LUNA_INIT_SQL_B64); EC2 takes at most 16384 bytes of user data, and " + UserDataRoom},
		{func(c *Config) { s := ""; c.Update.KeyName = &s }, (*Config).CheckUpdate, "cannot remove"},
		{func(c *Config) { s := "x"; c.Update.AMI = &s }, (*Config).CheckUpdate, "an AMI ID looks like"},
	} {
		c := testConfig()
		tc.mod(&c)
		if err := tc.check(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check: %v, want %q", err, tc.want)
		}
	}
	c := testConfig()
	c.CheckpointPercentages = nil
	for _, check := range []func(*Config) error{(*Config).Check, (*Config).CheckTemplate, (*Config).CheckGroup, (*Config).CheckUpdate} {
		if err := check(&c); err != nil {
			t.Errorf("valid config: %v", err)
		}
	}
}

// TestUserDataLimit: EC2 User Guide, "User data is limited to 16 KB, in
// raw form, before it is base64-encoded"; what EC2 gets is the gzip data,
// so the compressed size counts, however long the user data is before.
func TestUserDataLimit(t *testing.T) {
	c := testConfig()
	c.Settings, c.PasswdFrom = map[string]string{SSMAgentSetting: ""}, ""
	c.UserData = "#!/bin/sh\n" + strings.Repeat("# compresses well\n", 10*UserDataLimit)
	if err := c.CheckTemplate(); err != nil {
		t.Errorf("%d bytes that compress to %d: %v", len(c.userData()), len(gzipUserData(c.userData())), err)
	}
	// Incompressible text: the longest prefix whose compression fits
	// passes, one byte more does not.
	text := randomText(2*UserDataLimit, 3)
	fits := func(n int) bool {
		c.UserData = "#!/bin/sh\n#" + text[:n]
		return len(gzipUserData(c.userData())) <= UserDataLimit
	}
	lo, hi := UserDataLimit/2, len(text)
	if !fits(lo) || fits(hi) {
		t.Fatal("random text compresses unlike random text")
	}
	for hi-lo > 1 {
		if m := (lo + hi) / 2; fits(m) {
			lo = m
		} else {
			hi = m
		}
	}
	n := hi
	c.UserData = "#!/bin/sh\n#" + text[:n-1]
	if err := c.CheckTemplate(); err != nil {
		t.Errorf("%d bytes compressed: %v", len(gzipUserData(c.userData())), err)
	}
	c.UserData = "#!/bin/sh\n#" + text[:n]
	err := c.CheckTemplate()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the user data is %d bytes gzip-compressed (%d before", len(gzipUserData(c.userData())), len(c.userData()))) {
		t.Errorf("%d bytes compressed: %v", len(gzipUserData(c.userData())), err)
	}
}

// TestUserDataRoom backs the figures UserDataRoom gives with the
// repository's startup script and the settings of a real fleet (an s3://
// release, the password source, the SSM agent, two SSH keys, the
// listeners): 7 KiB of SQL that compresses as badly as text can fits, and
// 12 KiB of typical SQL (testdata/typical.sql: statements from this
// repository's code and tests).
func TestUserDataRoom(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "scripts", "startup-aws-asg.sh"))
	if err != nil {
		t.Fatal(err)
	}
	typical, err := os.ReadFile(filepath.Join("testdata", "typical.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if len(typical) < 12*1024 {
		t.Fatalf("testdata/typical.sql has %d bytes, want 12 KiB", len(typical))
	}
	for name, sql := range map[string]string{"7 KiB of random text": randomText(7*1024, 4), "12 KiB of typical SQL": string(typical[:12*1024])} {
		c := testConfig()
		c.UserData = string(script)
		c.Settings = map[string]string{
			"LUNA_RELEASE_URL":    "s3://luna-releases-eu-west-1/releases/luna_1.2.3_amd64.deb",
			"LUNA_RELEASE_SHA256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			"LUNA_ENV":            "LUNA_API_HOST_PORT=0.0.0.0:7688\nLUNA_HEALTH_HOST_PORT=0.0.0.0:7689\nLUNA_MEMORY_LIMIT=80%",
			"LUNA_INIT_SQL_FROM":  "aws-ssm:/luna/init-sql",
			"LUNA_INIT_SQL_B64":   base64.StdEncoding.EncodeToString([]byte(sql)),
		}
		c.SSHAuthorizedKeys = testKeys[:2]
		if err := c.CheckTemplate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %d bytes compressed of %d", name, len(gzipUserData(c.userData())), len(c.userData()))
	}
}

// TestUserDataRoundTrip: update reads back the settings create wrote,
// whatever their quoting, and writing them again gives the same bytes.
func TestUserDataRoundTrip(t *testing.T) {
	settings := map[string]string{"A": "it's", "B": "two\nlines", "C": "", "D": `'\''`}
	for _, script := range []string{"#!/bin/sh\necho start\n", "echo no shebang\n", ""} {
		ud := joinUserData(settings, script)
		got, body := splitUserData(ud)
		if !reflect.DeepEqual(got, settings) {
			t.Errorf("script %q: settings %q, want %q", script, got, settings)
		}
		if again := joinUserData(got, body); again != ud {
			t.Errorf("script %q: rejoined\n%q\nwant\n%q", script, again, ud)
		}
	}
	plain := "#!/bin/bash\necho hi\n"
	if s, body := splitUserData(plain); len(s) != 0 || body != plain {
		t.Errorf("user data without settings: %q, %q", s, body)
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
	if err := c.CheckTemplate(); err != nil {
		t.Errorf("the repository's startup script with settings: %v", err)
	}
}

// TestUpdateLegacyGroup: a group made by an older release follows $Latest
// and has no room above its size. The update reads the version $Latest
// stands for, bases the new version on its number, pins the refresh to
// the new number, and raises the maximum size so the refresh can launch
// before it terminates.
func TestUpdateLegacyGroup(t *testing.T) {
	legacy := strings.Replace(strings.Replace(currentGroup, "<Version>3</Version>", "<Version>$Latest</Version>", 1), "<MaxSize>4</MaxSize>", "<MaxSize>2</MaxSize>", 1)
	a := cloudfake.NewAWS(t)
	a.Answer("DescribeAutoScalingGroups", legacy)
	a.Answer("DescribeLaunchTemplateVersions", currentVersion())
	refreshAnswers(a, `<InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><Status>Successful</Status></member></InstanceRefreshes>`)
	c, _ := newClient(t, a, updateConfig())
	if _, err := c.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := a.Requests()
	if got := a.Actions()[:5]; !reflect.DeepEqual(got, []string{"DescribeAutoScalingGroups", "DescribeLaunchTemplateVersions", "CreateLaunchTemplateVersion", "UpdateAutoScalingGroup", "StartInstanceRefresh"}) {
		t.Fatalf("actions %v", a.Actions())
	}
	checkForm(t, "describe version", reqs[1].Form, map[string]string{"LaunchTemplateVersion.1": "$Latest"})
	checkForm(t, "version", reqs[2].Form, map[string]string{"SourceVersion": "3"})
	checkForm(t, "group", reqs[3].Form, map[string]string{"MaxSize": "4", "MinSize": "", "DesiredCapacity": ""})
	checkForm(t, "refresh", reqs[4].Form, map[string]string{"DesiredConfiguration.LaunchTemplate.Version": "4", "Preferences.AutoRollback": "true"})
}

// A script that fits keeps its comments; one that would not fit loses
// them, unless a here-document makes that unsafe.
func TestUserDataDropsCommentsOnlyWhenNeeded(t *testing.T) {
	small := "#!/bin/bash\n# a comment\necho hi\n"
	if got := joinUserData(map[string]string{"A": "1"}, small); !strings.Contains(got, "# a comment\n") {
		t.Errorf("a small script lost its comments:\n%s", got)
	}
	big := "#!/bin/bash\n"
	for i := range 120 {
		big += "# " + strings.ReplaceAll(randomText(200, int64(i)), "<", "") + "\n"
	}
	big += "echo hi\n"
	got := joinUserData(map[string]string{"A": "1"}, big)
	if want := "#!/bin/bash\n" + settingsMarker + "\nexport A='1'\necho hi\n"; got != want {
		t.Errorf("a script too big with comments:\n%.300s\nwant\n%s", got, want)
	}
	heredoc := big + "cat <<EOF\n# kept\nEOF\n"
	if got := joinUserData(map[string]string{"A": "1"}, heredoc); !strings.Contains(got, "\n# kept\n") {
		t.Error("a script with a here-document lost lines")
	}
}
