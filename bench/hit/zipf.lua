-- bench/hit/zipf.lua: wrk script for the `zipf` workload of bench/hit/run.sh.
--
--   wrk ... -s zipf.lua http://127.0.0.1:PORT -- KEYS EXPONENT SIZE [QUERY] [SEED]
--
-- Each request asks for one of KEYS distinct paths /z/SIZE/<rank>QUERY (rank 1 … KEYS, every
-- one its own cache entry; the origin serves the same SIZE body for all of them), the rank drawn
-- from a Zipf distribution: P(rank k) ∝ 1 / k^EXPONENT. Per thread, `init` computes the
-- cumulative distribution and formats every request once; `request` then only draws a number
-- in [0, 1) and finds its rank by binary search, so that wrk spends as little as possible per
-- request. Each thread seeds its generator from SEED and its number; the same SEED gives
-- every server the same sequences.

local next_id = 0

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
end

local cdf, requests, n

function init(args)
    n = tonumber(args[1])
    local s = tonumber(args[2])
    local size = args[3]
    local query = args[4] or ""
    local seed = tonumber(args[5] or "1")
    assert(n and n >= 1 and s and size, "usage: -- KEYS EXPONENT SIZE [QUERY] [SEED]")
    cdf, requests = {}, {}
    local total = 0
    for k = 1, n do
        total = total + k ^ -s
        cdf[k] = total
    end
    for k = 1, n do
        cdf[k] = cdf[k] / total
        requests[k] = wrk.format("GET", "/z/" .. size .. "/" .. k .. query)
    end
    cdf[n] = 1.0
    math.randomseed(seed + 1000003 * (id or 0))
end

function request()
    local r = math.random()
    local lo, hi = 1, n
    while lo < hi do -- the smallest k with cdf[k] > r
        local mid = math.floor((lo + hi) / 2)
        if cdf[mid] > r then hi = mid else lo = mid + 1 end
    end
    return requests[lo]
end
