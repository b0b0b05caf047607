if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HMGET', KEYS[1], 'i', 'x')
local c = cmp(v[2], ARGV[2])
if not v[1] or not c then return 'corrupt' end
if v[1] == ARGV[1] and c > 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
