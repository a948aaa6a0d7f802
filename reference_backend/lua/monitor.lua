-- prelude: base
-- Oversell detector (超卖检测) for one sale, independent of the harness: sum the
-- sold set, take away refunded sold units, compare with stock. An alert goes
-- to the alerts stream once per new excess: when net shipped first passes
-- stock, and again each time the excess grows past the last alerted one. The
-- check and the record are one atomic step, so every node may run it at once
-- and still raise each alert once.
-- Answers the current excess (0 when within stock), or false without a sale.
local K_META, K_SOLD_SET, K_SOLD, K_AVAIL = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_REFUNDED_SOLD, K_MONITOR, K_ALERTS = KEYS[5], KEYS[6], KEYS[7]

local stock = redis.call('HGET', K_META, 'stock')
if not stock then return false end
stock = tonumber(stock)
local units, orders = 0, 0
for _, q in ipairs(redis.call('HVALS', K_SOLD_SET)) do
  units = units + tonumber(q)
  orders = orders + 1
end
local refunded = tonumber(redis.call('GET', K_REFUNDED_SOLD) or '0')
local net = units - refunded
local excess = net - stock
if excess <= 0 then return 0 end
local alerted = tonumber(redis.call('HGET', K_MONITOR, 'excess') or '0')
if excess > alerted then
  redis.call('XADD', K_ALERTS, '*', 'excess', excess, 'net_sold', net, 'sold_units', units, 'sold_orders', orders,
             'refunded_units', refunded, 'stock', stock, 'sold_counter', redis.call('GET', K_SOLD) or '0',
             'available', redis.call('GET', K_AVAIL) or '0', 'at_ms', now_ms())
  redis.call('HSET', K_MONITOR, 'excess', excess)
end
return excess
