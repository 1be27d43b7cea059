package systemd

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/nspawn"
	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/packaging"
)

// buildImage makes a Luna image the way packer/luna.pkr.hcl does:
// packer/provision.sh installs the package for the cloud configure names
// (gcp-mig or aws-asg), then packer/cleanup.sh, both in the image's root
// file system (a container whose init is a shell, as in a chroot: the
// scripts need no running systemd). The build is offline: apt-get update
// and upgrade are skipped, everything else is the real apt-get. env are
// further NAME=value settings of provision.sh, as Packer passes them. The
// image is not booted yet.
func buildImage(t *testing.T, configure string, env ...string) *appliance {
	t.Helper()
	needRoot(t)
	needTools(t, "systemd-nspawn", "nsenter", "debootstrap", "flock")
	_, lunactl := binaries(t)
	a := newBareAppliance(t, lunactl, map[string]string{
		debPath(t, debV1): "/root/pkg/luna.deb",
		filepath.Join(testenv.RepoRoot(), "packer", "provision.sh"): "/root/packer/provision.sh",
		filepath.Join(testenv.RepoRoot(), "packer", "cleanup.sh"):   "/root/packer/cleanup.sh",
	})
	a.Write("usr/local/sbin/apt-get", `#!/bin/sh
for a; do
	case $a in update | upgrade) echo "apt-get $a: skipped, the test build is offline"; exit 0 ;; esac
done
exec /usr/bin/apt-get "$@"
`, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-q", "--pipe", "-D", a.Root, "--register=no", "--keep-unit",
		"--machine=" + a.Name, "--setenv=LUNA_DEB=/root/pkg/luna.deb", "--setenv=LUNA_CONFIGURE=" + configure}
	for _, e := range env {
		args = append(args, "--setenv="+e)
	}
	args = append(args, "/bin/sh", "-ec", "/root/packer/provision.sh; rm /usr/local/sbin/apt-get; /root/packer/cleanup.sh")
	out, err := exec.CommandContext(ctx, "systemd-nspawn", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("provision.sh and cleanup.sh: %v\n%s", err, out)
	}
	t.Logf("provision.sh and cleanup.sh:\n%s", nspawn.Tail(string(out), 8))

	// What the image holds: the package, recorded; luna.service disabled
	// until an instance is configured, the configure unit enabled.
	a.checkRecord(sha256Of(t, debPath(t, debV1)), debV1)
	wants := "etc/systemd/system/multi-user.target.wants/"
	if _, err := os.Lstat(a.Path(wants + "luna.service")); err == nil {
		t.Error("the image's luna.service is enabled")
	}
	if target, err := os.Readlink(a.Path(wants + "luna-configure@" + configure + ".service")); err != nil || target != packaging.ConfigureUnitPath {
		t.Errorf("the image's luna-configure@%s.service is not enabled: %q %v", configure, target, err)
	}
	return a
}

// bootInstance boots the image as a new instance and waits until its boot,
// and with it the configure unit, is over.
func (a *appliance) bootInstance(configure string) {
	t := a.t
	t.Helper()
	a.Boot()
	a.waitBooted()
	unit := "luna-configure@" + configure + ".service"
	if out, _ := a.Exec("systemctl", "is-active", unit); strings.TrimSpace(out) != "active" {
		j, _ := a.Exec("journalctl", "--no-pager", "-o", "cat", "-u", unit)
		t.Fatalf("%s is %q after boot:\n%s", unit, strings.TrimSpace(out), nspawn.Tail(j, 40))
	}
	if out, err := a.Exec("systemd-analyze", "verify", unit); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// TestImageGCP boots a Luna image whose instance has only metadata, as
// `luna-deploy mig create --no-startup-script` makes it: the password in
// luna-passwd, the startup SQL, the ports, and a release URL naming the
// image's own package, behind an address nothing answers on. The image's
// luna-configure@gcp-mig.service configures and starts Luna, which serves
// with the password, and nothing is downloaded.
func TestImageGCP(t *testing.T) {
	a := buildImage(t, "gcp-mig")
	base, files := fileServer(t, releaseDir(t))
	a.passwd = "image-Pa55-from-metadata-c0d3"
	md := &fakeGCEMetadata{attrs: map[string]string{
		"luna-release-url":    base + "/luna_" + debV1 + "_amd64.deb",
		"luna-release-sha256": sha256Of(t, debPath(t, debV1)),
		"luna-init-sql":       preloadSQL,
		"luna-init-sql-from":  "gcp-metadata:luna-init-secret",
		"luna-init-secret":    secretSQL,
		"luna-passwd":         a.passwd,
		"luna-passwd-from":    "gcp-metadata:luna-passwd",
		"luna-env":            "LUNA_API_HOST_PORT=" + a.api + "\nLUNA_HEALTH_HOST_PORT=" + a.health,
	}}
	// Where the instance finds its metadata server.
	a.write("etc/systemd/system/luna-configure@.service.d/test.conf",
		"[Service]\nEnvironment=GCE_METADATA_HOST="+serve(t, md)+"\n")

	a.bootInstance("gcp-mig")
	a.checkServing(a.passwd, "gcp-metadata:luna-passwd")
	a.checkInitSQLFiles()
	if got := files.list(); len(got) != 0 {
		t.Errorf("the instance downloaded the release its image holds: %q", got)
	}
	reqs := strings.Join(md.list(), "\n")
	for _, attr := range []string{"luna-passwd-from", "luna-init-sql", "luna-env", "luna-passwd"} {
		if !strings.Contains(reqs+"\n", "GET /computeMetadata/v1/instance/attributes/"+attr+"\n") {
			t.Errorf("no metadata request for %s:\n%s", attr, reqs)
		}
	}
}

// TestImageAWS boots a Luna image whose launch template has no startup
// script, as `luna-deploy asg create --no-startup-script` makes it: user
// data that only exports settings, and the password source in the
// luna-passwd-from instance tag. The image's luna-configure@aws-asg.service
// reads both through IMDSv2, fetches the secret startup SQL from SSM with
// the instance role, and starts Luna, which reads its password from SSM.
// The image build installed amazon-ssm-agent from the URL Packer gives
// (LUNA_SSM_AGENT_URL), so the instance asked for it downloads nothing and
// runs it.
func TestImageAWS(t *testing.T) {
	agentDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(agentDir, "amazon-ssm-agent.deb"), fakeSSMAgentDeb(t), 0o644); err != nil {
		t.Fatal(err)
	}
	agentBase, agentGets := fileServer(t, agentDir)
	a := buildImage(t, "aws-asg", "LUNA_SSM_AGENT_URL="+agentBase+"/amazon-ssm-agent.deb")
	if got := agentGets.list(); len(got) != 1 {
		t.Errorf("the image build fetched %q, want the agent once", got)
	}
	if _, err := os.Lstat(a.Path("etc/systemd/system/multi-user.target.wants/amazon-ssm-agent.service")); err != nil {
		t.Errorf("the image's amazon-ssm-agent.service is not enabled: %v", err)
	}
	const passwd = "image-Pa55-from-ssm-4e1f"
	a.passwd = passwd
	sum := sha256Of(t, debPath(t, debV1))
	imds := &fakeIMDS{region: "eu-west-3", role: "luna-node",
		keyID: "ASIAROLETEST", secret: "role/secret+key", session: "role-session/token+=",
		tags: map[string]string{"luna-passwd-from": "aws-ssm:/luna/passwd"},
		userData: "#!/bin/bash\n# luna-deploy settings\n" +
			"export LUNA_ENV='LUNA_API_HOST_PORT=" + a.api + "\nLUNA_HEALTH_HOST_PORT=" + a.health + "'\n" +
			"export LUNA_INIT_SQL_B64='" + base64.StdEncoding.EncodeToString([]byte(preloadSQL)) + "'\n" +
			"export LUNA_INIT_SQL_FROM='aws-ssm:/luna/init-sql'\n" +
			"export LUNA_SSM_AGENT='yes'\n" +
			"export LUNA_RELEASE_SHA256='" + sum + "'\n" +
			"export LUNA_RELEASE_URL='http://" + closedAddr(t) + "/luna_" + debV1 + "_amd64.deb'\n",
	}
	ssm := &fakeSSM{params: map[string]string{"/luna/passwd": passwd, "/luna/init-sql": secretSQL}}
	imdsURL, ssmURL := "http://"+serve(t, imds), "http://"+serve(t, ssm)
	// Where the instance finds IMDS and the regional SSM endpoint; the
	// server's SDK gets static keys for the instance profile.
	a.write("etc/systemd/system/luna-configure@.service.d/test.conf", "[Service]\n"+
		"Environment=AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsURL+" AWS_ENDPOINT_URL_SSM="+ssmURL+"\n")
	a.write("etc/systemd/system/luna.service.d/aws-test.conf", "[Service]\n"+
		"Environment=AWS_ACCESS_KEY_ID=AKIDLUNATEST AWS_SECRET_ACCESS_KEY=luna-test-secret\n"+
		"Environment=AWS_ENDPOINT_URL_SSM="+ssmURL+" AWS_EC2_METADATA_DISABLED=true\n")

	a.bootInstance("aws-asg")
	a.checkServing(passwd, "aws-ssm:/luna/passwd")
	if got := agentGets.list(); len(got) != 1 {
		t.Errorf("the instance downloaded the agent its image holds: %q", got)
	}
	if out, _ := a.Exec("systemctl", "is-active", "amazon-ssm-agent.service"); strings.TrimSpace(out) != "active" {
		t.Errorf("amazon-ssm-agent.service is %q on the instance", strings.TrimSpace(out))
	}
	a.checkInitSQLFiles()
	if env := a.Read("etc/luna/luna.env"); !strings.Contains(env, "\nAWS_REGION=eu-west-3\n") {
		t.Errorf("luna.env lacks the instance's region:\n%s", env)
	}
	reqs := strings.Join(imds.list(), "\n")
	for _, want := range []string{"GET /latest/user-data", "GET /latest/meta-data/tags/instance/luna-passwd-from",
		"GET /latest/meta-data/iam/security-credentials/luna-node"} {
		if !strings.Contains(reqs+"\n", want+"\n") {
			t.Errorf("no IMDS request %q:\n%s", want, reqs)
		}
	}
	if strings.Contains(reqs, "unexpected") {
		t.Errorf("IMDS requests without a session token:\n%s", reqs)
	}
	var sqlReqs int
	for _, r := range ssm.list() {
		if strings.Contains(r, "name=/luna/init-sql") {
			sqlReqs++
		}
	}
	if sqlReqs != 1 {
		t.Errorf("SSM requests %q: want the startup SQL once", ssm.list())
	}
}
