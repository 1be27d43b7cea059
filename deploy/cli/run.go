package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lunadb/luna/deploy"
	awsfleet "github.com/lunadb/luna/deploy/aws"
	"github.com/lunadb/luna/deploy/gcp"
	"github.com/lunadb/luna/deploy/remote"
)

// Default startup scripts, relative to the working directory (the
// repository root, or wherever the operator keeps them).
const (
	gcpStartupScript = "scripts/startup-gcp-mig.sh"
	awsStartupScript = "scripts/startup-aws-asg.sh"
)

// run is one parsed invocation.
type run struct {
	env        Env
	cloud, cmd string
	fs         *flag.FlagSet
	// set holds the flags given on the command line: update changes only
	// what they name.
	set map[string]bool

	gcp gcp.Config
	aws awsfleet.Config

	dryRun, yes     bool
	format          string
	startupScript   string
	noStartupScript bool
	passwdFile      string
	size            int
	imageFamily     string
	imageProject    string
	zones           listFlag
	timeout         time.Duration

	// Rollout settings, for both clouds.
	initialDelay   int32
	warmup         int32
	maxSurge       deploy.Amount
	maxUnavailable deploy.Amount
	checkpoints    []int32
	checkpointWait int32
	targetGroups   listFlag

	ssh         remote.Options
	keys        listFlag
	knownHosts  listFlag
	follow      bool
	since       string
	lines       int
	relist      time.Duration
	readyWait   time.Duration
	settle      time.Duration
	healthPort  int
	unit        string   // restart
	units       listFlag // logs
	queries     bool     // logs --queries
	instances   listFlag // restart --instance
	hostKeys    string
	via         string
	metadata    mapFlag
	tags        listFlag
	awsTags     mapFlag
	settings    mapFlag
	scopes      listFlag
	secGroups   listFlag
	subnets     listFlag
	sshKeyFiles listFlag // asg create --ssh-authorized-key
	mutating    bool
	needsSSH    bool
	needsRecipe bool
}

var examples = map[string]string{
	"mig create": `luna-deploy mig create --project my-proj --region europe-west1 --size 3 \
    --machine-type n2-highmem-8 --passwd-file pw.txt --startup-script scripts/startup-gcp-mig.sh \
    --metadata luna-release-url=https://example.com/luna_1.0.0_amd64.deb --metadata luna-release-sha256=<sha256> \
    --initial-delay 5m
  # from a Luna image instead of Debian plus the startup script:
  luna-deploy mig create --project my-proj --region europe-west1 \
    --image-family luna --image-project my-images --no-startup-script`,
	"mig update": `luna-deploy mig update --project my-proj --region europe-west1 \
    --metadata luna-release-url=https://example.com/luna_1.1.0_amd64.deb --metadata luna-release-sha256=<sha256>
  # everything not named (password, startup SQL, image, ...) is copied from the group's current template;
  # --dry-run prints the changes (field: old → new) and sends nothing`,
	"mig status": `luna-deploy mig status --project my-proj --region europe-west1 --format json`,
	"mig restart": `luna-deploy mig restart --project my-proj --region europe-west1 --user admin -i ~/.ssh/id_ed25519
  # only some instances, in this order:
  luna-deploy mig restart --project my-proj --region europe-west1 --user admin --instance luna-x1z2 --instance luna-q8w3`,
	"mig logs": `luna-deploy mig logs --project my-proj --region europe-west1 -i ~/.ssh/id_ed25519 --follow --since "1 hour ago"
  # Luna's entries only, without the startup script's:
  luna-deploy mig logs --project my-proj --region europe-west1 --follow --unit luna.service
  # a fleet without external IPs, through IAP TCP forwarding (gcloud on PATH):
  luna-deploy mig logs --project my-proj --region europe-west1 --via iap --follow
  # the query log alone: one line per request
  luna-deploy mig logs --project my-proj --region europe-west1 --queries --since "10 min ago"`,
	"mig delete": `luna-deploy mig delete --project my-proj --region europe-west1 --name luna --yes`,
	"asg create": `luna-deploy asg create --region eu-west-1 --ami ami-0123456789abcdef0 --instance-type r7i.2xlarge \
    --subnet subnet-aaa,subnet-bbb --security-group sg-123 --instance-profile luna-node --ssh-authorized-key ~/.ssh/id_ed25519.pub \
    --target-group-arn arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/luna/0123456789abcdef \
    --passwd-from aws-ssm:/luna/passwd --startup-script scripts/startup-aws-asg.sh \
    --setting LUNA_RELEASE_URL=https://example.com/luna_1.0.0_amd64.deb --setting LUNA_RELEASE_SHA256=<sha256>`,
	"asg update": `luna-deploy asg update --region eu-west-1 --ami ami-0fedcba9876543210
  # a new launch template version from the group's current one with only the named changes, rolled out
  # by an instance refresh that launches before it terminates and rolls back if the new nodes fail /readyz`,
	"asg status": `luna-deploy asg status --region eu-west-1 --profile prod`,
	"asg restart": `luna-deploy asg restart --region eu-west-1 --user admin -i ~/.ssh/ops.pem --via ssm
  # through a bastion instead of Session Manager:
  luna-deploy asg restart --region eu-west-1 --user admin -i ~/.ssh/ops.pem --jump admin@bastion.example.com --internal-ip`,
	"asg logs":   `luna-deploy asg logs --region eu-west-1 --user admin --via ssm --follow --lines 20`,
	"asg delete": `luna-deploy asg delete --region eu-west-1 --name luna`,
}

var summaries = map[string]string{
	"create":  "Create the template and the group, wait until they are up, and print what was made.",
	"update":  "Copy the group's current template with only the changes the flags name, and roll the group over to it, waiting until done.",
	"status":  "List the group's instances: state, health, zone, internal IP and template version.",
	"restart": "Restart Luna on each instance over SSH (or on those --instance names), one at a time, waiting for /readyz to answer 200 for --settle in between.",
	"logs":    "Tail the journal of Luna and of the startup script on every instance over SSH, merged and prefixed with the instance name.",
	"delete":  "Delete the group and its templates, after a confirmation unless --yes.",
}

func (r *run) parse(args []string) error {
	name := r.cloud + " " + r.cmd
	fs := flag.NewFlagSet("luna-deploy "+name, flag.ContinueOnError)
	fs.SetOutput(r.env.Stderr)
	r.fs = fs
	r.mutating = r.cmd == "create" || r.cmd == "update" || r.cmd == "delete"
	r.needsSSH = r.cmd == "restart" || r.cmd == "logs"
	r.needsRecipe = r.cmd == "create" || r.cmd == "update"
	r.metadata, r.awsTags, r.settings = mapFlag{}, mapFlag{}, mapFlag{}

	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: luna-deploy %s [flags]\n\n%s\n\nExample:\n  %s\n\nFlags:\n", name, summaries[r.cmd], examples[name])
		fs.PrintDefaults()
	}

	fs.StringVar(&r.gcp.Name, "name", "luna", "name of the group (and prefix of its templates)")
	fs.DurationVar(&r.timeout, "timeout", 30*time.Minute, "longest wait for each long-running operation")
	if r.mutating {
		help := "print the API requests as JSON and change nothing"
		if r.cmd == "update" {
			help = "read the group, print the requests as JSON with the changes (field: old → new), and change nothing"
		}
		fs.BoolVar(&r.dryRun, "dry-run", false, help)
	}
	if r.cmd == "delete" {
		fs.BoolVar(&r.yes, "yes", false, "do not ask for confirmation")
	}
	if r.cmd == "status" {
		fs.StringVar(&r.format, "format", "table", "output format: table or json")
	}
	switch r.cloud {
	case "mig":
		fs.StringVar(&r.gcp.Project, "project", firstEnv(r.env.Getenv, "CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT"), "GCP project (default $CLOUDSDK_CORE_PROJECT or $GOOGLE_CLOUD_PROJECT)")
		fs.StringVar(&r.gcp.Region, "region", r.env.Getenv("CLOUDSDK_COMPUTE_REGION"), "GCP region of the group (default $CLOUDSDK_COMPUTE_REGION)")
		if r.cmd == "create" {
			fs.Var(&r.zones, "zone", "zone of the region to spread over (repeatable or comma-separated; default the region's zones)")
		}
	case "asg":
		fs.StringVar(&r.aws.Region, "region", "", "AWS region (default $AWS_REGION, or the profile's region)")
		fs.StringVar(&r.aws.Profile, "profile", "", "AWS shared config profile (default $AWS_PROFILE)")
	}
	if r.needsRecipe {
		r.recipeFlags(fs)
		r.rolloutFlags(fs)
	}
	if r.needsSSH {
		r.sshFlags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(r.env.Stdout)
			fs.Usage()
			return err
		}
		return errUsage // the flag package explained it
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(r.env.Stderr, "luna-deploy %s: unexpected argument %q (flags only)\n", name, fs.Arg(0))
		return errUsage
	}
	r.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { r.set[f.Name] = true })
	return r.finish()
}

func (r *run) recipeFlags(fs *flag.FlagSet) {
	create := r.cmd == "create"
	// Update keeps what is not given, so its flags show no defaults.
	def := func(v string) string {
		if create {
			return v
		}
		return ""
	}
	if create {
		fs.IntVar(&r.size, "size", 2, "number of instances")
	} else {
		fs.IntVar(&r.size, "size", 0, "resize the group to this many instances (default: keep its size)")
	}
	fs.StringVar(&r.gcp.Version, "template-version", "", "version suffix of the new template (default: the UTC time, 20060102-150405)")
	script := map[string]string{"mig": gcpStartupScript, "asg": awsStartupScript}[r.cloud]
	if create {
		fs.StringVar(&r.startupScript, "startup-script", "", "cloud-init startup script, sent as startup-script metadata (GCP) or user data (AWS) (default "+script+")")
	} else {
		fs.StringVar(&r.startupScript, "startup-script", "", "replace the startup script with this file (default: keep the current one)")
	}
	if create || r.cloud == "mig" {
		fs.BoolVar(&r.noStartupScript, "no-startup-script", false, "send no startup script (the image is a Luna image)")
	}
	switch r.cloud {
	case "mig":
		fs.StringVar(&r.gcp.MachineType, "machine-type", def("e2-standard-4"), "machine type")
		fs.StringVar(&r.gcp.Image, "image", "", "boot image path, e.g. projects/P/global/images/NAME"+def(" (default the debian-12 family of debian-cloud)"))
		fs.StringVar(&r.imageFamily, "image-family", "", "boot image family (with --image-project), e.g. a Luna image family")
		fs.StringVar(&r.imageProject, "image-project", "", "project of --image-family (default --project)")
		fs.Int64Var(&r.gcp.DiskSizeGB, "disk-size", map[bool]int64{true: 20}[create], "boot disk size in GB")
		fs.StringVar(&r.gcp.ServiceAccount, "service-account", def("default"), "service account e-mail of the instances")
		fs.Var(&r.scopes, "scopes", "OAuth scopes of the service account"+def(" (default cloud-platform)"))
		fs.StringVar(&r.gcp.Network, "network", def("default"), "VPC network")
		fs.StringVar(&r.gcp.Subnet, "subnet", "", "subnetwork in the region")
		fs.Var(&r.tags, "tags", "further network tags (repeatable or comma-separated); the group's name is always one")
		fs.BoolVar(&r.gcp.ExternalIP, "external-ip", false, "give instances an ephemeral external IP")
		fs.Var(r.metadata, "metadata", "extra instance metadata KEY=VALUE (repeatable; on update KEY= removes one)")
		fs.StringVar(&r.gcp.PasswdAttribute, "passwd-attribute", def("luna-passwd"), "metadata attribute holding the password (luna --passwd-from gcp-metadata:ATTR)")
		fs.StringVar(&r.passwdFile, "passwd-file", "", "file holding the Luna password, stored in the --passwd-attribute metadata")
		if create {
			fs.IntVar(&r.gcp.APIPort, "api-port", deploy.APIPort, "Luna's API port (the group's named port luna)")
			fs.IntVar(&r.gcp.HealthPort, "health-port", deploy.HealthPort, "Luna's health port (/healthz and /readyz, checked by the health checks and opened by the firewall rule)")
			fs.BoolVar(&r.gcp.NoFirewall, "no-health-check-firewall", false, "make no firewall rule for Google's health checkers (the network has one: tcp on the health port from 35.191.0.0/16 and 130.211.0.0/22 to the group's tag)")
			fs.BoolVar(&r.gcp.NoIAPSSH, "no-iap-ssh", false, "make no firewall rule <name>-allow-iap-ssh admitting IAP TCP forwarding (35.235.240.0/20) to tcp:22 of the group's tag, which logs and restart --via iap need on instances without external IPs")
		}
	case "asg":
		fs.StringVar(&r.aws.AMI, "ami", "", "AMI ID: a Luna AMI, or Debian/Amazon Linux with the startup script (required)")
		fs.StringVar(&r.aws.InstanceType, "instance-type", def("m7i.xlarge"), "instance type")
		fs.StringVar(&r.aws.KeyName, "key-name", "", "EC2 key pair for SSH")
		fs.StringVar(&r.aws.InstanceProfile, "instance-profile", "", "IAM instance profile name or ARN; its role needs the AWS managed policy AmazonSSMManagedInstanceCore for logs and restart --via ssm (Session Manager), besides reading the password source")
		fs.Var(&r.secGroups, "security-group", "security group ID (repeatable or comma-separated)")
		if create {
			fs.Var(&r.subnets, "subnet", "subnet ID to spread over (repeatable or comma-separated)")
			fs.Var(&r.zones, "zone", "availability zone, when not using --subnet (repeatable or comma-separated)")
			fs.Var(&r.targetGroups, "target-group-arn", "target group the instances register with, whose health check is HTTP /readyz on the health port (repeatable); the group uses ELB health checks through it")
			fs.BoolVar(&r.aws.NoTargetGroup, "no-target-group", false, "make the group without a target group: EC2 status checks only, so a node whose Luna never gets ready stays in service, and update refuses to refresh it without --i-know")
			fs.Var(&r.sshKeyFiles, "ssh-authorized-key", "OpenSSH public key file (e.g. ~/.ssh/id_ed25519.pub; repeatable) whose keys the startup script adds to the login user's authorized_keys (LUNA_SSH_AUTHORIZED_KEYS), so SSH --via ssm needs no EC2 key pair; the startup script also installs amazon-ssm-agent unless --setting LUNA_SSM_AGENT=no")
		} else {
			fs.BoolVar(&r.aws.IKnow, "i-know", false, "refresh a group whose health checks cannot see /readyz (no target group or EC2 checks), knowing a bad version replaces every node")
		}
		fs.Var(new(int32Flag).bind(&r.aws.VolumeSizeGB, map[bool]int32{true: 20}[create]), "volume-size", "root volume size in GiB")
		fs.StringVar(&r.aws.PasswdFrom, "passwd-from", "", "password source for luna --passwd-from (aws-ssm:NAME, aws-secretsmanager:ID, aws-imds:TAG), set as an instance tag")
		fs.Var(r.awsTags, "tag", "extra instance tag KEY=VALUE (repeatable; on update KEY= removes one)")
		fs.Var(r.settings, "setting", "NAME=VALUE exported to the startup script in the user data, e.g. LUNA_RELEASE_URL=https://.../luna_1.0_amd64.deb (repeatable; on update NAME= removes one)")
	}
}

// rolloutFlags are the timings and the pace of replacements.
func (r *run) rolloutFlags(fs *flag.FlagSet) {
	create := r.cmd == "create"
	keep := ""
	// Timings change on update only when given.
	sec := func(v int32) int32 {
		if create {
			return v
		}
		return 0
	}
	if !create {
		keep = "; on update only when given"
	}
	switch r.cloud {
	case "mig":
		fs.Var(new(secondsFlag).bind(&r.initialDelay, sec(gcp.DefaultInitialDelaySec)), "initial-delay",
			"how long autohealing leaves a new instance alone: boot + install + server start, until /healthz answers (0 to 1h)"+keep)
		fs.Var(&amountFlag{p: &r.maxSurge, optional: true}, "max-surge",
			"instances a rolling update may add above the size: a number (0, or at least the number of zones) or a percentage for groups of 10 or more (default: the number of zones)"+keep)
		fs.Var(&amountFlag{p: &r.maxUnavailable, optional: !create}, "max-unavailable",
			"instances a rolling update may take out of service: 0 keeps every node serving; else at least the number of zones, or a percentage"+keep)
	case "asg":
		fs.Var(new(secondsFlag).bind(&r.initialDelay, sec(awsfleet.DefaultGracePeriodSec)), "initial-delay",
			"health check grace period: boot + install + the longest preload, until /readyz answers (0 to 2h)"+keep)
		fs.Var(new(secondsFlag).bind(&r.warmup, sec(awsfleet.DefaultWarmupSec)), "warmup",
			"how long a new instance counts as starting: the group's default instance warmup and the instance refresh's (0 to 2h)"+keep)
		fs.Var(new(amountFlag).bind(&r.maxSurge, deploy.Amount{Value: awsfleet.DefaultMaxSurgePercent, Percent: true}), "max-surge",
			"how far above its size, as a percentage, instance refreshes and replacements may launch new instances before terminating old ones (maximum healthy percentage 100+N)")
		fs.Var(new(amountFlag).bind(&r.maxUnavailable, deploy.Amount{Percent: true}), "max-unavailable",
			"how much of the group, as a percentage, instance refreshes and replacements may take out of service (minimum healthy percentage 100-N)")
		if !create {
			fs.Var(new(percentsFlag).bind(&r.checkpoints, awsfleet.DefaultCheckpoints), "checkpoints",
				"percentages of the group at which the instance refresh pauses, ending with 100, or none")
			fs.Var(new(secondsFlag).bind(&r.checkpointWait, awsfleet.DefaultCheckpointDelaySec), "checkpoint-delay", "how long the instance refresh pauses at each checkpoint (0 to 48h)")
		}
	}
}

func (r *run) sshFlags(fs *flag.FlagSet) {
	fs.Var(&r.keys, "i", "private key file (repeatable); ssh-agent ($SSH_AUTH_SOCK) is used too")
	fs.StringVar(&r.ssh.User, "user", "", "SSH user (default the local user name)")
	fs.Var(&r.knownHosts, "known-hosts", "known_hosts file (repeatable; default ~/.ssh/known_hosts)")
	fs.StringVar(&r.hostKeys, "host-key-policy", string(remote.AcceptNew),
		"accept-new: record the key of an instance seen for the first time in the (first) known_hosts file, refuse a changed key unless luna-deploy recorded it for another instance (a replaced node at a reused address), and then replace the entry; strict: refuse hosts not in known_hosts")
	fs.BoolVar(&r.ssh.InsecureIgnoreHostKey, "insecure-ignore-host-key", false, "do not check host keys (open to interception)")
	fs.StringVar(&r.ssh.Jump, "jump", "", "bastion to connect through, [user@]host[:port]")
	fs.StringVar(&r.via, "via", "", map[string]string{
		"asg": "ssm: reach private instances through AWS Session Manager (runs aws ssm start-session with the AWS-StartSSHSession document; needs the aws CLI and its session-manager-plugin; no address or open port needed)",
		"mig": "iap: reach private instances through Google's IAP TCP forwarding (runs gcloud compute start-iap-tunnel; no external IP needed)",
	}[r.cloud])
	fs.StringVar(&r.ssh.ProxyCommand, "proxy-command", "", "command whose standard input and output carry each SSH connection, as OpenSSH's ProxyCommand; %h address, %p port, %n name, %i instance ID, %z zone, %r user, %% a percent")
	fs.BoolVar(&r.ssh.InternalIP, "internal-ip", false, "connect to the instances' internal IPs (default external)")
	fs.IntVar(&r.ssh.Port, "ssh-port", 22, "SSH port of the instances")
	if r.cmd == "logs" {
		fs.Var(&r.units, "unit", "systemd unit whose entries to show (repeatable or comma-separated; default "+strings.Join(logUnits[r.cloud], " and ")+", the startup script's, so a node that fails to boot shows why)")
		fs.BoolVar(&r.follow, "follow", false, "keep streaming new entries; picks up instances that join (Ctrl-C stops)")
		fs.BoolVar(&r.follow, "f", false, "shorthand for --follow")
		fs.StringVar(&r.since, "since", "", `show entries since this time (journalctl --since, e.g. "1 hour ago")`)
		fs.IntVar(&r.lines, "lines", 100, "past entries per instance (journalctl -n; -1 for all)")
		fs.IntVar(&r.lines, "n", 100, "shorthand for --lines")
		fs.DurationVar(&r.relist, "relist", 30*time.Second, "how often --follow lists the group again")
		fs.BoolVar(&r.queries, "queries", false, "show Luna's query log alone: one line per request, the entries tagged log=query (--lines counts those); without --unit, of luna.service only")
	}
	if r.cmd == "restart" {
		fs.StringVar(&r.unit, "unit", "luna", "systemd unit to restart")
		fs.Var(&r.instances, "instance", "restart only this instance (repeatable or comma-separated; in the order given)")
		fs.IntVar(&r.healthPort, "health-port", deploy.HealthPort, "Luna's health port, polled for /readyz")
		fs.DurationVar(&r.readyWait, "ready-timeout", 5*time.Minute, "longest wait for /readyz after each restart")
		fs.DurationVar(&r.settle, "settle", 30*time.Second,
			"how long /readyz must keep answering 200 before the next instance is restarted, so that the load balancer has it back in rotation first: its healthy threshold times its check interval, plus one interval (2 x 10s + 10s for the checks luna-deploy and the Terraform modules make)")
	}
}

func firstEnv(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// finish validates flags and reads the files they name.
func (r *run) finish() error {
	bad := func(format string, args ...any) error {
		fmt.Fprintf(r.env.Stderr, "luna-deploy %s %s: "+format+"\n", append([]any{r.cloud, r.cmd}, args...)...)
		return errUsage
	}
	if r.cmd == "status" && r.format != "table" && r.format != "json" {
		return bad("--format %q: use table or json", r.format)
	}
	if r.timeout <= 0 {
		return bad("--timeout must be positive")
	}
	if r.needsRecipe {
		if r.size < 0 || r.size > 1000 {
			return bad("--size %d: between 0 and 1000", r.size)
		}
		if r.noStartupScript && r.startupScript != "" {
			return bad("--startup-script and --no-startup-script contradict each other")
		}
	}
	// The startup script: on create the default file unless told not to;
	// on update only a file the operator names.
	script := ""
	if r.needsRecipe && !r.noStartupScript && (r.cmd == "create" || r.set["startup-script"]) {
		path := r.startupScript
		if path == "" {
			path = map[string]string{"mig": gcpStartupScript, "asg": awsStartupScript}[r.cloud]
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return bad("reading the startup script: %v (pass --startup-script PATH, or --no-startup-script for a Luna image)", err)
		}
		if len(b) == 0 {
			return bad("the startup script %s is empty", path)
		}
		script = string(b)
	}
	now := r.env.Now()
	var err error
	switch r.cloud {
	case "mig":
		err = r.finishGCP(now, script)
	case "asg":
		err = r.finishAWS(now, script)
	}
	if err != nil {
		return bad("%v", err)
	}
	if r.needsSSH {
		if r.lines < -1 {
			return bad("--lines %d: a count, or -1 for all", r.lines)
		}
		if r.relist <= 0 && r.cmd == "logs" {
			return bad("--relist must be positive")
		}
		if r.settle < 0 {
			return bad("--settle must not be negative")
		}
		p, err := remote.ParseHostKeyPolicy(r.hostKeys)
		if err != nil {
			return bad("%v", err)
		}
		r.ssh.HostKeyPolicy = p
		if r.via != "" {
			if r.ssh.ProxyCommand != "" {
				return bad("--via and --proxy-command contradict each other: --via %s is a ready-made proxy command", r.via)
			}
			if want := map[string]string{"asg": "ssm", "mig": "iap"}[r.cloud]; r.via != want {
				return bad("--via %q: %s instances are reached --via %s", r.via, r.cloud, want)
			}
			scope := r.gcp.Project
			if r.cloud == "asg" {
				scope = r.aws.Region
			}
			cmd, err := remote.ViaCommand(r.via, scope, r.aws.Profile)
			if err != nil {
				return bad("%v", err)
			}
			r.ssh.ProxyCommand = cmd
		}
		r.ssh.KeyFiles, r.ssh.KnownHosts = r.keys, r.knownHosts
		r.ssh.AgentSocket = r.env.Getenv("SSH_AUTH_SOCK")
		r.ssh.Notices = r.env.Stderr
	}
	return nil
}

// readPassword reads a password file, trimming the trailing newline.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading --passwd-file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("--passwd-file %s is empty", path)
	}
	return pw, nil
}

// fleet is what the commands need of a cloud back end.
type fleet interface {
	deploy.Lister
	Create(context.Context) (string, error)
	Update(context.Context) (string, error)
	PlanUpdate(context.Context) ([]deploy.Request, error)
	Delete(context.Context) (string, error)
}

// plan is what create and delete would send; they need no look at the
// cloud.
func (r *run) plan() []deploy.Request {
	switch r.cloud + " " + r.cmd {
	case "mig create":
		return r.gcp.PlanCreate()
	case "mig delete":
		return r.gcp.PlanDelete()
	case "asg create":
		return r.aws.PlanCreate()
	case "asg delete":
		return r.aws.PlanDelete()
	}
	return nil
}

func (r *run) exec(ctx context.Context) error {
	if r.dryRun && r.cmd != "update" {
		return deploy.WriteRequests(r.env.Stdout, r.plan())
	}
	if r.cmd == "delete" && !r.yes {
		q := fmt.Sprintf("Delete %s %s and its templates, terminating its instances?", map[string]string{"mig": "managed instance group", "asg": "auto scaling group"}[r.cloud], r.gcp.Name)
		ok, err := deploy.Confirm(r.env.Stdin, r.env.Stderr, q)
		if err != nil {
			return err
		}
		if !ok {
			return deploy.ErrAborted
		}
	}
	// Open SSH credentials first: a bad key file fails before any cloud call.
	var dialer *remote.Dialer
	if r.needsSSH {
		var err error
		if dialer, err = remote.NewDialer(r.ssh); err != nil {
			return err
		}
		defer dialer.Close()
	}
	f, closeFn, err := r.fleet(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	var out string
	switch r.cmd {
	case "create":
		out, err = f.Create(ctx)
	case "update":
		if r.dryRun {
			// Reads the group and its template; sends no change.
			var reqs []deploy.Request
			if reqs, err = f.PlanUpdate(ctx); err == nil {
				if len(reqs) == 0 {
					fmt.Fprintf(r.env.Stderr, "luna-deploy %s update: nothing to change: group %s already has what the flags name\n", r.cloud, r.gcp.Name)
				}
				err = deploy.WriteRequests(r.env.Stdout, reqs)
			}
		} else {
			out, err = f.Update(ctx)
		}
	case "delete":
		out, err = f.Delete(ctx)
	case "status":
		var in []deploy.Instance
		if in, err = f.Instances(ctx); err == nil {
			err = deploy.WriteInstances(r.env.Stdout, r.format, in)
		}
	case "logs":
		units := []string(r.units)
		switch {
		case len(units) > 0:
		case r.queries:
			units = []string{remote.DefaultUnit}
		default:
			units = logUnits[r.cloud]
		}
		err = remote.Tail(ctx, f, dialer, remote.LogOptions{
			Units: units, Follow: r.follow, Since: r.since, Lines: r.lines, Relist: r.relist,
			Color: r.env.StdoutTTY, Notices: r.env.Stderr, Queries: r.queries,
		}, r.env.Stdout)
		if ctx.Err() != nil {
			return nil
		}
	case "restart":
		var in []deploy.Instance
		if in, err = f.Instances(ctx); err == nil {
			in, err = r.pick(in)
		}
		if err == nil {
			err = remote.RollingRestart(ctx, in, dialer, remote.RestartOptions{
				Unit: r.unit, HealthPort: r.healthPort, Timeout: r.readyWait, Settle: r.settle, Progress: r.progress(),
			})
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprint(r.env.Stdout, out)
	return nil
}

// logUnits are the units logs shows by default: Luna's and the one that
// runs the startup script (GCP's guest agent; cloud-init's final stage for
// user data on AWS), so that a node that fails to install or start Luna
// says why.
var logUnits = map[string][]string{
	"mig": {remote.DefaultUnit, "google-startup-scripts.service"},
	"asg": {remote.DefaultUnit, "cloud-final.service"},
}

// pick returns the instances restart --instance names, in the order given;
// without --instance, all of them.
func (r *run) pick(all []deploy.Instance) ([]deploy.Instance, error) {
	if len(r.instances) == 0 {
		return all, nil
	}
	byName := map[string]deploy.Instance{}
	var names []string
	for _, in := range all {
		byName[in.Name] = in
		names = append(names, in.Name)
	}
	var out []deploy.Instance
	var unknown []string
	taken := map[string]bool{}
	for _, n := range r.instances {
		in, ok := byName[n]
		switch {
		case !ok:
			unknown = append(unknown, fmt.Sprintf("%q", n))
		case !taken[n]:
			taken[n] = true
			out = append(out, in)
		}
	}
	if len(unknown) > 0 {
		has := "it has no instances"
		if len(names) > 0 {
			has = "its instances: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("--instance %s: no such instance in group %s (%s); nothing was restarted", strings.Join(unknown, ", "), r.gcp.Name, has)
	}
	return out, nil
}

func (r *run) progress() *deploy.Progress {
	return &deploy.Progress{W: r.env.Stderr, Every: 10 * time.Second}
}

// fleet makes the cloud back end's clients.
func (r *run) fleet(ctx context.Context) (fleet, func(), error) {
	if r.cloud == "mig" {
		return r.gcpFleet(ctx)
	}
	return r.awsFleet(ctx)
}
