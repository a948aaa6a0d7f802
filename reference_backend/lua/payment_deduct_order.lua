-- prelude: op
-- payment_deduct order (付款减库存): nothing is held. The order records the
-- intent (status 'ordered') after the scalper verdict, the user's limit and a
-- stock check; the user's limit counts the units at once, so that parallel
-- orders of one user cannot pass it, and gives them back on cancel or refund.
local A_USER, A_QTY = ARGV[6], ARGV[7]
local A_VERDICT, A_JUDGED = ARGV[8], ARGV[9]  -- the node's scalper verdict, and the policy it judged by
local A_NONCE = ARGV[11]  -- the node's random part of a new order's id (ARGV 10 is unused here)

local prev = replayed()
if prev then return prev end
local meta, early = sale_meta()
if not meta then return early end

local user, qty = A_USER, tonumber(A_QTY)
local refused = order_refusal(meta, user, qty, A_VERDICT, A_JUDGED)
if refused then return refused end

local now = now_ms()
local id = fresh_order_id(A_NONCE)  -- seq plus the node's nonce: unique across failovers
redis.call('HINCRBY', K_USERS, user, qty)
redis.call('HSET', A_ORDER_PREFIX .. id, 'user_id', user, 'qty', qty, 'status', 'ordered', 'created_ms', now)
return ok(201, {order_id = id, sale_id = A_SALE, user_id = user, qty = qty, status = 'ordered',
                created_ms = now, expires_ms = cjson.null, paid_ms = cjson.null})
