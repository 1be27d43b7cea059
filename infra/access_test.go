package infra

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/lunadb/luna/internal/testenv"
)

// tofuUserDataSize renders the AWS module's user data template with
// OpenTofu itself (templatefile and base64gzip, as the module's locals do,
// in `tofu console`, which needs no provider), with the repository's
// startup script, the given init_sql and SSH keys and a real fleet's other
// settings, and returns the size EC2 counts: the decoded length of the
// base64gzip result.
func tofuUserDataSize(t *testing.T, initSQL string, keys []string) int {
	t.Helper()
	dir := t.TempDir()
	sqlFile := filepath.Join(dir, "init.sql")
	if err := os.WriteFile(sqlFile, []byte(initSQL), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "tofurc")
	if err := os.WriteFile(rc, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	q := strconv.Quote
	expr := fmt.Sprintf(`base64gzip(templatefile(%s, {
  startup_script = join("\n", [for l in split("\n", file(%s)) : l if startswith(l, "#!") || !startswith(trimspace(l), "#")]), release_url = "s3://luna-releases-eu-west-1/releases/luna_1.2.3_amd64.deb",
  release_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", passwd_ssm_parameter = "/luna/passwd",
  passwd_from = "", init_sql_b64 = base64encode(file(%s)), init_sql_from = "aws-ssm:/luna/init-sql",
  luna_env = "LUNA_API_HOST_PORT=0.0.0.0:7688\nLUNA_HEALTH_HOST_PORT=0.0.0.0:7689\nLUNA_MEMORY_LIMIT=80%%",
  ssm_agent = "yes", ssh_authorized_keys = %s,
  tls_from = "aws-secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:luna-tls-AbCdEf",
  tls_client_ca_from = "aws-secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:luna-client-ca-AbCdEf",
  users_from = "aws-secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:luna-users-AbCdEf" }))`,
		q(filepath.Join(testenv.RepoRoot(), "terraform/modules/aws-asg/user-data.sh.tftpl")), q(filepath.Join(testenv.RepoRoot(), "scripts/startup-aws-asg.sh")),
		q(sqlFile), q(strings.Join(keys, "\n")))
	// The console reads one expression a line.
	expr = strings.ReplaceAll(expr, "\n  ", " ")
	r := runStdin(t, cleanEnv("TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1"), dir, expr+"\n", tofu(t), "console")
	if r.err != nil {
		t.Fatalf("tofu console:\n%s", r)
	}
	out := strings.Trim(strings.TrimSpace(r.stdout), `"`)
	raw, err := base64.StdEncoding.DecodeString(out)
	if err != nil {
		t.Fatalf("tofu console did not print base64: %v\n%.300s", err, r.stdout)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("base64gzip gave no gzip data")
	}
	return len(raw)
}

// runStdin is run with input on the tool's standard input.
func runStdin(t *testing.T, env []string, dir, stdin, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = dir, env, strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return result{stdout.String(), stderr.String(), err}
}

// printable is n random printable ASCII characters: text that compresses
// as badly as text can.
func printable(n int, seed int64) string {
	r := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(' ' + r.Intn(95))
	}
	return string(b)
}

// The AWS module's user data, as OpenTofu compresses it, holds what the
// init_sql variable and the precondition promise next to the real startup
// script and two SSH keys: 7 KiB of any SQL and 12 KiB of typical SQL fit
// in EC2's 16384 bytes, and 16 KiB of incompressible SQL does not, so the
// precondition refuses it.
func TestAWSUserDataFits(t *testing.T) {
	typical, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy/aws/testdata/typical.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sql  string
		fits bool
	}{
		{"7 KiB of random text", printable(7*1024, 1), true},
		{"12 KiB of typical SQL", string(typical[:12*1024]), true},
		{"16 KiB of random text", printable(16*1024, 2), false},
	} {
		n := tofuUserDataSize(t, c.sql, testSSHKeys)
		t.Logf("%s: %d bytes gzip-compressed", c.name, n)
		if (n <= 16384) != c.fits {
			t.Errorf("%s: %d bytes compressed, fits = %v, want %v", c.name, n, n <= 16384, c.fits)
		}
	}
	// The figures are the ones the variable and the precondition state.
	m := parseModule(t, "terraform/modules/aws-asg")
	desc := literal(t, m.block(t, "variable", "init_sql"), "description").AsString()
	lt := m.block(t, "resource", "aws_launch_template", "luna")
	pre := m.text(t, lt, nested(one(t, lt, "lifecycle"), "precondition")[0], "error_message")
	for _, want := range []string{"at least 7 KiB", "12 KiB and more of typical SQL"} {
		if !strings.Contains(desc, want) || !strings.Contains(pre, want) {
			t.Errorf("init_sql's description or the precondition lacks %q", want)
		}
	}
}

// The rendered user data hands the access settings to the startup script
// under the names it reads.
func TestAWSUserDataAccessSettings(t *testing.T) {
	script := readFile(t, "scripts/startup-aws-asg.sh")
	for _, v := range []string{"LUNA_SSM_AGENT", "LUNA_SSH_AUTHORIZED_KEYS"} {
		if !strings.Contains(readFile(t, "terraform/modules/aws-asg/user-data.sh.tftpl"), "\nexport "+v+"='${") {
			t.Errorf("the user data does not export %s", v)
		}
		if !strings.Contains(script, "${"+v+":-}") {
			t.Errorf("scripts/startup-aws-asg.sh does not read %s", v)
		}
	}
	ud := renderUserData(t, map[string]cty.Value{
		"startup_script": cty.StringVal("#!/bin/sh\n"), "release_url": cty.StringVal("https://x/luna.deb"), "release_sha256": cty.StringVal("00"),
		"passwd_ssm_parameter": cty.StringVal(""), "passwd_from": cty.StringVal("none"), "init_sql_b64": cty.StringVal(""),
		"init_sql_from": cty.StringVal(""), "luna_env": cty.StringVal(""),
		"ssm_agent": cty.StringVal("no"), "ssh_authorized_keys": cty.StringVal(testSSHKeys[0]),
		"tls_from": cty.StringVal(""), "tls_client_ca_from": cty.StringVal(""), "users_from": cty.StringVal(""),
	})
	for _, want := range []string{"\nexport LUNA_SSM_AGENT='no'\n", "\nexport LUNA_SSH_AUTHORIZED_KEYS='" + testSSHKeys[0] + "'\n"} {
		if !strings.Contains(ud, want) {
			t.Errorf("user data lacks %q:\n%s", want, ud)
		}
	}
}

// examples/aws gives private subnets what Session Manager needs without a
// NAT gateway (AWS Systems Manager User Guide, "Use VPC endpoints"): the
// ssm, ssmmessages and ec2messages interface endpoints with private DNS
// and a security group admitting HTTPS from the VPC, besides the S3
// gateway endpoint the agent's package comes through.
func TestAWSExampleEndpoints(t *testing.T) {
	m := parseModule(t, "terraform/examples/aws")
	ep := m.block(t, "resource", "aws_vpc_endpoint", "interface")
	wantText(t, "interface endpoints", m.text(t, ep, ep, "for_each"),
		`var.create_endpoints ? toset(["ssm", "ssmmessages", "ec2messages", "secretsmanager"]) : toset([])`)
	wantText(t, "interface endpoint service", m.text(t, ep, ep, "service_name"), `"com.amazonaws.${var.region}.${each.value}"`)
	wantString(t, "interface endpoint type", literal(t, ep, "vpc_endpoint_type"), "Interface")
	if v := literal(t, ep, "private_dns_enabled"); !v.True() {
		t.Errorf("private_dns_enabled = %#v, want true", v)
	}
	wantText(t, "interface endpoint security group", m.text(t, ep, ep, "security_group_ids"), "[aws_security_group.endpoints[0].id]")
	rule := m.block(t, "resource", "aws_vpc_security_group_ingress_rule", "endpoints")
	wantNumber(t, "endpoint rule from_port", literal(t, rule, "from_port"), 443)
	wantNumber(t, "endpoint rule to_port", literal(t, rule, "to_port"), 443)
	wantString(t, "endpoint rule protocol", literal(t, rule, "ip_protocol"), "tcp")
	wantText(t, "endpoint rule source", m.text(t, rule, rule, "cidr_ipv4"), "data.aws_vpc.luna.cidr_block")
	s3 := m.block(t, "resource", "aws_vpc_endpoint", "s3")
	wantString(t, "s3 endpoint type", literal(t, s3, "vpc_endpoint_type"), "Gateway")
	mod := m.block(t, "module", "luna")
	wantText(t, "example ssm_access", m.text(t, mod, mod, "ssm_access"), "true")
	wantText(t, "example ssh_authorized_keys", m.text(t, mod, mod, "ssh_authorized_keys"), "var.ssh_authorized_keys")
	wantText(t, "example depends_on", m.text(t, mod, mod, "depends_on"), "[aws_vpc_endpoint.s3, aws_vpc_endpoint.interface]")
}
