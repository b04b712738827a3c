-- Ferry rate limiter: every window of one user, checked and charged in one atomic call.
--
-- KEYS[i]  one hash per window, all in the user's cluster slot: rl:{u:<id>}:m|h|d
--          fields: b = index of the current fixed bucket (floor(now / W))
--                  c = requests counted in bucket b, p = requests in bucket b - 1
--                  g = when this window's last grace period opened (ms)
--                  x = 1 while the window is blocked until the count falls back to L
--                  n = 1 while the count is past the soft threshold (its crossing was told)
-- KEYS[n+1] optional, after the n windows: this hour's tally (shared/ratelimit/tally.py),
--          a hash counting checks by decision (ok, soft, grace, blocked); peeks count nothing.
--          It is shared by every user, so outside the user's slot (one Redis, no cluster).
-- KEYS[n+2] optional, after the tally: the crossings list (shared/ratelimit/crossings.py).
--          A check that crosses a threshold appends one entry: the user, the time, and per
--          window crossed its state, count and limit. Crossings: the soft threshold passed
--          (again only after the count fell back to it: field n), a grace period opened, a
--          block begun (x not yet set). Shared by every user, like the tally.
-- ARGV[1]  "1" charge (check) or "0" look only (peek)
-- ARGV[2]  "" in production: the time is redis.call('TIME'). Tests may pass a time in ms
--          (a test-only override used to drive timelines; production never passes it).
-- ARGV[3..] five integers per key: W (window ms), L (limit), S = floor(soft ratio * L),
--          X = floor(grace ratio * L), G = grace length in ms, already min(grace, W).
--
-- The count is a sliding-window counter: c + ceil(p * (W - e) / W), e = ms into bucket b,
-- exact integer arithmetic (every product stays far below 2^53).
-- Returns {allowed, now_ms, then per key: state, count, reset_ms, retry_ms, grace_until,
-- grace_reopens_at}; state 0 ok, 1 soft, 2 grace, 3 blocked. A blocked call changes no
-- counter and no grace period; it only sets x on the windows it violated.

local OK, SOFT, GRACE, BLOCKED = 0, 1, 2, 3
local STATE_NAMES = {'ok', 'soft', 'grace', 'blocked'}
local TALLY_TTL = 90000  -- s: 25 h, tally.TTL_SECONDS
local CROSSINGS_MAX = 100000  -- entries kept when nobody reads them: crossings.MAX_ENTRIES
local call, fmod, floor, max, tonumber = redis.call, math.fmod, math.floor, math.max, tonumber
local unpack = unpack
local charge = ARGV[1] == '1'
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = call('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end

-- floor and ceiling of a / b for non-negative integers, exact (fmod is exact in IEEE 754)
local function fdiv(a, b) return (a - fmod(a, b)) / b end
local function cdiv(a, b)
  local r = fmod(a, b)
  if r > 0 then return (a - r) / b + 1 end
  return (a - r) / b
end

-- ms from now until the count is at most L - 1, so that one more request is within L
local function retry_ms(w)
  local target = w.L - 1
  if target < 0 then return w.W end  -- a zero limit never opens; look again in a window
  if w.cur <= target then
    local need = target - w.cur
    if w.prev <= need then return 0 end
    return w.W - fdiv(need * w.W, w.prev) - w.e
  end
  return (w.W - w.e) + w.W - fdiv(target * w.W, w.cur)
end

local NW = (#ARGV - 2) / 5  -- the windows: five arguments each
local windows, blocked, worst = {}, false, OK
for i = 1, NW do
  local a = 3 + (i - 1) * 5
  local W = tonumber(ARGV[a])
  local w = {  -- every field named here, so the table is built once at its full size
    W = W, L = tonumber(ARGV[a + 1]), S = tonumber(ARGV[a + 2]), X = tonumber(ARGV[a + 3]),
    G = tonumber(ARGV[a + 4]), cur = 0, prev = 0, idx = fdiv(now, W), e = 0, count = 0,
    g = false, grace_active = false, state = OK, stored = false, latched = false,
    told = false,
  }
  local h = call('HMGET', KEYS[i], 'b', 'c', 'p', 'g', 'x', 'n')
  local b = tonumber(h[1])
  w.stored = b
  if b ~= nil then
    if b >= w.idx then  -- same bucket (or a clock that stepped back: keep the newer bucket)
      w.idx, w.cur, w.prev = b, tonumber(h[2]) or 0, tonumber(h[3]) or 0
    elseif b == w.idx - 1 then
      w.prev = tonumber(h[2]) or 0
    end
  end
  w.e = max(0, now - w.idx * w.W)
  w.count = w.cur + cdiv(w.prev * (w.W - w.e), w.W)
  w.g = tonumber(h[4])
  w.grace_active = w.g ~= nil and w.G > 0 and now < w.g + w.G
  local grace_free = w.G > 0 and (w.g == nil or now >= w.g + w.G + w.W)
  local c = w.count + 1
  w.latched = h[5] == '1'
  w.told = h[6] == '1'
  if w.latched and c > w.L then w.state = BLOCKED
  elseif c <= w.S then w.state = OK
  elseif c <= w.L then w.state = SOFT
  elseif c <= w.X and (w.grace_active or grace_free) then w.state = GRACE
  else w.state = BLOCKED end
  if w.state == BLOCKED then blocked = true end
  if w.state > worst then worst = w.state end
  windows[i] = w
end

-- A key lives until its counts have drained ((idx + 2) * W) and its grace period can no
-- longer hold back a new one (g + G + W); that moment moves only when the bucket rolls or a
-- grace period opens, so the expiry is set then (and whenever a block is recorded).
local function ttl(w)
  local until_ms = (w.idx + 2) * w.W
  if w.g ~= nil and w.g + w.G + w.W > until_ms then until_ms = w.g + w.G + w.W end
  return max(1, until_ms - now)
end

-- Numbers go to Redis as Lua formats them (%.14g): exact for every integer used here.
local charged = charge and not blocked
local out, n = {blocked and 0 or 1, now}, 2
local crossed = {}  -- 'state:window:count:limit' per window crossed by this check
for i = 1, #windows do
  local w = windows[i]
  if charged then
    local expire = w.stored ~= w.idx
    w.cur, w.count = w.cur + 1, w.count + 1
    local fields = {'b', w.idx, 'c', w.cur, 'p', w.prev}
    if w.state == GRACE and not w.grace_active then
      -- the first pass over L opens this window's grace period
      w.g, w.grace_active, expire = now, true, true
      fields[#fields + 1], fields[#fields + 2] = 'g', now
      crossed[#crossed + 1] = 'grace:' .. i .. ':' .. w.count .. ':' .. w.L
    elseif w.state == SOFT and not w.told then
      crossed[#crossed + 1] = 'soft:' .. i .. ':' .. w.count .. ':' .. w.L
    end
    if w.latched then fields[#fields + 1], fields[#fields + 2] = 'x', 0 end
    if w.state ~= OK and not w.told then
      fields[#fields + 1], fields[#fields + 2] = 'n', 1
    elseif w.state == OK and w.told then
      fields[#fields + 1], fields[#fields + 2] = 'n', 0
    end
    call('HSET', KEYS[i], unpack(fields))
    if expire then call('PEXPIRE', KEYS[i], ttl(w)) end
  elseif charge and w.state == BLOCKED then
    if not w.latched then
      crossed[#crossed + 1] = 'blocked:' .. i .. ':' .. (w.count + 1) .. ':' .. w.L
    end
    call('HSET', KEYS[i], 'x', 1)
    call('PEXPIRE', KEYS[i], ttl(w))
  end
  local reset = 0
  if w.cur > 0 then reset = 2 * w.W - w.e elseif w.prev > 0 then reset = w.W - w.e end
  local retry = 0
  if not charged and w.count + 1 > w.L then retry = retry_ms(w) end
  local grace_until, reopens = 0, 0
  if w.grace_active then grace_until = w.g + w.G end
  if w.g ~= nil and now < w.g + w.G + w.W then reopens = w.g + w.G + w.W end
  out[n + 1], out[n + 2], out[n + 3] = w.state, w.count, reset
  out[n + 4], out[n + 5], out[n + 6] = retry, grace_until, reopens
  n = n + 6
end
local tally = KEYS[NW + 1]
if charge and tally then
  -- the first count of a field may be the hash's first: give it its expiry then
  if call('HINCRBY', tally, STATE_NAMES[worst + 1], 1) == 1 then
    call('EXPIRE', tally, TALLY_TTL)
  end
end
local crossings = KEYS[NW + 2]
if crossings and #crossed > 0 then
  local user = string.match(KEYS[1], '^rl:{u:(.*)}:%a$')
  local entry = user .. '\t' .. now .. '\t' .. table.concat(crossed, ',')
  if call('RPUSH', crossings, entry) > CROSSINGS_MAX then
    call('LTRIM', crossings, -CROSSINGS_MAX, -1)
  end
end
return out
