-- Audit: one consistent snapshot of a sale for the checker.
-- KEYS: 1 meta, 2 avail, 3 held, 4 sold, 5 sold_set, 6 holds   ARGV: 1 order key prefix
-- Answers nil without a sale, else
-- {meta, {avail, held, sold, refunded}, now_ms, {id, user, qty, paid_ms, ...}, {id, user, qty, created, expires, ...},
--  {payments, refunds, compensations, warnings, alerts, refunded_sold, released (id, units, ...)}}
local m = redis.call('HMGET', KEYS[1], 'strategy', 'stock', 'hold_ttl_ms', 'per_user_limit', 'pay_after_expiry')
if not m[1] then return false end
local P = string.sub(ARGV[1], 1, -3)  -- the sale's key prefix, for the side records
local counters = redis.call('MGET', KEYS[2], KEYS[3], KEYS[4], P .. 'refunded')
local sold = {}
local entries = redis.call('HGETALL', KEYS[5])
for i = 1, #entries, 2 do
  local f = redis.call('HMGET', ARGV[1] .. entries[i], 'user_id', 'paid_ms')
  sold[#sold + 1] = entries[i]
  sold[#sold + 1] = f[1] or ''
  sold[#sold + 1] = entries[i + 1]
  sold[#sold + 1] = f[2] or '0'
end
local holds = {}
local listed = redis.call('ZRANGE', KEYS[6], 0, -1)
-- a hold whose pre_deduct_ledger payment is being confirmed with the warehouse ledger is still held
for _, id in ipairs(redis.call('ZRANGE', string.sub(ARGV[1], 1, -3) .. 'confirming', 0, -1)) do
  listed[#listed + 1] = id
end
for _, id in ipairs(listed) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'status', 'user_id', 'qty', 'created_ms', 'expires_ms')
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
