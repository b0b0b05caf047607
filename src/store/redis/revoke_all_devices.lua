local n = 0
for _, t in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('DEL', ARGV[1] .. t)
end
redis.call('DEL', KEYS[1])
return n
