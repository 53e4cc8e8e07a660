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
# Protobuf code generators for `make proto`; protoc itself comes from Debian.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_GEN_GO      := $(TOOLS_DIR)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS_DIR)/protoc-gen-go-grpc
# Every .proto of the SDK; generated Go goes where each file's go_package says.
PROTO_DIR   := sdk/proto
TEST_TIMEOUT ?= 25m
FUZZTIME    ?= 30s

# The built-in WASM modules: Go sources in each directory, the built module
# beside it as DIR.wasm (committed, embedded in gatewayd).
WASM_MODULES := wasm/masking/pii wasm/policy/sqlguard
WASM_BUILD   := GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -buildvcs=false -ldflags=-buildid=

.PHONY: build deps test lint demo bench fuzz clean wasm wasm-check proto

## build: bin/gatewayd, bin/gatewayctl and the external plugins (bin/gatewayd-secret-sops, bin/gatewayd-postgres, bin/gatewayd-ssh)
build:
	$(GO) build -o bin/gatewayd ./cmd/gatewayd
	$(GO) build -o bin/gatewayctl ./cmd/gatewayctl
	$(GO) build -o bin/gatewayd-secret-sops ./cmd/gatewayd-secret-sops
	$(GO) build -o bin/gatewayd-postgres ./cmd/gatewayd-postgres
	$(GO) build -o bin/gatewayd-ssh ./cmd/gatewayd-ssh

## proto: regenerate the SDK's gRPC code from sdk/proto (generated code is committed)
# protoc from Debian's protobuf-compiler (installed when missing), the Go
# generators at pinned versions in bin/tools.
proto: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	@if ! command -v protoc >/dev/null; then \
		echo "apt-get install protobuf-compiler"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler; }; \
	fi
	@cd $(PROTO_DIR) && files=$$(find . -name '*.proto' | sed 's|^\./||' | sort) && \
	for f in $$files; do echo "protoc $(PROTO_DIR)/$$f"; done && \
	PATH="$(TOOLS_DIR):$$PATH" protoc -I . \
		--go_out=.. --go_opt=module=github.com/gatewayd-access/gatewayd/sdk \
		--go-grpc_out=.. --go-grpc_opt=module=github.com/gatewayd-access/gatewayd/sdk \
		$$files

$(PROTOC_GEN_GO):
	GOBIN=$(TOOLS_DIR) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(PROTOC_GEN_GO_GRPC):
	GOBIN=$(TOOLS_DIR) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

## wasm: rebuild the built-in modules' .wasm files from their sources
wasm:
	@for m in $(WASM_MODULES); do echo "build $$m.wasm"; $(WASM_BUILD) -o $$m.wasm ./$$m; done

## wasm-check: fail when a committed .wasm is not what its sources build to
wasm-check:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; rc=0; \
	for m in $(WASM_MODULES); do \
		$(WASM_BUILD) -o "$$tmp/m.wasm" ./$$m; \
		if cmp -s "$$tmp/m.wasm" $$m.wasm; then echo "ok   $$m.wasm matches its sources"; \
		else echo "FAIL $$m.wasm differs from a build of ./$$m: run make wasm and commit"; rc=1; fi; \
	done; exit $$rc

## deps: Debian packages (PostgreSQL, pgbouncer, openssl) and Go modules
deps:
	scripts/install-deps.sh

## test: every test of both modules, against real servers
# Both modules run even when the first fails; the exit status covers both.
test: deps
	@rc=0; \
	$(MAKE) --no-print-directory wasm-check || rc=1; \
	echo "$(GO) test ./... -count=1 -timeout $(TEST_TIMEOUT)"; \
	$(GO) test ./... -count=1 -timeout $(TEST_TIMEOUT) || rc=1; \
	echo "GATEWAYD_TEST_POSTGRES_PLUGIN=1 $(GO) test ./plugins/protocols/postgres/ -count=1 (the handler as an external plugin)"; \
	GATEWAYD_TEST_POSTGRES_PLUGIN=1 $(GO) test ./plugins/protocols/postgres/ -count=1 -timeout $(TEST_TIMEOUT) || rc=1; \
	echo "GATEWAYD_TEST_SSH_PLUGIN=1 $(GO) test ./plugins/protocols/ssh/ -count=1 (the handler as an external plugin)"; \
	GATEWAYD_TEST_SSH_PLUGIN=1 $(GO) test ./plugins/protocols/ssh/ -count=1 -timeout $(TEST_TIMEOUT) || rc=1; \
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
	echo "== no executables tracked (built .wasm modules are checked by make wasm-check)"; \
	binaries=$$(git ls-files -z | xargs -0 -r grep -l -m1 -P '\A\x7fELF' 2>/dev/null || true); \
	if [ -n "$$binaries" ]; then echo "these tracked files are executables; remove them with git rm --cached:"; echo "$$binaries"; rc=1; fi; \
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

## bench: pgbench -S direct, through gatewayd and through pgbouncer, and an SSH copy (see bench/README.md)
bench:
	bench/run.sh
	bench/ssh.sh

## fuzz: each Fuzz target of both modules for FUZZTIME (default 30s)
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## clean: build outputs and demo state (not ./data, which may hold a real audit log)
clean:
	rm -rf bin .demo
