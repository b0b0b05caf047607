local ttl = tonumber(ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
extend(KEYS[2], ttl)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'i', ARGV[3], 'u', ARGV[4], 'p', ARGV[5], 'm', ARGV[6], 'c', ARGV[7], 'a', ARGV[8], 'x', ARGV[9])
redis.call('EXPIRE', KEYS[1], ttl)
return 1
