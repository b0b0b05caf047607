local found = 0
for _, t in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local k = ARGV[1] .. t
  local i = redis.call('HGET', k, 'i')
  if not i then
    redis.call('LREM', KEYS[1], 0, t)
  elseif i == ARGV[2] then
    redis.call('DEL', k)
    redis.call('LREM', KEYS[1], 0, t)
    found = 1
  end
end
return found
