-- prelude: base
-- pre_deduct_buckets, a transfer between buckets, step 1 of 2: take units out
-- of this bucket's available (its available and its stock both go down) and
-- record them as sent under the transfer's id, and count the transfer in the
-- meta's 'sends', all in one step. How many: A_WANT,
-- or half of what this bucket has if that is more (the receiving bucket ran dry:
-- half of a donor's leftovers serves its next orders too, instead of one transfer
-- per order), never more than it has.
-- Step 2 (bucket_receive.lua) adds them to the other bucket; then the node
-- deletes the record. A record left behind (a node died between the steps) is
-- finished by any node's rebalancer: step 2 is idempotent per transfer id.
-- Answers how many units were sent (0: this bucket has none, or is gone).
local K_META, K_AVAIL, K_SENT = KEYS[1], KEYS[2], KEYS[3]
local A_TRANSFER, A_TO, A_WANT, A_LAYOUT = ARGV[1], ARGV[2], ARGV[3], ARGV[4]  -- id, receiving bucket, units, layout

if redis.call('HGET', K_META, 'strategy') ~= A_LAYOUT then return 0 end  -- reset since: nothing to move
local avail = tonumber(redis.call('GET', K_AVAIL) or '0')
local qty = math.min(avail, math.max(tonumber(A_WANT), math.floor(avail / 2)))
if qty <= 0 then return 0 end
redis.call('DECRBY', K_AVAIL, qty)
redis.call('HINCRBY', K_META, 'stock', -qty)
redis.call('HINCRBY', K_META, 'sends', 1)  -- counts every transfer out: a sold-out proof sees one between its looks
redis.call('HSET', K_SENT, A_TRANSFER, A_TO .. ':' .. qty .. ':' .. now_ms())
return qty
