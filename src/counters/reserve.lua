-- reserve.lua: one atomic reservation of slices of the shared counters
-- (src/counters/counters_redis.c sends it; docs/internals/redis.md explains it).
--
-- KEYS[1]      the key's rate window: hash {s: start ms (Redis's clock), n: granted}
-- KEYS[2..31]  the workspace's quota days, oldest first, today last
-- KEYS[32]     the key's spend of today
-- KEYS[33]     the quota day given back to; KEYS[34] the spend day given back to
-- ARGV         rate want, limit, window ms; quota want, min, limit;
--              spend want, min, cap; quota given back, spend given back;
--              ARGV[12..41] the least each quota day holds (KEYS[2..31]);
--              ARGV[42] the least today's spend holds
-- Returns {rate grant, rate left, ms until the window closes,
--          quota grant, quota left, spend grant, spend left}.
-- A part with want 0 is not touched; a grant below its min is no grant.
-- The "least" values are what the asking node knows was used (the database's
-- counts at its start plus its own checks since): a day Redis holds less of
-- (first use of Redis, or a Redis that lost its data) is raised to it first.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function n(i) return tonumber(ARGV[i]) end
local function i(x) return string.format('%d', x) end
local out = {0, 0, 0, 0, 0, 0, 0}
for _, p in ipairs({{33, 10}, {34, 11}}) do
  local back = n(p[2])
  if back > 0 then
    local v = tonumber(redis.call('GET', KEYS[p[1]]) or '0')
    if v > 0 then redis.call('DECRBY', KEYS[p[1]], i(math.min(v, back))) end
  end
end
if n(1) > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local v = redis.call('HMGET', KEYS[1], 's', 'n')
  local s, used, win = tonumber(v[1]), tonumber(v[2]) or 0, n(3)
  if not s or now >= s + win then s = now; used = 0 end
  local left, g = n(2) - used, 0
  if left > 0 then g = math.min(n(1), left) end
  if g > 0 then
    redis.call('HSET', KEYS[1], 's', i(s), 'n', i(used + g))
    redis.call('PEXPIREAT', KEYS[1], i(s + win))
  end
  out[1] = g; out[2] = math.max(left - g, 0); out[3] = s + win - now
end
local function floor(key, least, ttl)
  if least > 0 and tonumber(redis.call('GET', key) or '0') < least then
    redis.call('SET', key, i(least), 'EX', ttl)
  end
end
if n(4) > 0 then
  for k = 2, 31 do floor(KEYS[k], n(10 + k), 2678400) end
  local used = 0
  for k = 2, 31 do used = used + tonumber(redis.call('GET', KEYS[k]) or '0') end
  local left, g = n(6) - used, 0
  if left >= n(5) then g = math.min(n(4), left) end
  if g > 0 then
    redis.call('INCRBY', KEYS[31], i(g))
    redis.call('EXPIRE', KEYS[31], 2678400)
  end
  out[4] = g; out[5] = math.max(left - g, 0)
end
if n(7) > 0 then
  floor(KEYS[32], n(42), 172800)
  local left, g = n(9) - tonumber(redis.call('GET', KEYS[32]) or '0'), 0
  if left >= n(8) then g = math.min(n(7), left) end
  if g > 0 then
    redis.call('INCRBY', KEYS[32], i(g))
    redis.call('EXPIRE', KEYS[32], 172800)
  end
  out[6] = g; out[7] = math.max(left - g, 0)
end
return out
