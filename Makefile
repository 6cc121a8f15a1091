# edgepurge — the two set-up commands are `make dev` and `make test` (see README.md).
#
# Policies and hostile test fixtures are Wasm components built from workspace crates with the
# `policy` profile (size-optimised) for wasm32-wasip2, then copied to stable paths:
#   target/policies/<name>.wasm   shipped policies (tools and docs refer to these)
#   target/fixtures/<name>.wasm   hostile fixtures used by tests/
# CARGO_TARGET_DIR may point elsewhere (CI reuses one across clones); the stable copies are
# always under ./target.

CARGO ?= cargo
BUILD_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM_OUT := $(BUILD_DIR)/wasm32-wasip2/policy
POLICIES := default api-read-through static-assets
FIXTURES := $(notdir $(wildcard tests/fixtures/*))

.PHONY: dev test wasm-target policies build lint unit policy-cases bench clean

## make dev: install the Wasm target if missing, build everything, start the local cluster
## (edgepurge dev: certificates, a control node, 2 edges, a demo origin; Ctrl-C stops it).
## Options through DEV_ARGS, e.g. make dev DEV_ARGS="--edges 3 --origin http://127.0.0.1:3000".
dev: build
	$(BUILD_DIR)/debug/edgepurge dev $(DEV_ARGS)

## make test: everything the tests need, then all tests, fmt and clippy.
test: lint policies
	$(CARGO) build -p edgepurge    # tests/e2e/cli.rs runs the binary as a user does
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	$(MAKE) --no-print-directory policy-cases

build: policies
	$(CARGO) build --workspace

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

policies: wasm-target
	$(CARGO) build --profile policy --target wasm32-wasip2 \
		$(foreach p,$(POLICIES),-p edgepurge-policy-$(p)) $(foreach f,$(FIXTURES),-p hostile-$(f))
	@mkdir -p target/policies target/fixtures
	@$(foreach p,$(POLICIES),cp $(WASM_OUT)/edgepurge_policy_$(subst -,_,$(p)).wasm target/policies/$(p).wasm;)
	@$(foreach f,$(FIXTURES),cp $(WASM_OUT)/hostile_$(subst -,_,$(f)).wasm target/fixtures/$(f).wasm;)
	@ls -l target/policies/*.wasm | awk '{print "  " $$5 " bytes  " $$9}'

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Every shipped policy passes its own cases.toml through the CLI, as a policy author would run it.
policy-cases: policies
	$(CARGO) build -p edgepurge
	@set -e; $(foreach p,$(POLICIES),$(BUILD_DIR)/debug/edgepurge policy test target/policies/$(p).wasm policies/$(p)/cases.toml;)

bench: policies
	$(CARGO) bench -p edgepurge-bench

## make bench-hit: cache-hit throughput of the edge next to nginx proxy_cache and Varnish
## (bench/hit/run.sh; installs nginx, varnish, wrk when missing; RUNS, DURATION, CONNECTIONS, SIZES).
.PHONY: bench-hit
bench-hit:
	CARGO="$(CARGO)" bench/hit/run.sh

clean:
	$(CARGO) clean

## make bench-propagation: API accepted → applied on every edge, over `edgepurge dev` with
## EDGES edges on loopback mutual TLS, PURGES single-URL purges one after another.
EDGES ?= 2 8
PURGES ?= 1000
.PHONY: bench-propagation
bench-propagation: policies
	$(CARGO) build --release -p edgepurge -p edgepurge-bench --bin edgepurge --bin propagation
	$(BUILD_DIR)/release/propagation --binary $(BUILD_DIR)/release/edgepurge $(foreach n,$(EDGES),--edges $(n)) \
		--purges $(PURGES) --out bench/propagation.json
