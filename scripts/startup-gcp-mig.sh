#!/usr/bin/env bash
# Startup script of a Luna node in a GCP managed instance group, for a stock
# Debian image (set it as the instance metadata startup-script). It installs
# the Luna Debian package from a release URL, configures the node from
# instance metadata and starts luna.service, returning once /readyz answers.
#
# Instance metadata attributes (an environment variable of the same meaning
# wins over its attribute, even when set empty; with all of them set the
# script asks no metadata server):
#
#   luna-release-url      LUNA_RELEASE_URL      http(s) URL of luna_<version>_amd64.deb (required)
#   luna-release-sha256   LUNA_RELEASE_SHA256   its SHA-256, 64 hex digits (required)
#   luna-init-sql         LUNA_INIT_SQL_B64     startup SQL (the variable: base64), written to
#                                               /etc/luna/init.d/50-preload.sql; empty: none
#   luna-passwd-from      LUNA_PASSWD_FROM      where the server reads its password; default
#                                               gcp-metadata:luna-passwd (the luna-passwd
#                                               attribute); none: no password
#   luna-env              LUNA_ENV              more luna.env settings, one LUNA_*=value a line
#                         LUNA_READY_TIMEOUT    seconds to wait for /readyz (default 300)
#
# The metadata server is metadata.google.internal unless GCE_METADATA_HOST
# (host:port, as Google's libraries read it) names another; then the server
# is told the same, so it reads its password there too. The password itself
# is never written to disk: the server fetches it at every start.
#
# Safe to run at every boot: the same version is not reinstalled, files are
# only rewritten when their content changes, and a running service is only
# restarted when its configuration changed.
set -euo pipefail

PROG=startup-gcp-mig
METADATA_HOST=${GCE_METADATA_HOST:-metadata.google.internal}

# metadata NAME prints the instance attribute NAME, nothing when it is not
# set, and fails when the metadata server cannot be asked.
metadata() {
	local body code
	body=$(mktemp)
	if ! code=$(curl -sS --max-time 10 --retry 10 --retry-connrefused --retry-delay 1 \
		-H 'Metadata-Flavor: Google' -o "$body" -w '%{http_code}' \
		"http://$METADATA_HOST/computeMetadata/v1/instance/attributes/$1"); then
		rm -f "$body"
		die "cannot reach the metadata server at $METADATA_HOST for attribute $1 (set GCE_METADATA_HOST, or the LUNA_* variables)"
	fi
	case $code in
	200) cat "$body" ;;
	404) ;;
	*)
		rm -f "$body"
		die "metadata attribute $1: the metadata server answered HTTP $code"
		;;
	esac
	rm -f "$body"
}

# setting VAR ATTRIBUTE prints $VAR when it is set (even empty), else the
# metadata attribute.
setting() {
	if [[ -n ${!1+set} ]]; then
		printf '%s' "${!1}"
	else
		metadata "$2"
	fi
}

# --- common: begin (identical in startup-gcp-mig.sh and startup-aws-asg.sh) ---

ENV_FILE=/etc/luna/luna.env
PRELOAD=/etc/luna/init.d/50-preload.sql
changed=no

log() { echo "$PROG: $*" >&2; }
die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root"

# check_release URL SHA256 rejects malformed values before anything is
# downloaded or changed.
check_release() {
	[[ -n $1 ]] || die "no release URL: set $URL_SOURCE"
	[[ $1 =~ ^https?://[^[:space:]]+$ ]] || die "release URL must be http:// or https://, got '$1'"
	[[ -n $2 ]] || die "no release SHA-256: set $SHA_SOURCE"
	[[ $2 =~ ^[0-9a-fA-F]{64}$ ]] || die "release SHA-256 must be 64 hex digits, got '$2'"
}

# check_env_lines TEXT validates extra luna.env settings: LUNA_NAME=value
# lines, blank lines and # comments. Passwords never go to disk.
check_env_lines() {
	local line name
	while IFS= read -r line; do
		[[ -z ${line//[[:space:]]/} || $line == \#* ]] && continue
		# Only the name is shown: a stray line may hold a secret.
		[[ $line =~ ^(LUNA_[A-Z0-9_]+)= ]] || die "bad setting '${line%%=*}' in $ENV_SOURCE: want LUNA_NAME=value lines"
		name=${BASH_REMATCH[1]}
		case $name in
		LUNA_PASSWD | LUNA_PASSWD_FILE | LUNA_PASSWD_FROM)
			die "$name cannot be set through $ENV_SOURCE: the password source has its own setting"
			;;
		esac
	done <<<"$1"
}

# install_release URL SHA256 downloads the package, verifies it and installs
# it unless that version is already installed.
install_release() {
	local url=$1 want=${2,,} dir deb got pkg version status
	# Not /tmp: it may be a small tmpfs. Readable by apt's _apt user.
	dir=$(mktemp -d -p /var/tmp luna-release.XXXXXX)
	chmod 0755 "$dir"
	# shellcheck disable=SC2064 # expand now: dir is local
	trap "rm -rf '$dir'" EXIT
	deb=$dir/luna.deb
	log "downloading $url"
	curl -fsSL --retry 5 --retry-connrefused --retry-delay 2 --max-time 600 -o "$deb" "$url" ||
		die "downloading $url failed"
	got=$(sha256sum "$deb" | cut -d' ' -f1)
	if [[ $got != "$want" ]]; then
		die "SHA-256 mismatch for $url: expected $want, got $got; not installing it"
	fi
	pkg=$(dpkg-deb -f "$deb" Package) || die "$url is not a Debian package"
	[[ $pkg == luna ]] || die "$url holds the package '$pkg', not luna"
	version=$(dpkg-deb -f "$deb" Version)
	status=$(dpkg-query -W -f='${Status} ${Version}' luna 2>/dev/null || true)
	if [[ $status == "install ok installed $version" ]]; then
		log "luna $version is already installed"
		return
	fi
	log "installing luna $version"
	# The package's own luna.env never replaces a local one (--force-confold).
	local apt=(apt-get install -y -q -o DPkg::Lock::Timeout=300
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$deb")
	if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}"; then
		# A fresh image may have no package lists to resolve dependencies.
		DEBIAN_FRONTEND=noninteractive apt-get update -q
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" || die "installing luna $version failed"
	fi
	# An upgrade restarted a running service already (the package's
	# postinst); a first install left it stopped for start_service.
}

# write_file PATH MODE CONTENT [WHAT] replaces PATH when its content differs.
write_file() {
	local path=$1 mode=$2 content=$3 what=${4:+ ($4)} tmp
	if [[ -f $path ]] && [[ $(cat "$path") == "$content" ]]; then
		return
	fi
	tmp=$(mktemp "$path.XXXXXX")
	printf '%s\n' "$content" >"$tmp"
	chmod "$mode" "$tmp"
	mv -f "$tmp" "$path"
	log "wrote $path$what"
	changed=yes
}

# set_env NAME VALUE sets NAME=VALUE in luna.env, replacing the line that
# sets it (or else its commented-out default); an empty VALUE removes the
# setting.
set_env() {
	local name=$1 value=$2 content
	[[ $value != *$'\n'* ]] || die "the value of $name must be one line"
	content=$(N=$name V=$value awk '
		BEGIN { n = ENVIRON["N"]; v = ENVIRON["V"]; done = 0 }
		index($0, n "=") == 1 {
			if (!done && v != "") print n "=" v
			done = 1
			next
		}
		index($0, "#" n "=") == 1 && !done && v != "" {
			print n "=" v
			done = 1
			next
		}
		{ print }
		END { if (!done && v != "") print n "=" v }' "$ENV_FILE")
	write_file "$ENV_FILE" 0600 "$content" "$name"
}

# apply_env_lines TEXT applies checked LUNA_NAME=value lines.
apply_env_lines() {
	local line
	while IFS= read -r line; do
		[[ -z ${line//[[:space:]]/} || $line == \#* ]] && continue
		set_env "${line%%=*}" "${line#*=}"
	done <<<"$1"
}

# env_value NAME prints the value luna.env sets for NAME.
env_value() {
	awk -v n="$1=" 'index($0, n) == 1 { v = substr($0, length(n) + 1) } END { print v }' "$ENV_FILE"
}

# start_service (re)starts luna.service as needed and waits for /readyz.
start_service() {
	local health url deadline timeout=${LUNA_READY_TIMEOUT:-300}
	[[ $timeout =~ ^[0-9]+$ ]] || die "LUNA_READY_TIMEOUT must be a number of seconds, got '$timeout'"
	systemctl enable --quiet luna.service
	if [[ $changed == yes ]] && systemctl --quiet is-active luna.service; then
		log "configuration changed: restarting luna"
		systemctl restart luna.service || fail_service "restarting luna.service failed"
	elif ! systemctl --quiet is-active luna.service; then
		log "starting luna"
		systemctl start luna.service || fail_service "starting luna.service failed"
	else
		log "luna is running and its configuration is unchanged"
	fi
	health=$(env_value LUNA_HEALTH_HOST_PORT)
	if [[ -z $health ]]; then
		log "LUNA_HEALTH_HOST_PORT is off: not waiting for /readyz"
		return
	fi
	# A wildcard listener is asked on loopback.
	case $health in
	0.0.0.0:* | :*) health=127.0.0.1:${health##*:} ;;
	\[::\]:*) health="[::1]:${health##*:}" ;;
	esac
	url=http://$health/readyz
	deadline=$((SECONDS + timeout))
	until curl -fsS --max-time 5 -o /dev/null "$url" 2>/dev/null; do
		systemctl --quiet is-failed luna.service && fail_service "luna.service failed"
		((SECONDS < deadline)) || fail_service "$url did not answer 200 within ${timeout}s"
		sleep 1
	done
	log "luna is ready ($url)"
}

fail_service() {
	journalctl -u luna.service -n 30 --no-pager -o cat >&2 || true
	die "$1 (the last lines of its journal are above)"
}

# --- common: end ---

URL_SOURCE="the luna-release-url metadata attribute or LUNA_RELEASE_URL"
SHA_SOURCE="the luna-release-sha256 metadata attribute or LUNA_RELEASE_SHA256"
ENV_SOURCE="the luna-env metadata attribute or LUNA_ENV"

url=$(setting LUNA_RELEASE_URL luna-release-url)
sha=$(setting LUNA_RELEASE_SHA256 luna-release-sha256)
if [[ -n ${LUNA_INIT_SQL_B64+set} ]]; then
	init_sql=$(base64 -d <<<"$LUNA_INIT_SQL_B64") || die "LUNA_INIT_SQL_B64 is not valid base64"
else
	init_sql=$(metadata luna-init-sql)
fi
passwd_from=$(setting LUNA_PASSWD_FROM luna-passwd-from)
passwd_from=${passwd_from:-gcp-metadata:luna-passwd}
[[ $passwd_from == none || $passwd_from =~ ^[a-z0-9-]+:[^[:space:]]+$ ]] ||
	die "the password source (luna-passwd-from or LUNA_PASSWD_FROM) must be KIND:NAME (e.g. gcp-metadata:luna-passwd) or none"
extra_env=$(setting LUNA_ENV luna-env)

check_release "$url" "$sha"
check_env_lines "$extra_env"

install_release "$url" "$sha"

if [[ $passwd_from == none ]]; then
	log "warning: no password: clients need no AUTH"
	set_env LUNA_PASSWD_FROM ""
else
	set_env LUNA_PASSWD_FROM "$passwd_from"
fi
# The server asks the same metadata server for its password.
set_env GCE_METADATA_HOST "${GCE_METADATA_HOST:-}"
apply_env_lines "$extra_env"
if [[ -n $init_sql ]]; then
	write_file "$PRELOAD" 0644 "$init_sql"
elif [[ -e $PRELOAD ]]; then
	rm -f "$PRELOAD"
	log "removed $PRELOAD"
	changed=yes
fi

start_service
