#!/usr/bin/env bash
# bench/hit/run.sh — cache-hit throughput of the edge next to nginx proxy_cache and Varnish,
# and (bench/hit/policy.sh) of the edge with and without a policy's `cache-key` hook.
#
# What it measures: requests per second and latency (p50, p99) of cached objects fetched over
# keep-alive HTTP/1.1 connections, for each object size in SIZES and each workload in WORKLOADS:
#   hot    ONE hot object, /obj-<size>;
#   zipf   KEYS distinct objects /z/<size>/<rank>, each request drawing its rank from a Zipf
#          distribution with exponent ZIPF_S (zipf.lua); the whole set is cached beforehand, so
#          every request is a hit too, but spread over many entries. For large objects the set
#          is cut to what fits in ZIPF_MAX_MIB (100,000 × 1 MiB would not fit in memory); the
#          key count used for each size is in the table and the JSON;
# from these servers (SERVERS), all in front of the same origin:
#   edge           `edgepurge edge` (release build, RUST_LOG=warn), config from edge.toml.in:
#                  no policy (the built-in defaults; no `cache-key` hook)
#   edge-cachekey  the same binary with edge-cachekey.toml.in appended: the api-read-through
#                  policy, which declares the `cache-key` hook, applied to every path
#   varnish        `varnishd -b <origin> -s malloc,<CACHE_MIB>m`: the builtin VCL, default parameters
#   nginx          nginx with proxy_cache, config from cache.nginx.conf.in
# The origin is another nginx (origin.nginx.conf.in) serving random files of each size with
# `Cache-Control: max-age=3600`; its access log shows that no request reaches it while measuring.
# The caches are sized (CACHE_MIB, computed) to hold every zipf set twice over: nothing is
# evicted.
#
# How:
#   1. installs nginx, varnish, wrk, curl, jq from Debian when missing, without letting the
#      packages start their system services (a temporary policy-rc.d);
#   2. builds the edge (`cargo build --release -p edgepurge`; skipped when EDGE_BIN is set);
#   3. checks memory and disk for the zipf sets, starts the origin and the caches as the current
#      user, on free loopback ports, with every file in a temporary directory; a trap stops them
#      all on exit, error or Ctrl-C;
#   4. warms each cache and checks hits: the hot object (the first request fills it, the next
#      must be a hit: edge: `Cache-Status: edgepurge; hit`, Varnish: two ids in `X-Varnish`,
#      nginx: `X-Cache-Status: HIT`; and the body must have the right size); for zipf, every key
#      of the set (curl --parallel; the origin's log must show each key fetched once) and then a
#      sample of keys (the first, second and last rank and a few random ones) must be hits at
#      the first request; edge-cachekey's /metrics must count `cache-key` calls decided by the
#      policy;
#   5. per workload and size: one WARMUP run of wrk per server (not counted), then RUNS rounds
#      of `wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency` (zipf: `-s zipf.lua`),
#      interleaved (edge, varnish, nginx; varnish, nginx, edge; …: the order rotates each round)
#      so that the noise of a shared machine falls on all servers alike. Around each run it
#      reads the CPU time (user + system) the server used from /proc, so that each run also
#      gives the server's CPU microseconds per request;
#   6. prints a table (table.jq: median req/s, min–max, median p99 and p50, median CPU
#      µs/request; the edge over each baseline as a ratio of medians, as the median of the
#      per-round ratios and in requests per CPU-second; the edge over the better of Varnish and
#      nginx, its p99 next to the best p99, and the verdict on the 1 KiB target; edge-cachekey
#      over edge as throughput lost, with the verdict on the ≤ 5 % target) and writes it
#      (report.jq) with every run, the machine (nproc, memory, CPU model, kernel, how busy the
#      CPUs were with other work just before and after) and the parameters to $OUT (raw wrk
#      output in $RAW).
#
# wrk runs on the same machine as the servers and takes CPU from them: figures are for
# comparing the servers with each other under the same conditions, not absolute. On a shared
# machine, trust the CPU time per request and the per-round ratios more than the req/s.
#
# Parameters (environment):
#   RUNS=5            measured rounds per workload and size (each server once per round)
#   DURATION=5s       length of one wrk run
#   WARMUP=1s         unmeasured wrk run per server, workload and size before the rounds ("0" = none)
#   CONNECTIONS=64    wrk connections (keep-alive)
#   THREADS=2         wrk threads
#   SIZES="1k 16k 1m" object sizes: <n>k (KiB) or <n>m (MiB)
#   WORKLOADS="hot zipf"   see above
#   KEYS=100000       keys of the zipf set (per size, before the ZIPF_MAX_MIB cut)
#   ZIPF_S=1.0        Zipf exponent: P(rank k) ∝ 1/k^ZIPF_S (1.0: the top key gets 1/H(KEYS),
#                     8.3 % of the requests for 100,000 keys; the top 1 % of keys ~ 63 %)
#   ZIPF_MAX_MIB=2048 largest zipf set per size, in MiB of bodies: keys = min(KEYS, this / size)
#                     (1k and 16k: 100,000 keys; 1m: 2,048 keys)
#   ZIPF_SEED=1       seed of zipf.lua's generators (with the wrk thread's number): the same for all servers
#   QUERY=""          query string appended to every URL, e.g. "?page=1&utm_source=bench"
#                     (no `[`, `]`, `{`, `}`: the warm-up uses curl's URL globbing)
#   SERVERS="edge varnish nginx"   which servers to measure: edge, edge-cachekey, varnish,
#                     nginx (ratios are of `edge` over the others; edge-cachekey over edge)
#   POLICY_WASM=target/policies/api-read-through.wasm   the policy of edge-cachekey (make policies)
#   EDGE_BIN=path     use this edgepurge binary instead of building one
#   EDGE_LOG=warn     RUST_LOG of the edge
#   RESULTS=bench/hit/results      where the results go
#   OUT=$RESULTS/latest.json       the JSON report
#   RAW=$RESULTS/raw               raw wrk output (emptied first)
#   MEM_CHECK=1       0: skip the check that the zipf sets fit in the available memory and disk
#   KEEP_TMP=1        keep the temporary directory (configs, logs) for inspection
#   HOLD=1            after the checks, print the URLs and wait (Ctrl-C stops): for profiling
#
# Usage: make bench-hit    or    RUNS=3 SIZES=1k WORKLOADS=hot bench/hit/run.sh
#        bench/hit/policy.sh (SERVERS="edge edge-cachekey", QUERY set, OUT=results/policy.json)

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"
# shellcheck source=bench/hit/lib.sh
. "$HERE/lib.sh"

RUNS="${RUNS:-5}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
SIZES="${SIZES:-1k 16k 1m}"
WORKLOADS="${WORKLOADS:-hot zipf}"
KEYS="${KEYS:-100000}"
ZIPF_S="${ZIPF_S:-1.0}"
ZIPF_MAX_MIB="${ZIPF_MAX_MIB:-2048}"
ZIPF_SEED="${ZIPF_SEED:-1}"
QUERY="${QUERY:-}"
SERVERS="${SERVERS:-edge varnish nginx}"
POLICY_WASM="${POLICY_WASM:-$ROOT/target/policies/api-read-through.wasm}"
EDGE_LOG="${EDGE_LOG:-warn}"
RESULTS="${RESULTS:-$HERE/results}"
OUT="${OUT:-$RESULTS/latest.json}"
RAW="${RAW:-$RESULTS/raw}"
read -r -a SERVER_LIST <<<"$SERVERS"
read -r -a SIZE_LIST <<<"$SIZES"
read -r -a WORKLOAD_LIST <<<"$WORKLOADS"

trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- 1. tools, 2. build
install_tools
has_edge=0 has_zipf=0
for s in "${SERVER_LIST[@]}"; do
    case "$s" in
        edge | edge-cachekey) has_edge=1 ;;
        varnish | nginx) ;;
        *) die "unknown server '$s' in SERVERS (edge, edge-cachekey, varnish, nginx)" ;;
    esac
done
for w in "${WORKLOAD_LIST[@]}"; do
    case "$w" in hot) ;; zipf) has_zipf=1 ;; *) die "unknown workload '$w' in WORKLOADS (hot, zipf)" ;; esac
done
if [ ${#SERVER_LIST[@]} -eq 0 ] || [ ${#SIZE_LIST[@]} -eq 0 ] || [ ${#WORKLOAD_LIST[@]} -eq 0 ]; then
    die "SERVERS, SIZES and WORKLOADS must not be empty"
fi
case "$QUERY" in "" | "?"*) ;; *) die "QUERY must be empty or start with '?'" ;; esac
case "$QUERY" in *[][{}]*) die "QUERY must not contain [ ] { } (curl globbing)" ;; esac
case " $SERVERS " in
    *" edge-cachekey "*) [ -f "$POLICY_WASM" ] || die "no policy at $POLICY_WASM: run \`make policies\`" ;;
esac

BIN=""
if [ "$has_edge" = 1 ]; then
    if [ -n "${EDGE_BIN:-}" ]; then
        BIN="$EDGE_BIN"
    else
        target_dir="${CARGO_TARGET_DIR:-target}"
        case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
        log "building the edge: cargo build --release -p edgepurge"
        (cd "$ROOT" && "${CARGO:-cargo}" build --release -p edgepurge) ||
            die "the edge does not build (EDGE_BIN=path/to/edgepurge measures an existing binary)"
        BIN="$target_dir/release/edgepurge"
    fi
    [ -x "$BIN" ] || die "no edge binary at $BIN"
fi

# ---------------------------------------------------------------- 3. sizing, origin and caches
# Keys of the zipf set per size, and what all the sets (and the hot objects) weigh per cache.
declare -A ZKEYS=()
set_bytes=0 set_keys=0 disk_bytes=0
for size in "${SIZE_LIST[@]}"; do
    bytes="$(size_bytes "$size")"
    keys=0
    if [ "$has_zipf" = 1 ]; then
        keys=$((ZIPF_MAX_MIB * 1048576 / bytes))
        [ "$keys" -gt "$KEYS" ] && keys="$KEYS"
        [ "$keys" -ge 1 ] || die "size $size: ZIPF_MAX_MIB=$ZIPF_MAX_MIB holds no object"
    fi
    ZKEYS[$size]="$keys"
    # + 1: the hot object; 1 KiB per entry for the key, headers and bookkeeping.
    set_bytes=$((set_bytes + (keys + 1) * (bytes + 1024)))
    set_keys=$((set_keys + keys + 1))
    # nginx keeps each entry in a file (header ~0.6 KiB + body) of whole 4 KiB blocks.
    disk_bytes=$((disk_bytes + (keys + 1) * ((bytes + 1024 + 4095) / 4096 * 4096)))
done
# Twice what the sets weigh (no eviction, whatever each server's own overhead), at least 256 MiB.
CACHE_MIB=$(((2 * set_bytes + 1048575) / 1048576))
[ "$CACHE_MIB" -lt 256 ] && CACHE_MIB=256
# An nginx keys zone of 1 MiB holds ~8,000 keys.
NGINX_ZONE_MIB=$(((2 * set_keys + 7999) / 8000))
[ "$NGINX_ZONE_MIB" -lt 10 ] && NGINX_ZONE_MIB=10

TMP="$(mktemp -d "${TMPDIR:-/tmp}/edgepurge-bench-hit.XXXXXX")"
if [ "$has_zipf" = 1 ] && [ "${MEM_CHECK:-1}" = 1 ]; then
    in_ram=0
    for s in "${SERVER_LIST[@]}"; do [ "$s" = nginx ] || in_ram=$((in_ram + 1)); done
    # ~1.5× the bodies per cache held in RAM (Varnish measured 1.4–1.6× at 16 KiB; the edge
    # more, until it sizes its body buffers exactly).
    need_mib=$((in_ram * set_bytes * 3 / 2 / 1048576))
    avail_mib=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) / 1024))
    log "zipf sets: $(for s in "${SIZE_LIST[@]}"; do printf '%s %s keys; ' "$s" "${ZKEYS[$s]}"; done)~$((set_bytes / 1048576)) MiB per cache; cache size $CACHE_MIB MiB"
    [ $((need_mib + 1024)) -le "$avail_mib" ] ||
        die "the zipf sets need ~$need_mib MiB of memory in $in_ram caches, $avail_mib MiB available: lower KEYS, ZIPF_MAX_MIB or SIZES (MEM_CHECK=0 skips this check)"
    if [[ " $SERVERS " == *" nginx "* ]]; then
        avail_disk=$(df --output=avail -B1 "$TMP" | tail -1)
        [ $((disk_bytes + 1073741824)) -le "$avail_disk" ] ||
            die "nginx's on-disk cache needs ~$((disk_bytes / 1048576)) MiB in $TMP, $((avail_disk / 1048576)) MiB free (TMPDIR=… elsewhere)"
    fi
fi

mkdir -p "$TMP"/origin/{www,tmp} "$TMP"/nginx/{cache,tmp} "$TMP"/varnish "$TMP"/edge "$TMP"/edge-cachekey
mkdir -p "$RAW" "$(dirname "$OUT")"
rm -f "$RAW"/*.txt

ORIGIN_PORT="$(free_port)"
declare -A PORT=() ADMIN_PORT=() SERVER_PID=()
for server in "${SERVER_LIST[@]}"; do
    PORT[$server]="$(free_port)"
    case "$server" in edge*) ADMIN_PORT[$server]="$(free_port)" ;; esac
done

for size in "${SIZE_LIST[@]}"; do
    head -c "$(size_bytes "$size")" /dev/urandom >"$TMP/origin/www/obj-$size"
done

# nginx drops its workers to `nobody` when started as root: keep them the current user's.
NGINX_USER=()
[ "$(id -u)" = 0 ] && NGINX_USER=(-g "user $(id -un) $(id -gn);")

render "$HERE/origin.nginx.conf.in" "$TMP/origin/nginx.conf" DIR="$TMP/origin" ORIGIN_PORT="$ORIGIN_PORT"
start origin "$TMP/origin/stdout.log" nginx -p "$TMP/origin" -e "$TMP/origin/error.log" \
    -c "$TMP/origin/nginx.conf" "${NGINX_USER[@]}"
wait_up origin "http://127.0.0.1:$ORIGIN_PORT/" "$TMP/origin/error.log"

for server in "${SERVER_LIST[@]}"; do
    port="${PORT[$server]}"
    case "$server" in
        edge | edge-cachekey)
            dir="$TMP/$server"
            render "$HERE/edge.toml.in" "$dir/edge.toml" EDGE_PORT="$port" \
                EDGE_ADMIN_PORT="${ADMIN_PORT[$server]}" ORIGIN_PORT="$ORIGIN_PORT" CACHE_MIB="$CACHE_MIB"
            if [ "$server" = edge-cachekey ]; then
                render "$HERE/edge-cachekey.toml.in" "$dir/policy.toml" POLICY_WASM="$POLICY_WASM"
                cat "$dir/policy.toml" >>"$dir/edge.toml"
            fi
            RUST_LOG="$EDGE_LOG" start "$server" "$dir/edge.log" "$BIN" edge --config "$dir/edge.toml"
            SERVER_PID[$server]="$!"
            # Loading a policy compiles the component: give it time.
            wait_up "$server" "http://127.0.0.1:$port/" "$dir/edge.log" 60
            ;;
        varnish)
            # -j none: no privilege separation, runs as the current user; -F: foreground.
            start varnish "$TMP/varnish/varnishd.log" varnishd -F -j none -n "$TMP/varnish" \
                -a "127.0.0.1:$port" -b "127.0.0.1:$ORIGIN_PORT" -s "malloc,${CACHE_MIB}m"
            SERVER_PID[varnish]="$!"
            # It compiles its VCL with cc first: slow on a busy machine.
            wait_up varnish "http://127.0.0.1:$port/" "$TMP/varnish/varnishd.log" 60
            ;;
        nginx)
            render "$HERE/cache.nginx.conf.in" "$TMP/nginx/nginx.conf" DIR="$TMP/nginx" \
                NGINX_PORT="$port" ORIGIN_PORT="$ORIGIN_PORT" CACHE_MIB="$CACHE_MIB" \
                NGINX_ZONE_MIB="$NGINX_ZONE_MIB"
            start nginx "$TMP/nginx/stdout.log" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" \
                -c "$TMP/nginx/nginx.conf" "${NGINX_USER[@]}"
            SERVER_PID[nginx]="$!"
            wait_up nginx "http://127.0.0.1:$port/" "$TMP/nginx/error.log"
            ;;
    esac
done

# ---------------------------------------------------------------- 4. warm and check hits
origin_requests() { wc -l <"$TMP/origin/access.log"; }

# is_hit SERVER PATH BYTES: one GET of PATH must be a hit of BYTES bytes; logs the cache header.
is_hit() {
    local server="$1" url="http://127.0.0.1:${PORT[$1]}$2" want="$3" headers got
    headers="$(curl -sf -D - -o "$TMP/body" "$url")" || die "$server: GET $url failed"
    got="$(stat -c %s "$TMP/body")"
    [ "$got" = "$want" ] || die "$server: $url returned $got bytes, expected $want"
    case "$server" in
        edge*) grep -qiE '^cache-status: *edgepurge; *hit' <<<"$headers" ;;
        varnish) grep -qiE '^x-varnish: *[0-9]+ +[0-9]+' <<<"$headers" ;;
        nginx) grep -qiE '^x-cache-status: *HIT' <<<"$headers" ;;
    esac || die "$server: GET $url is not a hit; response head:
$headers"
    HIT_HEADER="$(grep -iE '^(cache-status|x-varnish|x-cache-status):' <<<"$headers" | tr -d '\r')"
}

# warm_zipf SERVER SIZE: fetches every key of the size's zipf set once, then checks a sample.
warm_zipf() {
    local server="$1" size="$2" keys="${ZKEYS[$2]}" bytes codes fetched before t0 sample k
    bytes="$(size_bytes "$size")"
    before="$(origin_requests)"
    t0="$(date +%s.%N)"
    codes="$(curl -sS --no-progress-meter --parallel --parallel-max 32 -o /dev/null -w '%{http_code}\n' \
        "http://127.0.0.1:${PORT[$server]}/z/$size/[1-$keys]$QUERY" 2>>"$TMP/curl.log" | sort | uniq -c)" ||
        die "$server: warming /z/$size/ failed: $(tail -n 3 "$TMP/curl.log")"
    [ "$(awk '$2 == 200 {print $1}' <<<"$codes")" = "$keys" ] ||
        die "$server: warming /z/$size/[1-$keys]: not all 200: $(tr '\n' ' ' <<<"$codes")"
    # Every key reached the origin (through this cache: the others are idle meanwhile).
    fetched="$(tail -n "+$((before + 1))" "$TMP/origin/access.log" |
        awk -v p="/z/$size/" 'index($7, p) == 1 {print $7}' | sort -u | wc -l)"
    [ "$fetched" = "$keys" ] || die "$server: warming /z/$size/: $fetched distinct keys reached the origin, expected $keys"
    sample="1 2 $keys"
    for _ in 1 2 3 4 5; do sample="$sample $((1 + (RANDOM * 32768 + RANDOM) % keys))"; done
    for k in $sample; do is_hit "$server" "/z/$size/$k$QUERY" "$bytes"; done
    log "$server: zipf /z/$size/[1-$keys] cached in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s; ranks $(tr ' ' ',' <<<"$sample") are hits: $HIT_HEADER"
}

# cachekey_calls SERVER: "policy fallback" counts of cache-key calls from the edge's /metrics.
cachekey_calls() {
    curl -sf "http://127.0.0.1:${ADMIN_PORT[$1]}/metrics" | awk '
        /^edgepurge_policy_calls_total\{hook="cache-key",decided="policy"\}/ { p = $2 }
        /^edgepurge_policy_calls_total\{hook="cache-key",decided="fallback"\}/ { f = $2 }
        END { printf "%d %d\n", p, f }'
}

for size in "${SIZE_LIST[@]}"; do
    for server in "${SERVER_LIST[@]}"; do
        curl -sf -o /dev/null "http://127.0.0.1:${PORT[$server]}/obj-$size$QUERY" || die "$server: GET /obj-$size$QUERY failed"
        is_hit "$server" "/obj-$size$QUERY" "$(size_bytes "$size")"
        log "$server serves /obj-$size$QUERY as a hit: $HIT_HEADER"
    done
done
if [ "$has_zipf" = 1 ]; then
    for size in "${SIZE_LIST[@]}"; do
        for server in "${SERVER_LIST[@]}"; do warm_zipf "$server" "$size"; done
    done
fi
for server in "${SERVER_LIST[@]}"; do
    [ "$server" = edge-cachekey ] || continue
    read -r calls fallbacks < <(cachekey_calls "$server")
    if [ "$calls" = 0 ] || [ "$fallbacks" != 0 ]; then
        die "$server: /metrics counts $calls cache-key calls decided by the policy, $fallbacks fallbacks"
    fi
    log "$server: $calls cache-key calls decided by the policy so far, no fallback"
done

if [ "${HOLD:-0}" = 1 ]; then
    for server in "${SERVER_LIST[@]}"; do
        log "$server (pid ${SERVER_PID[$server]}): http://127.0.0.1:${PORT[$server]}/obj-<size>$QUERY"
        if [ "$has_zipf" = 1 ]; then
            for size in "${SIZE_LIST[@]}"; do
                log "  zipf: wrk -t$THREADS -c$CONNECTIONS -d30s -s $HERE/zipf.lua http://127.0.0.1:${PORT[$server]} -- ${ZKEYS[$size]} $ZIPF_S $size '$QUERY'"
            done
        fi
    done
    log "holding (Ctrl-C stops everything)"
    while :; do
        sleep 3600 &
        PIDS+=("$!") NAMES+=(sleep)
        wait "$!" # unlike a foreground sleep, `wait` lets the traps run at once
    done
fi

# ---------------------------------------------------------------- 5. measure
RUNS_JSONL="$TMP/runs.jsonl"
: >"$RUNS_JSONL"
BUSY_BEFORE="$(cpu_busy_pct)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
CLK_TCK="$(getconf CLK_TCK)"
ORIGIN_JSONL="$TMP/origin.jsonl"
: >"$ORIGIN_JSONL"

# one_run WORKLOAD SIZE SERVER ROUND (ROUND 0 = warm-up, not recorded)
one_run() {
    local workload="$1" size="$2" server="$3" round="$4" duration="$DURATION" out ticks_before ticks
    local base="http://127.0.0.1:${PORT[$3]}" target=() keys=1
    [ "$round" = 0 ] && duration="$WARMUP"
    case "$workload" in
        hot) target=("$base/obj-$size$QUERY") ;;
        zipf)
            keys="${ZKEYS[$size]}"
            target=(-s "$HERE/zipf.lua" "$base" -- "$keys" "$ZIPF_S" "$size" "$QUERY" "$ZIPF_SEED")
            ;;
    esac
    out="$RAW/$workload-$size-$server-$round.txt"
    ticks_before="$(cpu_ticks "${SERVER_PID[$server]}")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency "${target[@]}" >"$out" 2>&1 ||
        die "wrk failed: $(cat "$out")"
    ticks=$(($(cpu_ticks "${SERVER_PID[$server]}") - ticks_before))
    [ "$round" = 0 ] && return
    local rps p50 p99 reqs errors cpu_us
    read -r rps p50 p99 reqs errors < <(parse_wrk "$out") || die "cannot parse $out"
    cpu_us="$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.3f", t * 1e6 / hz / n}')"
    printf '  %-4s %-4s %-13s round %d: %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  server CPU %6.2f us/req%s\n' \
        "$workload" "$size" "$server" "$round" "$rps" "$p50" "$p99" "$cpu_us" \
        "$([ "$errors" -gt 0 ] && echo "  ($errors errors)")" >&2
    jq -nc --arg workload "$workload" --argjson keys "$keys" --arg size "$size" \
        --argjson bytes "$(size_bytes "$size")" --arg server "$server" \
        --argjson round "$round" --argjson rps "$rps" --argjson p50 "$p50" --argjson p99 "$p99" \
        --argjson requests "$reqs" --argjson errors "$errors" --argjson cpu_us "$cpu_us" \
        '{workload: $workload, keys: $keys, size: $size, bytes: $bytes, server: $server,
          round: $round, rps: $rps, p50_ms: $p50, p99_ms: $p99, requests: $requests,
          errors: $errors, server_cpu_us_per_req: $cpu_us}' >>"$RUNS_JSONL"
}

n=${#SERVER_LIST[@]}
log "measuring: WORKLOADS=\"$WORKLOADS\" SIZES=\"$SIZES\" SERVERS=\"$SERVERS\" RUNS=$RUNS DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS QUERY=\"$QUERY\" (wrk, keep-alive)"
for workload in "${WORKLOAD_LIST[@]}"; do
    for size in "${SIZE_LIST[@]}"; do
        if [ "$WARMUP" != 0 ]; then
            for server in "${SERVER_LIST[@]}"; do one_run "$workload" "$size" "$server" 0; done
        fi
        before="$(origin_requests)"
        for round in $(seq "$RUNS"); do
            for k in $(seq 0 $((n - 1))); do
                one_run "$workload" "$size" "${SERVER_LIST[$(((round - 1 + k) % n))]}" "$round"
            done
        done
        jq -nc --arg w "$workload" --arg s "$size" --argjson n $(($(origin_requests) - before)) \
            '{($w): {($s): $n}}' >>"$ORIGIN_JSONL"
    done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
BUSY_AFTER="$(cpu_busy_pct)"

# ---------------------------------------------------------------- 6. report
if [ -z "$BIN" ]; then
    edge_version="none"
elif [ -n "${EDGE_BIN:-}" ]; then
    edge_version="$("$BIN" --version 2>&1 | head -1) (EDGE_BIN=$EDGE_BIN)"
else
    edge_version="$("$BIN" --version 2>&1 | head -1) (built from $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "an unknown revision"))"
fi
cachekey_json="$(for server in "${SERVER_LIST[@]}"; do
    [ "$server" = edge-cachekey ] || continue
    read -r calls fallbacks < <(cachekey_calls "$server")
    jq -nc --arg s "$server" --argjson c "$calls" --argjson f "$fallbacks" '{($s): {policy: $c, fallback: $f}}'
done | jq -sc 'add // {}')"

jq -s -f "$HERE/report.jq" \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson nproc "$(nproc)" \
    --arg cpu "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    --argjson mem_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" \
    --arg kernel "$(uname -r)" \
    --arg load_before "$LOAD_BEFORE" --arg load_after "$LOAD_AFTER" \
    --argjson busy_before "$BUSY_BEFORE" --argjson busy_after "$BUSY_AFTER" \
    --arg edge_version "$edge_version" \
    --arg nginx_version "$(nginx -v 2>&1 | head -1)" \
    --arg varnish_version "$(varnishd -V 2>&1 | head -1)" \
    --arg wrk_version "$(wrk -v 2>&1 | head -1)" \
    --arg nruns "$RUNS" --arg duration "$DURATION" --arg warmup "$WARMUP" \
    --arg connections "$CONNECTIONS" --arg threads "$THREADS" --arg sizes "$SIZES" \
    --arg workloads "$WORKLOADS" --arg servers "$SERVERS" --arg edge_log "$EDGE_LOG" \
    --arg keys "$KEYS" --arg zipf_s "$ZIPF_S" --arg zipf_max_mib "$ZIPF_MAX_MIB" \
    --arg zipf_seed "$ZIPF_SEED" --arg query "$QUERY" --argjson cache_mib "$CACHE_MIB" \
    --argjson nginx_zone_mib "$NGINX_ZONE_MIB" --arg policy "${POLICY_WASM#"$ROOT"/}" \
    --argjson zkeys "$(for s in "${SIZE_LIST[@]}"; do printf '{"%s": %d}\n' "$s" "${ZKEYS[$s]}"; done | jq -sc 'add')" \
    --argjson origin "$(jq -sc 'reduce .[] as $x ({}; . * $x)' "$ORIGIN_JSONL")" \
    --argjson cachekey_calls "$cachekey_json" \
    "$RUNS_JSONL" >"$OUT"

jq -r -f "$HERE/table.jq" "$OUT"
log "written: ${OUT#"$ROOT"/} (raw wrk output in ${RAW#"$ROOT"/}/)"
