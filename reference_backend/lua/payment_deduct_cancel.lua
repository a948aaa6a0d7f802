-- payment_deduct cancel: an order not yet paid for is dropped (nothing was held;
-- the user's allowance comes back). Once its payment is captured it cannot be
-- cancelled (409 already_paid): the payment settles or is refunded.
local meta, o, early = order_step()
if early then return early end

if o.status == 'ordered' then
  redis.call('HINCRBY', KEYS[8], o.user_id, -o.qty)
  redis.call('HSET', KEYS[10], 'status', 'cancelled')
  o.status = 'cancelled'
elseif o.status ~= 'cancelled' then
  return refuse(409, 'already_paid', 'order_id: order ' .. o.order_id .. ' is ' .. o.status
                .. ' (its payment was taken)')
end
return ok(200, o)
