-- Oversell detector (超卖检测) for one sale, independent of the harness: sum the
-- sold set, take away refunded sold units, compare with stock. An alert goes
-- to the alerts stream once per new excess: when net shipped first passes
-- stock, and again each time the excess grows past the last alerted one. The
-- check and the record are one atomic step, so every node may run it at once
-- and still raise each alert once.
-- KEYS: 1 meta, 2 sold_set, 3 sold, 4 avail, 5 refunded_sold, 6 monitor, 7 alerts
-- Answers the current excess (0 when within stock), or false without a sale.
local stock = redis.call('HGET', KEYS[1], 'stock')
if not stock then return false end
stock = tonumber(stock)
local units, orders = 0, 0
for _, q in ipairs(redis.call('HVALS', KEYS[2])) do
  units = units + tonumber(q)
  orders = orders + 1
end
local refunded = tonumber(redis.call('GET', KEYS[5]) or '0')
local net = units - refunded
local excess = net - stock
if excess <= 0 then return 0 end
local alerted = tonumber(redis.call('HGET', KEYS[6], 'excess') or '0')
if excess > alerted then
  local t = redis.call('TIME')
  redis.call('XADD', KEYS[7], '*', 'excess', excess, 'net_sold', net, 'sold_units', units, 'sold_orders', orders,
             'refunded_units', refunded, 'stock', stock, 'sold_counter', redis.call('GET', KEYS[3]) or '0',
             'available', redis.call('GET', KEYS[4]) or '0',
             'at_ms', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('HSET', KEYS[6], 'excess', excess)
end
return excess
