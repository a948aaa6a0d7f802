-- prelude: op
-- pre_deduct order: check the scalper verdict, the user's limit and stock, then
-- hold qty units until now + hold_ttl_ms (Redis's clock), all in one atomic step
-- (hold_order in _sale.lua; pre_deduct_order_batch.lua runs it for many orders).
local A_USER, A_QTY = ARGV[6], ARGV[7]
local A_VERDICT, A_JUDGED = ARGV[8], ARGV[9]  -- the node's scalper verdict, and the policy it judged by
local A_GIVEN_ID, A_NONCE = ARGV[10], ARGV[11]  -- a queued order's id ('' for a new order); the id's random part
local A_SHORT = ARGV[12]  -- short mode (pre_deduct_buckets): 'need', '' or a send count; see short_ok_of

return hold_order(A_USER, A_QTY, A_VERDICT, A_JUDGED, A_GIVEN_ID, A_NONCE, short_ok_of(A_SHORT))
