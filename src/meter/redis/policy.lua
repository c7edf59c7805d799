-- The limit policy of src/meter/policy.rs, in Lua, for RedisMeter: the states of a charge's
-- counters, one hash each (KEYS[1..n], in one hash slot), decided and kept in one call, all
-- charged or none. The steps, their order and their arithmetic are policy.rs's;
-- tests/redis/meter.rs and the differential test in src/meter/redis/tests.rs hold the two to the
-- same verdicts. No calendar here: each counter's quota window is handed in, worked out by the
-- crate's calendar code.
--
-- Numbers: Lua's are doubles, exact for integers up to 2^53. Instants are never held whole in
-- nanoseconds (1.7e18 is past 2^53): a time is a pair (seconds, nanoseconds), and the bucket
-- keeps its arrival time as (when it was written, nanoseconds ahead of that). Every difference
-- the policy takes is then a small number of nanoseconds (at most the bucket's fill time), exact
-- while that fill time is under 2^52 ns (52 days).
--
-- A hash's fields:
--   ws, we, wu   the quota window [ws, we) in seconds since the epoch, and what was counted in
--                it (a hash written before windows were instants holds days: read as such)
--   d, du        the latest UTC day decided on, and what was counted on it
--   u:<day>      what was counted on an earlier day (kept for the retention)
--   b:<name>     a bucket (`plan`, or a method path such as `/items/GET`):
--                "<seconds> <nanoseconds> <ahead>", its arrival time being `ahead`
--                nanoseconds after the instant (seconds, nanoseconds) at which it was written
--
-- ARGV:
--   1 op: "a" admit, "s" set what is left of the quota, "j" adjust a charge
--   2..5 monotonic seconds, nanoseconds; wall seconds, nanoseconds ("" in 2: Redis's TIME, both)
--   6 retention in days    7 cost (op "j": what was charged)    8 op "s": what is left;
--     op "j": the correction (signed)    9 op "j": the charge's day
--   then per counter i (KEYS[i]), 10 values from 10 + 10 * (i - 1):
--     +0 bucket field ("" for none)    +1 "1" for a bucket that never admits
--     +2 nanoseconds per token    +3 the bucket's size in nanoseconds    +4 per token x cost
--     +5 quota limit ("" for none)    +6, +7 the quota window holding the caller's now
--     [start, end)    +8 the window after it (its end)    +9 op "j": the window charged (its end)
--
-- Reply (op "a"): { outcome (0 admitted, 1 throttled, 2 quota), retry after (s),
--   bucket remaining, bucket reset (s), bucket index, quota remaining, quota reset (s),
--   window start, window end, quota index, refused by (0: none), day,
--   window end of counter 1, ..., of counter n }.

local DAY = 86400
local NS = 1000000000
local G = 10

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
local cost = tonumber(ARGV[7])
local n_counters = #KEYS

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

local function ceil_secs(x)
  local s = fdiv(x, NS)
  if s * NS < x then s = s + 1 end
  return s
end

-- What a quota of `limit` has left after `used` (negative: more was granted).
local function remaining(limit, used)
  local left = limit - used
  if left < 0 then return 0 end
  return left
end

-- Counter i's arguments.
local function arg(i, k)
  return ARGV[G + G * (i - 1) + k]
end

-- Reads counter i's hash.
local function read(i)
  local bfield = arg(i, 0)
  local h = redis.call('HMGET', KEYS[i], 'ws', 'we', 'wu', 'd', 'du', bfield ~= '' and bfield or 'd')
  local s = {
    key = KEYS[i], bfield = bfield,
    ws = tonumber(h[1]) or 0, we = tonumber(h[2]) or 0, wu = tonumber(h[3]) or 0,
    d = tonumber(h[4]) or 0, du = tonumber(h[5]) or 0, b = h[6],
  }
  if s.we ~= 0 and s.we < 10000000 then
    -- Written when windows were days.
    s.ws, s.we = s.ws * DAY, s.we * DAY
  end
  s.has_quota = arg(i, 5) ~= ''
  if s.has_quota then s.limit = tonumber(arg(i, 5)) end
  return s
end

-- policy.rs `current_window`, with the window the caller worked out (or the one after it, once
-- Redis's clock is past the first).
local function current_window(s, i)
  if s.we ~= 0 and s.ws <= us and us < s.we then
    return s.ws, s.we, s.wu
  end
  local cs, ce = tonumber(arg(i, 6)), tonumber(arg(i, 7))
  if us >= ce then cs, ce = ce, tonumber(arg(i, 8)) end
  if s.we == 0 or cs >= s.we then
    return cs, ce, 0
  end
  return s.ws, s.we, s.wu
end

-- Keeps the state for `ttl_floor` seconds at least, and as long as its quota window is open and
-- its usage inside the retention; never shortens what an earlier call set.
local function expire(key, nd, nwe, ttl_floor)
  local ttl = (nd + retention + 1) * DAY - us
  if nwe - us > ttl then ttl = nwe - us end
  if ttl_floor > ttl then ttl = ttl_floor end
  local cur = redis.call('TTL', key)
  if cur > ttl then ttl = cur end
  if ttl < 1 then ttl = 1 end
  redis.call('EXPIRE', key, ttl)
end

local today = math.floor(us / DAY)

if ARGV[1] == 's' then
  local s = read(1)
  local left = tonumber(ARGV[8])
  local nws, nwe = current_window(s, 1)
  redis.call('HSET', s.key, 'ws', n(nws), 'we', n(nwe), 'wu', n(s.limit - left))
  expire(s.key, s.d, nwe, 1)
  return { 1 }
end

if ARGV[1] == 'j' then
  -- policy.rs `adjust`: in the window and on the day of the charge; never below zero.
  local charged, delta, day = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  if delta < -charged then delta = -charged end
  for i = 1, n_counters do
    local s = read(i)
    local wend = tonumber(arg(i, 9))
    if s.has_quota and wend ~= 0 and s.we == wend then
      local wu = s.wu + delta
      if delta < 0 then
        local floor = math.min(s.wu, 0)
        if wu < floor then wu = floor end
      end
      redis.call('HSET', s.key, 'ws', n(s.ws), 'we', n(s.we), 'wu', n(wu))
    end
    if day == s.d then
      redis.call('HSET', s.key, 'du', n(math.max(s.du + delta, 0)))
    else
      local old = tonumber(redis.call('HGET', s.key, 'u:' .. day))
      if old or (delta > 0 and day < s.d) then
        redis.call('HSET', s.key, 'u:' .. day, n(math.max((old or 0) + delta, 0)))
      end
    end
    expire(s.key, s.d, s.we, 1)
  end
  return { 1 }
end

-- 1 and 2. The day and the window, for every counter: never back. A day that ended is filed
-- with its usage; days past the retention go.
local st = {}
for i = 1, n_counters do
  local s = read(i)
  s.nd, s.ndu = s.d, s.du
  if today > s.d then
    s.nd, s.ndu = today, 0
    if s.du > 0 then
      redis.call('HSET', s.key, 'u:' .. s.d, n(s.du))
      local oldest = today - retention
      local fields = redis.call('HKEYS', s.key)
      for f = 1, #fields do
        local day = tonumber(string.match(fields[f], '^u:(%d+)$'))
        if day and day < oldest then redis.call('HDEL', s.key, fields[f]) end
      end
    end
  end
  s.nws, s.nwe, s.nwu = s.ws, s.we, s.wu
  if s.has_quota then
    s.nws, s.nwe, s.nwu = current_window(s, i)
  end
  st[i] = s
end

-- Keeps every counter's day and window, whatever the outcome.
local function keep(extra)
  for i = 1, n_counters do
    local s = st[i]
    if s.has_quota then
      redis.call('HSET', s.key, 'd', s.nd, 'du', n(s.ndu), 'ws', n(s.nws), 'we', n(s.nwe), 'wu', n(s.nwu))
    else
      redis.call('HSET', s.key, 'd', s.nd, 'du', n(s.ndu))
    end
    expire(s.key, s.nd, s.nwe, extra)
  end
end

-- 3. Every quota: a request refused for a quota takes no token.
local q_rem, q_reset, q_i, q_ws, q_we = 0, 0, 0, 0, 0
for i = 1, n_counters do
  local s = st[i]
  if s.has_quota then
    local reset = math.max(s.nwe - us, 1)
    local left = remaining(s.limit, s.nwu)
    if left < cost then
      keep(1)
      return { 2, reset, 0, 0, 0, left, reset, s.nws, s.nwe, i, i, today }
    end
    if q_i == 0 or left < q_rem then
      q_rem, q_reset, q_i, q_ws, q_we = left, reset, i, s.nws, s.nwe
    end
  end
end

-- 4. Every bucket (GCRA): a throttled request spends no quota.
local b_rem, b_reset, b_i = 0, 0, 0
for i = 1, n_counters do
  local s = st[i]
  if s.bfield ~= '' then
    if arg(i, 1) == '1' then
      keep(1)
      return { 1, 60, 0, 60, i, q_rem, q_reset, q_ws, q_we, q_i, i, today }
    end
    local t, tau, tc = tonumber(arg(i, 2)), tonumber(arg(i, 3)), tonumber(arg(i, 4))
    -- How far the arrival time is ahead of now.
    local ahead_now = 0
    if s.b then
      local vs, vn, va = string.match(s.b, '^(%d+) (%d+) (%d+)$')
      if vs then
        local elapsed = (ms - tonumber(vs)) * NS + (mn - tonumber(vn))
        if elapsed < 0 then
          -- The clock went back since the bucket was written (Redis's TIME stepped back): count
          -- it as no time passed, and keep the bucket from now on, so that it refills from here
          -- and never waits for the clock to catch up.
          elapsed = 0
          redis.call('HSET', s.key, s.bfield, n(ms) .. ' ' .. n(mn) .. ' ' .. va)
        end
        ahead_now = tonumber(va) - elapsed
        if ahead_now < 0 then ahead_now = 0 end
      end
    end
    local ahead = ahead_now + tc
    if ahead > tau then
      local retry = math.max(ceil_secs(ahead - tau), 1)
      keep(1)
      return { 1, retry, 0, retry, i, q_rem, q_reset, q_ws, q_we, q_i, i, today }
    end
    s.ahead = ahead
    local left = fdiv(tau - ahead, t)
    if b_i == 0 or left < b_rem then
      b_rem, b_reset, b_i = left, ceil_secs(ahead), i
    end
  end
end

-- 5. Admitted: charge every counter.
local reply = { 0, 0, b_rem, b_reset, b_i, q_rem, q_reset, q_ws, q_we, q_i, 0, today }
local floor = 0
for i = 1, n_counters do
  local s = st[i]
  if s.ahead then
    redis.call('HSET', s.key, s.bfield, n(ms) .. ' ' .. n(mn) .. ' ' .. n(s.ahead))
    floor = math.max(floor, ceil_secs(s.ahead))
  end
  if s.has_quota then
    s.nwu = s.nwu + cost
    reply[12 + i] = s.nwe
  else
    reply[12 + i] = 0
  end
  s.ndu = s.ndu + cost
end
if q_i ~= 0 then reply[6] = q_rem - cost end
keep(floor)
return reply
