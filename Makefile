# gatewayd — build, test, lint, demo, bench, fuzz.
#
#   make demo    sets everything up and runs gatewayd in front of a real PostgreSQL
#   make test    installs what the tests need (Debian packages) and runs every test
#
# Both modules are covered: the root module and the SDK (./sdk, its own module).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# Go 1.26 lives in /usr/local/go on the project's machines.
export PATH := /usr/local/go/bin:$(PATH)

GO          ?= go
MODULES     := . sdk
TOOLS_DIR   := $(CURDIR)/bin/tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_DIR)/staticcheck
TEST_TIMEOUT ?= 25m
FUZZTIME    ?= 30s

.PHONY: build deps test lint demo bench fuzz clean

## build: bin/gatewayd and bin/gatewayctl
build:
	$(GO) build -o bin/gatewayd ./cmd/gatewayd
	$(GO) build -o bin/gatewayctl ./cmd/gatewayctl

## deps: Debian packages (PostgreSQL, pgbouncer, openssl) and Go modules
deps:
	scripts/install-deps.sh

## test: every test of both modules, against real servers
# Both modules run even when the first fails; the exit status covers both.
test: deps
	@rc=0; \
	echo "$(GO) test ./... -count=1 -timeout $(TEST_TIMEOUT)"; \
	$(GO) test ./... -count=1 -timeout $(TEST_TIMEOUT) || rc=1; \
	echo "cd sdk && $(GO) test ./... -count=1 -timeout $(TEST_TIMEOUT)"; \
	(cd sdk && $(GO) test ./... -count=1 -timeout $(TEST_TIMEOUT)) || rc=1; \
	exit $$rc

## lint: gofmt, go vet and staticcheck on both modules
# Every check runs; the exit status covers all of them.
lint: $(STATICCHECK)
	@rc=0; \
	echo "== gofmt -l"; \
	unformatted=$$(find . -type f -name '*.go' -not -path './bin/*' -not -path './.demo/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "these files need gofmt -w:"; echo "$$unformatted"; rc=1; fi; \
	for mod in $(MODULES); do \
		echo "== $$mod: go vet"; (cd $$mod && $(GO) vet ./...) || rc=1; \
		echo "== $$mod: staticcheck"; (cd $$mod && $(STATICCHECK) ./...) || rc=1; \
	done; \
	exit $$rc

$(STATICCHECK):
	GOBIN=$(TOOLS_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## demo: PostgreSQL with fake customers, gatewayd in front; prints the psql command
demo:
	scripts/demo.sh

## bench: pgbench -S direct, through gatewayd and through pgbouncer (see bench/README.md)
bench:
	bench/run.sh

## fuzz: each Fuzz target of both modules for FUZZTIME (default 30s)
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## clean: build outputs and demo state (not ./data, which may hold a real audit log)
clean:
	rm -rf bin .demo
