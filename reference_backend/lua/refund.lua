-- prelude: op
-- Admin refund of a paid order, for any strategy (typically after an oversell:
-- the unit does not exist, so the buyer gets the money back and a coupon).
-- The order stays in the sold set and the sold counter (it was sold: the
-- checker reconciles it), it becomes 'refunded', its units are added to
-- refunded_sold so net shipped = sold - refunded_sold, and no stock comes back:
-- what went out past stock was never there. The user's allowance comes back.
-- KEYS and ARGV as every op script; A_STRATEGY is unused (any strategy).
local A_ORDER_ID = ARGV[6]

local prev = replayed()
if prev then return prev end
local m = redis.call('HMGET', K_META, 'strategy', 'price_cents', 'coupon_cents')
if not m[1] then
  return answer({s = 404, e = 'unknown_sale', m = 'sale_id: no sale ' .. A_SALE}, false)
end
local o, missing = order_or_404(K_ORDER, A_ORDER_ID)
if not o then return missing end

if o.status == 'refunded' then return ok(200, o) end  -- one refund per order
if o.status ~= 'paid' then
  return refuse(409, 'not_refundable', 'order_id: order ' .. o.order_id .. ' is ' .. o.status
                .. '; only a paid order can be refunded')
end
refund_and_compensate(o, tonumber(m[2] or '0'), tonumber(m[3] or '0'), 'admin', now_ms())
redis.call('HSET', o.key, 'status', 'refunded')
redis.call('INCRBY', skey('refunded_sold'), o.qty)
redis.call('HINCRBY', K_USERS, o.user_id, -o.qty)
o.status = 'refunded'
return ok(200, o)
