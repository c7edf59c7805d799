-- wrk script: GET /items with a random one of the keys examples/bench_server.rs registers
-- (value "benchkey" and the index on 32 digits; KEYS=10000 by default).
--   wrk -t1 -c32 -d15s --latency -s benches/wrk-keys.lua http://127.0.0.1:3001/items
local keys = tonumber(os.getenv("KEYS") or "10000")

function init(args)
  math.randomseed(os.time())
end

function request()
  local i = math.random(0, keys - 1)
  return wrk.format("GET", "/items", { ["x-api-key"] = string.format("benchkey%032d", i) })
end
