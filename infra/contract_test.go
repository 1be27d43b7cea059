package infra

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lunadb/luna/internal/testenv"
	"github.com/lunadb/luna/packaging"
)

// buildLuna builds cmd/luna as shipped.
func buildLuna(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "luna")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags=duckdb_arrow", "-o", out, "./cmd/luna")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building luna: %v\n%s", err, b)
	}
	return out
}

// envFile reads the VARIABLE=value lines of a luna.env-style file.
func envFile(t *testing.T, rel string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readFile(t, rel)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not VARIABLE=value: %q", rel, line)
		}
		vars[k] = v
	}
	return vars
}

func port(t *testing.T, hostPort string) int64 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	n, err := strconv.ParseInt(p, 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", hostPort, err)
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The deployment files agree with the server and with each other: ports,
// health path, flags, settings, metadata names and file paths are the ones
// `luna --help`, the packaged luna.env, the package, the startup scripts and
// the running server use.
func TestDeploymentContract(t *testing.T) {
	luna := buildLuna(t)
	helpOut, err := exec.Command(luna, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("luna --help: %v\n%s", err, helpOut)
	}
	help := string(helpOut)
	for _, want := range []string{
		"--api-host-port", "(env LUNA_API_HOST_PORT, default 0.0.0.0:7688)",
		"--health-host-port", "/readyz",
		"--init-sql", "(env LUNA_INIT_SQL,",
		"--passwd-from", "gcp-metadata:<attribute>", "aws-ssm:<parameter>",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("luna --help does not mention %q", want)
		}
	}
	settings := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env (LUNA_[A-Z0-9_]+),`).FindAllStringSubmatch(help, -1) {
		settings[m[1]] = true
	}

	// The packaged configuration: the ports the modules default to, the
	// startup SQL directory the package ships.
	env := envFile(t, "systemd/luna.env")
	apiPort, healthPort := port(t, env["LUNA_API_HOST_PORT"]), port(t, env["LUNA_HEALTH_HOST_PORT"])
	if apiPort != 7688 {
		t.Errorf("luna.env API port %d, want 7688", apiPort)
	}
	if env["LUNA_INIT_SQL"] != packaging.InitSQLPath {
		t.Errorf("luna.env LUNA_INIT_SQL = %q, the package ships %q", env["LUNA_INIT_SQL"], packaging.InitSQLPath)
	}
	for k := range env {
		if !settings[k] && !strings.HasPrefix(k, "AWS_") {
			t.Errorf("luna.env sets %s, which luna --help does not know", k)
		}
	}

	for _, dir := range []string{"terraform/modules/gcp-mig", "terraform/modules/aws-asg"} {
		m := parseModule(t, dir)
		wantNumber(t, dir+" api_port default", literal(t, m.block(t, "variable", "api_port"), "default"), apiPort)
		wantNumber(t, dir+" health_port default", literal(t, m.block(t, "variable", "health_port"), "default"), healthPort)
		locals := m.block(t, "locals")
		luna := m.text(t, locals, locals, "luna_env")
		for _, s := range regexp.MustCompile(`"(LUNA_[A-Z0-9_]+)=`).FindAllStringSubmatch(luna, -1) {
			if !settings[s[1]] {
				t.Errorf("%s sets %s, which luna --help does not know", dir, s[1])
			}
		}
	}
	gcp := parseModule(t, "terraform/modules/gcp-mig")
	hc := gcp.block(t, "resource", "google_compute_health_check", "luna")
	wantString(t, "GCP health check request_path", literal(t, one(t, hc, "http_health_check"), "request_path"), "/readyz")
	mig := gcp.block(t, "resource", "google_compute_region_instance_group_manager", "luna")
	np := one(t, mig, "named_port")
	wantString(t, "GCP named port", literal(t, np, "name"), "luna")
	wantText(t, "GCP named port port", gcp.text(t, mig, np, "port"), "var.api_port")
	aws := parseModule(t, "terraform/modules/aws-asg")
	tg := aws.block(t, "resource", "aws_lb_target_group", "luna")
	wantString(t, "AWS target group health path", literal(t, one(t, tg, "health_check"), "path"), "/readyz")

	// The GCP module's metadata attributes and the AWS user data's
	// variables are the ones the startup scripts read.
	gcpScript := readFile(t, "scripts/startup-gcp-mig.sh")
	gcpLocals := gcp.text(t, gcp.block(t, "locals"), gcp.block(t, "locals"), "metadata")
	attrs := regexp.MustCompile(`\b(luna-[a-z0-9-]+)\s*=`).FindAllStringSubmatch(gcpLocals, -1)
	if len(attrs) < 6 {
		t.Fatalf("found only %d luna-* metadata attributes in the GCP module: %v", len(attrs), attrs)
	}
	for _, a := range attrs {
		if a[1] == "luna-passwd" {
			continue // read by the server itself, through luna-passwd-from (below)
		}
		if !regexp.MustCompile(`(metadata|setting [A-Z0-9_]+) ` + a[1] + `(\s|\)|$)`).MatchString(gcpScript) {
			t.Errorf("the GCP module sets metadata %s, which scripts/startup-gcp-mig.sh does not read", a[1])
		}
	}
	if !regexp.MustCompile(`luna-passwd-from\s+= var.no_passwd \? "none" : "gcp-secretmanager:\$\{local.passwd_secret\}"`).MatchString(gcpLocals) {
		t.Errorf("the GCP module does not point luna-passwd-from at its Secret Manager secret")
	}
	if !strings.Contains(gcpLocals, `luna-init-sql-from = "gcp-secretmanager:${local.init_sql_secret}"`) {
		t.Errorf("the GCP module does not point luna-init-sql-from at init_sql_secret")
	}
	for _, kind := range []string{"gcp-secretmanager:<secret>", "aws-ssm:<parameter>", "aws-secretsmanager:<secret-id>"} {
		if !strings.Contains(help, kind) {
			t.Errorf("luna --help does not offer %s, which the modules rely on", kind)
		}
	}
	awsScript := readFile(t, "scripts/startup-aws-asg.sh")
	userData := readFile(t, "terraform/modules/aws-asg/user-data.sh.tftpl")
	exports := regexp.MustCompile(`(?m)^export (LUNA_[A-Z0-9_]+)=`).FindAllStringSubmatch(userData, -1)
	if len(exports) < 6 {
		t.Fatalf("found only %d exports in the user data: %v", len(exports), exports)
	}
	for _, e := range exports {
		if !strings.Contains(awsScript, "${"+e[1]) && !strings.Contains(awsScript, "$"+e[1]) {
			t.Errorf("the user data exports %s, which scripts/startup-aws-asg.sh does not read", e[1])
		}
	}

	// Packer installs the package file `make deb` writes, and its bake
	// step sets only settings the server knows, on the packaged ports.
	tmpl := readFile(t, "packer/luna.pkr.hcl")
	want := "../dist/" + packaging.DebFileName("${var.luna_version}")
	if !strings.Contains(tmpl, want) {
		t.Errorf("packer/luna.pkr.hcl does not install %s", want)
	}
	// Images ship the service disabled; the startup scripts turn it on
	// once the password source and preload are in place.
	for _, script := range []string{"scripts/startup-gcp-mig.sh", "scripts/startup-aws-asg.sh"} {
		if !strings.Contains(readFile(t, script), "systemctl enable --quiet "+path.Base(packaging.UnitPath)) {
			t.Errorf("%s does not enable %s", script, path.Base(packaging.UnitPath))
		}
	}
	provision := readFile(t, "packer/provision.sh")
	// The image enables the packaged configure unit for its cloud, which
	// runs the packaged startup script, and records its package where the
	// startup scripts look.
	if !strings.Contains(tmpl, `"LUNA_CONFIGURE=${source.type == "googlecompute" ? "gcp-mig" : "aws-asg"}"`) ||
		!strings.Contains(provision, `systemctl enable "luna-configure@$configure.service"`) {
		t.Errorf("packer does not enable luna-configure@gcp-mig or @aws-asg per cloud")
	}
	if !strings.Contains(readFile(t, "systemd/luna-configure@.service"), "\nExecStart="+packaging.LibDir+"/startup-%i.sh --image\n") {
		t.Errorf("luna-configure@.service does not run %s/startup-%%i.sh --image", packaging.LibDir)
	}
	for _, script := range []string{"scripts/startup-gcp-mig.sh", "scripts/startup-aws-asg.sh"} {
		if !strings.Contains(readFile(t, script), "\nRELEASE_RECORD=/var/lib/luna-release/release\n") {
			t.Errorf("%s does not keep its release record in /var/lib/luna-release/release", script)
		}
	}
	if !strings.Contains(provision, ">/var/lib/luna-release/release\n") {
		t.Errorf("packer/provision.sh does not record the package in /var/lib/luna-release/release")
	}
	for _, s := range regexp.MustCompile(`(?m)^(LUNA_[A-Z0-9_]+)=`).FindAllStringSubmatch(provision, -1) {
		if !settings[s[1]] {
			t.Errorf("packer/provision.sh sets %s, which luna --help does not know", s[1])
		}
	}
	for _, w := range []string{
		fmt.Sprintf("LUNA_API_HOST_PORT=127.0.0.1:%d", apiPort),
		fmt.Sprintf("LUNA_HEALTH_HOST_PORT=127.0.0.1:%d", healthPort),
		"systemctl disable " + path.Base(packaging.UnitPath), // the startup script enables it
	} {
		if !strings.Contains(provision, w) {
			t.Errorf("packer/provision.sh does not contain %q", w)
		}
	}

	// And the server answers /readyz on the health port once its startup
	// SQL has run: the path both health checks probe.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "10-t.sql"), []byte("CREATE TABLE t AS SELECT 42 AS answer;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	health := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := exec.CommandContext(ctx, luna,
		"--api-host-port", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--health-host-port", health,
		"--init-sql", dir)
	srv.Env = cleanEnv()
	var logs testenv.SyncBuffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Wait() }()
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://" + health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz on %s did not answer 200 within 60s (last: %v)\n%s", health, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := client.Get("http://" + health + "/no-such-path")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("the health port answers 200 on any path, so a wrong health check path would pass unnoticed")
	}
}
