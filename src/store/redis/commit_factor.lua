-- The second-factor commit as one unit (see COMMIT_FACTOR in redis.rs for the layout
-- of KEYS and ARGV). Every check comes before the first write.
local now, nt, ns = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local k, a = 2, 4
local throttles = {}
for i = 1, nt do
  local state = throttle_state(KEYS[k], now)
  if not state then return 'corrupt' end
  if state ~= ARGV[a] then return 2 end
  throttles[i] = {KEYS[k], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]}
  k, a = k + 1, a + 5
end
local steps = {}
for i = 1, ns do
  steps[i] = {KEYS[k], ARGV[a], tonumber(ARGV[a + 1])}
  k, a = k + 1, a + 2
end
local function outcome()
  local o = {take = ARGV[a] == '1'}
  a = a + 1
  if ARGV[a] == '1' then
    o.session = {KEYS[k], KEYS[k + 1], ARGV[a + 1], tonumber(ARGV[a + 2]),
      {ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]}}
    k, a = k + 2, a + 10
  else
    a = a + 1
  end
  if ARGV[a] == '1' then
    o.device = {KEYS[k], KEYS[k + 1], ARGV[a + 1], tonumber(ARGV[a + 2]),
      {ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]}}
    k, a = k + 2, a + 9
  else
    a = a + 1
  end
  return o
end
local on_success = outcome()
local on_failure = outcome()
-- A session set or device list of the wrong type would fail a write half-way.
local function fits(key, kind)
  local t = redis.call('TYPE', key).ok
  return t == 'none' or t == kind
end
for _, o in ipairs({on_success, on_failure}) do
  if o.session and not fits(o.session[2], 'set') then return 'corrupt' end
  if o.device and not fits(o.device[2], 'list') then return 'corrupt' end
end
local spent = false
if ns > 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 3 end
  local c = cmp(redis.call('HGET', KEYS[1], 'x'), now)
  if not c then return 'corrupt' end
  if c <= 0 then return 3 end
  for i = 1, ns do
    local r = advance(steps[i][1], steps[i][2], steps[i][3])
    if not r then return 'corrupt' end
    if r == 1 then
      spent = true
      break
    end
  end
end
local w = on_failure
if spent then w = on_success end
if spent or w.take then redis.call('DEL', KEYS[1]) end
for i = 1, nt do
  local t = throttles[i]
  if spent then put_throttle(t[1], t[4], t[5]) else put_throttle(t[1], t[2], t[3]) end
end
if w.device then put_device(w.device[1], w.device[2], w.device[3], w.device[4], w.device[5]) end
if w.session then put_session(w.session[1], w.session[2], w.session[3], w.session[4], w.session[5]) end
if spent then return 1 end
return 0
