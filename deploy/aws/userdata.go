package aws

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// settingsMarker opens the block of settings luna-deploy puts at the top
// of the user data; update reads them back from there.
const settingsMarker = "# Settings added by luna-deploy."

// Settings of the startup script (scripts/startup-aws-asg.sh) for operator
// access.
const (
	// SSMAgentSetting "yes" makes the script install amazon-ssm-agent
	// when the AMI lacks it (Debian's do), for SSH through Session
	// Manager.
	SSMAgentSetting = "LUNA_SSM_AGENT"
	// SSHKeysSetting holds OpenSSH public keys, one a line, which the
	// script puts in the login user's ~/.ssh/authorized_keys.
	SSHKeysSetting = "LUNA_SSH_AUTHORIZED_KEYS"
)

// userData is the startup script with the settings exported before it;
// settings alone when there is no script (a Luna AMI reads them).
func (c *Config) userData() string {
	// Session Manager, the way in to private nodes, needs the agent:
	// installed unless a --setting says otherwise.
	settings := map[string]string{SSMAgentSetting: "yes"}
	for k, v := range c.Settings {
		settings[k] = v
	}
	if len(c.SSHAuthorizedKeys) > 0 {
		settings[SSHKeysSetting] = strings.Join(c.SSHAuthorizedKeys, "\n")
	}
	if c.PasswdFrom != "" {
		settings["LUNA_PASSWD_FROM"] = c.PasswdFrom
	}
	return joinUserData(settings, c.UserData)
}

// gzipUserData compresses user data as it is sent: cloud-init unpacks gzip
// user data itself (and so does the startup script reading it back on the
// Luna AMI), which makes the startup script and its settings fit in what
// EC2 takes. The output depends on the input alone (no time stamp), so the
// same settings give the same launch template data.
func gzipUserData(ud string) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // a valid level: no error
	_, _ = w.Write([]byte(ud))                            // a bytes.Buffer does not fail
	_ = w.Close()
	return b.Bytes()
}

// encodeUserData is the user data field of a launch template: base64 of
// the gzip-compressed user data.
func encodeUserData(ud string) string {
	return base64.StdEncoding.EncodeToString(gzipUserData(ud))
}

// decodeUserData reads a launch template's user data field: base64 of
// gzip-compressed user data, or of plain user data as older releases of
// luna-deploy and the EC2 console write it.
func decodeUserData(field string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(field)
	if err != nil {
		return "", fmt.Errorf("reading the launch template's user data: not base64: %w", err)
	}
	if !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		return string(raw), nil
	}
	r, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("reading the launch template's user data: %w", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("reading the launch template's gzip-compressed user data: %w", err)
	}
	return string(plain), nil
}

// UserDataRoom says what fits in EC2's limit next to the repository's
// startup script; TestUserDataRoom measures it.
const UserDataRoom = "next to scripts/startup-aws-asg.sh at least 7 KiB of startup SQL fits, 12 KiB and more of typical SQL (it compresses)"

// checkUserDataSize applies EC2's limit to the user data as sent, which is
// gzip-compressed: what counts is the compressed size.
func checkUserDataSize(ud string) error {
	n := len(gzipUserData(ud))
	if n <= UserDataLimit {
		return nil
	}
	settings, _ := splitUserData(ud)
	sql, _ := base64.StdEncoding.DecodeString(settings["LUNA_INIT_SQL_B64"])
	return fmt.Errorf("the user data is %d bytes gzip-compressed (%d before: the startup script, the settings and %d bytes of startup SQL in LUNA_INIT_SQL_B64); "+
		"EC2 takes at most %d bytes of user data, and %s: load larger data from S3 in a short statement, "+
		"or fetch the SQL at boot with --setting LUNA_INIT_SQL_FROM=aws-secretsmanager:ID (a secret holds up to 64 KiB)", n, len(ud), len(sql), UserDataLimit, UserDataRoom)
}

// sshKeyTypes are the public key types the startup script accepts, those
// OpenSSH takes by default.
var sshKeyTypes = map[string]bool{
	ssh.KeyAlgoED25519: true, ssh.KeyAlgoRSA: true, ssh.KeyAlgoECDSA256: true, ssh.KeyAlgoECDSA384: true, ssh.KeyAlgoECDSA521: true,
	ssh.KeyAlgoSKED25519: true, ssh.KeyAlgoSKECDSA256: true,
}

// ReadAuthorizedKeys reads OpenSSH public keys from files in
// authorized_keys format (one key a line; blank lines and # comments are
// skipped), e.g. ~/.ssh/id_ed25519.pub, and returns them as
// "TYPE BASE64 [COMMENT]" lines. Options (from=, command=) are refused:
// the startup script writes plain keys.
func ReadAuthorizedKeys(files []string) ([]string, error) {
	var keys []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading --ssh-authorized-key: %w", err)
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			return nil, fmt.Errorf("--ssh-authorized-key %s holds a private key: give the public one (.pub)", f)
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			pub, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
			switch {
			case err != nil:
				return nil, fmt.Errorf("--ssh-authorized-key %s, line %d: not an OpenSSH public key: %w", f, i+1, err)
			case len(options) > 0:
				return nil, fmt.Errorf("--ssh-authorized-key %s, line %d: options (%s) are not supported: give the key alone", f, i+1, strings.Join(options, ","))
			case !sshKeyTypes[pub.Type()]:
				return nil, fmt.Errorf("--ssh-authorized-key %s, line %d: key type %s is not supported: use ssh-ed25519, ssh-rsa or ecdsa-sha2-*", f, i+1, pub.Type())
			case strings.IndexFunc(comment, unicode.IsControl) >= 0:
				return nil, fmt.Errorf("--ssh-authorized-key %s, line %d: the comment holds a control character (a tab?)", f, i+1)
			}
			key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
			if comment = strings.TrimSpace(comment); comment != "" {
				key += " " + comment
			}
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// joinUserData exports settings, in name order, right after the script's
// first line; the script loses its comment lines when the whole would not
// fit in EC2's limit otherwise.
func joinUserData(settings map[string]string, script string) string {
	if len(settings) == 0 {
		return script
	}
	if ud := joinSettings(settings, script); len(gzipUserData(ud)) <= UserDataLimit {
		return ud
	}
	return joinSettings(settings, withoutComments(script))
}

// joinSettings puts the settings' export lines after the script's shebang.
func joinSettings(settings map[string]string, script string) string {
	shebang, body := "#!/bin/bash", script
	if strings.HasPrefix(body, "#!") {
		shebang, body, _ = strings.Cut(body, "\n")
	}
	var b strings.Builder
	b.WriteString(shebang + "\n" + settingsMarker + "\n")
	for _, k := range sortedKeys(settings) {
		b.WriteString("export " + k + "='" + strings.ReplaceAll(settings[k], "'", `'\''`) + "'\n")
	}
	b.WriteString(body)
	return b.String()
}

// withoutComments drops a shell script's comment lines (the shebang
// stays), for user data that would not fit otherwise: the repository's
// startup script is one third comments. A script with a here-document is
// left whole, since a line of its text may start with #. A line starting
// with # inside a multi-line quoted string cannot be told from a comment
// here, which is why joinUserData strips only when it must (the
// repository's script has none: infra's TestAWSStartupScriptWithoutComments).
func withoutComments(script string) string {
	if strings.Contains(strings.ReplaceAll(script, "<<<", ""), "<<") {
		return script
	}
	lines := strings.Split(script, "\n")
	kept := lines[:0]
	for i, l := range lines {
		if i == 0 && strings.HasPrefix(l, "#!") || !strings.HasPrefix(strings.TrimSpace(l), "#") {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n")
}

// splitUserData undoes joinUserData: the settings and the script. User
// data without luna-deploy's settings block is all script.
func splitUserData(ud string) (map[string]string, string) {
	settings := map[string]string{}
	shebang, rest, ok := strings.Cut(ud, "\n")
	if !ok || !strings.HasPrefix(shebang, "#!") {
		return settings, ud
	}
	marker, rest, ok := strings.Cut(rest, "\n")
	if !ok || marker != settingsMarker {
		return settings, ud
	}
	for strings.HasPrefix(rest, "export ") {
		name, value, after, ok := parseExport(rest)
		if !ok {
			break
		}
		settings[name] = value
		rest = after
	}
	// A script without a shebang got #!/bin/bash from joinUserData; with
	// it restored, joining again gives the same user data either way.
	script := shebang + "\n" + rest
	return settings, script
}

// parseExport reads one `export NAME='value'` line as joinUserData writes
// it ('\” inside the quotes stands for a quote; values may span lines).
func parseExport(s string) (name, value, rest string, ok bool) {
	s = strings.TrimPrefix(s, "export ")
	name, s, ok = strings.Cut(s, "=")
	if !ok || !validSetting(name) || !strings.HasPrefix(s, "'") {
		return "", "", "", false
	}
	s = s[1:]
	var v strings.Builder
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			return "", "", "", false
		}
		v.WriteString(s[:i])
		s = s[i+1:]
		if strings.HasPrefix(s, `\''`) {
			v.WriteByte('\'')
			s = s[3:]
			continue
		}
		break
	}
	if !strings.HasPrefix(s, "\n") {
		return "", "", "", false
	}
	return name, v.String(), s[1:], true
}

// validSetting reports whether name is a shell variable name.
func validSetting(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, r := range name {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
