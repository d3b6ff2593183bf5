-- wrk script of `python -m benchmarks latency`: every request a prepared path, one JSON line at the end.
--
-- Usage: wrk -s wrk_requests.lua URL -- PATHS_FILE THREADS
-- PATHS_FILE holds one URL path (with its query string) per line. Each wrk thread walks the list from
-- its own offset (thread n of t starts at n/t of the list) and wraps around, so concurrent requests carry
-- different queries. `done` prints `WRK_RESULT {...}`: completed and sent requests, seconds, errors
-- (non-2xx counted here in `response`, since wrk's own status count starts at 400) and latency percentiles.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    if line ~= "" then
      table.insert(paths, line)
    end
  end
  if #paths == 0 then
    error("no request paths in " .. args[1])
  end
  local count = tonumber(args[2]) or 1
  next_index = math.floor(id * #paths / count)
  sent = 0
  non2xx = 0
end

function request()
  local path = paths[next_index % #paths + 1]
  next_index = next_index + 1
  sent = sent + 1
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local sent, non2xx = 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("sent")
    non2xx = non2xx + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"sent":%d,"duration_s":%.6f,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"status":%d,"non2xx":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,' ..
    '"max_ms":%.3f}\n',
    summary.requests, sent, summary.duration / 1e6, e.connect, e.read, e.write, e.timeout, e.status, non2xx,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.mean / 1e3, latency.max / 1e3))
end
