-- prelude: op
-- pre_deduct_ledger pay, step 1 of 3: take the order out of everyone else's
-- hands before the node asks the warehouse ledger (step 2) and settles (step 3,
-- pre_deduct_ledger_commit.lua). A live hold becomes 'confirming' (still held
-- units, no longer the reaper's, not cancellable); a hold past its expiry is
-- released as pre_deduct would and then refused (hold_expired) or, with
-- pay_after_expiry = fresh_stock, units available now are taken into a
-- confirming hold. An order already confirming (a retry, a second payer, a node
-- that died mid-payment) is confirmed again: the ledger's write is idempotent
-- per order id, and only one commit can move it on.
-- Answers like pre_deduct pay, or {'c', qty} when the ledger must be asked.
local A_ORDER_ID = ARGV[6]

local meta, o, early = order_step(K_ORDER, A_ORDER_ID)
if early then return early end
local queued = queued_order(o, 'pay')
if queued then return queued end

if o.status == 'paid' then return ok(200, o) end  -- at most one payment: the first one stands
if o.status == 'confirming' then return {'c', tostring(o.qty)} end
if o.status == 'cancelled' then
  local why = redis.call('HGET', o.key, 'refused')  -- cancelled by the ledger's refusal, not by its buyer
  if why then
    return refuse(409, 'sold_out', 'order_id: the warehouse ledger refused order ' .. o.order_id .. ' ('
                  .. o.qty .. ' units): ' .. why)
  end
  return refuse(409, 'order_cancelled', 'order_id: order ' .. o.order_id .. ' was cancelled')
end
if o.status == 'refunded' then
  return refuse(409, 'order_refunded', 'order_id: order ' .. o.order_id .. ' was refunded')
end

local now = now_ms()
local function confirming()
  redis.call('ZREM', K_HOLDS, o.order_id)
  redis.call('ZADD', skey('confirming'), now, o.order_id)
  redis.call('HSET', o.key, 'status', 'confirming')
  return {'c', tostring(o.qty)}
end

if o.status == 'held' and now < o.expires_ms then return confirming() end
if o.status == 'held' then release(o, 'expired') end  -- the reaper has not come by yet

local refused = take_fresh_for_expired(meta, o)
if refused then return refused end
-- fresh units go into a hold first, so a refusing ledger gives them back like any hold
redis.call('INCRBY', K_HELD, o.qty)
return confirming()
