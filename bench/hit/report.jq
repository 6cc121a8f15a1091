# bench/hit/report.jq — the JSON report of run.sh, from its runs (one JSON object per line,
# read with jq -s) and the --arg/--argjson values run.sh passes.

def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[(length - 1) / 2]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def r(n): if . == null then null else . * pow(10; n) | round / pow(10; n) end;
def words: split(" ") | map(select(. != ""));
# {median, min, max} of a list of ratios, or null.
def spread: if length == 0 then null
    else { median: (median | r(2)), min: (min | r(2)), max: (max | r(2)) } end;

. as $runs
| ($sizes | words) as $size_order
| ($servers | words) as $server_order
| ($workloads | words) as $workload_order
| [ $workload_order[] as $w | $size_order[] as $s | $server_order[] as $v
    | [ $runs[] | select(.workload == $w and .size == $s and .server == $v) ] as $rs
    | select($rs | length > 0)
    | { workload: $w, size: $s, bytes: $rs[0].bytes, keys: $rs[0].keys, server: $v,
        runs: ($rs | length),
        rps_median: ([$rs[].rps] | median | r(0)),
        rps_min: ([$rs[].rps] | min | r(0)), rps_max: ([$rs[].rps] | max | r(0)),
        p99_ms_median: ([$rs[].p99_ms] | median | r(3)),
        p50_ms_median: ([$rs[].p50_ms] | median | r(3)),
        server_cpu_us_per_req_median: ([$rs[].server_cpu_us_per_req] | median | r(2)),
        errors: ([$rs[].errors] | add) } ] as $summary
# Per workload and size: the summary by server, and the req/s of each round by server.
| [ $workload_order[] as $w | $size_order[] as $s
    | ($summary | map(select(.workload == $w and .size == $s))) as $cells
    | select($cells | length > 0)
    | { w: $w, s: $s, bytes: $cells[0].bytes, keys: $cells[0].keys,
        by: ($cells | map({(.server): .}) | add),
        rounds: ([ $runs[] | select(.workload == $w and .size == $s) ] | group_by(.round)
                  | map(map({(.server): .rps}) | add)) } ] as $groups
| { date: $date,
    machine: { nproc: $nproc, cpu_model: $cpu, mem_gib: ($mem_kib / 1048576 | r(1)),
               kernel: $kernel,
               other_cpu_busy_pct_before: $busy_before, other_cpu_busy_pct_after: $busy_after,
               loadavg_before: $load_before, loadavg_after_incl_benchmark: $load_after },
    versions: { edgepurge: $edge_version, nginx: $nginx_version, varnish: $varnish_version,
                wrk: $wrk_version },
    parameters: { runs: ($nruns | tonumber), duration: $duration, warmup: $warmup,
                  connections: ($connections | tonumber), threads: ($threads | tonumber),
                  sizes: $size_order, workloads: $workload_order, servers: $server_order,
                  edge_rust_log: $edge_log, query: $query,
                  zipf: { keys: ($keys | tonumber), exponent: ($zipf_s | tonumber),
                          max_mib_per_size: ($zipf_max_mib | tonumber),
                          seed: ($zipf_seed | tonumber), keys_per_size: $zkeys },
                  cache_mib: $cache_mib, nginx_keys_zone_mib: $nginx_zone_mib,
                  edge_cachekey_policy: (if $server_order | index("edge-cachekey") then $policy else null end),
                  url: "hot: one key per size, /obj-<size>\($query); zipf: /z/<size>/<rank>\($query), rank ~ Zipf(\($zipf_s)) over keys_per_size keys (zipf.lua); keep-alive HTTP/1.1" },
    summary: $summary,
    # The edge over each baseline: ratio of the medians, the median of the ratios within each
    # round (runs a few seconds apart see the same load on the machine), and requests per
    # CPU-second of the server; then over the better of Varnish and nginx (the higher median
    # req/s), its p99 next to the lowest p99 of the two, and at 1 KiB the target of the issue.
    ratios: [ $groups[] as $g | $g.by as $m
        | select($m.edge != null and ($m.varnish != null or $m.nginx != null))
        | def paired($b): [ $g.rounds[] | select(.edge and .[$b]) | .edge / .[$b] ] | spread;
          def of_medians($b): if $m[$b] then ($m.edge.rps_median / $m[$b].rps_median | r(2)) else null end;
          def cheaper($b): if $m[$b] and $m.edge.server_cpu_us_per_req_median > 0
              then ($m[$b].server_cpu_us_per_req_median / $m.edge.server_cpu_us_per_req_median | r(2))
              else null end;
          ([ "varnish", "nginx" ] | map(select($m[.] != null))) as $bases
        | ($bases | max_by($m[.].rps_median)) as $best
        | ($bases | min_by($m[.].p99_ms_median)) as $best_p99
        | { workload: $g.w, size: $g.s, keys: $g.keys,
            edge_over_varnish: of_medians("varnish"),
            edge_over_nginx: of_medians("nginx"),
            edge_over_varnish_per_round: paired("varnish"),
            edge_over_nginx_per_round: paired("nginx"),
            edge_over_varnish_req_per_cpu_s: cheaper("varnish"),
            edge_over_nginx_req_per_cpu_s: cheaper("nginx") }
          + if $best == null then {} else
            (of_medians($best)) as $ratio
            | $m.edge.p99_ms_median as $p99
            | $m[$best_p99].p99_ms_median as $p99_best
            | { better_baseline: $best,
                edge_over_better: $ratio,
                edge_over_better_per_round:
                    ([ $g.rounds[] | select(.edge) | . as $x | ([$bases[] | $x[.] // empty] | max) as $b
                       | select($b != null) | $x.edge / $b ] | spread),
                edge_p99_ms: $p99, best_p99_ms: $p99_best, best_p99_server: $best_p99 }
              + if $g.bytes == 1024 then
                  { target: { rule: "req/s >= 1.0x the better of Varnish and nginx (ratio of medians), p99 no worse than the lower of their p99s",
                              met: ($ratio >= 1.0 and $p99 <= $p99_best),
                              rps_ratio: $ratio, edge_p99_ms: $p99, best_p99_ms: $p99_best } }
                else {} end
            end ],
    # edge-cachekey (a policy declaring `cache-key`) over edge (none): what the hook costs.
    policy_overhead: [ $groups[] as $g | $g.by as $m
        | select($m.edge != null and $m["edge-cachekey"] != null)
        | ($m["edge-cachekey"].rps_median / $m.edge.rps_median | r(3)) as $ratio
        | ([ $g.rounds[] | select(.edge and .["edge-cachekey"]) | .["edge-cachekey"] / .edge ]) as $per_round
        | { workload: $g.w, size: $g.s, keys: $g.keys,
            cachekey_over_edge: ($ratio | r(2)),
            cachekey_over_edge_per_round: ($per_round | spread),
            throughput_lost_pct: ((1 - $ratio) * 100 | r(1)),
            throughput_lost_pct_per_round: (if ($per_round | length) > 0 then ((1 - ($per_round | median)) * 100 | r(1)) else null end),
            edge_p99_ms: $m.edge.p99_ms_median, cachekey_p99_ms: $m["edge-cachekey"].p99_ms_median,
            edge_cpu_us_per_req: $m.edge.server_cpu_us_per_req_median,
            cachekey_cpu_us_per_req: $m["edge-cachekey"].server_cpu_us_per_req_median,
            # What the hook adds to the edge's own CPU time per request: unlike req/s, not
            # hidden when wrk, not the edge, is what limits the throughput.
            cpu_extra_pct: (if $m.edge.server_cpu_us_per_req_median > 0
                then (($m["edge-cachekey"].server_cpu_us_per_req_median / $m.edge.server_cpu_us_per_req_median - 1) * 100 | r(1))
                else null end),
            target: { rule: "throughput lost = 1 - edge-cachekey/edge (ratio of medians) <= 5 %",
                      met: ((1 - $ratio) * 100 <= 5), throughput_lost_pct: ((1 - $ratio) * 100 | r(1)) } } ],
    edge_cachekey_calls: $cachekey_calls,
    origin_requests_during_runs: $origin,
    runs: $runs }
