local out = {}
for _, t in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('HMGET', ARGV[1] .. t, 'i', 'u', 'l', 'p', 'c', 'x')
  if v[1] then
    for j = 1, 6 do out[#out + 1] = v[j] end
  else
    redis.call('LREM', KEYS[1], 0, t)
  end
end
return out
