local out = {}
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. t
  local v = redis.call('HMGET', k, 'i', 'u', 'p', 'm', 'c', 'a', 'x')
  local keep = true
  if v[2] == ARGV[2] then
    local c = cmp(v[7], ARGV[3])
    if c and c <= 0 then
      redis.call('DEL', k)
      keep = false
    end
  elseif v[2] or redis.call('EXISTS', k) == 0 then
    keep = false
  end
  if keep then
    for j = 1, 7 do out[#out + 1] = v[j] end
  else
    redis.call('SREM', KEYS[1], t)
  end
end
return out
