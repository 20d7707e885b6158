-- Requests with random ids, for wrk (GET unless WRK_METHOD and WRK_BODY say otherwise):
--   WRK_PATH='/v1/recommend/{user}?n=10' WRK_USERS=users.txt WRK_ITEMS=items.txt WRK_KEY=mq_sk_…
--   wrk -s bench/wrk/random_get.lua http://127.0.0.1:PORT
-- {user} and {item} in WRK_PATH are replaced, per request, by an id drawn uniformly from the
-- files (one id per line). At the end it prints one line `RESULT {json}` with requests/s,
-- latency percentiles in microseconds and the count of errors (non-2xx answers included).

local function read_ids(path)
  local ids = {}
  if path == nil or path == "" then return ids end
  for line in io.lines(path) do
    if line ~= "" then ids[#ids + 1] = line end
  end
  return ids
end

local template = os.getenv("WRK_PATH") or "/healthz"
local users = read_ids(os.getenv("WRK_USERS"))
local items = read_ids(os.getenv("WRK_ITEMS"))
local key = os.getenv("WRK_KEY")
local method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local path = template
  if #users > 0 then
    path = path:gsub("{user}", users[math.random(#users)])
  end
  if #items > 0 then
    path = path:gsub("{item}", items[math.random(#items)])
  end
  local headers = {}
  if key ~= nil and key ~= "" then
    headers["Authorization"] = "Bearer " .. key
  end
  if body ~= nil and body ~= "" then
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, errors, summary.errors.status))
end
