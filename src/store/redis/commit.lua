-- One change to the store, all or nothing, if nobody changed it since it was read.
-- KEYS: version, keys, plans, links, values.
-- ARGV[1]: the version the change was made on. Then writes, each either
--   'S', table (2..5, an index into KEYS), field, value   (HSET)
--   'D', table, field                                      (HDEL)
-- Answers {1, new version} once written, or {0, current version} if the store moved on (nothing
-- is written; the caller reads again and retries).
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
local i = 2
while i <= #ARGV do
  local t = KEYS[tonumber(ARGV[i + 1])]
  if ARGV[i] == 'S' then
    redis.call('HSET', t, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  else
    redis.call('HDEL', t, ARGV[i + 2])
    i = i + 3
  end
end
return {1, redis.call('INCR', KEYS[1])}
