local cur = redis.call('GET', KEYS[1])
local state = '0:0'
if cur then
  local s, keep = string.match(cur, '^([^:]*:[^:]*):([^:]*)$')
  if s then
    local c = cmp(keep, ARGV[4])
    if not c then return 'corrupt' end
    if c > 0 then state = s end
  else
    state = cur
  end
end
if state ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
