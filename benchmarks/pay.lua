-- wrk script of benchmarks/order_path.py --ops pay: POST /v1/sales/{sale}/orders/{id}/pay,
-- each request a different held order (ids from a file, one a line, made before the
-- turn) with its own Idempotency-Key, so no request is a replay.
--   wrk -t1 -c32 -d10s -s benchmarks/pay.lua http://127.0.0.1:PORT -- SALE_ID RUN_TAG IDS_FILE THREADS
-- Thread i of THREADS pays ids i+1, i+1+THREADS, ... . Once a thread has used up its
-- ids it asks for order "exhausted", which answers 404: a status error that fails the
-- run (make more orders, --pay-orders). Prints one line "WRK_JSON {...}" at the end.

local next_thread = 0

function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end

local ids = {}
local n, i = 0, 0
local prefix, suffix, tag, host

function init(args)
  prefix = "/v1/sales/" .. (args[1] or "bench") .. "/orders/"
  suffix = "/pay"
  tag = (args[2] or "run") .. "-" .. tostring(tid or 0) .. "-"
  local threads = tonumber(args[4] or "1")
  local line_no = 0
  for line in io.lines(args[3]) do
    if line_no % threads == (tid or 0) then ids[#ids + 1] = line end
    line_no = line_no + 1
  end
  host = wrk.headers["Host"] or wrk.host
end

function request()
  n = n + 1
  local id = ids[n] or "exhausted"
  return wrk.format("POST", prefix .. id .. suffix, {
    ["Host"] = host,
    ["Idempotency-Key"] = "p-" .. tag .. n,
  })
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
