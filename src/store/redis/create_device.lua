local ttl = tonumber(ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'i', ARGV[3], 'u', ARGV[4], 'l', ARGV[5], 'p', ARGV[6], 'c', ARGV[7], 'x', ARGV[8])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
extend(KEYS[2], ttl)
return 1
