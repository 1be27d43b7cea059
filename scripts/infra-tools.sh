#!/usr/bin/env bash
# Builds the infrastructure tool chain (OpenTofu, the google provider in a
# filesystem mirror, tflint, Packer and its googlecompute/amazon plugins)
# from Go module source, into a cache outside the repository keyed by
# version, so a warm run is instant and nothing is ever fetched at run time.
# Usage:
#   scripts/infra-tools.sh install [NAME...]   build what is missing (all by default)
#   scripts/infra-tools.sh path NAME           print where NAME lives
# NAMEs: tofu, google-provider, tflint, packer, packer-plugins.
# path also knows: tofurc (the CLI config naming the mirror, for
# TF_CLI_CONFIG_FILE), tf-mirror, google-provider-version.
set -euo pipefail

CACHE="${LUNA_CACHE:-$HOME/.cache/luna}"
ROOT="$CACHE/infra"

TOFU_VERSION=1.12.6
# The google provider at a commit the module proxy serves; the mirror
# advertises it under GOOGLE_PROVIDER_VERSION, the version the modules'
# required_providers constraint accepts.
GOOGLE_PROVIDER_REF=v1.20.1-0.20260828184646-f3721fb45fa3
GOOGLE_PROVIDER_VERSION=7.0.0
TFLINT_VERSION=0.64.0
PACKER_VERSION=1.9.4
GOOGLECOMPUTE_VERSION=1.1.4
AMAZON_VERSION=1.2.9
PLUGIN_API=x5.0
TARGET=linux_amd64

tofu_dir() { echo "$ROOT/tofu-$TOFU_VERSION"; }
google_dir() { echo "$ROOT/google-$GOOGLE_PROVIDER_VERSION-${GOOGLE_PROVIDER_REF##*-}"; }
tflint_dir() { echo "$ROOT/tflint-$TFLINT_VERSION"; }
packer_dir() { echo "$ROOT/packer-$PACKER_VERSION"; }
plugin_dir() { echo "$ROOT/packer-plugin-$1-$2"; } # name version
plugins_dir() { echo "$ROOT/packer-plugins-googlecompute-$GOOGLECOMPUTE_VERSION-amazon-$AMAZON_VERSION"; }

log() { echo "infra-tools: $*" >&2; }

# Builds with the local Go, outside any workspace, statically: these are
# standalone programs.
go_env() { env GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$@"; }

# ensure DIR BUILDER [ARGS...]: runs BUILDER TMP ARGS... to fill a temporary
# directory next to DIR, then renames it into place. A lock per DIR makes
# concurrent callers wait for one build instead of racing it.
ensure() {
	local dir=$1 builder=$2
	shift 2
	[[ -d "$dir" ]] && return 0
	mkdir -p "$ROOT"
	local lock_fd
	exec {lock_fd}>"$dir.lock"
	flock "$lock_fd"
	if [[ -d "$dir" ]]; then
		exec {lock_fd}>&-
		return 0
	fi
	local tmp start
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	start=$SECONDS
	if ! "$builder" "$tmp" "$@"; then
		chmod -R u+w "$tmp" 2>/dev/null || true
		rm -rf "$tmp"
		exec {lock_fd}>&-
		log "building $(basename "$dir") failed"
		return 1
	fi
	chmod 0755 "$tmp"
	mv -T "$tmp" "$dir"
	exec {lock_fd}>&-
	log "built $(basename "$dir") in $((SECONDS - start))s"
}

# build_from_source OUT MODULE VERSION PACKAGE: `go install` refuses modules
# with replace directives, so download the module, copy it somewhere
# writable and build the package inside it, where its go.mod applies.
build_from_source() {
	local out=$1 mod=$2 ver=$3 pkg=$4 src json dir
	log "downloading $mod@$ver"
	json=$(cd "$(dirname "$out")" && go_env go mod download -json "$mod@$ver") ||
		{ log "go mod download $mod@$ver failed: $json"; return 1; }
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
	[[ -n "$dir" && -d "$dir" ]] || { log "no source directory for $mod@$ver in: $json"; return 1; }
	src=$(mktemp -d "$(dirname "$out")/src.XXXXXX")
	cp -R "$dir/." "$src/"
	chmod -R u+w "$src"
	log "compiling $mod@$ver ($pkg); this takes minutes on a cold cache"
	if ! (cd "$src" && go_env go build -trimpath -o "$out" "$pkg"); then
		rm -rf "$src"
		return 1
	fi
	rm -rf "$src"
}

build_tofu() {
	build_from_source "$1/tofu" github.com/opentofu/opentofu "v$TOFU_VERSION" ./cmd/tofu
}

build_google() {
	local tmp=$1 bin mirror
	bin=$(mktemp -d "$tmp/gobin.XXXXXX")
	log "compiling github.com/hashicorp/terraform-provider-google@$GOOGLE_PROVIDER_REF; this takes minutes on a cold cache"
	GOBIN="$bin" go_env go install -trimpath "github.com/hashicorp/terraform-provider-google@$GOOGLE_PROVIDER_REF"
	mirror="$tmp/mirror/registry.opentofu.org/hashicorp/google/$GOOGLE_PROVIDER_VERSION/$TARGET"
	mkdir -p "$mirror"
	mv "$bin/terraform-provider-google" "$mirror/terraform-provider-google_v$GOOGLE_PROVIDER_VERSION"
	rmdir "$bin"
	# The final path, not $tmp: the directory is renamed into place.
	local final
	final=$(google_dir)
	cat >"$tmp/tofurc" <<EOF
# Providers come only from the local mirror; nothing is downloaded.
provider_installation {
  filesystem_mirror {
    path    = "$final/mirror"
    include = ["registry.opentofu.org/hashicorp/google"]
  }
  direct {
    exclude = ["registry.opentofu.org/*/*", "registry.terraform.io/*/*"]
  }
}
EOF
}

build_tflint() {
	log "compiling github.com/terraform-linters/tflint@v$TFLINT_VERSION"
	GOBIN="$1" go_env go install -trimpath "github.com/terraform-linters/tflint@v$TFLINT_VERSION"
}

build_packer() {
	build_from_source "$1/packer" github.com/hashicorp/packer "v$PACKER_VERSION" .
}

build_plugin() { # tmp name version
	build_from_source "$1/packer-plugin-$2" "github.com/hashicorp/packer-plugin-$2" "v$3" .
}

# The layout `packer init` looks for under PACKER_PLUGIN_PATH: the binary
# named with its version and plugin API, and its SHA-256 beside it.
assemble_plugins() {
	local tmp=$1 name ver dest bin
	for spec in "googlecompute:$GOOGLECOMPUTE_VERSION" "amazon:$AMAZON_VERSION"; do
		name=${spec%%:*} ver=${spec#*:}
		dest="$tmp/github.com/hashicorp/$name"
		bin="packer-plugin-${name}_v${ver}_${PLUGIN_API}_$TARGET"
		mkdir -p "$dest"
		cp "$(plugin_dir "$name" "$ver")/packer-plugin-$name" "$dest/$bin"
		chmod 0755 "$dest/$bin"
		sha256sum "$dest/$bin" | cut -d' ' -f1 | tr -d '\n' >"$dest/${bin}_SHA256SUM"
	done
}

install_one() {
	case "$1" in
	tofu) ensure "$(tofu_dir)" build_tofu ;;
	google-provider) ensure "$(google_dir)" build_google ;;
	tflint) ensure "$(tflint_dir)" build_tflint ;;
	packer) ensure "$(packer_dir)" build_packer ;;
	packer-plugins)
		ensure "$(plugin_dir googlecompute "$GOOGLECOMPUTE_VERSION")" build_plugin googlecompute "$GOOGLECOMPUTE_VERSION"
		ensure "$(plugin_dir amazon "$AMAZON_VERSION")" build_plugin amazon "$AMAZON_VERSION"
		ensure "$(plugins_dir)" assemble_plugins
		;;
	*)
		log "unknown tool: $1 (tofu, google-provider, tflint, packer, packer-plugins)"
		return 2
		;;
	esac
}

case "${1:-install}" in
install)
	command -v go >/dev/null || { log "go is required (https://go.dev/dl)"; exit 1; }
	command -v flock >/dev/null || { log "flock is required (apt-get install util-linux)"; exit 1; }
	shift || true
	names=("$@")
	[[ ${#names[@]} -gt 0 ]] || names=(tofu google-provider tflint packer packer-plugins)
	for name in "${names[@]}"; do
		install_one "$name"
	done
	;;
path)
	case "${2:?tool name}" in
	tofu) echo "$(tofu_dir)/tofu" ;;
	google-provider | tf-mirror) echo "$(google_dir)/mirror" ;;
	google-provider-version) echo "$GOOGLE_PROVIDER_VERSION" ;;
	tofurc) echo "$(google_dir)/tofurc" ;;
	tflint) echo "$(tflint_dir)/tflint" ;;
	packer) echo "$(packer_dir)/packer" ;;
	packer-plugins) plugins_dir ;;
	*)
		log "unknown tool: $2"
		exit 2
		;;
	esac
	;;
*)
	echo "usage: $0 install [NAME...] | path NAME" >&2
	exit 2
	;;
esac
