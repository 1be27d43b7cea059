#!/usr/bin/env bash
# Installs the tools the build and tests need, into a cache outside the
# repository so a warm run is quick. Usage:
#   scripts/tools.sh install      install everything missing
#   scripts/tools.sh path NAME    print the path of an installed tool
set -euo pipefail

CACHE="${LUNA_CACHE:-$HOME/.cache/luna}"
BIN="$CACHE/bin"
STATICCHECK_VERSION=v0.8.2

install_go_tool() { # name module@version
	local name=$1 mod=$2 stamp="$BIN/.$1.version"
	if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$mod" ]]; then
		return
	fi
	echo "installing $mod into $BIN"
	GOBIN="$BIN" GOTOOLCHAIN=local go install "$mod"
	echo "$mod" >"$stamp"
}

install_npm_tool() { # bin-name package@version
	local name=$1 pkg=$2 dir="$CACHE/npm/${2%@*}" stamp="$BIN/.$1.version"
	if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$pkg" ]]; then
		return
	fi
	command -v npm >/dev/null || { echo "npm is required for $pkg (apt-get install npm)" >&2; exit 1; }
	echo "installing $pkg into $dir"
	mkdir -p "$dir"
	npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$pkg"
	ln -sf "$dir/node_modules/.bin/$name" "$BIN/$name"
	echo "$pkg" >"$stamp"
}

# Libraries (no binary) the tests load with node, into $CACHE/npm/NAME;
# tests set NODE_PATH to its node_modules.
install_npm_lib() { # name package@version...
	local name=$1 dir="$CACHE/npm/$1" stamp="$CACHE/npm/$1/.versions"
	shift
	if [[ -d "$dir/node_modules" && "$(cat "$stamp" 2>/dev/null)" == "$*" ]]; then
		return
	fi
	command -v npm >/dev/null || { echo "npm is required for $* (apt-get install npm)" >&2; exit 1; }
	echo "installing $* into $dir"
	mkdir -p "$dir"
	npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --save-exact "$@"
	echo "$*" >"$stamp"
}

# iceberg-write: the nested module internal/icebergwriter (iceberg-go v0.7.0,
# its own arrow-go), built from this checkout; rebuilt only when its
# sources or the Go toolchain change.
install_iceberg_writer() {
	local root stamp="$BIN/.iceberg-write.hash" hash
	root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	hash="$(cd "$root/internal/icebergwriter" && { GOTOOLCHAIN=local go version; sha256sum go.mod go.sum ./*.go; } | sha256sum)"
	if [[ -x "$BIN/iceberg-write" && "$(cat "$stamp" 2>/dev/null)" == "$hash" ]]; then
		return
	fi
	echo "building iceberg-write into $BIN"
	(cd "$root" && GOTOOLCHAIN=local go build -C internal/icebergwriter -trimpath -o "$BIN/iceberg-write" .)
	echo "$hash" >"$stamp"
}

case "${1:-install}" in
install)
	mkdir -p "$BIN"
	command -v go >/dev/null || { echo "go is required (https://go.dev/dl)" >&2; exit 1; }
	command -v gcc >/dev/null || { echo "gcc is required for cgo (apt-get install gcc)" >&2; exit 1; }
	install_go_tool staticcheck "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	install_go_tool ec2-metadata-mock "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0"
	# Object-storage emulators for the integration tests (versitygw takes
	# minutes to build cold; the cache keeps it).
	install_go_tool versitygw "github.com/versity/versitygw/cmd/versitygw@v1.8.0"
	install_go_tool fake-gcs-server "github.com/fsouza/fake-gcs-server@v1.56.1"
	install_npm_tool azurite-blob azurite@3.37.0
	# The JavaScript xlsx writers the Excel tests read workbooks from.
	install_npm_lib xlsx-writers exceljs@4.4.0 xlsx@0.18.5
	# Iceberg tables written by a newer, independent iceberg-go.
	install_iceberg_writer
	;;
path)
	echo "$BIN/${2:?tool name}"
	;;
*)
	echo "usage: $0 install | path NAME" >&2
	exit 2
	;;
esac
