# bench/hit/lib.sh — helpers of bench/hit/run.sh (sourced, not run): tools, processes and
# their cleanup, ports, templates, sizes, wrk output and CPU time.
# shellcheck shell=bash

log() { printf '[bench-hit %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------- tools
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

# start NAME LOGFILE CMD...: runs CMD in the background, remembers its pid for cleanup.
start() {
    local name="$1" logfile="$2"
    shift 2
    "$@" >"$logfile" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
}

# free_port: a loopback port below the ephemeral range (which outgoing connections, e.g. the
# caches' to the origin, take their local ports from) that no socket uses now.
USED_PORTS=" "
free_port() {
    local p low
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    [ "$low" -gt 12000 ] || low=60000
    while :; do
        p=$((10000 + RANDOM % (low - 10000)))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if [ -z "$(ss -Hatn "sport = :$p" 2>/dev/null)" ]; then
            USED_PORTS="$USED_PORTS$p "
            echo "$p"
            return
        fi
    done
}

# wait_up NAME URL LOGFILE [SECONDS]: waits until URL answers (any status), or fails naming the
# log when the process last started exits or SECONDS (10) pass.
wait_up() {
    local name="$1" url="$2" logfile="$3" tries=$((${4:-10} * 10)) pid="${PIDS[${#PIDS[@]} - 1]}"
    for _ in $(seq "$tries"); do
        curl -s -o /dev/null --max-time 1 "$url" && return 0
        kill -0 "$pid" 2>/dev/null || break
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

# ---------------------------------------------------------------- measuring
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

# CPU time (user + system, clock ticks) used so far by a server: its process and every
# descendant (nginx workers, the Varnish child), all threads included.
cpu_ticks() {
    local pid="$1" total child
    # Fields 14 and 15 of /proc/PID/stat; the name in parentheses may contain spaces.
    total="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')"
    for child in $(pgrep -P "$pid" || true); do total=$((${total:-0} + $(cpu_ticks "$child"))); done
    echo "${total:-0}"
}
