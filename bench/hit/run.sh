#!/usr/bin/env bash
# bench/hit/run.sh — cache-hit throughput of the edge next to nginx proxy_cache and Varnish.
#
# What it measures: requests per second and latency (p50, p99) of ONE hot, already cached
# object fetched over keep-alive HTTP/1.1 connections, for each object size in SIZES, from
# three caches in front of the same origin:
#   edge     `edgepurge edge` (release build, RUST_LOG=warn), config from edge.toml.in
#   varnish  `varnishd -b <origin> -s malloc,256m`: the builtin VCL, default parameters
#   nginx    nginx with proxy_cache, config from cache.nginx.conf.in
# The origin is another nginx (origin.nginx.conf.in) serving random files of each size with
# `Cache-Control: max-age=3600`; its access log shows that no request reaches it while measuring.
#
# How:
#   1. installs nginx, varnish, wrk, curl, jq from Debian when missing, without letting the
#      packages start their system services (a temporary policy-rc.d);
#   2. builds the edge (`cargo build --release -p edgepurge`; skipped when EDGE_BIN is set);
#   3. starts the origin and the three caches as the current user, on free loopback ports, with
#      every file in a temporary directory; a trap stops them all on exit, error or Ctrl-C;
#   4. warms each cache (the first request fills it) and checks that the next one is a hit
#      (edge: `Cache-Status: edgepurge; hit`, Varnish: two ids in `X-Varnish`, nginx:
#      `X-Cache-Status: HIT`) and that the body has the right size;
#   5. per size: one WARMUP run of wrk per server (not counted), then RUNS rounds of
#      `wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency`, interleaved (edge, varnish, nginx;
#      varnish, nginx, edge; …: the order rotates each round) so that the noise of a shared
#      machine falls on all three alike;
#      Around each run it reads the CPU time (user + system) the server used from /proc, so
#      that each run also gives the server's CPU microseconds per request;
#   6. prints a table (median req/s, min–max, median p99 and p50, median CPU µs/request; the
#      edge over each baseline as a ratio of medians, as the median of the per-round ratios and
#      in requests per CPU-second) and writes it with every
#      run, the machine (nproc, memory, CPU model, kernel, how busy the CPUs were with other
#      work just before and after) and the parameters to $RESULTS/latest.json (raw wrk output in
#      $RESULTS/raw/).
#
# wrk runs on the same machine as the servers and takes CPU from them: figures are for
# comparing the three servers with each other under the same conditions, not absolute. On a
# shared machine, trust the CPU time per request and the per-round ratios more than the req/s.
#
# Parameters (environment):
#   RUNS=5            measured rounds per size (each server once per round)
#   DURATION=5s       length of one wrk run
#   WARMUP=1s         unmeasured wrk run per server and size before the rounds ("0" = none)
#   CONNECTIONS=64    wrk connections (keep-alive)
#   THREADS=2         wrk threads
#   SIZES="1k 16k"    object sizes: <n>k (KiB) or <n>m (MiB), e.g. "1k 16k 1m"
#   SERVERS="edge varnish nginx"   which servers to measure (the edge is the first column)
#   EDGE_BIN=path     use this edgepurge binary instead of building one
#   EDGE_LOG=warn     RUST_LOG of the edge
#   RESULTS=bench/hit/results      where latest.json and raw/ go
#   KEEP_TMP=1        keep the temporary directory (configs, logs) for inspection
#   HOLD=1            after the checks, print the URLs and wait (Ctrl-C stops): for profiling
#
# Usage: make bench-hit    or    RUNS=3 SIZES=1k bench/hit/run.sh

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"

RUNS="${RUNS:-5}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
SIZES="${SIZES:-1k 16k}"
SERVERS="${SERVERS:-edge varnish nginx}"
EDGE_LOG="${EDGE_LOG:-warn}"
RESULTS="${RESULTS:-$HERE/results}"
read -r -a SERVER_LIST <<<"$SERVERS"

log() { printf '[bench-hit] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------- 1. tools
install_tools() {
    local missing=() policy_rc=/usr/sbin/policy-rc.d created=0
    command -v nginx >/dev/null || missing+=(nginx)
    command -v varnishd >/dev/null || missing+=(varnish)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]} (apt-get; the packages' services are not started)"
    if [ ! -e "$policy_rc" ]; then
        # invoke-rc.d asks this script whether a package may start its service: 101 = no.
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy_rc" >/dev/null
        as_root chmod 755 "$policy_rc"
        created=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" || rc=$?
    if [ "$rc" -ne 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
        rc=0
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" || rc=$?
    fi
    [ "$created" = 1 ] && as_root rm -f "$policy_rc"
    [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------- processes and cleanup
TMP=""
PIDS=()
NAMES=()

cleanup() {
    local i pid
    for i in "${!PIDS[@]}"; do
        pid="${PIDS[$i]}"
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
    done
    for i in "${!PIDS[@]}"; do
        pid="${PIDS[$i]}"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "${NAMES[$i]} (pid $pid) did not stop on TERM: KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    PIDS=()
    NAMES=()
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# start NAME LOGFILE CMD...: runs CMD in the background, remembers its pid for cleanup.
start() {
    local name="$1" logfile="$2"
    shift 2
    "$@" >"$logfile" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
}

USED_PORTS=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
            USED_PORTS="$USED_PORTS$p "
            echo "$p"
            return
        fi
    done
}

# wait_up NAME URL LOGFILE: waits until URL answers (any status), or fails naming the log.
wait_up() {
    local name="$1" url="$2" logfile="$3"
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    log "$name did not come up at $url; its log ($logfile):"
    tail -n 20 "$logfile" >&2 || true
    exit 1
}

# render TEMPLATE OUT KEY=VALUE...: replaces @KEY@ with VALUE.
render() {
    local template="$1" out="$2" expr=() kv
    shift 2
    for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${expr[@]}" "$template" >"$out"
}

size_bytes() {
    local s="${1,,}"
    case "$s" in
        *k) echo $((${s%k} * 1024)) ;;
        *m) echo $((${s%m} * 1024 * 1024)) ;;
        *[0-9]) echo "$s" ;;
        *) die "size '$1': use <n>k or <n>m" ;;
    esac
}

# ---------------------------------------------------------------- 2. build
install_tools
for s in "${SERVER_LIST[@]}"; do
    case "$s" in edge | varnish | nginx) ;; *) die "unknown server '$s' in SERVERS" ;; esac
done

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

# ---------------------------------------------------------------- 3. origin and caches
TMP="$(mktemp -d "${TMPDIR:-/tmp}/edgepurge-bench-hit.XXXXXX")"
mkdir -p "$TMP"/origin/{www,tmp} "$TMP"/nginx/{cache,tmp} "$TMP"/varnish "$TMP"/edge
mkdir -p "$RESULTS/raw"
rm -f "$RESULTS"/raw/*.txt

ORIGIN_PORT="$(free_port)"
EDGE_PORT="$(free_port)"
EDGE_ADMIN_PORT="$(free_port)"
VARNISH_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
declare -A PORT=([edge]="$EDGE_PORT" [varnish]="$VARNISH_PORT" [nginx]="$NGINX_PORT")
declare -A SERVER_PID=()

for size in $SIZES; do
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
    case "$server" in
        edge)
            render "$HERE/edge.toml.in" "$TMP/edge/edge.toml" EDGE_PORT="$EDGE_PORT" \
                EDGE_ADMIN_PORT="$EDGE_ADMIN_PORT" ORIGIN_PORT="$ORIGIN_PORT"
            RUST_LOG="$EDGE_LOG" start edge "$TMP/edge/edge.log" "$BIN" edge --config "$TMP/edge/edge.toml"
            SERVER_PID[edge]="$!"
            wait_up edge "http://127.0.0.1:$EDGE_PORT/" "$TMP/edge/edge.log"
            ;;
        varnish)
            # -j none: no privilege separation, runs as the current user; -F: foreground.
            start varnish "$TMP/varnish/varnishd.log" varnishd -F -j none -n "$TMP/varnish" \
                -a "127.0.0.1:$VARNISH_PORT" -b "127.0.0.1:$ORIGIN_PORT" -s malloc,256m
            SERVER_PID[varnish]="$!"
            wait_up varnish "http://127.0.0.1:$VARNISH_PORT/" "$TMP/varnish/varnishd.log"
            ;;
        nginx)
            render "$HERE/cache.nginx.conf.in" "$TMP/nginx/nginx.conf" DIR="$TMP/nginx" \
                NGINX_PORT="$NGINX_PORT" ORIGIN_PORT="$ORIGIN_PORT"
            start nginx "$TMP/nginx/stdout.log" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" \
                -c "$TMP/nginx/nginx.conf" "${NGINX_USER[@]}"
            SERVER_PID[nginx]="$!"
            wait_up nginx "http://127.0.0.1:$NGINX_PORT/" "$TMP/nginx/error.log"
            ;;
    esac
done

# ---------------------------------------------------------------- 4. warm and check hits
check_hit() {
    local server="$1" size="$2" url="http://127.0.0.1:${PORT[$1]}/obj-$2" headers got want
    curl -sf -o /dev/null "$url" || die "$server: GET $url failed"
    headers="$(curl -sf -D - -o "$TMP/body" "$url")" || die "$server: GET $url failed"
    got="$(stat -c %s "$TMP/body")"
    want="$(size_bytes "$size")"
    [ "$got" = "$want" ] || die "$server: $url returned $got bytes, expected $want"
    case "$server" in
        edge) grep -qiE '^cache-status: *edgepurge; *hit' <<<"$headers" ;;
        varnish) grep -qiE '^x-varnish: *[0-9]+ +[0-9]+' <<<"$headers" ;;
        nginx) grep -qiE '^x-cache-status: *HIT' <<<"$headers" ;;
    esac || die "$server: the second GET of $url is not a hit; response head:
$headers"
    log "$server serves /obj-$size as a hit: $(grep -iE '^(cache-status|x-varnish|x-cache-status):' <<<"$headers" | tr -d '\r')"
}
for size in $SIZES; do
    for server in "${SERVER_LIST[@]}"; do check_hit "$server" "$size"; done
done

if [ "${HOLD:-0}" = 1 ]; then
    for server in "${SERVER_LIST[@]}"; do log "$server: http://127.0.0.1:${PORT[$server]}/obj-<size>"; done
    log "edge pid: ${SERVER_PID[edge]:-none}; holding (Ctrl-C stops everything)"
    while :; do
        sleep 3600 &
        PIDS+=("$!") NAMES+=(sleep)
        wait "$!" # unlike a foreground sleep, `wait` lets the traps run at once
    done
fi

# ---------------------------------------------------------------- 5. measure
origin_requests() { wc -l <"$TMP/origin/access.log"; }

# parse_wrk FILE: prints "rps p50_ms p99_ms requests errors".
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
            if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
            if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
            if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
            return -1
        }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        / requests in / { reqs = $1 }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
        /^Requests\/sec:/ { rps = $2 }
        END {
            if (rps == "" || p99 == "") exit 1
            printf "%s %s %s %s %d\n", rps, p50, p99, reqs, errors
        }' "$1"
}

RUNS_JSONL="$TMP/runs.jsonl"
: >"$RUNS_JSONL"
# How busy the machine is without the benchmark (2 s, everything idle but other users' work).
cpu_busy_pct() {
    local a b
    read -r -a a </proc/stat
    sleep 2
    read -r -a b </proc/stat
    awk -v a="${a[*]:1}" -v b="${b[*]:1}" 'BEGIN {
        n = split(a, x); split(b, y); total = 0
        for (i = 1; i <= n; i++) total += y[i] - x[i]
        idle = (y[4] - x[4]) + (y[5] - x[5])
        printf "%.0f", (total > 0 ? 100 * (total - idle) / total : 0) }'
}
BUSY_BEFORE="$(cpu_busy_pct)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
declare -A ORIGIN_DURING=()

# CPU time (user + system, clock ticks) used so far by a server: its process and every
# descendant (nginx workers, the Varnish child), all threads included.
CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() {
    local pid="$1" total child
    # Fields 14 and 15 of /proc/PID/stat; the name in parentheses may contain spaces.
    total="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')"
    for child in $(pgrep -P "$pid" || true); do total=$((${total:-0} + $(cpu_ticks "$child"))); done
    echo "${total:-0}"
}

# one_run SIZE SERVER ROUND (ROUND 0 = warm-up, not recorded)
one_run() {
    local size="$1" server="$2" round="$3" duration="$DURATION" out ticks_before ticks
    [ "$round" = 0 ] && duration="$WARMUP"
    out="$RESULTS/raw/$size-$server-$round.txt"
    ticks_before="$(cpu_ticks "${SERVER_PID[$server]}")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency \
        "http://127.0.0.1:${PORT[$server]}/obj-$size" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    ticks=$(($(cpu_ticks "${SERVER_PID[$server]}") - ticks_before))
    [ "$round" = 0 ] && return
    local rps p50 p99 reqs errors cpu_us
    read -r rps p50 p99 reqs errors < <(parse_wrk "$out") || die "cannot parse $out"
    cpu_us="$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.3f", t * 1e6 / hz / n}')"
    printf '  %-4s %-8s round %d: %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  server CPU %6.2f us/req%s\n' \
        "$size" "$server" "$round" "$rps" "$p50" "$p99" "$cpu_us" \
        "$([ "$errors" -gt 0 ] && echo "  ($errors errors)")" >&2
    jq -nc --arg size "$size" --argjson bytes "$(size_bytes "$size")" --arg server "$server" \
        --argjson round "$round" --argjson rps "$rps" --argjson p50 "$p50" --argjson p99 "$p99" \
        --argjson requests "$reqs" --argjson errors "$errors" --argjson cpu_us "$cpu_us" \
        '{size: $size, bytes: $bytes, server: $server, round: $round, rps: $rps,
          p50_ms: $p50, p99_ms: $p99, requests: $requests, errors: $errors,
          server_cpu_us_per_req: $cpu_us}' >>"$RUNS_JSONL"
}

n=${#SERVER_LIST[@]}
log "measuring: SIZES=\"$SIZES\" RUNS=$RUNS DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS (wrk, keep-alive, one hot key)"
for size in $SIZES; do
    if [ "$WARMUP" != 0 ]; then
        for server in "${SERVER_LIST[@]}"; do one_run "$size" "$server" 0; done
    fi
    before="$(origin_requests)"
    for round in $(seq "$RUNS"); do
        for k in $(seq 0 $((n - 1))); do
            one_run "$size" "${SERVER_LIST[$(((round - 1 + k) % n))]}" "$round"
        done
    done
    ORIGIN_DURING[$size]=$(($(origin_requests) - before))
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
BUSY_AFTER="$(cpu_busy_pct)"

# ---------------------------------------------------------------- 6. report
if [ -n "${EDGE_BIN:-}" ]; then
    git_rev="EDGE_BIN=$EDGE_BIN"
else
    git_rev="built from $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "an unknown revision")"
fi
origin_json="$(for s in $SIZES; do printf '{"%s": %d}\n' "$s" "${ORIGIN_DURING[$s]}"; done | jq -sc 'add // {}')"

jq -s \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson nproc "$(nproc)" \
    --arg cpu "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    --argjson mem_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" \
    --arg kernel "$(uname -r)" \
    --arg load_before "$LOAD_BEFORE" --arg load_after "$LOAD_AFTER" \
    --argjson busy_before "$BUSY_BEFORE" --argjson busy_after "$BUSY_AFTER" \
    --arg edge_version "$("$BIN" --version 2>&1 | head -1) ($git_rev)" \
    --arg nginx_version "$(nginx -v 2>&1 | head -1)" \
    --arg varnish_version "$(varnishd -V 2>&1 | head -1)" \
    --arg wrk_version "$(wrk -v 2>&1 | head -1)" \
    --arg nruns "$RUNS" --arg duration "$DURATION" --arg warmup "$WARMUP" \
    --arg connections "$CONNECTIONS" --arg threads "$THREADS" --arg sizes "$SIZES" \
    --arg servers "$SERVERS" --arg edge_log "$EDGE_LOG" \
    --argjson origin "$origin_json" \
    '
    def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[(length - 1) / 2]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def r(n): . * pow(10; n) | round / pow(10; n);
    . as $runs
    | ($sizes | split(" ") | map(select(. != ""))) as $size_order
    | ($servers | split(" ") | map(select(. != ""))) as $server_order
    | [ $size_order[] as $s | $server_order[] as $v
        | [ $runs[] | select(.size == $s and .server == $v) ] as $rs
        | select($rs | length > 0)
        | { size: $s, bytes: $rs[0].bytes, server: $v, runs: ($rs | length),
            rps_median: ([$rs[].rps] | median | r(0)),
            rps_min: ([$rs[].rps] | min | r(0)), rps_max: ([$rs[].rps] | max | r(0)),
            p99_ms_median: ([$rs[].p99_ms] | median | r(3)),
            p50_ms_median: ([$rs[].p50_ms] | median | r(3)),
            server_cpu_us_per_req_median: ([$rs[].server_cpu_us_per_req] | median | r(2)),
            errors: ([$rs[].errors] | add) } ] as $summary
    | { date: $date,
        machine: { nproc: $nproc, cpu_model: $cpu, mem_gib: ($mem_kib / 1048576 | r(1)),
                   kernel: $kernel,
                   other_cpu_busy_pct_before: $busy_before, other_cpu_busy_pct_after: $busy_after,
                   loadavg_before: $load_before, loadavg_after_incl_benchmark: $load_after },
        versions: { edgepurge: $edge_version, nginx: $nginx_version, varnish: $varnish_version,
                    wrk: $wrk_version },
        parameters: { runs: ($nruns | tonumber), duration: $duration, warmup: $warmup,
                      connections: ($connections | tonumber), threads: ($threads | tonumber),
                      sizes: $size_order, servers: $server_order, edge_rust_log: $edge_log,
                      url: "one hot key per size, /obj-<size>, keep-alive HTTP/1.1" },
        summary: $summary,
        # Ratios of the edge to each baseline: of the medians, and the median of the ratios
        # within each round (runs a few seconds apart see the same load on the machine).
        ratios: [ $size_order[] as $s
            | ($summary | map(select(.size == $s)) | map({(.server): .rps_median}) | add // {}) as $m
            | select($m.edge != null)
            | ($summary | map(select(.size == $s))
               | map({(.server): .server_cpu_us_per_req_median}) | add // {}) as $cpu
            | ([ $runs[] | select(.size == $s) ] | group_by(.round)
               | map(map({(.server): .rps}) | add)) as $rounds
            | def paired($b): [ $rounds[] | select(.edge and .[$b]) | .edge / .[$b] ]
                | if length == 0 then null
                  else { median: (median | r(2)), min: (min | r(2)), max: (max | r(2)) } end;
              def cheaper($b): if $cpu[$b] and $cpu.edge > 0 then ($cpu[$b] / $cpu.edge | r(2)) else null end;
              { size: $s,
                edge_over_varnish: (if $m.varnish then ($m.edge / $m.varnish | r(2)) else null end),
                edge_over_nginx: (if $m.nginx then ($m.edge / $m.nginx | r(2)) else null end),
                edge_over_varnish_per_round: paired("varnish"),
                edge_over_nginx_per_round: paired("nginx"),
                edge_over_varnish_req_per_cpu_s: cheaper("varnish"),
                edge_over_nginx_req_per_cpu_s: cheaper("nginx") } ],
        origin_requests_during_runs: $origin,
        runs: $runs }
    ' "$RUNS_JSONL" >"$RESULTS/latest.json"

# The table, from the JSON (Markdown, so it can be pasted as it is).
jq -r '
    def fmt: tostring | until(test("^[0-9]{4}") | not; sub("(?<a>[0-9])(?<b>[0-9]{3})(?<c>($|,))"; "\(.a),\(.b)\(.c)"));
    "",
    "Hit throughput, one hot key, wrk -t\(.parameters.threads) -c\(.parameters.connections) -d\(.parameters.duration), \(.parameters.runs) interleaved runs per server",
    "\(.date) — \(.machine.nproc) CPUs (\(.machine.cpu_model)), \(.machine.mem_gib) GiB, kernel \(.machine.kernel)",
    "CPU busy with other work just before / after: \(.machine.other_cpu_busy_pct_before) % / \(.machine.other_cpu_busy_pct_after) %; load average before: \(.machine.loadavg_before)",
    "",
    "| size | server | req/s (median) | min – max | p99 ms (median) | p50 ms (median) | server CPU µs/req (median) | errors |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    (.summary[] | "| \(.size) | \(.server) | \(.rps_median | fmt) | \(.rps_min | fmt) – \(.rps_max | fmt) | \(.p99_ms_median) | \(.p50_ms_median) | \(.server_cpu_us_per_req_median) | \(.errors) |"),
    "",
    "| size | edgepurge/varnish req/s | per round: median (min – max) | per CPU-second | edgepurge/nginx req/s | per round: median (min – max) | per CPU-second |",
    "|---|---:|---:|---:|---:|---:|---:|",
    (.ratios[] | def pr: if . then "\(.median) (\(.min) – \(.max))" else "—" end;
        "| \(.size) | \(.edge_over_varnish // "—") | \(.edge_over_varnish_per_round | pr) | \(.edge_over_varnish_req_per_cpu_s // "—") | \(.edge_over_nginx // "—") | \(.edge_over_nginx_per_round | pr) | \(.edge_over_nginx_req_per_cpu_s // "—") |"),
    "",
    "Ratios (> 1: the edge does better): median req/s of the edge over that of the baseline; per round: the same within each round;",
    "per CPU-second: requests served per second of the own CPU time of the server (user + system), which other load on the machine disturbs least.",
    "origin requests while measuring (should be 0): \(.origin_requests_during_runs | to_entries | map("\(.key) \(.value)") | join(", "))",
    "versions: \(.versions | to_entries | map(.value) | join("; "))"
' "$RESULTS/latest.json"
log "written: ${RESULTS#"$ROOT"/}/latest.json (raw wrk output in ${RESULTS#"$ROOT"/}/raw/)"
