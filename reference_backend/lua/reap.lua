-- prelude: base
-- Reaper: give expired holds of one sale back to stock, a batch at a time.
-- Atomic, so several nodes may run it at once: a hold is released at most once.
local K_HOLDS, K_AVAIL, K_HELD, K_USERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local A_ORDER_PREFIX, A_BATCH = ARGV[1], ARGV[2]

-- what each hold gave back (keys.py released): a side record in the sale's slot, named from its prefix
local released = string.sub(A_ORDER_PREFIX, 1, -3) .. 'released'
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K_HOLDS, '-inf', now, 'LIMIT', 0, tonumber(A_BATCH))
for _, id in ipairs(ids) do
  local okey = A_ORDER_PREFIX .. id
  local f = redis.call('HMGET', okey, 'status', 'qty', 'user_id')
  if f[1] == 'held' then
    local qty = tonumber(f[2])
    redis.call('HINCRBY', released, id, qty)  -- in this same step: the audit's `released`
    redis.call('INCRBY', K_AVAIL, qty)
    redis.call('DECRBY', K_HELD, qty)
    redis.call('HINCRBY', K_USERS, f[3], -qty)
    redis.call('HSET', okey, 'status', 'expired')
  end
  redis.call('ZREM', K_HOLDS, id)
end
return #ids
