-- prelude: base
-- Stock sync, warehouse -> front: apply one ledger outbox row to the sale's front counters.
-- Rows come in id order per sale, so front_applied is a watermark: an id at or
-- below it was applied already (a retry after the worker died before marking
-- the row done) and changes nothing. Stock and available move in this one
-- step, so conservation (available + held + sold = stock) holds throughout.
-- Answers 'applied', 'duplicate', 'stale' (the sale was reset since), 'unknown_sale'.
local K_META, K_AVAIL, K_FRONT_APPLIED = KEYS[1], KEYS[2], KEYS[3]
local A_ROW, A_KIND, A_QTY, A_EPOCH = ARGV[1], ARGV[2], ARGV[3], ARGV[4]  -- outbox id, kind, qty, epoch

local epoch = redis.call('HGET', K_META, 'epoch')
if not epoch then return 'unknown_sale' end
if epoch ~= A_EPOCH then return 'stale' end
local id = tonumber(A_ROW)
if id <= tonumber(redis.call('GET', K_FRONT_APPLIED) or '0') then return 'duplicate' end
local kind, qty = A_KIND, tonumber(A_QTY)
if kind == 'restock' or kind == 'receive' then
  redis.call('HINCRBY', K_META, 'stock', qty)
  redis.call('INCRBY', K_AVAIL, qty)
end
if kind == 'in_transit' then redis.call('HINCRBY', K_META, 'in_transit', qty) end
if kind == 'receive' then redis.call('HINCRBY', K_META, 'in_transit', -qty) end
redis.call('SET', K_FRONT_APPLIED, id)
return 'applied'
