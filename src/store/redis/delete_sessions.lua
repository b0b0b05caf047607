local n = 0
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. t
  local v = redis.call('HMGET', k, 'i', 'u')
  if v[2] == ARGV[2] then
    if not (ARGV[3] == '1' and v[1] == ARGV[4]) then
      n = n + redis.call('DEL', k)
      redis.call('SREM', KEYS[1], t)
    end
  elseif v[2] or redis.call('EXISTS', k) == 0 then
    redis.call('SREM', KEYS[1], t)
  end
end
return n
