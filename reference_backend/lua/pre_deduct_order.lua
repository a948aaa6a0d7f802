-- prelude: op
-- pre_deduct order: check the scalper verdict, the user's limit and stock, then
-- hold qty units until now + hold_ttl_ms (Redis's clock), all in one atomic step.
local A_USER, A_QTY = ARGV[6], ARGV[7]
local A_VERDICT, A_JUDGED = ARGV[8], ARGV[9]  -- the node's scalper verdict, and the policy it judged by
local A_GIVEN_ID, A_NONCE = ARGV[10], ARGV[11]  -- a queued order's id ('' for a new order); the id's random part

local prev = replayed()
if prev then return prev end
local meta, early = sale_meta()
if not meta then return early end
local queued = async_accept(A_USER, A_QTY, A_GIVEN_ID, A_NONCE)  -- async_orders: queue it now, apply it later
if queued then return queued end

local user, qty = A_USER, tonumber(A_QTY)
local refused = order_refusal(meta, user, qty, A_VERDICT, A_JUDGED)
if refused then return refused end

local now = now_ms()
local expires = now + meta.ttl
local id = new_order_id(A_GIVEN_ID, A_NONCE)
take(meta, qty, 'order')
redis.call('INCRBY', K_HELD, qty)
redis.call('HINCRBY', K_USERS, user, qty)
redis.call('HSET', A_ORDER_PREFIX .. id, 'user_id', user, 'qty', qty, 'status', 'held',
           'created_ms', now, 'expires_ms', expires)
redis.call('ZADD', K_HOLDS, expires, id)
return ok(201, {order_id = id, sale_id = A_SALE, user_id = user, qty = qty, status = 'held',
                created_ms = now, expires_ms = expires, paid_ms = cjson.null})
