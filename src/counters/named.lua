-- named.lua: a key's named rate limits, all or none, in one atomic call
-- (src/counters/counters_redis.c sends it; docs/internals/limits.md explains it).
--
-- KEYS[i]   the window of limit i: a count that expires when the window closes
-- ARGV[1]   "take" or "give"; then per limit: limit, window ms, cost
-- take: refuses (counts nothing) when some window lacks room for its cost, else
--       counts every cost, a window opening (PEXPIRE) at its first count.
--       Returns {refused (1-based, 0: none), count 1, ms left 1, count 2, ...}.
-- give: takes back each cost (never below 0). Returns {0}.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local take = ARGV[1] == 'take'
local function arg(i, j) return tonumber(ARGV[1 + (i - 1) * 3 + j]) end
local out = {0}
if not take then
  for i = 1, #KEYS do
    local v = tonumber(redis.call('GET', KEYS[i]) or '0')
    local c = arg(i, 3)
    if v > 0 and c > 0 then redis.call('DECRBY', KEYS[i], string.format('%d', math.min(v, c))) end
  end
  return out
end
for i = 1, #KEYS do
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  if v + arg(i, 3) > arg(i, 1) then
    out[1] = i
    break
  end
end
for i = 1, #KEYS do
  if out[1] == 0 and arg(i, 3) > 0 then
    local v = redis.call('INCRBY', KEYS[i], string.format('%d', arg(i, 3)))
    if redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('PEXPIRE', KEYS[i], string.format('%d', arg(i, 2)))
    end
  end
  local ttl = redis.call('PTTL', KEYS[i])
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
  out[#out + 1] = ttl > 0 and ttl or 0
end
return out
