-- prelude: op
-- payment_deduct cancel: an order not yet paid for is dropped (nothing was held;
-- the user's allowance comes back). Once its payment is captured it cannot be
-- cancelled (409 already_paid): the payment settles or is refunded.
local A_ORDER_ID = ARGV[6]

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end

if o.status == 'ordered' then
  redis.call('HINCRBY', K_USERS, o.user_id, -o.qty)
  redis.call('HSET', o.key, 'status', 'cancelled')
  o.status = 'cancelled'
elseif o.status ~= 'cancelled' then
  return refuse(409, 'already_paid', 'order_id: order ' .. o.order_id .. ' is ' .. o.status
                .. ' (its payment was taken)')
end
return ok(200, o)
