-- One sliding-window check, run atomically inside Redis.
--
-- KEYS[1]  the sorted set of counted events (member: event id, score: time in us)
-- ARGV[1]  the limit
-- ARGV[2]  the window, in microseconds
-- ARGV[3]  a random suffix for the new event's member; empty to only look
--
-- Returns { counted after the check, microseconds until a slot frees,
--           the new member or nil when nothing was added }.

local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local suffix = ARGV[3]

-- Redis's own clock, not the caller's: every API replica then measures the
-- window against one clock, so drift between replicas cannot widen it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- An event counts while now - score < window; anything older is dropped here,
-- which is also what keeps the set no larger than the limit.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local counted = redis.call('ZCARD', key)

-- A refused event adds nothing: a client hammering a full window must not
-- push its own reset further away.
local member = false
if suffix ~= '' and counted < limit then
  -- Unique per event: two events in the same microsecond (from any replica)
  -- would otherwise share one member and be counted once.
  member = time[1] .. '.' .. time[2] .. '-' .. suffix
  redis.call('ZADD', key, now, member)
  -- The newest event leaves the window last; the key goes with it.
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  counted = counted + 1
end

-- A slot frees when the oldest event leaves; when more than the limit are
-- counted (the limit was lowered), only once the surplus has left as well.
local reset = 0
if counted > 0 then
  local index = math.max(0, counted - limit)
  local entry = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
  reset = tonumber(entry[2]) + window - now
end

return { counted, reset, member }
