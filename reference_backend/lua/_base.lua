-- Base prelude: helpers every script may take, whatever its KEYS and ARGV
-- (reference_backend/lua.py pastes it first). Nothing here names a key or an
-- argument, and nothing here writes: a script passes in every key it reads.

-- Redis 6.2 must switch to effects replication before a write that follows the
-- non-deterministic TIME; Redis 7 always replicates effects (the call is a no-op).
if redis.replicate_commands then redis.replicate_commands() end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The order stored under okey as the contract shows it, or nil when there is no
-- such order. key is kept on it so the steps that change the order write that
-- same hash, never another key of the script.
local function load_order(okey, id, sale_id)
  local f = redis.call('HMGET', okey, 'user_id', 'qty', 'status', 'created_ms', 'expires_ms', 'paid_ms')
  if not f[1] then return nil end
  return {order_id = id, sale_id = sale_id, user_id = f[1], qty = tonumber(f[2]), status = f[3],
          created_ms = tonumber(f[4]), expires_ms = f[5] and tonumber(f[5]) or cjson.null,
          paid_ms = f[6] and tonumber(f[6]) or cjson.null, key = okey}
end

-- The order as an answer carries it: the contract's fields only.
local function shown(o)
  return {order_id = o.order_id, sale_id = o.sale_id, user_id = o.user_id, qty = o.qty, status = o.status,
          created_ms = o.created_ms, expires_ms = o.expires_ms, paid_ms = o.paid_ms}
end
