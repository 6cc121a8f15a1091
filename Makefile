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
## (bench/hit/run.sh; installs nginx, varnish, wrk when missing; RUNS, DURATION, CONNECTIONS, SIZES,
## WORKLOADS, KEYS, SERVERS; bench/results/hit.json).
.PHONY: bench-hit
bench-hit:
	OUT="$(CURDIR)/bench/results/hit.json" CARGO="$(CARGO)" bench/hit/run.sh

## make bench-policy: what a policy costs: one hook call through the runtime (criterion, short),
## then hit throughput of the edge with and without a policy declaring `cache-key`
## (bench/hit/policy.sh; target ≤ 5 % throughput lost; bench/results/policy-calls.json, policy-hit.json).
.PHONY: bench-policy
bench-policy: policies
	$(CARGO) bench -p edgepurge-bench --bench policy_calls -- --warm-up-time 1 --measurement-time 3
	bench/criterion_table.sh policy $(BUILD_DIR)/criterion
	OUT="$(CURDIR)/bench/results/policy-hit.json" CARGO="$(CARGO)" bench/hit/policy.sh

clean:
	$(CARGO) clean

## make faults: the fault suite in full (tests/faults: kill -9 of control and edges at each step,
## graceful restart, partitions through a TCP proxy, a full disk under control's database, bad
## client certificates, slow/hung/resetting/dead origins, damaged receive buffers) with
## 200,000-URL batches (EDGEPURGE_FAULTS=full). `make test` runs the same cases bounded.
.PHONY: faults soak
# --workspace, not -p: the same feature set as `make test`, so nothing is built twice.
faults:
	$(CARGO) build -p edgepurge
	EDGEPURGE_FAULTS=full $(CARGO) test --workspace --test faults -- --test-threads 2

## make soak MINUTES=10: hits under load on 2 edges while purge storms run (single URLs, prefixes,
## tags, 100,000-URL batches) and an edge is killed (-9) and restarted every minute; RSS and open
## descriptors of every process every 5 s, hit throughput per minute, and the count of
## purged-but-served objects (must be 0), on stdout and in bench/results/soak.json. The debug
## binary unless EDGEPURGE_BIN names another. `make test` runs a 20-second smoke of it.
MINUTES ?= 10
soak:
	$(CARGO) build -p edgepurge
	EDGEPURGE_SOAK_SECS=$$(( $(MINUTES) * 60 )) $(CARGO) test --workspace --test faults \
		soak::soak -- --ignored --exact --nocapture

## make bench-propagation: API accepted → applied on every edge, over `edgepurge dev` with
## EDGES edges on loopback mutual TLS, PURGES single-URL purges one after another, RUNS runs.
EDGES ?= 1 8 32
PURGES ?= 1000
RUNS ?= 3
RELEASE_BIN := $(BUILD_DIR)/release
.PHONY: bench-propagation bench-million
bench-propagation: policies
	$(CARGO) build --release -p edgepurge -p edgepurge-bench --bin edgepurge --bin propagation
	$(RELEASE_BIN)/propagation --binary $(RELEASE_BIN)/edgepurge $(foreach n,$(EDGES),--edges $(n)) \
		--purges $(PURGES) --runs $(RUNS) --out bench/results/propagation.json

## make bench-million: one bulk request of URLS URLs to MILLION_EDGES edges of `edgepurge dev`,
## accept time, time until applied everywhere, URLs/s end to end (RUNS runs).
URLS ?= 1000000
MILLION_EDGES ?= 4 32
bench-million: policies
	$(CARGO) build --release -p edgepurge -p edgepurge-bench --bin edgepurge --bin million
	$(RELEASE_BIN)/million --binary $(RELEASE_BIN)/edgepurge --urls $(URLS) $(foreach n,$(MILLION_EDGES),--edges $(n)) \
		--runs $(RUNS) --out bench/results/million.json

## make bench-purge-cost: purge cost against cache size. First the in-process store at 10^4 and
## 10^7 entries (criterion, bench/results/purge-cost-store.json), then end to end: an edge filled over HTTP
## with SIZES entries, time from POST /purge to applied per kind (url, prefix 0.1 %/10 %, tag, host,
## everything), hit throughput while purges run, Varnish bans (ban lurker) as the prefix baseline;
## target ≤ 2× between the largest and the smallest size (bench/results/purge-cost.json). Sizes that do not
## fit in memory are skipped with a message. Installs varnish and wrk when missing.
.PHONY: bench-purge-cost bench-memory
bench-purge-cost: SIZES ?= 10000 100000 1000000 10000000
bench-purge-cost: REPEATS ?= 20
bench-purge-cost:
	$(CARGO) bench -p edgepurge-edge-cache --bench purge -- --warm-up-time 1 --measurement-time 3
	bench/criterion_table.sh store $(BUILD_DIR)/criterion
	$(CARGO) build --release -p edgepurge -p edgepurge-bench --bin edgepurge --bin purge_cost
	$(RELEASE_BIN)/purge_cost --binary $(RELEASE_BIN)/edgepurge --sizes $(SIZES) --repeats $(REPEATS) \
		--out bench/results/purge-cost.json

## make bench-memory: resident bytes per cached entry beyond the body, edge and Varnish -s malloc,
## at SIZES entries, RUNS runs each; target ≤ 200 B at 10^6 (bench/results/memory.json).
bench-memory: SIZES ?= 100000 1000000
bench-memory:
	$(CARGO) build --release -p edgepurge -p edgepurge-bench --bin edgepurge --bin memory
	$(RELEASE_BIN)/memory --binary $(RELEASE_BIN)/edgepurge --sizes $(SIZES) --repeats $(RUNS) \
		--out bench/results/memory.json
