-- prelude: op
-- order_deduct pay: confirm the order's units (held -> sold). Nothing expires,
-- so a held order is always confirmable.
local A_ORDER_ID = ARGV[6]

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end

if o.status == 'paid' then return ok(200, o) end  -- at most one payment: the first one stands
if o.status == 'cancelled' then
  return refuse(409, 'order_cancelled', 'order_id: order ' .. o.order_id .. ' was cancelled')
end
if o.status == 'refunded' then
  return refuse(409, 'order_refunded', 'order_id: order ' .. o.order_id .. ' was refunded')
end
redis.call('DECRBY', K_HELD, o.qty)
redis.call('INCRBY', K_SOLD, o.qty)
redis.call('ZREM', K_HOLDS, o.order_id)
mark_paid(o, now_ms())
return ok(200, o)
