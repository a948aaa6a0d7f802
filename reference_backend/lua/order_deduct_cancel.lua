-- order_deduct cancel: give a held order's units back to stock. Cancelling a
-- cancelled order changes nothing and shows it; a paid order is 409.
local prev = replayed()
if prev then return prev end
local meta, early = sale_meta()
if not meta then return early end
local o, missing = order_or_404()
if not o then return missing end

if o.status == 'paid' or o.status == 'refunded' then
  return refuse(409, 'already_paid', 'order_id: order ' .. o.order_id .. ' is ' .. o.status)
end
if o.status == 'held' then release(o, 'cancelled') end
return ok(200, o)
