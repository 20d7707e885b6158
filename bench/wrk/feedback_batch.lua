-- POST /v1/feedback with batches of WRK_BATCH (default 1000) events, for wrk:
--   WRK_USERS=users.txt WRK_ITEMS=items.txt WRK_KEY=mq_sk_… WRK_BATCH=1000
--   wrk -s bench/wrk/feedback_batch.lua http://127.0.0.1:PORT
-- Each event pairs a random user (from the file, or a new synthetic user id) with a random
-- existing item. Bodies are built ahead (64 per thread) so wrk's own CPU goes to sending.
-- Prints `RESULT {json}` like random_get.lua, with events/s.

local function read_ids(path)
  local ids = {}
  for line in io.lines(path) do
    if line ~= "" then ids[#ids + 1] = line end
  end
  return ids
end

local users = read_ids(os.getenv("WRK_USERS"))
local items = read_ids(os.getenv("WRK_ITEMS"))
local key = os.getenv("WRK_KEY")
local batch = tonumber(os.getenv("WRK_BATCH") or "1000")
local kinds = {"view", "like", "watch"}
local bodies = {}
local next_body = 1

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  for b = 1, 64 do
    local events = {}
    for i = 1, batch do
      events[i] = string.format('{"user_id":"%s","item_id":"%s","type":"%s","value":%d}',
        users[math.random(#users)], items[math.random(#items)], kinds[math.random(#kinds)],
        math.random(1, 5))
    end
    bodies[b] = "[" .. table.concat(events, ",") .. "]"
  end
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/v1/feedback", {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "rps": %.1f, "events_per_s": %.0f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "errors": %d, "non_2xx": %d}\n',
    summary.requests, seconds, summary.requests / seconds, summary.requests * batch / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, errors, summary.errors.status))
end
