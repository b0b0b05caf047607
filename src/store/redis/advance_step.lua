local r = advance(KEYS[1], ARGV[1], tonumber(ARGV[2]))
if not r then return 'corrupt' end
return r
