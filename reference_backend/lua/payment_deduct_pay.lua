-- prelude: op
-- payment_deduct pay, in two steps the node runs one after the other (A_STEP):
--
--   capture: the simulated payment provider takes the money. A captured payment
--            is written to the payments ledger and the order becomes 'captured'.
--            Only a sale already sold out when the payment starts is refused
--            without capturing; stock is NOT taken here.
--   settle:  stock is deducted atomically. If none is left, the captured money is
--            refunded and the buyer compensated (a coupon), the order ends
--            'refunded' and the answer is 409 sold_out with refunded: true.
--            With the sale's refunds off, the order ends 'unfulfilled' instead:
--            money kept, nothing shipped (refunded: false), for tests.
--
-- Between the steps the node awaits (payment_delay_ms: the provider's latency),
-- so concurrent payers can all be captured while one unit is left: the
-- article's "100 pay, 1 ships". A pay that finds the order 'captured' (a
-- double click, a retry, a node that died between the steps) goes on to settle
-- it; settling is atomic, so the payment is settled exactly once.
local A_ORDER_ID, A_STEP = ARGV[6], ARGV[7]  -- A_STEP: 'capture' or 'settle'

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end

-- orders whose payment is over answer the same whichever step finds them
if o.status == 'paid' then return ok(200, o) end
if o.status == 'cancelled' then
  return refuse(409, 'order_cancelled', 'order_id: order ' .. o.order_id .. ' was cancelled')
end
if o.status == 'refunded' then
  return answer({s = 409, e = 'order_refunded', m = 'order_id: order ' .. o.order_id .. ' was refunded',
                 x = {refunded = true}}, true)
end
if o.status == 'unfulfilled' then
  return answer({s = 409, e = 'sold_out', m = 'order_id: payment of order ' .. o.order_id
                 .. ' was captured but no stock was left; not refunded (refunds are off)',
                 x = {refunded = false}}, true)
end

local now = now_ms()
if A_STEP == 'capture' then
  if o.status == 'captured' then return {'c', '0'} end
  local avail = tonumber(redis.call('GET', K_AVAIL) or '0')
  if avail < o.qty then  -- sold out before the payment even started: nothing captured
    return refuse(409, 'sold_out', 'order_id: ' .. avail .. ' available, order ' .. o.order_id .. ' needs '
                  .. o.qty .. '; no payment was taken')
  end
  redis.call('HSET', skey('payments'), o.order_id, cjson.encode({
    order_id = o.order_id, user_id = o.user_id, qty = o.qty, amount_cents = o.qty * meta.price, captured_ms = now}))
  redis.call('HSET', o.key, 'status', 'captured')
  redis.call('ZADD', skey('paying'), now, o.order_id)
  return {'c', redis.call('HGET', K_META, 'payment_delay_ms') or '0'}
end

-- settle
if o.status ~= 'captured' then
  return redis.error_reply('payment_deduct settle: order ' .. o.order_id .. ' is ' .. o.status .. ', not captured')
end
redis.call('ZREM', skey('paying'), o.order_id)
local avail = tonumber(redis.call('GET', K_AVAIL) or '0')
if avail >= o.qty then
  take(meta, o.qty, 'pay')
  redis.call('INCRBY', K_SOLD, o.qty)
  mark_paid(o, now)
  return ok(200, o)
end
redis.call('HINCRBY', K_USERS, o.user_id, -o.qty)  -- nothing bought: the user's allowance is back
if not meta.refunds then
  redis.call('HSET', o.key, 'status', 'unfulfilled')
  return answer({s = 409, e = 'sold_out', m = 'order_id: payment of order ' .. o.order_id .. ' was captured but '
                 .. avail .. ' of ' .. o.qty .. ' units were left; not refunded (refunds are off)',
                 x = {refunded = false}}, true)
end
local refund, comp = refund_and_compensate(o, meta.price, meta.coupon, 'sold_out', now)
redis.call('HSET', o.key, 'status', 'refunded')
return answer({s = 409, e = 'sold_out', m = 'order_id: payment of order ' .. o.order_id .. ' was captured but '
               .. avail .. ' of ' .. o.qty .. ' units were left; refunded and compensated',
               x = {refunded = true, refund = refund, compensation = comp}}, true)
