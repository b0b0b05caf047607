local v = redis.call('HMGET', KEYS[1], 'u', 'l', 's', 'x')
if redis.call('DEL', KEYS[1]) == 0 then return false end
return v
