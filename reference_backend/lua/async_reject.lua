-- Asynchronous orders: record that a queued order's processor turned it down.
-- KEYS: 1 order key   ARGV: 1 error code, 2 message
-- Only a still pending order becomes rejected: a cancel may have withdrawn it meanwhile.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then return status or false end
redis.call('HSET', KEYS[1], 'status', 'rejected', 'error_code', ARGV[1], 'error_message', ARGV[2])
return 'rejected'
