-- pre_deduct order: check the scalper verdict, the user's limit and stock, then
-- hold qty units until now + hold_ttl_ms (Redis's clock), all in one atomic step.
local prev = replayed()
if prev then return prev end
local meta, early = sale_meta()
if not meta then return early end
local queued = async_accept()  -- async_orders: queue it now, apply it when its processor comes
if queued then return queued end

local user, qty = ARGV[6], tonumber(ARGV[7])
local refused = order_refusal(meta, user, qty)
if refused then return refused end

local now = now_ms()
local expires = now + meta.ttl
local id = new_order_id()
take(meta, qty, 'order')
redis.call('INCRBY', KEYS[3], qty)
redis.call('HINCRBY', KEYS[8], user, qty)
redis.call('HSET', ARGV[5] .. id, 'user_id', user, 'qty', qty, 'status', 'held',
           'created_ms', now, 'expires_ms', expires)
redis.call('ZADD', KEYS[6], expires, id)
return ok(201, {order_id = id, sale_id = ARGV[2], user_id = user, qty = qty, status = 'held',
                created_ms = now, expires_ms = expires, paid_ms = cjson.null})
