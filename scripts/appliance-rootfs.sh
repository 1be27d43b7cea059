#!/usr/bin/env bash
# Builds (once) a minimal Debian bookworm root filesystem with systemd, the
# base of the appliance tests: they copy it, install Luna into the copy and
# boot it with systemd-nspawn. Prints the rootfs path.
#
# The tree is cached in ${LUNA_CACHE:-$HOME/.cache/luna}/rootfs-bookworm and
# reused while this script is unchanged (its hash is stamped in the tree); it
# is built in a temporary directory and renamed into place, so an interrupted
# build never leaves a half tree behind. Needs root and debootstrap
# (scripts/test-deps.sh). The mirror comes from the host's apt sources unless
# LUNA_DEBIAN_MIRROR is set.
set -euo pipefail

SUITE=bookworm
CACHE="${LUNA_CACHE:-$HOME/.cache/luna}"
ROOTFS="$CACHE/rootfs-$SUITE"
STAMP_NAME=.luna-rootfs-stamp

die() { echo "appliance-rootfs: $*" >&2; exit 1; }

# The Debian mirror the host already uses (deb822 or one-line format), so the
# build works wherever the host's apt does.
host_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		# First URIs: of a stanza whose Suites include the plain suite.
		uri=$(awk -v suite="$SUITE" '
			/^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
			/^URIs:/ { u = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
			END { if (u != "" && s) print u }' "$f" | head -n1)
		[[ -n $uri ]] && { echo "$uri"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		uri=$(awk -v suite="$SUITE" '$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == suite) { print $i; exit } }' "$f")
		[[ -n $uri ]] && { echo "$uri"; return; }
	done
	echo http://deb.debian.org/debian
}

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap creates device nodes and chowns files)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing; run make tools"

want=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
mkdir -p "$CACHE"

# One build at a time; a second caller waits and then reuses the result.
exec 9>"$ROOTFS.lock"
flock 9

if [[ -f $ROOTFS/$STAMP_NAME && $(cat "$ROOTFS/$STAMP_NAME") == "$want" ]]; then
	echo "$ROOTFS"
	exit 0
fi

mirror="${LUNA_DEBIAN_MIRROR:-$(host_mirror)}"
tmp=$(mktemp -d "$ROOTFS.tmp.XXXXXX")
# mktemp makes it 0700; as the container's / that would lock out every
# service that does not run as root.
chmod 0755 "$tmp"
trap 'rm -rf --one-file-system "$tmp" "$tmp.log"' EXIT

echo "appliance-rootfs: building $SUITE from $mirror (about 2 minutes)" >&2
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates,curl,openssh-server \
	"$SUITE" "$tmp" "$mirror" >"$tmp.log" 2>&1; then
	tail -n 30 "$tmp.log" >&2
	[[ -f $tmp/debootstrap/debootstrap.log ]] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
	die "debootstrap failed (full log above)"
fi
rm -f "$tmp.log"

# A test appliance needs no login consoles and no background maintenance:
# masking them keeps the boot quick and the journal about Luna. The machine
# IDs are emptied so every boot of a copy gets a fresh one.
# sshd is masked too: containers share the host's network, so a test that
# wants it unmasks it in its own copy and gives it a port of its own.
for unit in getty.target console-getty.service apt-daily.timer \
	apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer ssh.service; do
	ln -sf /dev/null "$tmp/etc/systemd/system/$unit"
done
: >"$tmp/etc/machine-id"
rm -f "$tmp/var/lib/dbus/machine-id"
echo luna-appliance >"$tmp/etc/hostname"
# Package lists and downloaded .debs only make every copy bigger.
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*

echo "$want" >"$tmp/$STAMP_NAME"
if [[ -e $ROOTFS ]]; then
	old=$(mktemp -d "$ROOTFS.old.XXXXXX")
	mv -T "$ROOTFS" "$old/rootfs"
	mv -T "$tmp" "$ROOTFS"
	rm -rf --one-file-system "$old"
else
	mv -T "$tmp" "$ROOTFS"
fi
trap - EXIT
echo "$ROOTFS"
