-- prelude: op
-- pre_deduct cancel: give a held order's units back. Cancelling an order that
-- is already cancelled or expired changes nothing and shows it; a paid order
-- cannot be cancelled (refunds are another operation).
local A_ORDER_ID = ARGV[6]

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end
local queued = queued_order(o, 'cancel')
if queued then return queued end

-- confirming: pre_deduct_ledger is settling its payment with the warehouse ledger
if o.status == 'paid' or o.status == 'refunded' or o.status == 'confirming' then
  return refuse(409, 'already_paid', 'order_id: order ' .. o.order_id .. ' is ' .. o.status)
end
if o.status == 'held' then
  -- past its expiry the hold is the reaper's: release it as expired, like the reaper would
  release(o, now_ms() < o.expires_ms and 'cancelled' or 'expired')
end
return ok(200, o)
