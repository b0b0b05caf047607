if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('HMGET', KEYS[1], 'i', 'm', 'a', 'x')
if not v[1] and not v[2] and not v[3] then return 0 end
local c = cmp(v[4], ARGV[1])
if not v[1] or not v[2] or not v[3] or not c then return 'corrupt' end
if c <= 0 then return 0 end
redis.call('HSET', KEYS[1], 'a', ARGV[2])
return 1
