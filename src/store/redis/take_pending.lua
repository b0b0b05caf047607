local v = redis.call('HMGET', KEYS[1], 'u', 'p', 'a', 'x')
if redis.call('DEL', KEYS[1]) == 0 then return false end
return v
