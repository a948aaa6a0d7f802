-- payment_deduct order (付款减库存): nothing is held. The order records the
-- intent (status 'ordered') after the scalper verdict, the user's limit and a
-- stock check; the user's limit counts the units at once, so that parallel
-- orders of one user cannot pass it, and gives them back on cancel or refund.
local prev = replayed()
if prev then return prev end
local meta, early = sale_meta()
if not meta then return early end

local user, qty = ARGV[6], tonumber(ARGV[7])
local refused = order_refusal(meta, user, qty)
if refused then return refused end

local now = now_ms()
local id = fresh_order_id()  -- seq plus the node's nonce: unique across failovers
redis.call('HINCRBY', KEYS[8], user, qty)
redis.call('HSET', ARGV[5] .. id, 'user_id', user, 'qty', qty, 'status', 'ordered', 'created_ms', now)
return ok(201, {order_id = id, sale_id = ARGV[2], user_id = user, qty = qty, status = 'ordered',
                created_ms = now, expires_ms = cjson.null, paid_ms = cjson.null})
