-- prelude: base
-- pre_deduct_buckets, a transfer between buckets, step 2 of 2: add the units
-- another bucket sent (bucket_send.lua) to this one's available and stock, once
-- per transfer id (the received set remembers it), so a retry or a rebalancer
-- finishing a stranded transfer never adds them twice.
-- Answers 1 if this call added them, 0 if they were added before, -1 if this
-- bucket is not of the caller's layout (the sale was reset since: the caller
-- keeps its hands off the record, which may be the new sale's own).
local K_META, K_AVAIL, K_RECEIVED = KEYS[1], KEYS[2], KEYS[3]
local A_TRANSFER, A_QTY, A_LAYOUT = ARGV[1], ARGV[2], ARGV[3]

if redis.call('HGET', K_META, 'strategy') ~= A_LAYOUT then return -1 end
if redis.call('SADD', K_RECEIVED, A_TRANSFER) == 0 then return 0 end
redis.call('INCRBY', K_AVAIL, tonumber(A_QTY))
redis.call('HINCRBY', K_META, 'stock', tonumber(A_QTY))
return 1
