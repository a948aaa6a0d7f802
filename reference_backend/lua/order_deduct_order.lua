-- prelude: op
-- order_deduct order (拍下减库存): check the scalper verdict, the user's limit
-- and stock, then take qty units into an order that never expires, all in one
-- atomic step. Only pay or cancel ends it: a hoarder who never pays keeps the
-- units for good (the strategy's known weakness).
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
take(meta, qty, 'order')
redis.call('INCRBY', K_HELD, qty)
redis.call('HINCRBY', K_USERS, user, qty)
-- no expires_ms; listed in holds with score +inf so the audit sees it and the
-- reaper (which takes scores up to now) never does
redis.call('HSET', A_ORDER_PREFIX .. id, 'user_id', user, 'qty', qty, 'status', 'held', 'created_ms', now)
redis.call('ZADD', K_HOLDS, 'inf', id)
return ok(201, {order_id = id, sale_id = A_SALE, user_id = user, qty = qty, status = 'held',
                created_ms = now, expires_ms = cjson.null, paid_ms = cjson.null})
