-- prelude: base
-- pre_deduct_buckets: one look at a bucket for an order that found its home
-- bucket short: its available units, how many transfers it ever sent (the
-- meta's 'sends', counted by bucket_send.lua) and how many it has in flight
-- (sent, not yet confirmed), in one atomic step. Two looks at every bucket with
-- nothing available elsewhere, nothing in flight and no send between them prove
-- the sale sold out (strategies/pre_deduct_buckets.py).
-- Answers {available, sends, in flight}, or {-1, 0, 0} when the bucket is not
-- of this layout (reset since).
local K_META, K_AVAIL, K_SENT = KEYS[1], KEYS[2], KEYS[3]
local A_LAYOUT = ARGV[1]

local strategy, sends = unpack(redis.call('HMGET', K_META, 'strategy', 'sends'))
if strategy ~= A_LAYOUT then return {-1, 0, 0} end
return {tonumber(redis.call('GET', K_AVAIL) or '0'), tonumber(sends or '0'), redis.call('HLEN', K_SENT)}
