# Luna: `make run` builds and starts the server; `make test` installs what
# the tests need and runs them all.

SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# DuckDB's Arrow interface lives behind this build tag.
TAGS    := duckdb_arrow
LDFLAGS := -X main.version=$(VERSION)
GOFLAGS_BUILD := -tags=$(TAGS) -ldflags='$(LDFLAGS)'
export GOTOOLCHAIN := local

BINARIES := bin/luna bin/lunactl

.PHONY: all build run test test-unit fuzz bench lint tools clean

all: build

build: $(BINARIES)

bin/%: FORCE
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/$*

FORCE:

run: build
	./bin/luna --api-host-port 127.0.0.1:7688 $(ARGS)

# Every test, with the race detector; the fuzz targets' seed corpora run as
# ordinary tests. The end-to-end tests build their own race-enabled binaries.
test: tools
	$(GO) vet -tags=$(TAGS) ./...
	$(GO) test -race -tags=$(TAGS) -timeout 30m -count=1 ./...

FUZZTIME ?= 60s
fuzz:
	$(GO) test -tags=$(TAGS) -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME) ./server/wire/
	$(GO) test -tags=$(TAGS) -run '^$$' -fuzz FuzzRoundTrip -fuzztime $(FUZZTIME) ./server/wire/

# Benchmarks against in-process DuckDB, measured in the same run.
bench:
	$(GO) test -tags=$(TAGS) -run '^$$' -bench . -benchtime 1x -timeout 30m ./server/e2e/

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags=$(TAGS) ./...
	"$$(scripts/tools.sh path staticcheck)" -tags=$(TAGS) ./...

tools:
	scripts/tools.sh install
	scripts/test-deps.sh

clean:
	rm -rf bin dist
