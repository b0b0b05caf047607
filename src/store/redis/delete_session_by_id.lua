local found = 0
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. t
  local v = redis.call('HMGET', k, 'i', 'u')
  if v[2] == ARGV[2] then
    if v[1] == ARGV[3] then
      redis.call('DEL', k)
      redis.call('SREM', KEYS[1], t)
      found = 1
    end
  elseif v[2] or redis.call('EXISTS', k) == 0 then
    redis.call('SREM', KEYS[1], t)
  end
end
return found
