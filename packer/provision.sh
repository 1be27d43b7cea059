#!/usr/bin/env bash
# Runs on the image's build instance: installs the Luna package the way the
# startup scripts (scripts/startup-*.sh) do, with apt and the local luna.env
# kept, records it as they do (so an instance whose release URL names this
# package downloads nothing), and optionally pre-installs DuckDB extensions.
# luna.service is left disabled and luna-configure@<LUNA_CONFIGURE>.service
# enabled instead: at every boot it runs the packaged startup script, which
# writes the password source and the startup SQL from the instance's
# metadata (GCP) or user data (AWS) first and then enables and starts
# luna.service, so no instance ever serves without the password it was given
# and none needs a startup script of its own.
#   LUNA_DEB               the uploaded .deb (absolute path)
#   LUNA_CONFIGURE         gcp-mig or aws-asg: the cloud the image is for
#   LUNA_BAKE_EXTENSIONS   space-separated extension names, may be empty
#   LUNA_SSM_AGENT_URL     amazon-ssm-agent's .deb to install (AWS images:
#                          Debian's AMIs lack it; Session Manager needs it),
#                          may be empty
set -euo pipefail

die() { echo "provision.sh: $*" >&2; exit 1; }

deb=${LUNA_DEB:?LUNA_DEB must name the uploaded .deb}
[[ $deb == /* && -f $deb ]] || die "no package at $deb"
configure=${LUNA_CONFIGURE:-}
[[ $configure == gcp-mig || $configure == aws-asg ]] || die "LUNA_CONFIGURE must be gcp-mig or aws-asg, got '$configure'"

export DEBIAN_FRONTEND=noninteractive
apt-get update
# Security fixes published since the base image was made.
apt-get -y -o Dpkg::Options::=--force-confold upgrade
apt-get install -y -q -o DPkg::Lock::Timeout=300 \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$deb"
# The startup scripts' release record (RELEASE_RECORD in
# scripts/startup-*.sh): the image holds this package.
install -d -m 0755 /var/lib/luna-release
echo "$(sha256sum "$deb" | cut -d' ' -f1) $(dpkg-deb -f "$deb" Version)" >/var/lib/luna-release/release
chmod 0644 /var/lib/luna-release/release
rm -f "$deb"
systemctl disable luna.service
systemctl enable "luna-configure@$configure.service"
/usr/bin/luna --version

# The startup script checks for the agent before it would download it, so
# nodes from this image need no S3 access for it.
ssm_agent_url=${LUNA_SSM_AGENT_URL:-}
if [[ -n $ssm_agent_url ]]; then
	agent=$(mktemp -d -p /var/tmp ssm-agent.XXXXXX)
	chmod 0755 "$agent"
	curl -fsSL --retry 5 --retry-connrefused --max-time 300 -o "$agent/amazon-ssm-agent.deb" "$ssm_agent_url" ||
		die "downloading $ssm_agent_url failed"
	[[ $(dpkg-deb -f "$agent/amazon-ssm-agent.deb" Package) == amazon-ssm-agent ]] || die "$ssm_agent_url is not the amazon-ssm-agent package"
	apt-get install -y -q -o DPkg::Lock::Timeout=300 "$agent/amazon-ssm-agent.deb"
	rm -rf "$agent"
	systemctl enable amazon-ssm-agent.service
	dpkg-query -W -f='provision.sh: amazon-ssm-agent ${Version} installed\n' amazon-ssm-agent
fi

# Extensions are installed by the service itself, so they land in its own
# extension directory (under LUNA_DB_HOME_DIR) owned by its user. A runtime
# drop-in points it at the INSTALL statements and keeps it on loopback.
read -r -a extensions <<<"${LUNA_BAKE_EXTENSIONS:-}"
if [[ ${#extensions[@]} -gt 0 ]]; then
	sql=/run/luna-bake-extensions.sql
	: >"$sql"
	for ext in "${extensions[@]}"; do
		[[ $ext =~ ^[a-z0-9_]+$ ]] || die "not an extension name: $ext"
		echo "INSTALL $ext;" >>"$sql"
	done
	chmod 0644 "$sql"
	cat >/run/luna-bake.env <<ENV
LUNA_API_HOST_PORT=127.0.0.1:7688
LUNA_HEALTH_HOST_PORT=127.0.0.1:7689
LUNA_INIT_SQL=$sql
LUNA_INIT_SQL_ON_ERROR=fail
LUNA_PASSWD=
LUNA_PASSWD_FROM=
ENV
	mkdir -p /run/systemd/system/luna.service.d
	cat >/run/systemd/system/luna.service.d/bake.conf <<'UNIT'
[Service]
EnvironmentFile=/run/luna-bake.env
UNIT
	systemctl daemon-reload
	# Type=notify: start returns once the startup SQL has run, or fails.
	echo "provision.sh: installing DuckDB extensions: ${extensions[*]}"
	if ! systemctl start luna.service; then
		journalctl -u luna.service --no-pager -n 50 || true
		die "installing extensions failed (does the build instance reach the internet?)"
	fi
	systemctl stop luna.service
	rm -rf /run/systemd/system/luna.service.d/bake.conf "$sql" /run/luna-bake.env
	systemctl daemon-reload
	systemctl reset-failed luna.service || true
fi
