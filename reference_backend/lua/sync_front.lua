-- Stock sync, warehouse -> front: apply one ledger outbox row to the sale's front counters.
-- KEYS: 1 meta, 2 avail, 3 front_applied   ARGV: 1 outbox id, 2 kind, 3 qty, 4 epoch
-- Rows come in id order per sale, so front_applied is a watermark: an id at or
-- below it was applied already (a retry after the worker died before marking
-- the row done) and changes nothing. Stock and available move in this one
-- step, so conservation (available + held + sold = stock) holds throughout.
-- Answers 'applied', 'duplicate', 'stale' (the sale was reset since), 'unknown_sale'.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return 'unknown_sale' end
if epoch ~= ARGV[4] then return 'stale' end
local id = tonumber(ARGV[1])
if id <= tonumber(redis.call('GET', KEYS[3]) or '0') then return 'duplicate' end
local kind, qty = ARGV[2], tonumber(ARGV[3])
if kind == 'restock' or kind == 'receive' then
  redis.call('HINCRBY', KEYS[1], 'stock', qty)
  redis.call('INCRBY', KEYS[2], qty)
end
if kind == 'in_transit' then redis.call('HINCRBY', KEYS[1], 'in_transit', qty) end
if kind == 'receive' then redis.call('HINCRBY', KEYS[1], 'in_transit', -qty) end
redis.call('SET', KEYS[3], id)
return 'applied'
