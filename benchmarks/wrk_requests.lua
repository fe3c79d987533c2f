-- wrk script: the requests of one scenario from a file, one a line: METHOD<TAB>PATH[<TAB>BODY].
-- Line n goes to wrk thread n % threads; each thread sends its lines in order (from the top again
-- when it runs out, so a file of writes must hold more lines than the run sends).
-- Usage: wrk -s wrk_requests.lua URL -- FILE THREADS [PAUSE_MS]. With PAUSE_MS, each connection
-- waits between PAUSE_MS/2 and 3*PAUSE_MS/2 (a person reading) before its next request; wrk's
-- latency is counted from the send, so the pause is not in it. Prints the figures as one JSON line.
local created = 0

function setup(thread)
  thread:set("id", created)
  created = created + 1
end

function init(args)
  local threads = tonumber(args[2])
  pause = tonumber(args[3] or "0")
  requests, sent = {}, 0
  local n = 0
  for line in io.lines(args[1]) do
    if n % threads == id then
      local method, path, body = line:match("^([^\t]+)\t([^\t]+)\t?(.*)$")
      requests[#requests + 1] = wrk.format(method, path, nil, body ~= "" and body or nil)
    end
    n = n + 1
  end
  assert(#requests > 0, "fewer request lines than wrk threads")
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % #requests + 1]
end

function delay()
  if pause > 0 then
    return math.random(math.floor(pause / 2), math.floor(pause * 3 / 2))
  end
  return 0
end

function done(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "bad_status": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p95_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency.max / 1000))
end
