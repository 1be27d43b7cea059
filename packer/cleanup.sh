#!/usr/bin/env bash
# Last step of an image build: hardens SSH and removes everything that must
# be unique per instance or that an image should not carry (package caches,
# host keys, machine-id, cloud-init state, logs, shell history).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# Keys only, no root logins.
install -d -m 0755 /etc/ssh/sshd_config.d
cat >/etc/ssh/sshd_config.d/10-luna.conf <<'CONF'
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
X11Forwarding no
CONF

# Host keys are made on first boot: cloud-init and the guest agent do so, and
# this drop-in covers an image booted without either.
install -d -m 0755 /etc/systemd/system/ssh.service.d
cat >/etc/systemd/system/ssh.service.d/10-host-keys.conf <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
rm -f /etc/ssh/ssh_host_*

apt-get -y autoremove --purge
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# An empty machine-id makes systemd generate a new one on first boot.
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id

if command -v cloud-init >/dev/null; then
	cloud-init clean --logs --seed
fi
rm -rf /var/lib/cloud/instances/* /var/lib/cloud/instance

# The SSM agent's state is the build instance's: every instance registers
# afresh.
if [[ -d /var/lib/amazon/ssm ]]; then
	systemctl stop amazon-ssm-agent.service 2>/dev/null || true
	rm -rf /var/lib/amazon/ssm/*
fi

# Luna's runtime state, but not baked extensions.
rm -rf /var/lib/private/luna/tmp /var/lib/private/luna/object-cache

journalctl --rotate --vacuum-time=1s >/dev/null 2>&1 || true
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
rm -rf /tmp/* /var/tmp/*

unset HISTFILE
rm -f /root/.bash_history /home/*/.bash_history
sync
