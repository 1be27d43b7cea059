// Package packaging builds Luna's release artifacts from built binaries: the
// Debian package (made with nfpm as a library, so no packaging tool has to
// be installed), the release tarball that scripts/install.sh installs from,
// and the SHA256SUMS file covering them.
//
// The maintainer scripts of the Debian package live next to this file in
// deb/; the units and the environment file come from systemd/, the startup
// scripts the image's luna-configure@ unit runs from scripts/.
package packaging

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Package metadata.
const (
	Name = "luna"
	Arch = "amd64"
	// DefaultMaintainer is the Maintainer field of a package whose
	// builder named none (Options.Maintainer); the .invalid domain marks
	// it as a placeholder: whoever publishes packages sets their own.
	DefaultMaintainer = "Luna maintainers <maintainers@luna.invalid>"
	Homepage          = "https://github.com/lunadb/luna"
	Description       = "In-memory columnar SQL server on DuckDB\n" +
		"Luna holds one in-memory DuckDB database and answers SQL sent over a\n" +
		"small TCP protocol with Apache Arrow IPC streams. It runs as the\n" +
		"systemd service luna.service, configured by /etc/luna/luna.env, and\n" +
		"loads its tables at startup from the SQL files in /etc/luna/init.d."
)

// Installed paths; the startup scripts and the tests rely on them.
const (
	BinPath     = "/usr/bin/luna"
	CtlPath     = "/usr/bin/lunactl"
	UnitPath    = "/lib/systemd/system/luna.service"
	EnvPath     = "/etc/luna/luna.env"
	InitSQLPath = "/etc/luna/init.d"
	// ConfigureUnitPath is the template unit a Luna image enables as
	// luna-configure@gcp-mig.service or luna-configure@aws-asg.service: it
	// runs LibDir/startup-<instance>.sh --image at every boot.
	ConfigureUnitPath = "/lib/systemd/system/luna-configure@.service"
	LibDir            = "/usr/lib/luna"
)

// sources are the repository files the package and the tarball are made of.
var sources = []string{
	"systemd/luna.service", "systemd/luna-configure@.service", "systemd/luna.env",
	"packaging/deb/postinst", "scripts/install.sh",
	"scripts/startup-gcp-mig.sh", "scripts/startup-aws-asg.sh",
}

// Options say what to package and where to put it.
type Options struct {
	// Version is the Debian version of the package (see DebianVersion).
	Version string
	// Luna and Lunactl are the built binaries.
	Luna, Lunactl string
	// SourceDir is the repository root: the files in sources and
	// packaging/deb/ come from it.
	SourceDir string
	// OutDir receives the artifacts; it is created if needed.
	OutDir string
	// MTime stamps every file; zero means SOURCE_DATE_EPOCH if set, else now.
	MTime time.Time
	// Maintainer is the package's Maintainer field, "Name <address>", who
	// answers for this build; empty means DefaultMaintainer.
	Maintainer string
}

// maintainerRE is Debian's form of the Maintainer field: a name, then an
// e-mail address in angle brackets.
var maintainerRE = regexp.MustCompile(`^[^<>,\n]*[^<>,\s] <[^<>@\s]+@[^<>@\s]+>$`)

// CheckMaintainer reports whether m is a Maintainer field Debian accepts.
func CheckMaintainer(m string) error {
	if !maintainerRE.MatchString(m) {
		return fmt.Errorf("maintainer %q is not \"Name <address>\", e.g. \"Jane Doe <jane@example.com>\"", m)
	}
	return nil
}

func (o Options) maintainer() string {
	if o.Maintainer == "" {
		return DefaultMaintainer
	}
	return o.Maintainer
}

func (o Options) validate() error {
	if !debVersionRE.MatchString(o.Version) {
		return fmt.Errorf("version %q is not a valid Debian version (a digit, then letters, digits, '.', '+' or '~')", o.Version)
	}
	if err := CheckMaintainer(o.maintainer()); err != nil {
		return err
	}
	for _, f := range []struct{ what, path string }{{"luna binary", o.Luna}, {"lunactl binary", o.Lunactl}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.what, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s %s is not an executable file", f.what, f.path)
		}
	}
	for _, rel := range sources {
		if _, err := os.Stat(filepath.Join(o.SourceDir, rel)); err != nil {
			return fmt.Errorf("source directory %s: %w", o.SourceDir, err)
		}
	}
	if o.OutDir == "" {
		return errors.New("no output directory")
	}
	return nil
}

func (o Options) mtime() time.Time {
	if !o.MTime.IsZero() {
		return o.MTime
	}
	if t := os.Getenv("SOURCE_DATE_EPOCH"); t != "" {
		var sec int64
		if _, err := fmt.Sscan(t, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}

// DebFileName is the conventional name of the package file.
func DebFileName(version string) string {
	return fmt.Sprintf("%s_%s_%s.deb", Name, version, Arch)
}

// TarballFileName is the name of the release tarball.
func TarballFileName(version string) string {
	return fmt.Sprintf("%s_%s_linux_%s.tar.gz", Name, version, Arch)
}

// debInfo describes the package to nfpm.
func debInfo(o Options) *nfpm.Info {
	src := func(rel string) string { return filepath.Join(o.SourceDir, filepath.FromSlash(rel)) }
	mode := func(m os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: m}
	}
	info := &nfpm.Info{
		Name:     Name,
		Arch:     Arch,
		Platform: "linux",
		Version:  o.Version,
		// The version is already a Debian one; nfpm must not reparse it.
		VersionSchema: "none",
		Section:       "database",
		Priority:      "optional",
		Maintainer:    o.maintainer(),
		Description:   Description,
		Vendor:        "Luna",
		Homepage:      Homepage,
		MTime:         o.mtime(),
		Overridables: nfpm.Overridables{
			// The unit is the only way the package runs Luna; useradd and
			// userdel come with passwd, which every Debian system has.
			Depends: []string{"systemd"},
			Contents: files.Contents{
				{Source: o.Luna, Destination: BinPath, FileInfo: mode(0o755)},
				{Source: o.Lunactl, Destination: CtlPath, FileInfo: mode(0o755)},
				{Source: src("systemd/luna.service"), Destination: UnitPath, FileInfo: mode(0o644)},
				{Source: src("systemd/luna-configure@.service"), Destination: ConfigureUnitPath, FileInfo: mode(0o644)},
				{Destination: LibDir, Type: files.TypeDir, FileInfo: mode(0o755)},
				{Source: src("scripts/startup-gcp-mig.sh"), Destination: LibDir + "/startup-gcp-mig.sh", FileInfo: mode(0o755)},
				{Source: src("scripts/startup-aws-asg.sh"), Destination: LibDir + "/startup-aws-asg.sh", FileInfo: mode(0o755)},
				{Destination: "/etc/luna", Type: files.TypeDir, FileInfo: mode(0o755)},
				{Destination: InitSQLPath, Type: files.TypeDir, FileInfo: mode(0o755)},
				// The environment file may hold the password: root only
				// (systemd reads it before dropping privileges). A conffile,
				// so local changes survive upgrades.
				{Source: src("systemd/luna.env"), Destination: EnvPath, Type: files.TypeConfigNoReplace, FileInfo: mode(0o600)},
			},
			Scripts: nfpm.Scripts{
				PostInstall: src("packaging/deb/postinst"),
				PreRemove:   src("packaging/deb/prerm"),
				PostRemove:  src("packaging/deb/postrm"),
			},
		},
	}
	info.Deb.Compression = "gzip"
	return info
}

// BuildDeb writes OutDir/luna_<version>_amd64.deb and returns its path.
func BuildDeb(o Options) (string, error) {
	if err := o.validate(); err != nil {
		return "", fmt.Errorf("building the Debian package: %w", err)
	}
	info := nfpm.WithDefaults(debInfo(o))
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("building the Debian package: %w", err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("building the Debian package: %w", err)
	}
	out := filepath.Join(o.OutDir, DebFileName(o.Version))
	err := writeAtomic(out, func(w io.Writer) error { return deb.Default.Package(info, w) })
	if err != nil {
		return "", fmt.Errorf("building the Debian package %s: %w", out, err)
	}
	return out, nil
}

// BuildTarball writes OutDir/luna_<version>_linux_amd64.tar.gz: one
// directory holding bin/, systemd/ and scripts/install.sh laid out as in the
// repository, so `scripts/install.sh --enable --start` works from inside it.
func BuildTarball(o Options) (string, error) {
	if err := o.validate(); err != nil {
		return "", fmt.Errorf("building the release tarball: %w", err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("building the release tarball: %w", err)
	}
	top := strings.TrimSuffix(TarballFileName(o.Version), ".tar.gz")
	entries := []struct {
		src, dst string
		mode     int64
	}{
		{o.Luna, "bin/luna", 0o755},
		{o.Lunactl, "bin/lunactl", 0o755},
		{filepath.Join(o.SourceDir, "systemd", "luna.service"), "systemd/luna.service", 0o644},
		{filepath.Join(o.SourceDir, "systemd", "luna.env"), "systemd/luna.env", 0o644},
		{filepath.Join(o.SourceDir, "scripts", "install.sh"), "scripts/install.sh", 0o755},
	}
	mtime := o.mtime()
	out := filepath.Join(o.OutDir, TarballFileName(o.Version))
	err := writeAtomic(out, func(w io.Writer) error {
		gz := gzip.NewWriter(w)
		tw := tar.NewWriter(gz)
		for _, d := range []string{top, top + "/bin", top + "/systemd", top + "/scripts"} {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		for _, e := range entries {
			if err := addFile(tw, e.src, top+"/"+e.dst, e.mode, mtime); err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return gz.Close()
	})
	if err != nil {
		return "", fmt.Errorf("building the release tarball %s: %w", out, err)
	}
	return out, nil
}

func addFile(tw *tar.Writer, src, name string, mode int64, mtime time.Time) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size(), ModTime: mtime,
		Uname: "root", Gname: "root", Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("adding %s: %w", src, err)
	}
	return nil
}

// WriteChecksums writes dir/SHA256SUMS for the given files (in sha256sum's
// format, names relative to dir, sorted), so `sha256sum -c SHA256SUMS`
// checks them. It returns the file's path.
func WriteChecksums(dir string, paths []string) (string, error) {
	lines := make([]string, 0, len(paths))
	for _, p := range paths {
		sum, err := FileSHA256(p)
		if err != nil {
			return "", fmt.Errorf("writing SHA256SUMS: %w", err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			return "", fmt.Errorf("writing SHA256SUMS: %s is not inside %s", p, dir)
		}
		lines = append(lines, sum+"  "+filepath.ToSlash(rel))
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	out := filepath.Join(dir, "SHA256SUMS")
	err := writeAtomic(out, func(w io.Writer) error {
		_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
		return err
	})
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	return out, nil
}

// FileSHA256 returns the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeAtomic writes through a temporary file in the same directory and
// renames it into place, so a failed build leaves no partial artifact.
func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
