put_device(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), {ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]})
return 1
