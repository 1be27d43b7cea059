#!/usr/bin/env bash
# Installs the Debian packages the systemd/appliance tests need:
# systemd-analyze (systemd), debootstrap for the appliance rootfs,
# systemd-nspawn (systemd-container) to boot it, shellcheck, and openssl
# (s_client, a TLS client of its own for the API port's TLS tests).
# A quick no-op when everything is present.
set -euo pipefail

# command the test runs -> package that provides it
declare -A WANT=(
	[systemd-analyze]=systemd
	[debootstrap]=debootstrap
	[systemd-nspawn]=systemd-container
	[shellcheck]=shellcheck
	[haproxy]=haproxy
	[openssl]=openssl
	[tmux]=tmux
	[less]=less
)

missing=()
for cmd in "${!WANT[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${WANT[$cmd]}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: missing ${missing[*]} and no apt-get to install them; install them by hand" >&2
	exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "test-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
	sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
echo "test-deps: installing ${missing[*]}"
# Try the existing package lists first; refresh them only when that fails
# (a fresh container has none).
if ! ${sudo[@]+"${sudo[@]}"} apt-get install -y -q --no-install-recommends "${missing[@]}"; then
	${sudo[@]+"${sudo[@]}"} apt-get update -q
	${sudo[@]+"${sudo[@]}"} apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
