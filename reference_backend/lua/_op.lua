-- Op prelude, part 1 of 2: the KEYS and ARGV every order/pay/cancel script (and
-- refund.lua) takes, named once, in the order keys.py op_keys and
-- LuaStrategy._run build them. Only a script whose first line is
-- `-- prelude: op` gets it (reference_backend/lua.py); part 2 is _sale.lua.
local K_META, K_AVAIL, K_HELD, K_SOLD, K_SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_HOLDS, K_SOLD_SET, K_USERS = KEYS[6], KEYS[7], KEYS[8]
local K_IDEM = KEYS[9]  -- the request's idempotency key (a key of the sale's slot even without one)
local K_ORDER = KEYS[10]  -- the order (pay, cancel, refund); an order placement gets the order key prefix
local A_STRATEGY, A_SALE = ARGV[1], ARGV[2]  -- the strategy the node expects; the sale id
local A_KEYED, A_FINGERPRINT = ARGV[3], ARGV[4]  -- '1' if an idempotency key was given; the request's fingerprint
local A_ORDER_PREFIX = ARGV[5]  -- order key prefix ('os:{S}:o:')
-- ARGV 6 and on are each script's own (named in its header).
--
-- Answers are {'r', fingerprint .. '\n' .. json}, or {'s', actual_strategy} when
-- the sale now has another strategy than the caller thought.

-- A caller with another key layout would have the helpers write to the wrong keys.
if #KEYS ~= 10 then return redis.error_reply('op prelude: expects the 10 KEYS of keys.py op_keys, got ' .. #KEYS) end

-- The request this run answers: where answer() keeps its answer, what replayed() looks up.
local req = {keyed = A_KEYED == '1', fingerprint = A_FINGERPRINT, idem = K_IDEM}
