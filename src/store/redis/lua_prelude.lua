local function halves(s)
  if type(s) ~= 'string' or #s ~= 20 or string.find(s, '[^0123456789]') then return nil end
  return tonumber(string.sub(s, 1, 10)), tonumber(string.sub(s, 11))
end
local function cmp(a, b)
  local ah, al = halves(a)
  local bh, bl = halves(b)
  if not ah or not bh then return nil end
  if ah ~= bh then if ah > bh then return 1 else return -1 end end
  if al ~= bl then if al > bl then return 1 else return -1 end end
  return 0
end
local function extend(key, ttl)
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
-- The throttle state stored at `key` at `now` (padded), as `count:until`: '0:0' when
-- missing or past its keep_until; a value without keep_until (written by 0.2) as it
-- is. nil when corrupt.
local function throttle_state(key, now)
  local cur = redis.call('GET', key)
  if not cur then return '0:0' end
  local s, keep = string.match(cur, '^([^:]*:[^:]*):([^:]*)$')
  if not s then return cur end
  local c = cmp(keep, now)
  if not c then return nil end
  if c > 0 then return s end
  return '0:0'
end
-- Writes a throttle value ('' deletes) with a TTL.
local function put_throttle(key, value, ttl)
  if value == '' then
    redis.call('DEL', key)
  else
    redis.call('SET', key, value, 'EX', ttl)
  end
end
-- Advances the replay mark `key` to `step` (padded) if newer; keeps it at least
-- `ttl` seconds. 1 when advanced, 0 when not, nil when corrupt (nothing written).
local function advance(key, step, ttl)
  local cur = redis.call('GET', key)
  if not cur then
    redis.call('SET', key, step, 'EX', ttl)
    return 1
  end
  local c = cmp(step, cur)
  if not c then return nil end
  if c > 0 then redis.call('SET', key, step, 'KEEPTTL') end
  extend(key, ttl)
  if c > 0 then return 1 end
  return 0
end
-- A trusted device `f` = {i, u, l, p, c, x} at `key`, in the user's list `list`.
local function put_device(key, list, hex, ttl, f)
  redis.call('DEL', key)
  redis.call('HSET', key, 'i', f[1], 'u', f[2], 'l', f[3], 'p', f[4], 'c', f[5], 'x', f[6])
  redis.call('EXPIRE', key, ttl)
  redis.call('LREM', list, 0, hex)
  redis.call('RPUSH', list, hex)
  extend(list, ttl)
end
-- A session `f` = {i, u, p, m, c, a, x} at `key`, in the user's set `set`. The set is
-- written first: a set of the wrong type fails the script before anything was written.
local function put_session(key, set, hex, ttl, f)
  redis.call('SADD', set, hex)
  extend(set, ttl)
  redis.call('DEL', key)
  redis.call('HSET', key, 'i', f[1], 'u', f[2], 'p', f[3], 'm', f[4], 'c', f[5], 'a', f[6], 'x', f[7])
  redis.call('EXPIRE', key, ttl)
end
