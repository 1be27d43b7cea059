#!/usr/bin/env bash
# Startup script of a Luna node in a GCP managed instance group, for a stock
# Debian image (set it as the instance metadata startup-script). It installs
# the Luna Debian package from a release URL, configures the node from
# instance metadata and starts luna.service, returning once /readyz answers.
# The Luna image runs it from its package at every boot
# (luna-configure@gcp-mig.service, with --image), so that an instance with
# only the metadata below ends up serving too.
#
# Instance metadata attributes (an environment variable of the same meaning
# wins over its attribute, even when set empty; with all of them set the
# script asks no metadata server):
#
#   luna-release-url      LUNA_RELEASE_URL      URL of luna_<version>_amd64.deb: gs://BUCKET/OBJECT
#                                               (read with the service account) or https:// (a
#                                               presigned URL expires: a node created after
#                                               that cannot install it); optional where luna
#                                               is installed
#   luna-release-sha256   LUNA_RELEASE_SHA256   its SHA-256 (required with a URL); a package
#                                               installed from a file of this SHA-256 is
#                                               not downloaded again
#   luna-init-sql         LUNA_INIT_SQL_B64     startup SQL (the variable: base64), written to
#                                               /etc/luna/init.d/50-preload.sql; empty: none
#   luna-init-sql-from    LUNA_INIT_SQL_FROM    startup SQL holding credentials (CREATE SECRET),
#                                               fetched at every boot from a secret source, e.g.
#                                               gcp-secretmanager:luna-init-sql, written to
#                                               /etc/luna/init.d/40-secret.sql; empty: none
#   luna-passwd-from      LUNA_PASSWD_FROM      where the server reads its password, e.g.
#                                               gcp-secretmanager:luna-passwd; default
#                                               gcp-metadata:luna-passwd (the luna-passwd
#                                               attribute); none: no password
#   luna-tls-from         LUNA_TLS_FROM         TLS on the API port: a secret holding the server
#                                               certificate (chain) and its key, PEM, e.g.
#                                               gcp-secretmanager:luna-tls, written to
#                                               /etc/luna/tls/server.pem; empty: plain TCP
#   luna-tls-client-ca-from LUNA_TLS_CLIENT_CA_FROM  mutual TLS: a secret holding the CA
#                                               certificates that sign client certificates
#   luna-users-from       LUNA_USERS_FROM       named users with roles: a secret holding a
#                                               users file (luna user add), which the server
#                                               reads at every start and SIGHUP; empty: none
#   luna-env              LUNA_ENV              more luna.env settings, one LUNA_*=value a line
#                         LUNA_READY_TIMEOUT    seconds to wait for /readyz (default 300)
#
# The metadata server is metadata.google.internal unless GCE_METADATA_HOST
# (host:port, as Google's libraries read it) names another; then the server
# is told the same, so it reads its password there too. gs:// URLs are read
# through the storage JSON API, at STORAGE_EMULATOR_HOST if set. The
# password itself is never written to disk: the server fetches it at every
# start.
#
# Safe to run at every boot: a package already installed from a file of the
# wanted SHA-256 is not even downloaded, files are only rewritten when their
# content changes, and a running service is only restarted when its
# configuration changed.
set -euo pipefail

PROG=startup-gcp-mig
METADATA_HOST=${GCE_METADATA_HOST:-metadata.google.internal}
EXAMPLE_SOURCE=gcp-secretmanager:luna-passwd

case ${1:-} in
"" | --image) ;; # the settings come from metadata either way
*)
	echo "usage: $0 [--image]" >&2
	exit 2
	;;
esac

# metadata_get PATH prints the metadata value at PATH (under
# computeMetadata/v1), nothing when it is not set, and fails when the
# metadata server cannot be asked.
metadata_get() {
	local body code
	body=$(mktemp)
	if ! code=$(curl -sS --max-time 10 --retry 10 --retry-connrefused --retry-delay 1 \
		-H 'Metadata-Flavor: Google' -o "$body" -w '%{http_code}' \
		"http://$METADATA_HOST/computeMetadata/v1/$1"); then
		rm -f "$body"
		die "cannot reach the metadata server at $METADATA_HOST for $1 (set GCE_METADATA_HOST, or the LUNA_* variables)"
	fi
	case $code in
	200) cat "$body" ;;
	404) ;;
	*)
		rm -f "$body"
		die "metadata $1: the metadata server answered HTTP $code"
		;;
	esac
	rm -f "$body"
}

# metadata NAME prints the instance attribute NAME.
metadata() { metadata_get "instance/attributes/$1"; }

# setting VAR ATTRIBUTE prints $VAR when it is set (even empty), else the
# metadata attribute.
setting() {
	if [[ -n ${!1+set} ]]; then
		printf '%s' "${!1}"
	else
		metadata "$2"
	fi
}

# fetch_gs gs://BUCKET/OBJECT FILE downloads an object through the storage
# JSON API with the access token of the instance's service account (which
# needs storage.objects.get on it). The token goes to curl through a pipe,
# never on its command line.
fetch_gs() {
	local rest=${1#gs://} object token base
	object=${rest#*/}
	object=${object//\//%2F}
	token=$(metadata_get instance/service-accounts/default/token |
		sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
	[[ -n $token ]] || die "the metadata server has no access token for $1: does the instance have a service account?"
	base=${STORAGE_EMULATOR_HOST:-https://storage.googleapis.com}
	[[ $base == *://* ]] || base=http://$base
	curl -fsS --retry 5 --retry-connrefused --retry-delay 2 --max-time 600 \
		-H @<(echo "Authorization: Bearer $token") \
		-o "$2" "${base%/}/storage/v1/b/${rest%%/*}/o/${object//+/%2B}?alt=media"
}

fetch_s3() { die "$1: s3:// release URLs need AWS credentials; on GCP use gs:// or https://"; }

# fetch_secret SOURCE prints a secret with the installed server's own
# client (luna fetch-secret), credentials from the metadata server.
fetch_secret() { /usr/bin/luna fetch-secret "$1"; }

# --- common: begin (identical in startup-gcp-mig.sh and startup-aws-asg.sh) ---

ENV_FILE=/etc/luna/luna.env
PRELOAD=/etc/luna/init.d/50-preload.sql
SECRET_SQL=/etc/luna/init.d/40-secret.sql
TLS_DIR=/etc/luna/tls
TLS_PEM=$TLS_DIR/server.pem
TLS_CLIENT_CA=$TLS_DIR/client-ca.pem
# "SHA256 VERSION" of the installed package (the image build writes it too).
RELEASE_RECORD=/var/lib/luna-release/release
changed=no

log() { echo "$PROG: $*" >&2; }
die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root"
# The image's luna-configure@ unit and a startup script may run at once.
exec 9>/run/luna-startup.lock
flock 9

# check_release URL SHA256: no URL only where luna is installed.
check_release() {
	if [[ -z $1 ]]; then
		[[ -n $(installed_version) ]] || die "no release URL: set $URL_SOURCE"
		return
	fi
	[[ $1 =~ ^(https?://[^[:space:]]+|(gs|s3)://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[A-Za-z0-9._~/+-]+)$ ]] ||
		die "release URL must be http://, https://, gs://BUCKET/OBJECT or s3://BUCKET/KEY (object: letters, digits, ._~/+-), got '$1'"
	[[ -n $2 ]] || die "no release SHA-256: set $SHA_SOURCE"
	[[ $2 =~ ^[0-9a-fA-F]{64}$ ]] || die "release SHA-256 must be 64 hex digits, got '$2'"
}

# check_source WHAT VALUE [none]: KIND:NAME, or none if allowed. The value
# is not shown: it may be a password in the wrong place.
check_source() {
	[[ $2 =~ ^[a-z0-9-]+:[^[:space:]]+$ || (${3:-} == none && $2 == none) ]] ||
		die "$1 must be KIND:NAME (e.g. $EXAMPLE_SOURCE)${3:+ or none}"
}

# check_env_lines TEXT: LUNA_NAME=value lines, blanks and # comments.
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
		LUNA_TLS_CERT_FILE | LUNA_TLS_KEY_FILE | LUNA_TLS_CLIENT_CA_FILE | LUNA_USERS_FROM)
			die "$name cannot be set through $ENV_SOURCE: the TLS and users sources have their own settings"
			;;
		esac
	done <<<"$1"
}

installed_version() {
	local s
	s=$(dpkg-query -W -f='${Status} ${Version}' luna 2>/dev/null || true)
	[[ $s == "install ok installed "* ]] && echo "${s#install ok installed }"
	return 0
}

# install_release URL SHA256 installs the package, unless the record says
# the installed one came from a file of this SHA-256: then nothing is even
# downloaded. gs:// and s3:// go through fetch_gs and fetch_s3.
install_release() {
	local url=$1 want=${2,,} dir deb got pkg version installed rec=''
	installed=$(installed_version)
	if [[ -z $url ]]; then
		log "no release URL: keeping the installed luna $installed"
		return
	fi
	[[ -f $RELEASE_RECORD ]] && rec=$(<"$RELEASE_RECORD")
	if [[ -n $installed && $rec == "$want $installed" ]]; then
		log "luna $installed is already installed from a package of this SHA-256: not downloading $url"
		return
	fi
	# Not /tmp: it may be a small tmpfs. Readable by apt's _apt user.
	dir=$(mktemp -d -p /var/tmp luna-release.XXXXXX)
	chmod 0755 "$dir"
	# shellcheck disable=SC2064 # expand now: dir is local
	trap "rm -rf '$dir'" EXIT
	deb=$dir/luna.deb
	log "downloading $url"
	case $url in
	gs://*) fetch_gs "$url" "$deb" ;;
	s3://*) fetch_s3 "$url" "$deb" ;;
	*) curl -fsSL --retry 5 --retry-connrefused --retry-delay 2 --max-time 600 -o "$deb" "$url" ;;
	esac || die "downloading $url failed"
	got=$(sha256sum "$deb" | cut -d' ' -f1)
	[[ $got == "$want" ]] || die "SHA-256 mismatch for $url: expected $want, got $got; not installing it"
	pkg=$(dpkg-deb -f "$deb" Package) || die "$url is not a Debian package"
	[[ $pkg == luna ]] || die "$url holds the package '$pkg', not luna"
	version=$(dpkg-deb -f "$deb" Version)
	if [[ $installed == "$version" ]]; then
		log "luna $version is already installed"
	else
		log "installing luna $version"
		# The package's own luna.env never replaces a local one.
		local apt=(apt-get install -y -q -o DPkg::Lock::Timeout=300
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$deb")
		if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}"; then
			# A fresh image may have no package lists to resolve dependencies.
			DEBIAN_FRONTEND=noninteractive apt-get update -q
			DEBIAN_FRONTEND=noninteractive "${apt[@]}" || die "installing luna $version failed"
		fi
		# An upgrade restarted a running service (postinst); a first
		# install left it stopped for start_service.
	fi
	if [[ $rec != "$want $version" ]]; then
		mkdir -p "${RELEASE_RECORD%/*}"
		echo "$want $version" >"$RELEASE_RECORD"
		log "recorded luna $version (SHA-256 $want) in $RELEASE_RECORD"
	fi
}

# write_file PATH MODE OWNER CONTENT [WHAT] replaces PATH when its content,
# mode or owner differs.
write_file() {
	local tmp
	if [[ -f $1 && $(stat -c '%a %U:%G' "$1") == "${2#0} $3" && $(<"$1") == "$4" ]]; then
		return
	fi
	tmp=$(mktemp "$1.XXXXXX")
	printf '%s\n' "$4" >"$tmp"
	chown "$3" "$tmp"
	chmod "$2" "$tmp"
	mv -f "$tmp" "$1"
	log "wrote $1${5:+ ($5)}"
	changed=yes
}

remove_file() {
	[[ -e $1 ]] || return 0
	rm -f "$1"
	log "removed $1"
	changed=yes
}

# set_env NAME VALUE sets NAME=VALUE in luna.env, replacing the line that
# sets it (or else its commented-out default); an empty VALUE removes it.
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
	write_file "$ENV_FILE" 0600 root:root "$content" "$name"
}

apply_env_lines() {
	local line
	while IFS= read -r line; do
		[[ -z ${line//[[:space:]]/} || $line == \#* ]] && continue
		set_env "${line%%=*}" "${line#*=}"
	done <<<"$1"
}

env_value() {
	awk -v n="$1=" 'index($0, n) == 1 { v = substr($0, length(n) + 1) } END { print v }' "$ENV_FILE"
}

# write_init_sql SQL SOURCE: the startup SQL, and the SQL the secret SOURCE
# holds (CREATE SECRET ...), fetched by the installed luna. Both may hold
# credentials: root and the service's group only.
write_init_sql() {
	local sql
	if [[ -n $1 ]]; then
		write_file "$PRELOAD" 0640 root:luna "$1"
	else
		remove_file "$PRELOAD"
	fi
	if [[ -n $2 ]]; then
		sql=$(fetch_secret "$2") || die "fetching the startup SQL from $2 failed"
		write_file "$SECRET_SQL" 0640 root:luna "$sql" "from $2"
	else
		remove_file "$SECRET_SQL"
	fi
}

# write_access TLS_SOURCE CA_SOURCE USERS_SOURCE: the server's certificate
# and key (one secret holding both PEM blocks: the key file and the
# certificate file are then the same file), the CA that signs client
# certificates (mutual TLS), and where the server reads its users file
# (it fetches that itself at every start and SIGHUP, like the password).
# A new certificate alone does not restart luna: the server notices the
# file change and serves it from the next handshake, open sessions stay.
write_access() {
	local pem before=$changed
	mkdir -p "$TLS_DIR"
	chown root:luna "$TLS_DIR"
	chmod 0750 "$TLS_DIR"
	if [[ -n $1 ]]; then
		pem=$(fetch_secret "$1") || die "fetching the TLS certificate and key from $1 failed"
		[[ $pem == *"-----BEGIN CERTIFICATE-----"* && $pem =~ -----BEGIN\ ([A-Z]+\ )?PRIVATE\ KEY----- ]] ||
			die "$1 must hold the server certificate (chain) and its private key, both PEM"
		write_file "$TLS_PEM" 0640 root:luna "$pem" "from $1"
		changed=$before
		set_env LUNA_TLS_CERT_FILE "$TLS_PEM"
		set_env LUNA_TLS_KEY_FILE "$TLS_PEM"
	else
		set_env LUNA_TLS_CERT_FILE ""
		set_env LUNA_TLS_KEY_FILE ""
		remove_file "$TLS_PEM"
	fi
	if [[ -n $2 ]]; then
		[[ -n $1 ]] || die "a client CA (mutual TLS) needs the server certificate too"
		pem=$(fetch_secret "$2") || die "fetching the client CA from $2 failed"
		[[ $pem == *"-----BEGIN CERTIFICATE-----"* && $pem != *"PRIVATE KEY"* ]] ||
			die "$2 must hold CA certificates (PEM) and no private key"
		before=$changed
		write_file "$TLS_CLIENT_CA" 0640 root:luna "$pem" "from $2"
		changed=$before
		set_env LUNA_TLS_CLIENT_CA_FILE "$TLS_CLIENT_CA"
	else
		set_env LUNA_TLS_CLIENT_CA_FILE ""
		remove_file "$TLS_CLIENT_CA"
	fi
	set_env LUNA_USERS_FROM "$3"
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
init_sql_from=$(setting LUNA_INIT_SQL_FROM luna-init-sql-from)
[[ -z $init_sql_from ]] || check_source "the startup SQL source (luna-init-sql-from or LUNA_INIT_SQL_FROM)" "$init_sql_from"
passwd_from=$(setting LUNA_PASSWD_FROM luna-passwd-from)
passwd_from=${passwd_from:-gcp-metadata:luna-passwd}
check_source "the password source (luna-passwd-from or LUNA_PASSWD_FROM)" "$passwd_from" none
tls_from=$(setting LUNA_TLS_FROM luna-tls-from)
[[ -z $tls_from ]] || check_source "the TLS source (luna-tls-from or LUNA_TLS_FROM)" "$tls_from"
tls_ca_from=$(setting LUNA_TLS_CLIENT_CA_FROM luna-tls-client-ca-from)
[[ -z $tls_ca_from ]] || check_source "the client CA source (luna-tls-client-ca-from or LUNA_TLS_CLIENT_CA_FROM)" "$tls_ca_from"
users_from=$(setting LUNA_USERS_FROM luna-users-from)
[[ -z $users_from ]] || check_source "the users source (luna-users-from or LUNA_USERS_FROM)" "$users_from"
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
write_init_sql "$init_sql" "$init_sql_from"
write_access "$tls_from" "$tls_ca_from" "$users_from"

start_service
