package infra

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/lunadb/luna/internal/testenv"
)

// module is a parsed Terraform module: its blocks with the source they came
// from, for assertions on expressions as written.
type module struct {
	dir    string
	blocks []*hclsyntax.Block
	src    map[*hclsyntax.Block][]byte
}

func parseModule(t *testing.T, rel string) *module {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(), rel)
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s: %v", rel, err)
	}
	p := hclparse.NewParser()
	m := &module{dir: dir, src: map[*hclsyntax.Block][]byte{}}
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("parsing %s: %s", f, diags)
		}
		for _, b := range file.Body.(*hclsyntax.Body).Blocks {
			m.blocks = append(m.blocks, b)
			m.src[b] = file.Bytes
		}
	}
	return m
}

// block returns the one top-level block of the type and labels.
func (m *module) block(t *testing.T, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	for _, b := range m.blocks {
		if b.Type == typ && strings.Join(b.Labels, ".") == strings.Join(labels, ".") {
			return b
		}
	}
	t.Fatalf("%s: no %s %q", m.dir, typ, strings.Join(labels, "."))
	return nil
}

// nested returns the blocks of a type directly inside b.
func nested(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, n := range b.Body.Blocks {
		if n.Type == typ {
			out = append(out, n)
		}
	}
	return out
}

func one(t *testing.T, b *hclsyntax.Block, typ string) *hclsyntax.Block {
	t.Helper()
	bs := nested(b, typ)
	if len(bs) != 1 {
		t.Fatalf("%s %s: want one %s block, have %d", b.Type, strings.Join(b.Labels, "."), typ, len(bs))
	}
	return bs[0]
}

// text returns the source of attribute name in b (whose top-level block is
// top), or fails.
func (m *module) text(t *testing.T, top, b *hclsyntax.Block, name string) string {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	if !ok {
		t.Fatalf("%s %s: no attribute %s", b.Type, strings.Join(b.Labels, "."), name)
	}
	r := a.Expr.Range()
	return string(m.src[top][r.Start.Byte:r.End.Byte])
}

// literal evaluates attribute name in b, which must be a constant.
func literal(t *testing.T, b *hclsyntax.Block, name string) cty.Value {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	if !ok {
		t.Fatalf("%s %s: no attribute %s", b.Type, strings.Join(b.Labels, "."), name)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s %s: %s is not a constant: %s", b.Type, strings.Join(b.Labels, "."), name, diags)
	}
	return v
}

func wantText(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func wantString(t *testing.T, what string, got cty.Value, want string) {
	t.Helper()
	if got.Type() != cty.String || got.AsString() != want {
		t.Errorf("%s = %#v, want %q", what, got, want)
	}
}

func TestAWSModuleContract(t *testing.T) {
	m := parseModule(t, "terraform/modules/aws-asg")

	// Defaults of the ports: the packaged luna.env's.
	wantNumber(t, "variable api_port default", literal(t, m.block(t, "variable", "api_port"), "default"), 7688)
	wantNumber(t, "variable health_port default", literal(t, m.block(t, "variable", "health_port"), "default"), 7689)

	// Launch template: IMDSv2 only, the instance profile, the user data.
	lt := m.block(t, "resource", "aws_launch_template", "luna")
	md := one(t, lt, "metadata_options")
	wantString(t, "metadata_options.http_tokens", literal(t, md, "http_tokens"), "required")
	wantString(t, "metadata_options.http_endpoint", literal(t, md, "http_endpoint"), "enabled")
	wantNumber(t, "metadata_options.http_put_response_hop_limit", literal(t, md, "http_put_response_hop_limit"), 1)
	wantText(t, "launch template image_id", m.text(t, lt, lt, "image_id"), "var.ami_id")
	// User data goes gzip-compressed: cloud-init unpacks it, and so does
	// the startup script reading it back on the Luna AMI.
	wantText(t, "launch template user_data", m.text(t, lt, lt, "user_data"), "local.user_data_b64")
	wantText(t, "launch template instance profile", m.text(t, lt, one(t, lt, "iam_instance_profile"), "arn"), "aws_iam_instance_profile.luna.arn")
	wantText(t, "launch template security groups", m.text(t, lt, lt, "vpc_security_group_ids"), "[aws_security_group.luna.id]")

	// API ingress from the given CIDRs on the API port.
	api := m.block(t, "resource", "aws_vpc_security_group_ingress_rule", "api")
	wantText(t, "api rule for_each", m.text(t, api, api, "for_each"), "toset(var.allowed_cidrs)")
	wantText(t, "api rule cidr", m.text(t, api, api, "cidr_ipv4"), "each.value")
	wantText(t, "api rule from_port", m.text(t, api, api, "from_port"), "var.api_port")
	wantText(t, "api rule to_port", m.text(t, api, api, "to_port"), "var.api_port")
	wantString(t, "api rule protocol", literal(t, api, "ip_protocol"), "tcp")
	wantText(t, "api rule group", m.text(t, api, api, "security_group_id"), "aws_security_group.luna.id")
	health := m.block(t, "resource", "aws_vpc_security_group_ingress_rule", "health")
	wantText(t, "health rule from_port", m.text(t, health, health, "from_port"), "var.health_port")

	// Target group: HTTP /readyz on the health port, traffic on the API port.
	tg := m.block(t, "resource", "aws_lb_target_group", "luna")
	hc := one(t, tg, "health_check")
	wantString(t, "target group health_check.path", literal(t, hc, "path"), "/readyz")
	wantString(t, "target group health_check.protocol", literal(t, hc, "protocol"), "HTTP")
	wantString(t, "target group health_check.matcher", literal(t, hc, "matcher"), "200")
	wantText(t, "target group health_check.port", m.text(t, tg, hc, "port"), "tostring(var.health_port)")
	wantText(t, "target group port", m.text(t, tg, tg, "port"), "var.api_port")
	wantString(t, "target group protocol", literal(t, tg, "protocol"), "TCP")
	lb := m.block(t, "resource", "aws_lb", "luna")
	if v := literal(t, lb, "internal"); !v.True() {
		t.Errorf("aws_lb.luna internal = %#v, want true", v)
	}
	wantString(t, "load balancer type", literal(t, lb, "load_balancer_type"), "network")
	ln := m.block(t, "resource", "aws_lb_listener", "luna")
	wantText(t, "listener port", m.text(t, ln, ln, "port"), "var.api_port")
	wantText(t, "listener target", m.text(t, ln, one(t, ln, "default_action"), "target_group_arn"), "aws_lb_target_group.luna[0].arn")

	// Group: across the subnets, ELB health checks, the template's latest
	// version, rolled by an instance refresh.
	asg := m.block(t, "resource", "aws_autoscaling_group", "luna")
	wantString(t, "health_check_type", literal(t, asg, "health_check_type"), "ELB")
	wantText(t, "vpc_zone_identifier", m.text(t, asg, asg, "vpc_zone_identifier"), "var.subnet_ids")
	wantText(t, "target_group_arns", m.text(t, asg, asg, "target_group_arns"), "concat(aws_lb_target_group.luna[*].arn, var.target_group_arns)")
	tmpl := one(t, asg, "launch_template")
	wantText(t, "launch_template.id", m.text(t, asg, tmpl, "id"), "aws_launch_template.luna.id")
	wantText(t, "launch_template.version", m.text(t, asg, tmpl, "version"), "aws_launch_template.luna.latest_version")
	ir := one(t, asg, "instance_refresh")
	wantString(t, "instance_refresh.strategy", literal(t, ir, "strategy"), "Rolling")
	one(t, ir, "preferences")

	// IAM: ssm:GetParameter on the password and startup SQL parameters,
	// secretsmanager:GetSecretValue on such secrets, S3 reads on the buckets
	// and the release, kms:Decrypt only when a key is given.
	doc := m.block(t, "data", "aws_iam_policy_document", "luna")
	statements := map[string]string{} // sid -> for_each => actions on resources, as written
	for _, d := range nested(doc, "dynamic") {
		c := one(t, d, "content")
		sid := literal(t, c, "sid").AsString()
		statements[sid] = m.text(t, doc, d, "for_each") + " => " + m.text(t, doc, c, "actions") + " on " + m.text(t, doc, c, "resources")
	}
	for sid, want := range map[string]string{
		"ReadParameters": `length(local.parameter_arns) == 0 ? [] : [local.parameter_arns] => ["ssm:GetParameter"] on statement.value`,
		"ReadSecrets":    `length(local.secret_arns) == 0 ? [] : [local.secret_arns] => ["secretsmanager:GetSecretValue"] on statement.value`,
		"ReadObjects":    `length(var.buckets) == 0 ? [] : [1] => ["s3:GetObject"] on [for b in var.buckets : "arn:${data.aws_partition.current.partition}:s3:::${b}/*"]`,
		"ReadRelease":    `local.release_object_arn == null ? [] : [local.release_object_arn] => ["s3:GetObject"] on [statement.value]`,
		"DecryptSecrets": `var.passwd_kms_key_arn == null ? [] : [var.passwd_kms_key_arn] => ["kms:Decrypt"] on [statement.value]`,
	} {
		if got := statements[sid]; got != want {
			t.Errorf("policy statement %s: %q, want %q", sid, got, want)
		}
	}
	locals := m.block(t, "locals")
	for name, param := range map[string]string{"passwd_parameter_arn": "passwd_ssm_parameter", "init_sql_parameter_arn": "init_sql_ssm_parameter"} {
		if got := m.text(t, locals, locals, name); !strings.Contains(got, `"arn:%s:ssm:%s:%s:parameter/%s"`) || !strings.Contains(got, `trimprefix(var.`+param+`, "/")`) {
			t.Errorf("%s does not build the parameter's ARN: %s", name, got)
		}
	}
	wantText(t, "parameter_arns", m.text(t, locals, locals, "parameter_arns"), "compact([local.passwd_parameter_arn, local.init_sql_parameter_arn])")
	wantText(t, "secret_arns", m.text(t, locals, locals, "secret_arns"), "compact([var.passwd_secret_arn, var.init_sql_secret_arn, var.tls_secret_arn, var.tls_client_ca_secret_arn, var.users_secret_arn])")
	if got := m.text(t, locals, locals, "release_object_arn"); !strings.Contains(got, `startswith(var.release_url, "s3://")`) || !strings.Contains(got, `trimprefix(var.release_url, "s3://")`) {
		t.Errorf("release_object_arn does not name the s3:// release: %s", got)
	}
	role := m.block(t, "resource", "aws_iam_role_policy", "luna")
	wantText(t, "role policy", m.text(t, role, role, "policy"), "data.aws_iam_policy_document.luna.json")
	profile := m.block(t, "resource", "aws_iam_instance_profile", "luna")
	wantText(t, "instance profile role", m.text(t, profile, profile, "role"), "aws_iam_role.luna.name")

	// Session Manager: the AWS managed policy for the agent (AWS Systems
	// Manager User Guide, "Configure instance permissions required for
	// Systems Manager": AmazonSSMManagedInstanceCore), behind ssm_access,
	// on by default; the nodes boot only once the role can read the
	// password and register.
	ssm := m.block(t, "resource", "aws_iam_role_policy_attachment", "ssm")
	wantText(t, "ssm attachment count", m.text(t, ssm, ssm, "count"), "var.ssm_access ? 1 : 0")
	wantText(t, "ssm attachment role", m.text(t, ssm, ssm, "role"), "aws_iam_role.luna.name")
	wantText(t, "ssm attachment policy", m.text(t, ssm, ssm, "policy_arn"), `"arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"`)
	if v := literal(t, m.block(t, "variable", "ssm_access"), "default"); !v.True() {
		t.Errorf("ssm_access defaults to %#v, want true", v)
	}
	if v := literal(t, m.block(t, "variable", "ssh_authorized_keys"), "default"); v.LengthInt() != 0 {
		t.Errorf("ssh_authorized_keys defaults to %#v, want []", v)
	}
	wantText(t, "launch template depends_on", m.text(t, lt, lt, "depends_on"), "[aws_iam_role_policy.luna, aws_iam_role_policy_attachment.ssm]")

	wantText(t, "user_data_b64", m.text(t, locals, locals, "user_data_b64"), "base64gzip(local.user_data)")
	wantText(t, "user_data_fits", m.text(t, locals, locals, "user_data_fits"), "local.user_data_bytes <= 16384")
	// User data: the template gets exactly the variables it uses, the
	// startup script is the repository's without its comment lines.
	if got := strings.Join(strings.Fields(m.text(t, locals, locals, "startup_script")), " "); got != `var.startup_script != null ? var.startup_script : join("\n", [ `+
		`for l in split("\n", file("${path.module}/../../../scripts/startup-aws-asg.sh")) : l if startswith(l, "#!") || !startswith(trimspace(l), "#") ])` {
		t.Errorf("startup_script = %s", got)
	}
	ud := locals.Body.Attributes["user_data"].Expr
	call, ok := ud.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "templatefile" || len(call.Args) != 2 {
		t.Fatalf("local.user_data is not templatefile(path, vars)")
	}
	obj, ok := call.Args[1].(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatalf("templatefile's variables are not an object constructor")
	}
	passed := map[string]string{}
	for _, item := range obj.Items {
		k := hcl.ExprAsKeyword(item.KeyExpr)
		r := item.ValueExpr.Range()
		passed[k] = string(m.src[locals][r.Start.Byte:r.End.Byte])
	}
	wantText(t, "init_sql_b64", passed["init_sql_b64"], "base64encode(var.init_sql)")
	wantText(t, "release_url", passed["release_url"], "var.release_url")
	wantText(t, "release_sha256", passed["release_sha256"], "var.release_sha256")
	wantText(t, "startup_script", passed["startup_script"], "local.startup_script")
	wantText(t, "passwd_ssm_parameter", passed["passwd_ssm_parameter"], `var.passwd_ssm_parameter == null ? "" : var.passwd_ssm_parameter`)
	wantText(t, "passwd_from", passed["passwd_from"], "local.passwd_from")
	wantText(t, "init_sql_from", passed["init_sql_from"], "local.init_sql_from")
	wantText(t, "local.passwd_from", m.text(t, locals, locals, "passwd_from"),
		`var.passwd_secret_arn != null ? "aws-secretsmanager:${var.passwd_secret_arn}" : var.passwd_ssm_parameter != null ? "" : "none"`)
	wantText(t, "luna_env", passed["luna_env"], "local.luna_env")
	wantText(t, "ssm_agent", passed["ssm_agent"], `var.ssm_access ? "yes" : "no"`)
	wantText(t, "ssh_authorized_keys", passed["ssh_authorized_keys"], `join("\n", var.ssh_authorized_keys)`)
	if got := m.text(t, locals, locals, "luna_env"); !strings.Contains(got, `"LUNA_API_HOST_PORT=0.0.0.0:${var.api_port}", "LUNA_HEALTH_HOST_PORT=0.0.0.0:${var.health_port}"`) {
		t.Errorf("luna_env does not set the module's ports: %s", got)
	}
	tpl := parseUserData(t)
	var used []string
	for _, tr := range tpl.Variables() {
		used = append(used, tr.RootName())
	}
	sort.Strings(used)
	used = dedupe(used)
	var keys []string
	for k := range passed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(used, ",") != strings.Join(keys, ",") {
		t.Errorf("user-data.sh.tftpl uses %v, templatefile passes %v", used, keys)
	}
}

func wantNumber(t *testing.T, what string, got cty.Value, want int64) {
	t.Helper()
	if got.Type() != cty.Number || !got.Equals(cty.NumberIntVal(want)).True() {
		t.Errorf("%s = %#v, want %d", what, got, want)
	}
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func parseUserData(t *testing.T) hclsyntax.Expression {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "terraform/modules/aws-asg/user-data.sh.tftpl")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tpl, diags := hclsyntax.ParseTemplate(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing %s: %s", path, diags)
	}
	return tpl
}

// renderUserData evaluates the user data template as templatefile does.
func renderUserData(t *testing.T, vars map[string]cty.Value) string {
	t.Helper()
	v, diags := parseUserData(t).Value(&hcl.EvalContext{Variables: vars})
	if diags.HasErrors() {
		t.Fatalf("rendering user data: %s", diags)
	}
	return v.AsString()
}

// The rendered user data runs the startup script with the four settings in
// its environment. It runs for real, as root, in a private mount namespace
// whose /usr/local/lib is a fresh tmpfs, with a stand-in startup script that
// records what it was given.
func TestAWSUserDataRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (for a private mount namespace); CI runs as root")
	}
	out := filepath.Join(t.TempDir(), "env")
	initSQL := "CREATE TABLE t AS SELECT 42 AS answer;\n-- it's 'quoted'\n"
	stub := "#!/bin/bash\nset -eu\n{\n  echo \"url=$LUNA_RELEASE_URL\"\n  echo \"sha=$LUNA_RELEASE_SHA256\"\n  echo \"ssm=$LUNA_PASSWD_SSM_PARAMETER\"\n  echo \"from=$LUNA_PASSWD_FROM\"\n  echo \"sqlfrom=$LUNA_INIT_SQL_FROM\"\n  echo \"env=$LUNA_ENV\"\n  echo \"agent=$LUNA_SSM_AGENT\"\n  echo \"keys=$LUNA_SSH_AUTHORIZED_KEYS\"\n  echo \"tls=$LUNA_TLS_FROM ca=$LUNA_TLS_CLIENT_CA_FROM users=$LUNA_USERS_FROM\"\n  echo \"self=$0\"\n  printf %s \"$LUNA_INIT_SQL_B64\" | base64 -d\n} >" + out + "\n"
	ud := renderUserData(t, map[string]cty.Value{
		"startup_script":       cty.StringVal(stub),
		"release_url":          cty.StringVal("https://releases.example.com/luna_1.2.3_amd64.deb"),
		"release_sha256":       cty.StringVal(strings.Repeat("ab", 32)),
		"passwd_ssm_parameter": cty.StringVal("/luna/passwd"),
		"passwd_from":          cty.StringVal(""),
		"init_sql_from":        cty.StringVal("aws-ssm:/luna/init-sql"),
		"luna_env":             cty.StringVal("LUNA_API_HOST_PORT=0.0.0.0:7688\nLUNA_MEMORY_LIMIT=80%"),
		"init_sql_b64":         cty.StringVal(base64.StdEncoding.EncodeToString([]byte(initSQL))),
		"ssm_agent":            cty.StringVal("yes"),
		"ssh_authorized_keys":  cty.StringVal(testSSHKeys[0] + "\n" + testSSHKeys[1]),
		"tls_from":             cty.StringVal("aws-secretsmanager:luna-tls"),
		"tls_client_ca_from":   cty.StringVal(""),
		"users_from":           cty.StringVal("aws-ssm:/luna/users"),
	})
	script := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(script, []byte(ud), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n user data: %v\n%s\n%s", err, b, ud)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "bash", "-c",
		`mount -t tmpfs tmpfs /usr/local/lib && exec "$1"`, "user-data", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("running user data: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "url=https://releases.example.com/luna_1.2.3_amd64.deb\nsha=" + strings.Repeat("ab", 32) +
		"\nssm=/luna/passwd\nfrom=\nsqlfrom=aws-ssm:/luna/init-sql\nenv=LUNA_API_HOST_PORT=0.0.0.0:7688\nLUNA_MEMORY_LIMIT=80%\nagent=yes\nkeys=" + testSSHKeys[0] + "\n" + testSSHKeys[1] +
		"\ntls=aws-secretsmanager:luna-tls ca= users=aws-ssm:/luna/users" +
		"\nself=/usr/local/lib/luna/startup-aws-asg.sh\n" + initSQL
	if string(got) != want {
		t.Fatalf("startup script saw:\n%s\nwant:\n%s", got, want)
	}
}

// testSSHKeys are OpenSSH public keys as ssh-keygen writes them.
var testSSHKeys = []string{
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeTMeXba6g45lEQlFJurzL44thKbnq+UbtlraoSfw0G alice@laptop",
	"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKI8t8uR1Q3z/Yg3wddPMR9aLz5U5DX0mufbzHbHS8ZV96WcbaCSokOq7m/hT2A2vUeb1vj7bWZc3Esis2BWMKs= carol",
}

// validationFuncs are the Terraform functions the modules' validations
// use, with Terraform's semantics.
var validationFuncs = map[string]function.Function{
	"can":       tryfunc.CanFunc,
	"regex":     stdlib.RegexFunc,
	"floor":     stdlib.FloorFunc,
	"contains":  stdlib.ContainsFunc,
	"trimspace": stdlib.TrimSpaceFunc,
	"length": function.New(&function.Spec{
		Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true}},
		Type:   function.StaticReturnType(cty.Number),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if args[0].Type() == cty.String {
				return stdlib.Strlen(args[0])
			}
			return args[0].Length(), nil
		},
	}),
	"alltrue": function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for it := args[0].ElementIterator(); it.Next(); {
				if _, v := it.Element(); !v.True() {
					return cty.False, nil
				}
			}
			return cty.True, nil
		},
	}),
	"cidrhost": function.New(&function.Spec{
		Params: []function.Parameter{{Name: "prefix", Type: cty.String}, {Name: "hostnum", Type: cty.Number}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p, err := netip.ParsePrefix(args[0].AsString())
			if err != nil {
				return cty.NilVal, fmt.Errorf("invalid CIDR expression: %w", err)
			}
			return cty.StringVal(p.Masked().Addr().String()), nil
		},
	}),
}

// validate evaluates every validation of variable name in m with value and
// returns the error messages of the failing ones.
func validate(t *testing.T, m *module, name string, value cty.Value) []string {
	t.Helper()
	v := m.block(t, "variable", name)
	rules := nested(v, "validation")
	if len(rules) == 0 {
		t.Fatalf("variable %s has no validation", name)
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{name: value})},
		Functions: validationFuncs,
	}
	var failed []string
	for _, r := range rules {
		ok, diags := r.Body.Attributes["condition"].Expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("variable %s: evaluating its condition with %#v: %s", name, value, diags)
		}
		if !ok.True() {
			msg, _ := r.Body.Attributes["error_message"].Expr.Value(nil)
			failed = append(failed, msg.AsString())
		}
	}
	return failed
}

func strs(s ...string) cty.Value {
	if len(s) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	var vs []cty.Value
	for _, x := range s {
		vs = append(vs, cty.StringVal(x))
	}
	return cty.ListVal(vs)
}

// The AWS module's validations, evaluated as Terraform would: good values
// pass, malformed ones are refused with their message.
func TestAWSVariableValidation(t *testing.T) {
	m := parseModule(t, "terraform/modules/aws-asg")
	cases := []struct {
		variable string
		value    cty.Value
		fail     string // substring of the expected message; empty: must pass
	}{
		{"allowed_cidrs", strs("10.0.0.0/8", "192.168.1.0/24"), ""},
		{"allowed_cidrs", strs(), ""},
		{"allowed_cidrs", strs("10.0.0.0/33"), "IPv4 CIDR"},
		{"allowed_cidrs", strs("10.0.0.1"), "IPv4 CIDR"},
		{"allowed_cidrs", strs("everyone"), "IPv4 CIDR"},
		{"allowed_cidrs", strs("2001:db8::/32"), "IPv4 CIDR"},
		{"health_check_cidrs", strs("10.0.0.0/16"), ""},
		{"health_check_cidrs", strs("300.0.0.0/8"), "IPv4 CIDR"},
		{"api_port", cty.NumberIntVal(7688), ""},
		{"api_port", cty.NumberIntVal(0), "1 to 65535"},
		{"api_port", cty.NumberIntVal(65536), "1 to 65535"},
		{"api_port", cty.NumberFloatVal(7688.5), "1 to 65535"},
		{"health_port", cty.NumberIntVal(70000), "1 to 65535"},
		{"buckets", strs("luna-data", "luna.data.2"), ""},
		{"buckets", strs(""), "bucket names"},
		{"buckets", strs("s3://luna-data"), "bucket names"},
		{"buckets", strs("Luna_Data"), "bucket names"},
		{"instance_type", cty.StringVal("r6i.xlarge"), ""},
		{"instance_type", cty.StringVal("u-6tb1.metal"), ""},
		{"instance_type", cty.StringVal("r6i xlarge"), "instance type"},
		{"instance_type", cty.StringVal(""), "instance type"},
		{"subnet_ids", strs("subnet-0123456789abcdef0"), ""},
		{"subnet_ids", strs(), "at least one subnet"},
		{"subnet_ids", strs("subnet-xyz"), "at least one subnet"},
		{"vpc_id", cty.StringVal("vpc-0123abcd"), ""},
		{"vpc_id", cty.StringVal("0123abcd"), "VPC ID"},
		{"ami_id", cty.StringVal("ami-0123456789abcdef0"), ""},
		{"ami_id", cty.StringVal("debian-12"), "AMI ID"},
		{"passwd_ssm_parameter", cty.StringVal("/luna/passwd"), ""},
		{"passwd_ssm_parameter", cty.NullVal(cty.String), ""},
		{"passwd_ssm_parameter", cty.StringVal("/luna/pass word"), "SSM parameter name"},
		{"passwd_kms_key_arn", cty.StringVal("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"), ""},
		{"passwd_kms_key_arn", cty.StringVal("alias/luna"), "KMS key ARN"},
		{"ssh_authorized_keys", strs(testSSHKeys...), ""},
		{"ssh_authorized_keys", strs(), ""},
		{"ssh_authorized_keys", strs("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeTMeXba6g45lEQlFJurzL44thKbnq+UbtlraoSfw0G"), ""},
		{"ssh_authorized_keys", strs(`command="/bin/sh" ` + testSSHKeys[0]), "OpenSSH public keys"},
		{"ssh_authorized_keys", strs(testSSHKeys[0] + "\n" + testSSHKeys[1]), "OpenSSH public keys"},
		{"ssh_authorized_keys", strs(testSSHKeys[0] + "'; reboot; '"), "OpenSSH public keys"},
		{"ssh_authorized_keys", strs("ssh-dss AAAAB3NzaC1kc3MAAACBAONogFg5b367CvAAK0F7uwJ6Pwu2hzZLLxHoOYPkRZ3w dsa"), "OpenSSH public keys"},
		{"ssh_authorized_keys", strs("-----BEGIN OPENSSH PRIVATE KEY-----"), "OpenSSH public keys"},
		{"release_url", cty.StringVal(""), "https:// or s3://BUCKET/KEY URL"},
		{"release_url", cty.StringVal("https://releases.example.com/luna_1.0.0_amd64.deb"), ""},
		{"release_url", cty.StringVal("http://releases.example.com/luna.deb"), "https:// or s3://BUCKET/KEY URL"},
		{"release_url", cty.StringVal("https://x/'; rm -rf /'"), "https:// or s3://BUCKET/KEY URL"},
		{"release_url", cty.StringVal("s3://luna-releases/v1/luna_1.0.0_amd64.deb"), ""},
		{"release_url", cty.StringVal("s3://luna-releases"), "s3://BUCKET/KEY"},
		{"release_url", cty.StringVal("gs://luna-releases/luna.deb"), "https:// or s3://"},
		{"passwd_secret_arn", cty.StringVal("arn:aws:secretsmanager:eu-west-1:123456789012:secret:luna/passwd-AbCdEf"), ""},
		{"passwd_secret_arn", cty.NullVal(cty.String), ""},
		{"passwd_secret_arn", cty.StringVal("luna/passwd"), "Secrets Manager secret ARN"},
		{"init_sql_secret_arn", cty.StringVal("arn:aws:secretsmanager:eu-west-1:123456789012:secret:luna/init-sql-AbCdEf"), ""},
		{"init_sql_secret_arn", cty.StringVal("arn:aws:ssm:eu-west-1:123456789012:parameter/x"), "Secrets Manager secret ARN"},
		{"tls_secret_arn", cty.StringVal("arn:aws:secretsmanager:eu-west-1:123456789012:secret:luna/tls-AbCdEf"), ""},
		{"tls_secret_arn", cty.StringVal("/luna/tls"), "Secrets Manager secret ARN"},
		{"tls_client_ca_secret_arn", cty.StringVal("arn:aws:ssm:eu-west-1:123456789012:parameter/ca"), "Secrets Manager secret ARN"},
		{"users_secret_arn", cty.StringVal("arn:aws:secretsmanager:eu-west-1:123456789012:secret:luna/users-AbCdEf"), ""},
		{"users_secret_arn", cty.StringVal("luna-users"), "Secrets Manager secret ARN"},
		{"extra_env", cty.MapVal(map[string]cty.Value{"LUNA_USERS_FILE": cty.StringVal("/tmp/u")}), "TLS and users settings"},
		{"init_sql_ssm_parameter", cty.StringVal("/luna/init-sql"), ""},
		{"init_sql_ssm_parameter", cty.StringVal("/luna/init sql"), "SSM parameter name"},
		{"release_sha256", cty.StringVal(strings.Repeat("0f", 32)), ""},
		{"release_sha256", cty.StringVal("abc"), "64 lowercase hex"},
		{"release_sha256", cty.StringVal(""), "64 lowercase hex"},
		{"extra_env", cty.MapVal(map[string]cty.Value{"LUNA_MEMORY_LIMIT": cty.StringVal("80%")}), ""},
		{"extra_env", cty.MapValEmpty(cty.String), ""},
		{"extra_env", cty.MapVal(map[string]cty.Value{"LUNA_PASSWD": cty.StringVal("x")}), "other than the password"},
		{"extra_env", cty.MapVal(map[string]cty.Value{"LUNA_API_HOST_PORT": cty.StringVal(":1")}), "other than the password"},
		{"extra_env", cty.MapVal(map[string]cty.Value{"PATH": cty.StringVal("/tmp")}), "LUNA_* settings"},
		{"extra_env", cty.MapVal(map[string]cty.Value{"LUNA_LOG_LEVEL": cty.StringVal("debug'; reboot; '")}), "without single quotes"},
		{"extra_env", cty.MapVal(map[string]cty.Value{"LUNA_LOG_LEVEL": cty.StringVal("debug\nLUNA_PASSWD=x")}), "one-line values"},
		{"release_sha256", cty.StringVal(strings.Repeat("0F", 32)), "64 lowercase hex"},
		{"root_volume_size_gb", cty.NumberIntVal(4), "8 to 16384"},
		{"name", cty.StringVal("luna-prod"), ""},
		{"name", cty.StringVal("1luna"), "starting with a letter"},
		{"min_size", cty.NumberIntVal(-1), "0 or more"},
		{"max_size", cty.NumberIntVal(0), "1 to 1000"},
		{"health_check_grace_period", cty.NumberIntVal(-5), "0 to 7200"},
	}
	for _, c := range cases {
		failed := validate(t, m, c.variable, c.value)
		switch {
		case c.fail == "" && len(failed) > 0:
			t.Errorf("%s = %#v refused: %v", c.variable, c.value, failed)
		case c.fail != "" && len(failed) == 0:
			t.Errorf("%s = %#v accepted, want refusal %q", c.variable, c.value, c.fail)
		case c.fail != "" && !strings.Contains(strings.Join(failed, "\n"), c.fail):
			t.Errorf("%s = %#v refused with %v, want %q", c.variable, c.value, failed, c.fail)
		}
	}
	// Every variable is typed and described, and every validated input
	// above is one the module declares.
	for _, b := range m.blocks {
		if b.Type != "variable" {
			continue
		}
		if _, ok := b.Body.Attributes["type"]; !ok {
			t.Errorf("variable %s has no type", b.Labels[0])
		}
		if d, ok := b.Body.Attributes["description"]; !ok {
			t.Errorf("variable %s has no description", b.Labels[0])
		} else if v, _ := d.Expr.Value(nil); v.IsNull() || len(v.AsString()) < 10 {
			t.Errorf("variable %s has no real description", b.Labels[0])
		}
	}
}

// The startup script without its comment lines, as the module puts it in
// the user data, defines the same functions and variables: no line that
// starts with # is inside a multi-line string. bash's declare -f prints
// definitions without comments, so the two must print the same.
func TestAWSStartupScriptWithoutComments(t *testing.T) {
	full := readFile(t, "scripts/startup-aws-asg.sh")
	var kept []string
	for _, l := range strings.Split(full, "\n") {
		if strings.HasPrefix(l, "#!") || !strings.HasPrefix(strings.TrimSpace(l), "#") {
			kept = append(kept, l)
		}
	}
	stripped := filepath.Join(t.TempDir(), "startup.sh")
	if err := os.WriteFile(stripped, []byte(strings.Join(kept, "\n")), 0o755); err != nil {
		t.Fatal(err)
	}
	// Everything up to the settings: the definitions, without the lock.
	definitions := func(path string) string {
		cmd := exec.Command("bash", "-c", `f=$1; set --; source <(sed '/^url=\${LUNA_RELEASE_URL/,$d' "$f" | grep -v '^flock 9\|^exec 9>'); declare -f`, "defs", path)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sourcing %s: %v\n%s", path, err, b)
		}
		return string(b)
	}
	a, b := definitions(filepath.Join(testenv.RepoRoot(), "scripts/startup-aws-asg.sh")), definitions(stripped)
	if a != b {
		t.Errorf("without comments the startup script defines other functions")
	}
	if n := strings.Count(a, " () \n"); n < 20 {
		t.Errorf("only %d functions defined: the comparison did not see the script", n)
	}
}
