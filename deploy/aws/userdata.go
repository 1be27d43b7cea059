package aws

import (
	"strings"
)

// settingsMarker opens the block of settings luna-deploy puts at the top
// of the user data; update reads them back from there.
const settingsMarker = "# Settings added by luna-deploy."

// userData is the startup script with the settings exported before it.
func (c *Config) userData() string {
	settings := map[string]string{}
	for k, v := range c.Settings {
		settings[k] = v
	}
	if c.PasswdFrom != "" {
		settings["LUNA_PASSWD_FROM"] = c.PasswdFrom
	}
	return joinUserData(settings, c.UserData)
}

// joinUserData exports settings, in name order, right after the script's
// first line.
func joinUserData(settings map[string]string, script string) string {
	if len(settings) == 0 {
		return script
	}
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
