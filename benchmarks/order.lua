-- wrk script of benchmarks/order_path.py: POST /v1/sales/{sale}/orders, qty 1, with a
-- user id and an Idempotency-Key that no other request of any run shares.
--   wrk -t1 -c32 -d10s -s benchmarks/order.lua http://127.0.0.1:PORT -- SALE_ID RUN_TAG
-- Prints one line "WRK_JSON {...}" at the end (latencies in microseconds).

local next_thread = 0

function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end

local n = 0
local path, tag, host

function init(args)
  path = "/v1/sales/" .. (args[1] or "bench") .. "/orders"
  tag = (args[2] or "run") .. "-" .. tostring(tid or 0) .. "-"
  host = wrk.headers["Host"] or wrk.host
end

function request()
  n = n + 1
  local id = tag .. n
  return wrk.format("POST", path, {
    ["Host"] = host,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "k-" .. id,
  }, '{"user_id":"u-' .. id .. '","qty":1}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
