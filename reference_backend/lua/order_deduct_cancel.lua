-- prelude: op
-- order_deduct cancel: give a held order's units back to stock. Cancelling a
-- cancelled order changes nothing and shows it; a paid order is 409.
local A_ORDER_ID = ARGV[6]

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end

if o.status == 'paid' or o.status == 'refunded' then
  return refuse(409, 'already_paid', 'order_id: order ' .. o.order_id .. ' is ' .. o.status)
end
if o.status == 'held' then release(o, 'cancelled') end
return ok(200, o)
