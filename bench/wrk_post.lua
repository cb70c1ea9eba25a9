-- wrk script for the closed loop (scenario (a)): posts pre-built, pre-signed webhooks, each
-- once, and stops after a given number of answers.
--
--   wrk -t1 -cC -dD -s bench/wrk_post.lua URL -- BODIES_FILE STOP_AFTER HOST
--
-- BODIES_FILE holds one request a line: "sha256=...<TAB>sha1=...<TAB>body" (bench/wrk.py
-- writes it with more lines than STOP_AFTER, so no body is ever sent twice). Every request
-- string is built in init(), so request() is a table lookup.

local requests = {}
local index = 0
local answered = 0
local stop_after = 0
ok = 0

function init(args)
  stop_after = tonumber(args[2])
  for line in io.lines(args[1]) do
    local sha256, sha1, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {
      ["Host"] = args[3],
      ["Content-Type"] = "application/json",
      ["User-Agent"] = "facebookexternalua",
      ["X-Hub-Signature-256"] = sha256,
      ["X-Hub-Signature"] = sha1,
    }
    requests[#requests + 1] = wrk.format("POST", nil, headers, body)
  end
end

function request()
  if index < #requests then
    index = index + 1
  end
  return requests[index]
end

function response(status, headers, body)
  answered = answered + 1
  if status == 200 then
    ok = ok + 1
  end
  if answered == stop_after then
    wrk.thread:stop()
    -- wrk's main thread sleeps for the whole -d duration unless interrupted: bench/wrk.py
    -- reads this line and sends wrk SIGINT, which ends the run and prints the summary.
    io.stderr:write("stopped\n")
    io.stderr:flush()
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local ok_total = 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
  end
  local e = summary.errors
  io.write(string.format(
    '{"answered": %d, "ok": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}}\n',
    summary.requests, ok_total, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
