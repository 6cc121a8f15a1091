# bench/hit/table.jq — the table run.sh prints, from its JSON report (Markdown, so that it can
# be pasted as it is).

def fmt: tostring | until(test("^[0-9]{4}") | not; sub("(?<a>[0-9])(?<b>[0-9]{3})(?<c>($|,))"; "\(.a),\(.b)\(.c)"));
def pr: if . then "\(.median) (\(.min) – \(.max))" else "—" end;
# Two decimals, e.g. 1 → "1.00", 0.8 → "0.80".
def f2: if . == null then "—" else (. * 100 | round) as $c | ($c | fabs) as $a
    | "\(if $c < 0 then "-" else "" end)\($a / 100 | floor).\($a % 100 | tostring | if length < 2 then "0" + . else . end)" end;
def verdict: if .met then "MET" else "MISSED" end;
def wl: if .workload == "zipf" then "zipf \(.keys | fmt)" else .workload end;

"",
"Hit throughput, wrk -t\(.parameters.threads) -c\(.parameters.connections) -d\(.parameters.duration), \(.parameters.runs) interleaved runs per server",
"workloads: hot = one key per size; zipf N = N keys /z/<size>/<rank>, rank ~ Zipf(s = \(.parameters.zipf.exponent)), all cached beforehand (N = min(KEYS = \(.parameters.zipf.keys | fmt), \(.parameters.zipf.max_mib_per_size) MiB / size))\(if .parameters.query != "" then "; query \(.parameters.query)" else "" end)",
"\(.date) — \(.machine.nproc) CPUs (\(.machine.cpu_model)), \(.machine.mem_gib) GiB, kernel \(.machine.kernel); caches sized \(.parameters.cache_mib) MiB",
"CPU busy with other work just before / after: \(.machine.other_cpu_busy_pct_before) % / \(.machine.other_cpu_busy_pct_after) %; load average before: \(.machine.loadavg_before)",
"",
"| workload | size | server | req/s (median) | min – max | p99 ms (median) | p50 ms (median) | server CPU µs/req (median) | errors |",
"|---|---|---|---:|---:|---:|---:|---:|---:|",
(.summary[] | "| \(wl) | \(.size) | \(.server) | \(.rps_median | fmt) | \(.rps_min | fmt) – \(.rps_max | fmt) | \(.p99_ms_median) | \(.p50_ms_median) | \(.server_cpu_us_per_req_median) | \(.errors) |"),
if (.ratios | length) > 0 then
    "",
    "| workload | size | edgepurge/varnish req/s | per round: median (min – max) | per CPU-second | edgepurge/nginx req/s | per round: median (min – max) | per CPU-second |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    (.ratios[] | "| \(wl) | \(.size) | \(.edge_over_varnish // "—") | \(.edge_over_varnish_per_round | pr) | \(.edge_over_varnish_req_per_cpu_s // "—") | \(.edge_over_nginx // "—") | \(.edge_over_nginx_per_round | pr) | \(.edge_over_nginx_req_per_cpu_s // "—") |"),
    "",
    (.ratios[] | select(.better_baseline)
        | "\(wl) \(.size): edgepurge / the better of Varnish and nginx (\(.better_baseline)): req/s \(.edge_over_better | f2) (per round: \(.edge_over_better_per_round | pr)); p99 \(.edge_p99_ms) ms vs the best \(.best_p99_ms) ms (\(.best_p99_server))",
          (.target // empty | "  target: req/s ≥ 1.0× the better of Varnish and nginx, p99 no worse: \(verdict) (ratio \(.rps_ratio | f2), p99 \(.edge_p99_ms) vs \(.best_p99_ms) ms)")),
    "",
    "Ratios (> 1: the edge does better): median req/s of the edge over that of the baseline; per round: the same within each round",
    "(for the better of the two: the edge over the faster of them in that round); per CPU-second: requests served per second of the",
    "own CPU time of the server (user + system), which other load on the machine disturbs least."
else empty end,
if (.policy_overhead | length) > 0 then
    "",
    "Policy overhead on hits: edge-cachekey (\(.parameters.edge_cachekey_policy), declares cache-key) over edge (no policy); cache-key calls decided by the policy: \(.edge_cachekey_calls["edge-cachekey"].policy | fmt), fallbacks \(.edge_cachekey_calls["edge-cachekey"].fallback)",
    "",
    "| workload | size | edge-cachekey/edge req/s | per round: median (min – max) | throughput lost | p99 ms edge / cachekey | CPU µs/req edge / cachekey | CPU per request |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    (.policy_overhead[] | "| \(wl) | \(.size) | \(.cachekey_over_edge) | \(.cachekey_over_edge_per_round | pr) | \(.throughput_lost_pct) % (per round \(.throughput_lost_pct_per_round // "—") %) | \(.edge_p99_ms) / \(.cachekey_p99_ms) | \(.edge_cpu_us_per_req) / \(.cachekey_cpu_us_per_req) | \(if .cpu_extra_pct >= 0 then "+" else "" end)\(.cpu_extra_pct // "—") % |"),
    "",
    (.policy_overhead[] | "\(wl) \(.size): target: ≤ 5 % throughput lost to the cache-key hook: \(.target | verdict) (lost \(.target.throughput_lost_pct) %)"),
    (.parameters.query as $q | .edge_cachekey_calls["edge-cachekey"].fallback | select(. > 0)
        | "warning: \(.) cache-key calls failed (see the edge's log; e.g. the 10 ms deadline passed on a busy machine) and used the edge's own key instead\(if $q != "" then ": with QUERY set, not the key the object was cached under (a miss the first time: see the origin requests)" else "" end)")
else empty end,
"",
"origin requests while measuring (should be 0): \(.origin_requests_during_runs | to_entries | map(.key as $w | .value | to_entries | map("\($w) \(.key) \(.value)")) | add | join(", "))",
"versions: \(.versions | to_entries | map(.value) | join("; "))"
