-- The limit policy of src/meter/policy.rs, in Lua, for RedisMeter: one key's state on one plan
-- in one hash (KEYS[1]), decided and kept in one call. The steps, their order and their
-- arithmetic are policy.rs's; tests/redis_meter.rs and the differential test in
-- src/meter/redis/tests.rs hold the two to the same verdicts.
--
-- Numbers: Lua's are doubles, exact for integers up to 2^53. Instants are never held whole in
-- nanoseconds (1.7e18 is past 2^53): a time is a pair (seconds, nanoseconds), and the bucket
-- keeps its arrival time as (when it was written, nanoseconds ahead of that). Every difference
-- the policy takes is then a small number of nanoseconds (at most the bucket's fill time), exact
-- while that fill time is under 2^52 ns (52 days).
--
-- The hash's fields:
--   ws, we, wu   the quota window [ws, we) in days since the epoch, and what was counted in it
--   d, du        the latest UTC day decided on, and what was admitted on it
--   u:<day>      what was admitted on an earlier day (kept for the retention)
--   b:<name>     a bucket (`plan`, or a method path such as `/items/GET`):
--                "<seconds> <nanoseconds> <ahead>", its arrival time being `ahead`
--                nanoseconds after the instant (seconds, nanoseconds) at which it was written
--
-- ARGV:
--   1 op: "a" admit, "s" set what is left of the quota
--   2..5 monotonic seconds, nanoseconds; wall seconds, nanoseconds ("" in 2: Redis's TIME, both)
--   6 retention in days    7 cost
--   8 bucket field ("" for none)    9 "1" for a bucket that never admits
--   10 nanoseconds per token    11 the bucket's size in nanoseconds    12 per token x cost
--   13 quota period "D", "W", "M" ("" for none)    14 offset    15 limit
--   16 (op "s") what is left
--
-- Reply (op "a"): { outcome (0 admitted, 1 throttled, 2 quota), retry after (s),
--   bucket remaining, bucket reset (s), quota remaining, quota reset (s), window start, end }.

local key = KEYS[1]
local DAY = 86400
local NS = 1000000000

local ms, mn, us, un
if ARGV[2] == '' then
  -- Redis's own clock, for the bucket and the quota alike.
  local t = redis.call('TIME')
  us = tonumber(t[1])
  un = tonumber(t[2]) * 1000
  ms, mn = us, un
else
  ms, mn = tonumber(ARGV[2]), tonumber(ARGV[3])
  us, un = tonumber(ARGV[4]), tonumber(ARGV[5])
end
local retention = tonumber(ARGV[6])

-- A number as Redis keeps it: every digit, never an exponent.
local function n(x)
  return string.format('%.0f', x)
end

-- floor(a / b) for integers a >= 0, b > 0 below 2^53, exact (a double's quotient may round up
-- to the next integer).
local function fdiv(a, b)
  local q = math.floor(a / b)
  while q * b > a do q = q - 1 end
  while (q + 1) * b <= a do q = q + 1 end
  return q
end

local function ceil_secs(n)
  local s = fdiv(n, NS)
  if s * NS < n then s = s + 1 end
  return s
end

-- Howard Hinnant's days_from_civil and civil_from_days, as period.rs.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp
  if m > 2 then mp = m - 3 else mp = m + 9 end
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- The quota window holding the wall second `s`, as [start, end) in days (period.rs `window`).
local function window(period, offset, s)
  local today = math.floor(s / DAY)
  if period == 'D' then
    return today, today + 1
  elseif period == 'W' then
    local back = ((today + 4) % 7 + 7 - math.min(offset, 6)) % 7
    local start = today - math.min(back, today)
    return start, start + 7
  end
  local first = math.min(offset, 27) + 1
  local y, m, d = civil_from_days(today)
  local sy, sm
  if d >= first then
    sy, sm = y, m
  elseif m == 1 then
    sy, sm = y - 1, 12
  else
    sy, sm = y, m - 1
  end
  local ey, em
  if sm == 12 then ey, em = sy + 1, 1 else ey, em = sy, sm + 1 end
  return days_from_civil(sy, sm, first), days_from_civil(ey, em, first)
end

-- What a quota of `limit` has left after `used` (negative: more was granted).
local function remaining(limit, used)
  local left = limit - used
  if left < 0 then return 0 end
  return left
end

-- policy.rs `current_window`.
local function current_window(ws, we, wu, period, offset)
  -- Still in the state's window: no calendar (a changed period or offset applies from its end).
  local today = math.floor(us / DAY)
  if we ~= 0 and ws <= today and today < we then
    return ws, we, wu
  end
  local s, e = window(period, offset, us)
  if we == 0 or s >= we then
    return s, e, 0
  end
  return ws, we, wu
end

local bfield = ARGV[8]
local h = redis.call('HMGET', key, 'ws', 'we', 'wu', 'd', 'du', bfield ~= '' and bfield or 'd')
local ws, we, wu = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
local d, du = tonumber(h[4]) or 0, tonumber(h[5]) or 0
local period = ARGV[13]

-- Keeps the state for `ttl_floor` seconds at least, and as long as its quota window is open and
-- its usage inside the retention; never shortens what an earlier call set.
local function expire(nd, nwe, ttl_floor)
  local ttl = (nd + retention + 1) * DAY - us
  if nwe * DAY - us > ttl then ttl = nwe * DAY - us end
  if ttl_floor > ttl then ttl = ttl_floor end
  local cur = redis.call('TTL', key)
  if cur > ttl then ttl = cur end
  if ttl < 1 then ttl = 1 end
  redis.call('EXPIRE', key, ttl)
end

if ARGV[1] == 's' then
  local limit, left = tonumber(ARGV[15]), tonumber(ARGV[16])
  local nws, nwe = current_window(ws, we, wu, period, tonumber(ARGV[14]))
  redis.call('HSET', key, 'ws', nws, 'we', nwe, 'wu', n(limit - left))
  expire(d, nwe, 1)
  return { 1 }
end

local cost = tonumber(ARGV[7])

-- 1. The day: never back. The day that ended is filed with its usage; days past the retention go.
local nd, ndu = d, du
if math.floor(us / DAY) > d then
  nd, ndu = math.floor(us / DAY), 0
  if du > 0 then
    redis.call('HSET', key, 'u:' .. d, n(du))
    local oldest = nd - retention
    local fields = redis.call('HKEYS', key)
    for i = 1, #fields do
      local day = tonumber(string.match(fields[i], '^u:(%d+)$'))
      if day and day < oldest then redis.call('HDEL', key, fields[i]) end
    end
  end
end

-- Keeps the day and the window, whatever the outcome.
local function keep(nws, nwe, nwu, extra)
  if period ~= '' then
    redis.call('HSET', key, 'd', nd, 'du', n(ndu), 'ws', nws, 'we', nwe, 'wu', n(nwu))
  else
    redis.call('HSET', key, 'd', nd, 'du', n(ndu))
  end
  expire(nd, nwe, extra)
end

-- 2. The quota: a request refused for its quota takes no token.
local nws, nwe, nwu = ws, we, wu
local q_rem, q_reset = 0, 0
if period ~= '' then
  nws, nwe, nwu = current_window(ws, we, wu, period, tonumber(ARGV[14]))
  q_reset = math.max(nwe * DAY - us, 1)
  q_rem = remaining(tonumber(ARGV[15]), nwu)
  if q_rem < cost then
    keep(nws, nwe, nwu, 1)
    return { 2, q_reset, 0, 0, q_rem, q_reset, nws, nwe }
  end
end

-- 3. The bucket (GCRA): a throttled request spends no quota.
local b_rem, b_reset = 0, 0
if bfield ~= '' then
  if ARGV[9] == '1' then
    keep(nws, nwe, nwu, 1)
    return { 1, 60, 0, 60, q_rem, q_reset, nws, nwe }
  end
  local t, tau, tc = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
  -- How far the arrival time is ahead of now.
  local ahead_now = 0
  local v = h[6]
  if v then
    local vs, vn, va = string.match(v, '^(%d+) (%d+) (%d+)$')
    if vs then
      local elapsed = (ms - tonumber(vs)) * NS + (mn - tonumber(vn))
      if elapsed < 0 then
        -- The clock went back since the bucket was written (Redis's TIME stepped back): count
        -- it as no time passed, and keep the bucket from now on, so that it refills from here
        -- and never waits for the clock to catch up.
        elapsed = 0
        redis.call('HSET', key, bfield, n(ms) .. ' ' .. n(mn) .. ' ' .. va)
      end
      ahead_now = tonumber(va) - elapsed
      if ahead_now < 0 then ahead_now = 0 end
    end
  end
  local ahead = ahead_now + tc
  if ahead > tau then
    local retry = math.max(ceil_secs(ahead - tau), 1)
    keep(nws, nwe, nwu, 1)
    return { 1, retry, 0, retry, q_rem, q_reset, nws, nwe }
  end
  b_rem = fdiv(tau - ahead, t)
  b_reset = ceil_secs(ahead)
  redis.call('HSET', key, bfield, n(ms) .. ' ' .. n(mn) .. ' ' .. n(ahead))
end

-- 4. Admitted: count it.
if period ~= '' then
  nwu = nwu + cost
  q_rem = q_rem - cost
end
ndu = ndu + cost
keep(nws, nwe, nwu, b_reset)
return { 0, 0, b_rem, b_reset, q_rem, q_reset, nws, nwe }
