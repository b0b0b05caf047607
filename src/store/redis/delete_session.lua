if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local u = redis.call('HGET', KEYS[1], 'u')
  if u then redis.call('SREM', ARGV[1] .. u, ARGV[2]) end
end
redis.call('DEL', KEYS[1])
return 1
