-- prelude: op
-- pre_deduct pay: confirm a live hold (held -> sold). A hold past its expiry is
-- released first, exactly as the reaper would, and never confirmed: the order
-- is then refused (hold_expired) or, with pay_after_expiry = fresh_stock, paid
-- only from units that are available now.
local A_ORDER_ID = ARGV[6]

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end
local queued = queued_order(o, 'pay')
if queued then return queued end

if o.status == 'paid' then return ok(200, o) end  -- at most one payment: the first one stands
if o.status == 'cancelled' then
  return refuse(409, 'order_cancelled', 'order_id: order ' .. o.order_id .. ' was cancelled')
end
if o.status == 'refunded' then
  return refuse(409, 'order_refunded', 'order_id: order ' .. o.order_id .. ' was refunded')
end

local now = now_ms()
if o.status == 'held' and now < o.expires_ms then
  redis.call('DECRBY', K_HELD, o.qty)
  redis.call('INCRBY', K_SOLD, o.qty)
  redis.call('ZREM', K_HOLDS, o.order_id)
  mark_paid(o, now)
  return ok(200, o)
end
if o.status == 'held' then release(o, 'expired') end  -- the reaper has not come by yet

local refused = take_fresh_for_expired(meta, o)
if refused then return refused end
redis.call('INCRBY', K_SOLD, o.qty)
mark_paid(o, now)
return ok(200, o)
