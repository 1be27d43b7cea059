#!/usr/bin/env bash
# Startup script of a Luna node in an AWS auto scaling group on a stock
# Debian image, run by the launch template's user data with these settings
# exported; the Luna AMI runs it at every boot (luna-configure@aws-asg,
# --image: settings from the user data's export lines, the password source
# else from the tag luna-passwd-from). It installs the release, configures
# the node and starts luna.service, returning once /readyz answers. Safe to
# run at every boot; the password never goes to disk.
#
#   LUNA_RELEASE_URL           the .deb: s3://BUCKET/KEY (instance role) or
#                              https:// (a presigned URL expires); optional
#                              where luna is installed
#   LUNA_RELEASE_SHA256        its SHA-256; not downloaded when installed
#   LUNA_PASSWD_SSM_PARAMETER  SSM SecureString holding the password, or
#   LUNA_PASSWD_FROM           aws-secretsmanager:<id>, aws-imds:<tag>, none
#   LUNA_INIT_SQL_B64          startup SQL, base64 (init.d/50-preload.sql)
#   LUNA_INIT_SQL_FROM         startup SQL with credentials, e.g.
#                              aws-ssm:/luna/init-sql (init.d/40-secret.sql)
#   LUNA_TLS_FROM              TLS on the API port: a secret holding the
#                              server certificate (chain) and key, PEM, e.g.
#                              aws-secretsmanager:luna-tls (tls/server.pem)
#   LUNA_TLS_CLIENT_CA_FROM    mutual TLS: a secret holding the client CA
#   LUNA_USERS_FROM            named users: a secret holding a users file,
#                              read by the server at every start and SIGHUP
#   LUNA_ENV                   more luna.env settings, LUNA_*=value lines
#   LUNA_SSM_AGENT             yes: install amazon-ssm-agent unless it is,
#                              for SSH through Session Manager
#   LUNA_SSH_AUTHORIZED_KEYS   OpenSSH public keys, one a line, for the
#                              login user's ~/.ssh/authorized_keys
#   LUNA_SSH_USER              that user (default admin, Debian's)
#   AWS_REGION                 default: the instance's
#   LUNA_READY_TIMEOUT         seconds to wait for /readyz (default 300)
#
# Operator access is set up before the release is installed, so that a
# node whose install or start fails can still be reached to see why.
#
# Also read: AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_ENDPOINT_URL_S3 (or
# AWS_ENDPOINT_URL; path-style), AWS_ACCESS_KEY_ID and so on (else the
# instance role).
set -euo pipefail

PROG=startup-aws-asg
IMDS=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
IMDS=${IMDS%/}
EXAMPLE_SOURCE=aws-ssm:/luna/passwd
image=no
case ${1:-} in
"") ;;
--image) image=yes ;;
*)
	echo "usage: $0 [--image]" >&2
	exit 2
	;;
esac

imds_token=
imds_session() {
	[[ -n $imds_token ]] && return
	imds_token=$(curl -sSf --max-time 5 --retry 5 --retry-connrefused -X PUT \
		-H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token") ||
		die "cannot get an IMDSv2 token from $IMDS (set AWS_REGION)"
}

# imds_get PATH prints instance metadata (after imds_session); nothing
# when it is not there.
imds_get() {
	local f code
	f=$(mktemp)
	code=$(curl -sS --max-time 5 --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: $imds_token" \
		-o "$f" -w '%{http_code}' "$IMDS/latest/$1") || code=none
	case $code in
	200) gzip -dcf <"$f" ;; # user data may be gzipped
	404) ;;
	*)
		rm -f "$f"
		die "cannot read $1 from $IMDS (HTTP $code)"
		;;
	esac
	rm -f "$f"
}

# json_string KEY JSON: a string of the role credentials' flat JSON.
json_string() { sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\([^"\\]*\)".*/\1/p' <<<"$2" | head -n 1; }

# fetch_s3 s3://BUCKET/KEY FILE, signed (SigV4) with the instance role's
# credentials, which go to curl through a pipe, not its command line.
fetch_s3() {
	local rest=${1#s3://} b k id secret token role creds ep
	b=${rest%%/*} k=${rest#*/}
	k=${k//+/%2B}
	if [[ -n ${AWS_ACCESS_KEY_ID:-} && -n ${AWS_SECRET_ACCESS_KEY:-} ]]; then
		id=$AWS_ACCESS_KEY_ID secret=$AWS_SECRET_ACCESS_KEY token=${AWS_SESSION_TOKEN:-}
	else
		imds_session
		role=$(imds_get meta-data/iam/security-credentials/ | head -n 1)
		[[ -n $role ]] || die "$1: the instance has no IAM role to read it with"
		creds=$(imds_get "meta-data/iam/security-credentials/$role")
		id=$(json_string AccessKeyId "$creds") secret=$(json_string SecretAccessKey "$creds") token=$(json_string Token "$creds")
	fi
	ep=${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}
	if [[ -n $ep ]]; then
		ep=${ep%/}/$b
	elif [[ $b == *.* ]]; then
		ep=https://s3.$region.amazonaws.com/$b
	else
		ep=https://$b.s3.$region.amazonaws.com
	fi
	curl -fsS --retry 5 --retry-connrefused --retry-delay 2 --max-time 600 --aws-sigv4 "aws:amz:$region:s3" \
		-K <(echo "user = \"$id:$secret\""
			[[ -z $token ]] || echo "header = \"x-amz-security-token: $token\"") \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -o "$2" "$ep/$k"
}

fetch_gs() { die "$1: gs:// needs a Google service account; on AWS use s3:// or https://"; }

fetch_secret() { AWS_REGION=$region /usr/bin/luna fetch-secret "$1"; }

# import_user_data TEXT exports the values of its export LUNA_*='...'
# lines (across lines; '\'' is a quote) the environment lacks.
import_user_data() {
	local text=$1 name value
	while [[ $text =~ (^|$'\n')export\ (LUNA_[A-Z0-9_]+|AWS_REGION)=\' ]]; do
		name=${BASH_REMATCH[2]} value='' text=${text#*"${BASH_REMATCH[0]}"}
		while :; do
			[[ $text == *"'"* ]] || die "the user data's value of $name has no closing quote"
			value+=${text%%"'"*} text=${text#*"'"}
			[[ $text == "\\''"* ]] || break
			value+="'" text=${text#"\\''"}
		done
		[[ -n ${!name+set} ]] || export "$name=$value"
	done
}

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

# check_ssh_keys KEYS: OpenSSH public key lines ("TYPE BASE64 [COMMENT]",
# no options), blanks and # comments.
check_ssh_keys() {
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		[[ -z ${line//[[:space:]]/} || $line == \#* ]] && continue
		# Only the line number is shown: a private key pasted by mistake
		# stays out of the journal.
		[[ $line =~ ^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)\ [A-Za-z0-9+/]+={0,2}(\ [^[:cntrl:]]*)?$ ]] ||
			die "line $n of LUNA_SSH_AUTHORIZED_KEYS is not an OpenSSH public key (TYPE BASE64 [COMMENT], no options)"
	done <<<"$1"
}

# authorize_ssh_keys USER KEYS puts KEYS between marker lines at the end of
# USER's ~/.ssh/authorized_keys, replacing the last run's and keeping other
# keys, so SSH through Session Manager needs no EC2 key pair. Luna is not
# restarted for it.
authorize_ssh_keys() {
	local user=$1 keys=$2 home group file cur rest new was=$changed
	local begin='# luna: keys from LUNA_SSH_AUTHORIZED_KEYS' end='# luna: end of keys from LUNA_SSH_AUTHORIZED_KEYS'
	home=$(getent passwd "$user" | cut -d: -f6 || true)
	if [[ -z $home || ! -d $home ]]; then
		[[ -z $keys ]] || log "warning: no user $user with a home directory: not adding LUNA_SSH_AUTHORIZED_KEYS (set LUNA_SSH_USER)"
		return 0
	fi
	file=$home/.ssh/authorized_keys
	cur=''
	[[ -f $file ]] && cur=$(<"$file")
	[[ -z $keys && $cur != *"$begin"* ]] && return 0
	rest=$(B=$begin E=$end awk '$0 == ENVIRON["B"] { skip = 1; next } $0 == ENVIRON["E"] { skip = 0; next } !skip' <<<"$cur")
	new=$rest
	if [[ -n $keys ]]; then
		new+=${rest:+$'\n'}$begin$'\n'$keys$'\n'$end
	fi
	group=$(id -gn "$user")
	install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
	write_file "$file" 0600 "$user:$group" "$new" "LUNA_SSH_AUTHORIZED_KEYS"
	changed=$was
}

# install_ssm_agent installs amazon-ssm-agent, which Session Manager needs
# and Debian's AMIs lack, unless it is there (the Luna AMI has it), and
# starts it. The package comes from the region's bucket as "Manually install
# SSM Agent on Debian Server instances" (AWS Systems Manager User Guide)
# documents, https://s3.REGION.amazonaws.com/amazon-ssm-REGION/latest/debian_amd64/amazon-ssm-agent.deb,
# reachable through an S3 gateway endpoint; unsigned, since it is public
# and the role has no rights on that bucket. Failing is not fatal: the
# node serves, without operator access.
install_ssm_agent() {
	local url dir
	if [[ $(dpkg-query -W -f='${Status}' amazon-ssm-agent 2>/dev/null || true) != "install ok installed" ]]; then
		url=${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-https://s3.$region.amazonaws.com}}
		url=${url%/}/amazon-ssm-$region/latest/debian_$(dpkg --print-architecture)/amazon-ssm-agent.deb
		dir=$(mktemp -d -p /var/tmp luna-ssm-agent.XXXXXX)
		chmod 0755 "$dir"
		log "installing amazon-ssm-agent from $url"
		if ! { curl -fsS --retry 3 --retry-connrefused --connect-timeout 10 --max-time 300 -o "$dir/agent.deb" "$url" &&
			[[ $(dpkg-deb -f "$dir/agent.deb" Package) == amazon-ssm-agent ]] &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "$dir/agent.deb"; }; then
			rm -rf "$dir"
			log "warning: installing amazon-ssm-agent from $url failed: no SSH through Session Manager (does the subnet reach S3?)"
			return 0
		fi
		rm -rf "$dir"
	fi
	systemctl enable --now --quiet amazon-ssm-agent.service ||
		log "warning: starting amazon-ssm-agent.service failed: no SSH through Session Manager"
}

URL_SOURCE=LUNA_RELEASE_URL
SHA_SOURCE=LUNA_RELEASE_SHA256
ENV_SOURCE=LUNA_ENV

if [[ $image == yes ]]; then
	imds_session
	import_user_data "$(imds_get user-data)"
	[[ -n ${LUNA_PASSWD_FROM:-}${LUNA_PASSWD_SSM_PARAMETER:-} ]] ||
		LUNA_PASSWD_FROM=$(imds_get meta-data/tags/instance/luna-passwd-from)
fi
url=${LUNA_RELEASE_URL:-}
sha=${LUNA_RELEASE_SHA256:-}
init_sql=$(base64 -d <<<"${LUNA_INIT_SQL_B64:-}") || die "LUNA_INIT_SQL_B64 is not valid base64"
init_sql_from=${LUNA_INIT_SQL_FROM:-}
[[ -z $init_sql_from ]] || check_source "the startup SQL source LUNA_INIT_SQL_FROM" "$init_sql_from"
if [[ -n ${LUNA_PASSWD_FROM:-} ]]; then
	passwd_from=$LUNA_PASSWD_FROM
elif [[ -n ${LUNA_PASSWD_SSM_PARAMETER:-} ]]; then
	[[ $LUNA_PASSWD_SSM_PARAMETER =~ ^[A-Za-z0-9_./-]+$ ]] ||
		die "LUNA_PASSWD_SSM_PARAMETER must be an SSM parameter name, got '$LUNA_PASSWD_SSM_PARAMETER'"
	passwd_from=aws-ssm:$LUNA_PASSWD_SSM_PARAMETER
else
	die "no password source: set LUNA_PASSWD_SSM_PARAMETER (or LUNA_PASSWD_FROM; none runs without a password)"
fi
check_source "the password source LUNA_PASSWD_FROM" "$passwd_from" none
tls_from=${LUNA_TLS_FROM:-}
[[ -z $tls_from ]] || check_source "the TLS source LUNA_TLS_FROM" "$tls_from"
tls_ca_from=${LUNA_TLS_CLIENT_CA_FROM:-}
[[ -z $tls_ca_from ]] || check_source "the client CA source LUNA_TLS_CLIENT_CA_FROM" "$tls_ca_from"
users_from=${LUNA_USERS_FROM:-}
[[ -z $users_from ]] || check_source "the users source LUNA_USERS_FROM" "$users_from"
extra_env=${LUNA_ENV:-}

check_release "$url" "$sha"
check_env_lines "$extra_env"
ssh_keys=${LUNA_SSH_AUTHORIZED_KEYS:-}
ssh_user=${LUNA_SSH_USER:-admin}
[[ $ssh_user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "LUNA_SSH_USER must be a user name, got '$ssh_user'"
check_ssh_keys "$ssh_keys"
ssm_agent=${LUNA_SSM_AGENT:-}
[[ $ssm_agent =~ ^(yes|no|)$ ]] || die "LUNA_SSM_AGENT must be yes or no, got '$ssm_agent'"
region=${AWS_REGION:-}
if [[ -z $region ]]; then
	imds_session
	region=$(imds_get meta-data/placement/region)
fi
[[ $region =~ ^[a-z0-9-]+$ ]] || die "bad AWS region '$region'"

authorize_ssh_keys "$ssh_user" "$ssh_keys"
[[ $ssm_agent != yes ]] || install_ssm_agent

install_release "$url" "$sha"

if [[ $passwd_from == none ]]; then
	log "warning: no password: clients need no AUTH"
	set_env LUNA_PASSWD_FROM ""
else
	set_env LUNA_PASSWD_FROM "$passwd_from"
fi
# The server's AWS SDK (SSM, Secrets Manager, S3) does not look the region
# up itself.
set_env AWS_REGION "$region"
apply_env_lines "$extra_env"
write_init_sql "$init_sql" "$init_sql_from"
write_access "$tls_from" "$tls_ca_from" "$users_from"

start_service
