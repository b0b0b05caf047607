local now, prefix = ARGV[1], ARGV[2]
local n = 0
for _, k in ipairs(KEYS) do
  local kind = string.sub(k, #prefix + 1, #prefix + 3)
  local rest = string.sub(k, #prefix + 4)
  local t = redis.call('TYPE', k).ok
  if t == 'hash' and (kind == 'pl:' or kind == 'en:' or kind == 'dv:' or kind == 'se:') then
    local v = redis.call('HMGET', k, 'x', 'u')
    local c = cmp(v[1], now)
    if c and c <= 0 then
      if kind == 'se:' and v[2] then
        redis.call('SREM', prefix .. 'su:' .. v[2], rest)
      elseif kind == 'dv:' and v[2] then
        redis.call('LREM', prefix .. 'du:' .. v[2], 0, rest)
      end
      n = n + redis.call('DEL', k)
    end
  elseif t == 'string' and kind == 'th:' then
    local keep = string.match(redis.call('GET', k), '^[^:]*:[^:]*:([^:]*)$')
    local c = cmp(keep, now)
    if c and c <= 0 then n = n + redis.call('DEL', k) end
  elseif t == 'set' and kind == 'su:' then
    for _, m in ipairs(redis.call('SMEMBERS', k)) do
      if redis.call('EXISTS', prefix .. 'se:' .. m) == 0 then redis.call('SREM', k, m) end
    end
  elseif t == 'list' and kind == 'du:' then
    for _, m in ipairs(redis.call('LRANGE', k, 0, -1)) do
      if redis.call('EXISTS', prefix .. 'dv:' .. m) == 0 then redis.call('LREM', k, 0, m) end
    end
  end
end
return n
