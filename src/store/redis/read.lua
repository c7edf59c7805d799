-- The whole store at one version, atomically: {version, keys, plans, links, values}.
-- KEYS: version, keys, plans, links. Each hash comes back flat (field, value, field, value, ...).
return {
  redis.call('GET', KEYS[1]) or '0',
  redis.call('HGETALL', KEYS[2]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
}
