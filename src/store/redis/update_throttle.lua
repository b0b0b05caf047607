local state = throttle_state(KEYS[1], ARGV[4])
if not state then return 'corrupt' end
if state ~= ARGV[1] then return 0 end
put_throttle(KEYS[1], ARGV[2], ARGV[3])
return 1
