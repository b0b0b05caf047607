local function halves(s)
  if type(s) ~= 'string' or #s ~= 20 or string.find(s, '[^0123456789]') then return nil end
  return tonumber(string.sub(s, 1, 10)), tonumber(string.sub(s, 11))
end
local function cmp(a, b)
  local ah, al = halves(a)
  local bh, bl = halves(b)
  if not ah or not bh then return nil end
  if ah ~= bh then if ah > bh then return 1 else return -1 end end
  if al ~= bl then if al > bl then return 1 else return -1 end end
  return 0
end
local function extend(key, ttl)
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
