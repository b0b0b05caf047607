if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local v = redis.call('HMGET', KEYS[1], 'u', 'p', 'a', 'x')
local c = cmp(v[4], ARGV[1])
local a = v[3]
if not c or not a or #a == 0 or #a > 10 or string.find(a, '[^0123456789]') then return 'corrupt' end
if c <= 0 or tonumber(a) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return false
end
v[3] = tostring(redis.call('HINCRBY', KEYS[1], 'a', 1))
return v
