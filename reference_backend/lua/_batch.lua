-- Batch prelude, part 1 of 2: the layout of a script that places many orders of
-- one sale in one call (the node's coalesced order path, reference_backend/
-- coalesce.py). Only a script whose first line is `-- prelude: batch` gets it;
-- part 2 is _sale.lua, the same helpers the op scripts use.
local K_META, K_AVAIL, K_HELD, K_SOLD, K_SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_HOLDS, K_SOLD_SET, K_USERS = KEYS[6], KEYS[7], KEYS[8]
local A_STRATEGY, A_SALE = ARGV[1], ARGV[2]  -- the strategy the node expects; the sale id its answers show
local A_ORDER_PREFIX = ARGV[3]  -- order key prefix ('os:{S}:o:'); idempotency keys are derived from it
local A_SHORT = ARGV[4]  -- short mode (pre_deduct_buckets): 'need', '' or a send count; see _sale.lua short_ok_of
local A_ORDERS = ARGV[5]  -- JSON: [[idempotency key or '', user id, qty, verdict, policy judged by, nonce], ...]

-- A caller with another key layout would have the helpers write to the wrong keys.
if #KEYS ~= 8 then return redis.error_reply('batch prelude: expects the 8 sale KEYS, got ' .. #KEYS) end

-- The request being answered; the batch points it at each of its orders in turn.
local req = nil
