-- prelude: op
-- pre_deduct_ledger pay, step 3 of 3: settle a confirming order by the warehouse
-- ledger's answer (step 2). A_LEDGER is 'sold' (the ledger recorded the sale) or
-- 'refused' (it would have passed the warehouse's stock), A_LEDGER_COUNTERS the
-- ledger's counters for the message. 'sold' confirms the hold (held -> sold);
-- 'refused' releases it (status cancelled) and answers 409 sold_out. Only a
-- confirming order moves, so of two settlers the first decides and the second is
-- told the outcome: 200 means paid, any 4xx means the order is not paid and never
-- will be (the node then gives back a ledger sale it made for it).
local A_ORDER_ID, A_LEDGER, A_LEDGER_COUNTERS = ARGV[6], ARGV[7], ARGV[8]

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end

if o.status == 'confirming' then
  redis.call('ZREM', skey('confirming'), o.order_id)
  if A_LEDGER == 'sold' then
    redis.call('DECRBY', K_HELD, o.qty)
    redis.call('INCRBY', K_SOLD, o.qty)
    mark_paid(o, now_ms())
    return ok(200, o)
  end
  release(o, 'cancelled')
  redis.call('HSET', o.key, 'refused', A_LEDGER_COUNTERS)
  return refuse(409, 'sold_out', 'order_id: the warehouse ledger refused order ' .. o.order_id .. ' ('
                .. o.qty .. ' units): ' .. A_LEDGER_COUNTERS)
end
if o.status == 'paid' then return ok(200, o) end
local why = redis.call('HGET', o.key, 'refused')
if why then
  return refuse(409, 'sold_out', 'order_id: the warehouse ledger refused order ' .. o.order_id .. ' ('
                .. o.qty .. ' units): ' .. why)
end
return refuse(409, 'order_cancelled', 'order_id: order ' .. o.order_id .. ' is ' .. o.status)
