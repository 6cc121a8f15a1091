#!/usr/bin/env bash
# bench/hit/policy.sh — what a policy's `cache-key` hook costs on cache hits: run.sh with the
# edge twice, interleaved, in front of the same origin:
#   edge           no policy (the built-in defaults: the hook is not called)
#   edge-cachekey  target/policies/api-read-through.wasm with api-prefix "/", so that its
#                  cache-key hook runs on every request (edge-cachekey.toml.in)
# Every URL carries QUERY="?page=1&utm_source=bench": the hook parses it, drops utm_source and
# returns a key of its own ("…?page=1"), the whole of its work. QUERY= (empty) measures the
# cheaper case where it finds nothing to change and returns none.
# Target (the issue): throughput lost = 1 - edge-cachekey/edge ≤ 5 %.
#
# Defaults: SIZES=1k WORKLOADS=hot; everything else as in run.sh (RUNS, DURATION, EDGE_BIN, …),
# the report in bench/hit/results/policy.json (raw wrk output in results/raw-policy/).
# Needs `make policies`.
#
# Usage: bench/hit/policy.sh    or    WORKLOADS="hot zipf" KEYS=10000 bench/hit/policy.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RESULTS="${RESULTS:-$HERE/results}"
export SERVERS="${SERVERS:-edge edge-cachekey}"
export SIZES="${SIZES:-1k}"
export WORKLOADS="${WORKLOADS:-hot}"
export QUERY="${QUERY-?page=1&utm_source=bench}"
export RESULTS
export OUT="${OUT:-$RESULTS/policy.json}"
export RAW="${RAW:-$RESULTS/raw-policy}"
exec "$HERE/run.sh" "$@"
