#!/usr/bin/env bash
# bench/criterion_table.sh — criterion's results as one Markdown table and one JSON file.
#
#   bench/criterion_table.sh policy CRITERION_DIR   the `policy_calls` bench (edgepurge-bench):
#       per hook group, the median time per call with criterion's 95 % confidence interval of
#       the median (the spread), and each id over the group's baseline measured in the same run:
#       `builtin` (native defaults, no Wasm), or `not_declared` for cache_key.
#       Writes bench/results/policy-calls.json (OUT).
#   bench/criterion_table.sh store CRITERION_DIR    the `purge` bench of edgepurge-edge-cache:
#       per operation, the median ns at each store size and the largest size over the smallest
#       (target for prefix/tag/host/everything purges: ≤ 2×). Writes bench/results/purge-cost-store.json (OUT).
#
# CRITERION_DIR is where criterion wrote (<dir>/<group>/<id>/new/estimates.json): criterion puts
# it under the cargo target directory ($CARGO_TARGET_DIR/criterion or target/criterion).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:?usage: criterion_table.sh policy|store CRITERION_DIR}"
DIR="${2:?usage: criterion_table.sh policy|store CRITERION_DIR}"
command -v jq >/dev/null || { echo "criterion_table: jq is missing (apt-get install jq)" >&2; exit 1; }
[ -d "$DIR" ] || { echo "criterion_table: no criterion results in $DIR" >&2; exit 1; }

# estimates ROOT_GLOB: one JSON object per estimates.json under it: {path, median_ns, low_ns, high_ns}.
estimates() {
    local f
    for f in "$DIR"/$1/new/estimates.json; do
        [ -e "$f" ] || continue
        jq -c --arg path "${f#"$DIR"/}" '{path: ($path | sub("/new/estimates.json$"; "") | split("/")),
            median_ns: .median.point_estimate, low_ns: .median.confidence_interval.lower_bound,
            high_ns: .median.confidence_interval.upper_bound}' "$f"
    done | jq -s .
}

machine() {
    jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson nproc "$(nproc)" \
        --arg cpu "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
        --argjson mem_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" \
        --arg revision "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
        '{date: $date, nproc: $nproc, cpu: $cpu, mem_kib: $mem_kib, revision: $revision}'
}

fmt='def r3: . * 1000 | round / 1000; def r2: . * 100 | round / 100;'
case "$MODE" in
    policy)
        OUT="${OUT:-$ROOT/bench/results/policy-calls.json}"
        rows="$(estimates '*/*' | jq '[.[] | select(.path[0] != "edge-cache") | {group: .path[0], id: .path[1]} + del(.path)]
            | group_by(.group) | map((map(select(.id == "builtin" or .id == "not_declared")) | first | .median_ns) as $b
              | map(. + {over_baseline: (if $b then .median_ns / $b else null end)})) | flatten')"
        [ "$(jq length <<<"$rows")" -gt 0 ] || { echo "criterion_table: no policy_calls results under $DIR" >&2; exit 1; }
        echo "| hook group | id | median µs (95 % CI) | × baseline |"
        echo "|---|---|---:|---:|"
        jq -r "$fmt"' .[] | "| \(.group) | \(.id) | \(.median_ns / 1000 | r3) (\(.low_ns / 1000 | r3)–\(.high_ns / 1000 | r3)) | \(if .over_baseline then (.over_baseline | r2 | tostring) else "—" end) |"' <<<"$rows"
        echo
        echo "baseline per group: builtin (native defaults, no Wasm), or not_declared for cache_key"
        ;;
    store)
        OUT="${OUT:-$ROOT/bench/results/purge-cost-store.json}"
        rows="$(estimates 'edge-cache/*/*' | jq '[.[] | {op: .path[1], entries: (.path[2] | tonumber)} + del(.path)]
            | group_by(.op) | map(sort_by(.entries) | {op: .[0].op, sizes: ., ratio: (.[-1].median_ns / .[0].median_ns),
              target_applies: (.[0].op | test("prefix|tag|host|everything"))}
              | . + {target_met: (if .target_applies then .ratio <= 2 else null end)})')"
        [ "$(jq length <<<"$rows")" -gt 0 ] || { echo "criterion_table: no edge-cache results under $DIR" >&2; exit 1; }
        echo "| operation (in-process store) | median ns per size (95 % CI) | largest / smallest | target ≤ 2× |"
        echo "|---|---|---:|---|"
        jq -r "$fmt"' .[] | "| \(.op) | \([.sizes[] | "\(.entries): \(.median_ns | r2) (\(.low_ns | r2)–\(.high_ns | r2))"] | join("; ")) | \(.ratio | r2) | \(if .target_applies then (if .target_met then "MET" else "MISSED" end) else "(no target)" end) |"' <<<"$rows"
        ;;
    *) echo "criterion_table: unknown mode '$MODE' (policy or store)" >&2; exit 1 ;;
esac
mkdir -p "$(dirname "$OUT")"
jq -n --arg mode "$MODE" --argjson machine "$(machine)" --argjson rows "$rows" \
    '{benchmark: (if $mode == "policy" then "policy_calls" else "purge_cost_store" end), machine: $machine, results: $rows}' >"$OUT"
echo "wrote $OUT"
