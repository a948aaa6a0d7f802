-- order_deduct order (拍下减库存): check the scalper verdict, the user's limit
-- and stock, then take qty units into an order that never expires, all in one
-- atomic step. Only pay or cancel ends it: a hoarder who never pays keeps the
-- units for good (the strategy's known weakness).
local prev = replayed()
if prev then return prev end
local meta, early = sale_meta()
if not meta then return early end

local user, qty = ARGV[6], tonumber(ARGV[7])
local refused = order_refusal(meta, user, qty)
if refused then return refused end

local now = now_ms()
local id = fresh_order_id()  -- seq plus the node's nonce: unique across failovers
take(meta, qty, 'order')
redis.call('INCRBY', KEYS[3], qty)
redis.call('HINCRBY', KEYS[8], user, qty)
-- no expires_ms; listed in holds with score +inf so the audit sees it and the
-- reaper (which takes scores up to now) never does
redis.call('HSET', ARGV[5] .. id, 'user_id', user, 'qty', qty, 'status', 'held', 'created_ms', now)
redis.call('ZADD', KEYS[6], 'inf', id)
return ok(201, {order_id = id, sale_id = ARGV[2], user_id = user, qty = qty, status = 'held',
                created_ms = now, expires_ms = cjson.null, paid_ms = cjson.null})
