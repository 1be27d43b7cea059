#!/usr/bin/env bash
# Installs Luna as a systemd service on a Debian, Ubuntu or Amazon Linux
# host, or into a root filesystem being built (--prefix), e.g. a VM image.
#
#   /usr/bin/luna, /usr/bin/lunactl        the binaries
#   /etc/systemd/system/luna.service        the unit (replaced on every run;
#                                           local changes belong in drop-ins)
#   /etc/luna/luna.env                      configuration, never overwritten:
#                                           a newer template goes to luna.env.new
#   /etc/luna/init.d/                       startup SQL (*.sql, lexical order)
#
# Safe to run again, e.g. to upgrade the binaries.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/install.sh [options]

  --prefix DIR      root of the target file system (default /); anything but /
                    only lays out files: no systemctl is run
  --bin PATH        the luna binary to install (default ./bin/luna)
  --lunactl PATH    the lunactl binary to install (default ./bin/lunactl)
  --enable          start Luna at boot (multi-user.target)
  --start           start Luna now, or restart it if running (prefix / only)
  --no-start        do not start or restart Luna (the default)
  -h, --help        this help
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
note() { echo "install.sh: $*"; }

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=/
bin=./bin/luna
lunactl=./bin/lunactl
enable=no
start=no

while [[ $# -gt 0 ]]; do
	case $1 in
	--prefix | --bin | --lunactl)
		[[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
		case $1 in
		--prefix) prefix=$2 ;;
		--bin) bin=$2 ;;
		--lunactl) lunactl=$2 ;;
		esac
		shift 2
		;;
	--prefix=*) prefix=${1#*=}; shift ;;
	--bin=*) bin=${1#*=}; shift ;;
	--lunactl=*) lunactl=${1#*=}; shift ;;
	--enable) enable=yes; shift ;;
	--start) start=yes; shift ;;
	--no-start) start=no; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

unit_src=$SRC_DIR/systemd/luna.service
env_src=$SRC_DIR/systemd/luna.env
[[ -f $unit_src ]] || die "unit file not found: $unit_src"
[[ -f $env_src ]] || die "environment file not found: $env_src"
[[ -f $bin && -x $bin ]] || die "luna binary not found or not executable: $bin (run make build, or pass --bin)"
[[ -f $lunactl && -x $lunactl ]] || die "lunactl binary not found or not executable: $lunactl (run make build, or pass --lunactl)"
[[ -d $prefix ]] || die "--prefix $prefix is not a directory"
prefix=$(cd "$prefix" && pwd -P)

live=no # installing onto the running system, which systemd manages
if [[ $prefix == / ]]; then
	[[ $(id -u) -eq 0 ]] || die "installing into / needs root"
	[[ -d /run/systemd/system ]] && live=yes
	root=
else
	root=$prefix
fi
if [[ $start == yes && $live != yes ]]; then
	die "--start needs --prefix / on a host running systemd"
fi

# Files are owned by root when we can; a non-root image build keeps its own.
owner=()
[[ $(id -u) -eq 0 ]] && owner=(-o root -g root)

# install_file MODE SRC DEST: copies to a temporary name in the target
# directory, then renames, so a running luna or a reader never sees a half
# written file and a running binary is replaced rather than overwritten.
install_file() {
	local mode=$1 src=$2 dest=$3 tmp
	tmp=$(dirname "$dest")/.$(basename "$dest").install.$$
	install ${owner[@]+"${owner[@]}"} -m "$mode" "$src" "$tmp"
	mv -f "$tmp" "$dest"
}

install -d ${owner[@]+"${owner[@]}"} -m 0755 "$root/usr/bin" "$root/etc/systemd/system" "$root/etc/luna"
install -d ${owner[@]+"${owner[@]}"} -m 0755 "$root/etc/luna/init.d"

install_file 0755 "$bin" "$root/usr/bin/luna"
install_file 0755 "$lunactl" "$root/usr/bin/lunactl"
install_file 0644 "$unit_src" "$root/etc/systemd/system/luna.service"

# The environment file may hold the password: readable by root only (systemd
# reads it before dropping privileges).
env_dest=$root/etc/luna/luna.env
if [[ ! -e $env_dest ]]; then
	install_file 0600 "$env_src" "$env_dest"
	note "installed $env_dest"
elif cmp -s "$env_src" "$env_dest"; then
	rm -f "$env_dest.new"
else
	install_file 0600 "$env_src" "$env_dest.new"
	note "kept $env_dest; the current template is $env_dest.new"
fi

# SELinux hosts (Amazon Linux, RHEL) need the usual labels on copied files.
if [[ $live == yes ]] && command -v restorecon >/dev/null 2>&1; then
	restorecon -R /usr/bin/luna /usr/bin/lunactl /etc/systemd/system/luna.service /etc/luna || true
fi

if [[ $live == yes ]]; then
	# Older systemd ignores sandbox options it does not know (PrivateIPC=
	# came in 248, ProtectProc= in 247), leaving the service less confined.
	ver=$(systemctl --version | awk 'NR == 1 { print $2 }')
	if [[ $ver =~ ^[0-9]+$ ]] && ((ver < 248)); then
		note "warning: systemd $ver is older than 248; luna.service relies on newer sandbox options"
	fi
	systemctl daemon-reload
	if [[ $enable == yes ]]; then
		systemctl enable luna.service
	fi
	if [[ $start == yes ]]; then
		systemctl restart luna.service
		note "luna started; see: systemctl status luna"
	elif systemctl is-active --quiet luna.service; then
		note "luna is running the previous binary; restart it with: systemctl restart luna"
	fi
elif [[ $enable == yes ]]; then
	# What systemctl enable does, without needing a running systemd.
	wants=$root/etc/systemd/system/multi-user.target.wants
	install -d ${owner[@]+"${owner[@]}"} -m 0755 "$wants"
	ln -sfn /etc/systemd/system/luna.service "$wants/luna.service"
fi
note "installed luna into ${prefix}"
