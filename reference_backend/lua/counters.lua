-- prelude: base
-- The sale's counters, one consistent snapshot (one slot, one atomic step; a
-- Redis Cluster cannot run MULTI with TIME, this works on both).
-- Answers {meta, {avail, held, sold, refunded}, now_ms, sent} where meta is
-- {strategy, stock, hold_ttl_ms, per_user_limit, pay_after_expiry} and sent the
-- flat field/value list of the bucket's transfers not yet confirmed (pre_deduct_buckets;
-- empty for every other sale).
local K_META, K_AVAIL, K_HELD, K_SOLD, K_REFUNDED, K_SENT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

local meta = redis.call('HMGET', K_META, 'strategy', 'stock', 'hold_ttl_ms', 'per_user_limit', 'pay_after_expiry')
return {meta, redis.call('MGET', K_AVAIL, K_HELD, K_SOLD, K_REFUNDED), now_ms(), redis.call('HGETALL', K_SENT)}
