# Luna: `make run` builds and starts the server; `make test` installs what
# the tests need and runs them all.

SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Evaluated once, so the binaries and the packages of one run agree.
VERSION := $(VERSION)
# DuckDB's Arrow interface lives behind this build tag.
TAGS    := duckdb_arrow
LDFLAGS := -X main.version=$(VERSION)
GOFLAGS_BUILD := -tags=$(TAGS) -ldflags='$(LDFLAGS)'
export GOTOOLCHAIN := local

BINARIES := bin/luna bin/lunactl bin/luna-deploy

.PHONY: all build run test test-unit fuzz bench lint lint-check tools clean

all: build

build: $(BINARIES)

bin/%: FORCE
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/$*

FORCE:

run: build
	./bin/luna --api-host-port 127.0.0.1:7688 $(ARGS)

# Every test, with the race detector; the fuzz targets' seed corpora run as
# ordinary tests. The end-to-end tests build their own race-enabled binaries.
test: lint-check
	$(GO) test -race -tags=$(TAGS) -timeout 30m -count=1 ./...

FUZZTIME ?= 60s
fuzz:
	$(GO) test -tags=$(TAGS) -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME) ./wire/
	$(GO) test -tags=$(TAGS) -run '^$$' -fuzz FuzzRoundTrip -fuzztime $(FUZZTIME) ./wire/
	$(GO) test -tags=$(TAGS) -run '^$$' -fuzz FuzzKeyPath -fuzztime $(FUZZTIME) ./server/remote/
	$(GO) test -tags=$(TAGS) -run '^$$' -fuzz FuzzRedact -fuzztime $(FUZZTIME) ./server/sqltext/

# Benchmarks against in-process DuckDB, measured in the same run.
bench:
	$(GO) test -tags=$(TAGS) -run '^$$' -bench . -benchtime 1x -timeout 30m ./server/e2e/

lint: lint-check

# gofmt, vet and staticcheck; make test runs them first.
lint-check: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags=$(TAGS) ./...
	"$$(scripts/tools.sh path staticcheck)" -tags=$(TAGS) ./...

tools:
	scripts/tools.sh install
	scripts/test-deps.sh
	scripts/infra-tools.sh install

clean:
	rm -rf bin dist

# Release artifacts, made by cmd/luna-package (nfpm as a library) from the
# binaries: dist/luna_<version>_amd64.deb, and for a release also
# dist/luna_<version>_linux_amd64.tar.gz and dist/SHA256SUMS. The package
# version is VERSION as a Debian version (v1.2.3 -> 1.2.3, no tag ->
# 0.0.0~git<hash>). Files are stamped with the last commit's time, so the
# same commit packages to the same bytes.
.PHONY: deb release
deb: build
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		$(GO) run ./cmd/luna-package deb -version '$(VERSION)' -luna bin/luna -lunactl bin/lunactl -out dist

release: build
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		$(GO) run ./cmd/luna-package release -version '$(VERSION)' -luna bin/luna -lunactl bin/lunactl -out dist

# VM images with Packer (packer/luna.pkr.hcl) from the .deb: they need cloud
# credentials (README "Deploying") and are not run by the tests. PKRVARS
# names a variables file, e.g. PKRVARS=packer/my.pkrvars.hcl (see
# packer/example.pkrvars.hcl).
PKRVARS ?=
.PHONY: image-gcp image-aws
image-gcp: PACKER_ONLY := googlecompute.luna
image-aws: PACKER_ONLY := amazon-ebs.luna
image-gcp image-aws: deb
	scripts/infra-tools.sh install packer packer-plugins
	debver=$$($(GO) run ./cmd/luna-package debian-version '$(VERSION)') && \
	export PACKER_PLUGIN_PATH="$$(scripts/infra-tools.sh path packer-plugins)" && \
	packer="$$(scripts/infra-tools.sh path packer)" && cd packer && \
	"$$packer" init . && \
	"$$packer" build -only=$(PACKER_ONLY) -var "luna_version=$$debver" $(if $(PKRVARS),-var-file=$(abspath $(PKRVARS))) .
