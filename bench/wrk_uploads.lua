-- wrk script of B1: replays pre-built visit uploads, each exactly once, then stops.
--
--   wrk -t T -c C -d 3600s -s bench/wrk_uploads.lua http://127.0.0.1:PORT -- REQUESTS DONE_PREFIX
--
-- REQUESTS has one upload a line: the device secret, a tab, the JSON body (built by the
-- reference phone client before the clock starts). Thread n of T takes lines n, n+T, ...
-- When a thread has had an answer to each of its uploads it creates DONE_PREFIX.n, which
-- tells bench/b1_ingest.py to end wrk (SIGINT); connections that ask for more meanwhile get
-- the bare view every 200 ms, whose answers are counted apart. An upload whose connection
-- broke (a gunicorn worker recycled under it: wrk counts a socket error and moves on) never
-- gets an answer, so the thread also gives up once all are sent and none has been answered
-- for STALL_SECONDS; bench/b1_ingest.py then re-sends whatever the database lacks.
-- done() prints one JSON line.

local threads = {}
local STALL_SECONDS = 15

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, count = args[1], tonumber(args[2])
  done_path = args[3] .. "." .. index
  uploads = {}
  local line_number = 0
  for line in io.lines(path) do
    if line_number % count == index then
      local secret, body = line:match("^([^\t]+)\t(.*)$")
      uploads[#uploads + 1] = wrk.format("POST", "/api/v1/visits", {
        ["Host"] = "127.0.0.1",
        ["Authorization"] = "Bearer " .. secret,
        ["Content-Type"] = "application/json",
      }, body)
    end
    line_number = line_number + 1
  end
  upload_count = #uploads
  filler = wrk.format("GET", "/bench/bare", { ["Host"] = "127.0.0.1" })
  sent, accepted, tokens, failed, fillers, finished = 0, 0, 0, 0, 0, false
  last_answer = os.time()
  first_error = ""
end

function request()
  sent = sent + 1
  if sent <= #uploads then
    return uploads[sent]
  end
  return filler
end

function delay()
  if sent > #uploads then
    return 200
  end
  return 0
end

function response(status, headers, body)
  if status ~= 200 then
    last_answer = os.time()
  end
  if status == 202 then
    accepted = accepted + 1
    tokens = tokens + tonumber(body:match('"accepted"%s*:%s*(%d+)') or 0)
  elseif status == 200 then
    fillers = fillers + 1
  else
    failed = failed + 1
    if first_error == "" then
      first_error = (status .. " " .. body:sub(1, 200)):gsub('[%c"\\]', " ")
    end
  end
  local stalled = sent > #uploads and os.time() - last_answer >= STALL_SECONDS
  if not finished and (accepted + failed >= #uploads or stalled) then
    finished = true
    local marker = io.open(done_path, "w")
    marker:close()
  end
end

function done(summary, latency, requests)
  local totals = { accepted = 0, tokens = 0, failed = 0, fillers = 0, uploads = 0 }
  local first = ""
  for _, thread in ipairs(threads) do
    for key, _ in pairs(totals) do
      local value = thread:get(key == "uploads" and "upload_count" or key)
      totals[key] = totals[key] + value
    end
    if first == "" then first = thread:get("first_error") end
  end
  io.write(string.format(
    '{"uploads": %d, "accepted": %d, "tokens": %d, "failed": %d, "fillers": %d, "requests": %d, '
      .. '"duration_us": %d, "socket_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"first_error": "%s"}\n',
    totals.uploads, totals.accepted, totals.tokens, totals.failed, totals.fillers, summary.requests,
    summary.duration, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, first))
end
