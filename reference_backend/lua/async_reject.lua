-- prelude: base
-- Asynchronous orders: record that a queued order's processor turned it down.
-- Only a still pending order becomes rejected: a cancel may have withdrawn it meanwhile.
local K_ORDER = KEYS[1]
local A_CODE, A_MESSAGE = ARGV[1], ARGV[2]  -- the error code and message it answered

local status = redis.call('HGET', K_ORDER, 'status')
if status ~= 'pending' then return status or false end
redis.call('HSET', K_ORDER, 'status', 'rejected', 'error_code', A_CODE, 'error_message', A_MESSAGE)
return 'rejected'
