-- prelude: base
-- Audit: one consistent snapshot of a sale for the checker.
-- Answers nil without a sale, else
-- {meta, {avail, held, sold, refunded}, now_ms, {id, user, qty, paid_ms, ...}, {id, user, qty, created, expires, ...},
--  {payments, refunds, compensations, warnings, alerts, refunded_sold, released (id, units, ...)}}
local K_META, K_AVAIL, K_HELD, K_SOLD, K_SOLD_SET, K_HOLDS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local A_ORDER_PREFIX = ARGV[1]

local m = redis.call('HMGET', K_META, 'strategy', 'stock', 'hold_ttl_ms', 'per_user_limit', 'pay_after_expiry')
if not m[1] then return false end
local P = string.sub(A_ORDER_PREFIX, 1, -3)  -- the sale's key prefix, for the side records
local counters = redis.call('MGET', K_AVAIL, K_HELD, K_SOLD, P .. 'refunded')
local sold = {}
local entries = redis.call('HGETALL', K_SOLD_SET)
for i = 1, #entries, 2 do
  local f = redis.call('HMGET', A_ORDER_PREFIX .. entries[i], 'user_id', 'paid_ms')
  sold[#sold + 1] = entries[i]
  sold[#sold + 1] = f[1] or ''
  sold[#sold + 1] = entries[i + 1]
  sold[#sold + 1] = f[2] or '0'
end
local holds = {}
local listed = redis.call('ZRANGE', K_HOLDS, 0, -1)
-- a hold whose pre_deduct_ledger payment is being confirmed with the warehouse ledger is still held
for _, id in ipairs(redis.call('ZRANGE', P .. 'confirming', 0, -1)) do
  listed[#listed + 1] = id
end
for _, id in ipairs(listed) do
  local f = redis.call('HMGET', A_ORDER_PREFIX .. id, 'status', 'user_id', 'qty', 'created_ms', 'expires_ms')
  if f[1] == 'held' or f[1] == 'confirming' then
    holds[#holds + 1] = id
    holds[#holds + 1] = f[2]
    holds[#holds + 1] = f[3]
    holds[#holds + 1] = f[4]
    holds[#holds + 1] = f[5] or ''  -- '' never expires (order_deduct)
  end
end
-- the protections' records: JSON values of the ledgers, and the two streams
local records = {redis.call('HVALS', P .. 'payments'), redis.call('HVALS', P .. 'refunds'),
                 redis.call('HVALS', P .. 'compensations'), redis.call('XRANGE', P .. 'warnings', '-', '+'),
                 redis.call('XRANGE', P .. 'alerts', '-', '+'), redis.call('GET', P .. 'refunded_sold') or '0',
                 redis.call('HGETALL', P .. 'released')}
return {m, counters, now_ms(), sold, holds, records}
