-- Shared prelude, pasted in front of every script by reference_backend/lua.py.
--
-- Order/pay/cancel scripts take the same KEYS and ARGV (see keys.py op_keys):
--   KEYS: 1 meta, 2 avail, 3 held, 4 sold, 5 seq, 6 holds, 7 sold_set, 8 users,
--         9 idempotency key, 10 order key (order placement: the order key prefix)
--   ARGV: 1 strategy expected, 2 sale id, 3 '1' if an idempotency key was given,
--         4 request fingerprint, 5 order key prefix, 6 user id or order id, 7 qty
--         (an order also: 10 the order id assigned up front, when an asynchronous
--         order's processor applies it, else ''; see async_accept; 11 a random
--         nonce the node drew for this order, see fresh_order_id)
-- and answer {'r', fingerprint .. '\n' .. json} or {'s', actual_strategy} when
-- the sale now has another strategy than the caller thought.

-- Redis 6.2 must switch to effects replication before a write that follows the
-- non-deterministic TIME; Redis 7 always replicates effects (the call is a no-op).
if redis.replicate_commands then redis.replicate_commands() end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The order as the contract shows it, or nil when there is no such order.
local function load_order(okey, id, sale_id)
  local f = redis.call('HMGET', okey, 'user_id', 'qty', 'status', 'created_ms', 'expires_ms', 'paid_ms')
  if not f[1] then return nil end
  return {order_id = id, sale_id = sale_id, user_id = f[1], qty = tonumber(f[2]), status = f[3],
          created_ms = tonumber(f[4]), expires_ms = f[5] and tonumber(f[5]) or cjson.null,
          paid_ms = f[6] and tonumber(f[6]) or cjson.null}
end

-- An answer; kept under the idempotency key (in this same atomic step) unless keep is false.
local function answer(res, keep)
  local enc = ARGV[4] .. '\n' .. cjson.encode(res)
  if keep and ARGV[3] == '1' then redis.call('SET', KEYS[9], enc) end
  return {'r', enc}
end

local function ok(status, order) return answer({s = status, o = order}, true) end
local function refuse(status, code, msg) return answer({s = status, e = code, m = msg}, true) end

-- A retry under a used key gets the first answer back, whatever changed since.
local function replayed()
  if ARGV[3] ~= '1' then return nil end
  local prev = redis.call('GET', KEYS[9])
  if prev then return {'r', prev} end
  return nil
end

-- The sale's settings, or an answer to return at once (no sale, other strategy).
local function sale_meta()
  local m = redis.call('HMGET', KEYS[1], 'strategy', 'hold_ttl_ms', 'per_user_limit', 'pay_after_expiry',
                       'stock', 'warn_thresholds', 'scalper_policy', 'refunds', 'price_cents', 'coupon_cents')
  if not m[1] then
    return nil, answer({s = 404, e = 'unknown_sale', m = 'sale_id: no sale ' .. ARGV[2]}, false)
  end
  if m[1] ~= ARGV[1] then return nil, {'s', m[1]} end
  return {ttl = tonumber(m[2]), limit = tonumber(m[3]), pay_after_expiry = m[4], stock = tonumber(m[5] or '0'),
          warn = m[6] or '', policy = m[7] or '', refunds = m[8] ~= '0',
          price = tonumber(m[9] or '0'), coupon = tonumber(m[10] or '0')}, nil
end

-- The name of one of the sale's side records (keys.py): they carry the sale's
-- hash tag, so they share the slot of the declared KEYS; deriving them keeps
-- the KEYS list every script shares from growing with each protection.
local function skey(name) return string.sub(ARGV[5], 1, -3) .. name end

-- Scalper policy gate of an order script. ARGV[8] is the node's verdict for
-- this user ('' allow, 'reject', or a lowered limit) and ARGV[9] the policy it
-- judged by; a node with a stale policy is told the real one ({'p', policy})
-- and asks again. A lowered limit replaces the sale's when it is stricter, so
-- it is checked by over_limit in this same atomic step.
local function policy_gate(meta, user)
  if meta.policy ~= (ARGV[9] or '') then return {'p', meta.policy} end
  local v = ARGV[8] or ''
  if v == 'reject' then
    return refuse(409, 'risk_rejected', 'user_id: ' .. user .. ' matches the scalper profile (no history, '
                  .. 'no activity, new membership)')
  end
  if v ~= '' then
    local n = tonumber(v)
    if meta.limit <= 0 or n < meta.limit then meta.limit = n end
  end
  return nil
end

-- Inventory warnings: one stream entry per threshold that available stock
-- crosses downward in this step (before > t >= after). The caller is the one
-- atomic step that moves avail, so a crossing is seen exactly once; going back
-- above t (cancel, expiry, restock) and down again is a new crossing.
local function warn_crossings(meta, before, after, cause)
  if meta.warn == '' then return end
  for t in string.gmatch(meta.warn, '%d+') do
    local th = tonumber(t)
    if before > th and after <= th then
      redis.call('XADD', skey('warnings'), '*', 'threshold', th, 'available', after, 'before', before,
                 'stock', meta.stock, 'cause', cause, 'at_ms', now_ms())
    end
  end
end

-- Take qty units out of available stock (the caller checked there are enough).
local function take(meta, qty, cause)
  local after = redis.call('DECRBY', KEYS[2], qty)
  warn_crossings(meta, after + qty, after, cause)
end

local function order_or_404()
  local o = load_order(KEYS[10], ARGV[6], ARGV[2])
  if not o then
    return nil, answer({s = 404, e = 'unknown_order',
                        m = 'order_id: no order ' .. ARGV[6] .. ' in sale ' .. ARGV[2]}, false)
  end
  return o, nil
end

-- How every step on an existing order starts: the answer already given to this
-- idempotency key, if any; then the sale, then the order (404 if unknown).
-- Returns meta, o; or nil, nil and the answer to give.
local function order_step()
  local prev = replayed()
  if prev then return nil, nil, prev end
  local meta, early = sale_meta()
  if not meta then return nil, nil, early end
  local o, missing = order_or_404()
  if not o then return nil, nil, missing end
  return meta, o, nil
end

-- Would qty more units take this user past the sale's limit? (0 = no limit)
local function over_limit(meta, user, qty)
  if meta.limit <= 0 then return nil end
  local mine = tonumber(redis.call('HGET', KEYS[8], user) or '0')
  if mine + qty > meta.limit then
    return refuse(409, 'limit_exceeded', 'qty: user ' .. user .. ' has ' .. mine .. ' of a limit of '
                  .. meta.limit .. ', asked ' .. qty)
  end
  return nil
end

-- Paying an order whose hold expired: refused (hold_expired) unless the sale has
-- pay_after_expiry = fresh_stock, the user's limit allows it and units are
-- available now; then they are taken for the order's user. A refusal reply, or
-- nil once the units are out of stock (the caller books them as held or sold).
local function take_fresh_for_expired(meta, o)
  if meta.pay_after_expiry ~= 'fresh_stock' then
    return refuse(409, 'hold_expired', 'order_id: the hold of order ' .. o.order_id .. ' expired at '
                  .. o.expires_ms)
  end
  local limited = over_limit(meta, o.user_id, o.qty)
  if limited then return limited end
  local avail = tonumber(redis.call('GET', KEYS[2]) or '0')
  if avail < o.qty then
    return refuse(409, 'sold_out', 'order_id: hold of order ' .. o.order_id .. ' expired and only '
                  .. avail .. ' of ' .. o.qty .. ' units are available')
  end
  take(meta, o.qty, 'pay')
  redis.call('HINCRBY', KEYS[8], o.user_id, o.qty)
  return nil
end

-- Give a held order's units back to stock, as the reaper or a cancel does.
local function release(o, status)
  redis.call('HINCRBY', skey('released'), o.order_id, o.qty)  -- what each hold gave back: the audit's `released`
  redis.call('INCRBY', KEYS[2], o.qty)
  redis.call('DECRBY', KEYS[3], o.qty)
  redis.call('HINCRBY', KEYS[8], o.user_id, -o.qty)
  redis.call('ZREM', KEYS[6], o.order_id)
  redis.call('HSET', KEYS[10], 'status', status)
  o.status = status
end

-- Stock sync (数据实时同步): on a sale synced with the warehouse ledger (its meta
-- has an 'epoch', set by a node started with --ledger), every sale ('sold') and
-- unsale ('unsold', e.g. a refund of a sold order) is appended to the sale's
-- event stream in the caller's atomic step, so the stream the sync worker
-- carries to the warehouse never misses nor invents one.
local function sync_event(kind, o)
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if epoch and epoch ~= '' then
    redis.call('XADD', skey('events'), '*', 'type', kind, 'order', o.order_id, 'qty', o.qty, 'epoch', epoch)
  end
end

local function mark_paid(o, now)
  redis.call('HSET', KEYS[10], 'status', 'paid', 'paid_ms', now)
  redis.call('HSET', KEYS[7], o.order_id, o.qty)
  o.status = 'paid'
  o.paid_ms = now
  sync_event('sold', o)
end

-- Refund a captured payment (or a sold order) and compensate its buyer with a
-- coupon: two records keyed by order id, written in the caller's atomic step,
-- so a refund is never recorded without its compensation. The sale's
-- 'refunded' counter (units of every refund record, GET sale's `refunded`)
-- goes up in the same step, so it always equals the refunds ledger's units.
-- Answers both.
local function refund_and_compensate(o, price, coupon, reason, now)
  local refund = {order_id = o.order_id, user_id = o.user_id, qty = o.qty, amount_cents = o.qty * price,
                  reason = reason, refunded_ms = now}
  local comp = {order_id = o.order_id, user_id = o.user_id, kind = 'coupon', value_cents = coupon,
                issued_ms = now}
  redis.call('HSET', skey('refunds'), o.order_id, cjson.encode(refund))
  redis.call('HSET', skey('compensations'), o.order_id, cjson.encode(comp))
  redis.call('INCRBY', skey('refunded'), o.qty)
  return refund, comp
end

-- A new order's id: the sale's seq, then '-' and the nonce the node drew (ARGV[11]).
-- seq alone is not unique: a Sentinel failover to a replica that missed recent
-- writes rolls seq back, and the ids it had handed out would be handed out
-- again (the ledger, idempotent per order id, then acknowledged a second
-- buyer's payment without a unit). The node's random nonce is no Redis state,
-- so no failover can repeat it; seq stays in front for a rough ordering.
local function fresh_order_id()
  local id = tostring(redis.call('INCR', KEYS[5]))
  local nonce = ARGV[11]
  if nonce and nonce ~= '' then id = id .. '-' .. nonce end
  return id
end

-- Asynchronous orders (异步处理订单). With the sale's async_orders = 1 an order
-- script does not apply the order at once: async_accept gives it its id, records
-- it as 'pending' and appends it to the sale's order queue, all in this step (an
-- accepted order is queued exactly once; a retry under the same Idempotency-Key
-- gets the same 202). An order processor later runs the same order script with
-- that id in ARGV[10]: the order is applied if it is still pending, else it is
-- answered as it is, unstored, so a queue entry delivered twice applies once.
-- An order script that supports this calls async_accept right after sale_meta
-- and takes its id from new_order_id.
local function async_accept()
  local given = ARGV[10]
  if given and given ~= '' then
    local o = load_order(ARGV[5] .. given, given, ARGV[2])
    if not o then
      return answer({s = 404, e = 'unknown_order', m = 'order_id: no order ' .. given .. ' in sale ' .. ARGV[2]},
                    false)
    end
    if o.status ~= 'pending' then return answer({s = 200, o = o}, false) end
    return nil
  end
  if redis.call('HGET', KEYS[1], 'async_orders') ~= '1' then return nil end
  local now = now_ms()
  local id = fresh_order_id()
  redis.call('HSET', ARGV[5] .. id, 'user_id', ARGV[6], 'qty', ARGV[7], 'status', 'pending', 'created_ms', now,
             'queued_ms', now)
  redis.call('XADD', skey('order_queue'), '*', 'order', id, 'user', ARGV[6], 'qty', ARGV[7])
  return ok(202, {order_id = id, sale_id = ARGV[2], user_id = ARGV[6], qty = tonumber(ARGV[7]),
                  status = 'pending', created_ms = now, expires_ms = cjson.null, paid_ms = cjson.null})
end

local function new_order_id()
  local given = ARGV[10]
  if given and given ~= '' then return given end
  return fresh_order_id()
end

-- A pay or cancel of an order still queued ('pending') or turned down by its
-- processor ('rejected'): there is no hold to pay. Cancelling a queued order
-- withdraws it (its processor then finds it cancelled and skips it).
local function queued_order(o, op)
  if o.status == 'pending' then
    if op == 'cancel' then
      redis.call('HSET', KEYS[10], 'status', 'cancelled')
      o.status = 'cancelled'
      return ok(200, o)
    end
    return refuse(409, 'order_pending', 'order_id: order ' .. o.order_id .. ' is still queued; '
                  .. 'poll it until it is held')
  end
  if o.status == 'rejected' then
    if op == 'cancel' then return ok(200, o) end
    local why = redis.call('HMGET', KEYS[10], 'error_code', 'error_message')
    return refuse(409, why[1] or 'sold_out', 'order_id: order ' .. o.order_id .. ' was rejected: '
                  .. (why[2] or 'no reason recorded'))
  end
  return nil
end

-- What every order checks before it takes stock, in this order: the scalper
-- verdict, the user's limit, then stock. A refusal reply, or nil to go ahead.
local function order_refusal(meta, user, qty)
  local gated = policy_gate(meta, user)
  if gated then return gated end
  local limited = over_limit(meta, user, qty)
  if limited then return limited end
  local avail = tonumber(redis.call('GET', KEYS[2]) or '0')
  if avail < qty then
    return refuse(409, 'sold_out', 'qty: ' .. qty .. ' asked, ' .. avail .. ' available')
  end
  return nil
end
