-- The ephemeral read of the second-factor step as one unit (see READ_FACTOR in
-- redis.rs for the layout of KEYS and ARGV). Every check comes before the first write.
local now, max = ARGV[1], tonumber(ARGV[2])
-- Whether `s` is a decimal of digits only that is at most `limit` (a decimal string
-- without leading zeros), as the decoder parses it.
local function uint(s, limit)
  if not s or #s == 0 or string.find(s, '[^0123456789]') then return false end
  s = string.gsub(s, '^0+', '')
  return #s < #limit or (#s == #limit and s <= limit)
end
local U32, U64 = '4294967295', '18446744073709551615'
-- A throttle state as the decoder accepts it: `count:until`, canonical.
local function canonical(s)
  local count, untl = string.match(s, '^(%d+):(%d+)$')
  if not count then return false end
  for _, n in ipairs({count, untl}) do
    if #n > 1 and string.sub(n, 1, 1) == '0' then return false end
  end
  return uint(count, U32) and uint(untl, U64)
end
-- The state of the throttle at `key` at `now`, as `count:until`: '0:0' when missing
-- or past its keep_until; a value without keep_until (written by 0.2) as it is. nil
-- when the decoder would reject it.
local function read_throttle(key)
  local cur = redis.call('GET', key)
  if not cur then return '0:0' end
  local s, keep = string.match(cur, '^(.*:.*):([^:]*)$')
  if not s then
    s = cur
  else
    local c = cmp(keep, now)
    if not c or not uint(keep, U64) then return nil end
    if c <= 0 then return '0:0' end
  end
  if canonical(s) then return s end
  return nil
end
local burn = {}
local found, fields
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local v = redis.call('HMGET', KEYS[i], 'u', 'p', 'a', 'x')
    local c = cmp(v[4], now)
    if not c or not uint(v[4], U64) or not v[1] or not uint(v[2], U64) or not uint(v[3], U32) then
      return 'corrupt'
    end
    if c <= 0 or tonumber(v[3]) >= max then
      burn[#burn + 1] = KEYS[i]
    else
      found, fields = i, v
      break
    end
  end
end
local states = {}
if found then
  for j, prefix in ipairs({ARGV[3], ARGV[4]}) do
    local state = read_throttle(prefix .. fields[1])
    if not state then return 'corrupt' end
    states[j] = state
  end
end
for _, key in ipairs(burn) do redis.call('DEL', key) end
if not found then return false end
fields[3] = tostring(redis.call('HINCRBY', KEYS[found], 'a', 1))
return {tostring(found), fields[1], fields[2], fields[3], fields[4], states[1], states[2]}
