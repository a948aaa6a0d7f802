-- Reaper: give expired holds of one sale back to stock, a batch at a time.
-- Atomic, so several nodes may run it at once: a hold is released at most once.
-- KEYS: 1 holds, 2 avail, 3 held, 4 users   ARGV: 1 order key prefix, 2 batch size
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local okey = ARGV[1] .. id
  local f = redis.call('HMGET', okey, 'status', 'qty', 'user_id')
  if f[1] == 'held' then
    local qty = tonumber(f[2])
    redis.call('HINCRBY', string.sub(ARGV[1], 1, -3) .. 'released', id, qty)  -- the audit's `released`
    redis.call('INCRBY', KEYS[2], qty)
    redis.call('DECRBY', KEYS[3], qty)
    redis.call('HINCRBY', KEYS[4], f[3], -qty)
    redis.call('HSET', okey, 'status', 'expired')
  end
  redis.call('ZREM', KEYS[1], id)
end
return #ids
