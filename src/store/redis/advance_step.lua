local ttl = tonumber(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
  return 1
end
local c = cmp(ARGV[1], cur)
if not c then return 'corrupt' end
if c > 0 then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
extend(KEYS[1], ttl)
if c > 0 then return 1 end
return 0
