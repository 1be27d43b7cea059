// Command luna-package builds Luna's release artifacts from built binaries.
//
// Usage:
//
//	luna-package deb     -version V [-maintainer "Name <address>"] [-luna bin/luna] [-lunactl bin/lunactl] [-source .] [-out dist]
//	luna-package release -version V [-maintainer "Name <address>"] [-luna bin/luna] [-lunactl bin/lunactl] [-source .] [-out dist]
//	luna-package debian-version V
//
// deb writes dist/luna_<debian-version>_amd64.deb; release writes the .deb,
// dist/luna_<debian-version>_linux_amd64.tar.gz and dist/SHA256SUMS. The
// version is `git describe --tags --always --dirty` output (the Makefile's
// VERSION), turned into a Debian version: v1.2.3 -> 1.2.3, a commit without a
// tag -> 0.0.0~git<hash>. Each artifact's path is printed on its own line.
//
// The package's Maintainer field names who answers for the build: -maintainer
// "Name <address>", else $LUNA_PACKAGE_MAINTAINER, else $DEBFULLNAME
// <$DEBEMAIL> (the Debian tools' variables), else a placeholder
// (packaging.DefaultMaintainer) with a warning. Whoever publishes packages
// sets it.
//
// Exit status is 0 on success, 1 on a failed build and 2 on bad usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/lunadb/luna/packaging"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// defaultMaintainer is the Maintainer field when -maintainer is not given,
// and whether it is the placeholder.
func defaultMaintainer(getenv func(string) string) (string, bool) {
	if m := getenv("LUNA_PACKAGE_MAINTAINER"); m != "" {
		return m, false
	}
	if email := getenv("DEBEMAIL"); email != "" {
		name := getenv("DEBFULLNAME")
		if name == "" {
			name = "Luna packager"
		}
		return name + " <" + email + ">", false
	}
	return packaging.DefaultMaintainer, true
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  luna-package deb     -version V [flags]   build dist/luna_<version>_amd64.deb
  luna-package release -version V [flags]   the .deb, the .tar.gz and SHA256SUMS
  luna-package debian-version V             print the Debian version of V

V is git describe output (v1.2.3, v1.2.3-4-gabc1234, abc1234-dirty).
-maintainer "Name <address>" (or $LUNA_PACKAGE_MAINTAINER, or $DEBFULLNAME and
$DEBEMAIL) names who answers for the package; without it a placeholder is used.
`)
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	case "debian-version":
		if len(args) != 1 {
			fmt.Fprintln(stderr, "luna-package debian-version: want exactly one version argument")
			return 2
		}
		v, err := packaging.DebianVersion(args[0])
		if err != nil {
			fmt.Fprintf(stderr, "luna-package: %v\n", err)
			return 2
		}
		fmt.Fprintln(stdout, v)
		return 0
	case "deb", "release":
	default:
		fmt.Fprintf(stderr, "luna-package: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}

	fs := flag.NewFlagSet("luna-package "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "git describe output to version the package with (required)")
	luna := fs.String("luna", "bin/luna", "the luna binary")
	lunactl := fs.String("lunactl", "bin/lunactl", "the lunactl binary")
	source := fs.String("source", ".", "repository root (systemd/, packaging/deb/, scripts/install.sh)")
	out := fs.String("out", "dist", "output directory")
	defMaintainer, placeholder := defaultMaintainer(getenv)
	maintainer := fs.String("maintainer", defMaintainer, `the package's Maintainer, "Name <address>" (default $LUNA_PACKAGE_MAINTAINER, or $DEBFULLNAME <$DEBEMAIL>)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "luna-package %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	if *version == "" {
		fmt.Fprintf(stderr, "luna-package %s: -version is required\n", cmd)
		return 2
	}
	v, err := packaging.DebianVersion(*version)
	if err != nil {
		fmt.Fprintf(stderr, "luna-package %s: %v\n", cmd, err)
		return 2
	}
	if err := packaging.CheckMaintainer(*maintainer); err != nil {
		fmt.Fprintf(stderr, "luna-package %s: -maintainer: %v\n", cmd, err)
		return 2
	}
	opts := packaging.Options{Version: v, Luna: *luna, Lunactl: *lunactl, SourceDir: *source, OutDir: *out, Maintainer: *maintainer}
	if placeholder && *maintainer == packaging.DefaultMaintainer {
		fmt.Fprintf(stderr, "luna-package: the package's Maintainer is the placeholder %q; name yourself with -maintainer \"Name <address>\" (or DEBFULLNAME and DEBEMAIL)\n", *maintainer)
	}

	debPath, err := packaging.BuildDeb(opts)
	if err != nil {
		fmt.Fprintf(stderr, "luna-package: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, debPath)
	if cmd == "deb" {
		return 0
	}
	tarPath, err := packaging.BuildTarball(opts)
	if err != nil {
		fmt.Fprintf(stderr, "luna-package: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tarPath)
	sums, err := packaging.WriteChecksums(opts.OutDir, []string{debPath, tarPath})
	if err != nil {
		fmt.Fprintf(stderr, "luna-package: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, sums)
	return 0
}
