-- Op prelude, part 2 of 2: helpers over one sale's keys, for the scripts of
-- the op layout. They use the names part 1 (_op.lua) gives: K_META .. K_USERS,
-- A_STRATEGY, A_SALE, A_ORDER_PREFIX, and req, the request being answered.
-- An order's own hash is o.key (load_order), never a key taken from KEYS here.

-- An answer; kept under the request's idempotency key (in this same atomic step) unless keep is false.
local function answer(res, keep)
  local enc = req.fingerprint .. '\n' .. cjson.encode(res)
  if keep and req.keyed then redis.call('SET', req.idem, enc) end
  return {'r', enc}
end

local function ok(status, order) return answer({s = status, o = shown(order)}, true) end
local function refuse(status, code, msg) return answer({s = status, e = code, m = msg}, true) end

-- A retry under a used key gets the first answer back, whatever changed since.
local function replayed()
  if not req.keyed then return nil end
  local prev = redis.call('GET', req.idem)
  if prev then return {'r', prev} end
  return nil
end

-- The sale's settings, or an answer to return at once (no sale, other strategy).
local function sale_meta()
  local m = redis.call('HMGET', K_META, 'strategy', 'hold_ttl_ms', 'per_user_limit', 'pay_after_expiry',
                       'stock', 'warn_thresholds', 'scalper_policy', 'refunds', 'price_cents', 'coupon_cents')
  if not m[1] then
    return nil, answer({s = 404, e = 'unknown_sale', m = 'sale_id: no sale ' .. A_SALE}, false)
  end
  if m[1] ~= A_STRATEGY then return nil, {'s', m[1]} end
  return {ttl = tonumber(m[2]), limit = tonumber(m[3]), pay_after_expiry = m[4], stock = tonumber(m[5] or '0'),
          warn = m[6] or '', policy = m[7] or '', refunds = m[8] ~= '0',
          price = tonumber(m[9] or '0'), coupon = tonumber(m[10] or '0')}, nil
end

-- The name of one of the sale's side records (keys.py): they carry the sale's
-- hash tag, so they share the slot of the declared KEYS; deriving them keeps
-- the KEYS list every script shares from growing with each protection.
local function skey(name) return string.sub(A_ORDER_PREFIX, 1, -3) .. name end

-- Scalper policy gate of an order script. verdict is the node's verdict for
-- this user ('' allow, 'reject', or a lowered limit) and judged the policy it
-- judged by; a node with a stale policy is told the real one ({'p', policy})
-- and asks again. A lowered limit replaces the sale's when it is stricter, so
-- it is checked by over_limit in this same atomic step.
local function policy_gate(meta, user, verdict, judged)
  if meta.policy ~= (judged or '') then return {'p', meta.policy} end
  local v = verdict or ''
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
  local after = redis.call('DECRBY', K_AVAIL, qty)
  warn_crossings(meta, after + qty, after, cause)
end

local function order_or_404(okey, id)
  local o = load_order(okey, id, A_SALE)
  if not o then
    return nil, answer({s = 404, e = 'unknown_order',
                        m = 'order_id: no order ' .. id .. ' in sale ' .. A_SALE}, false)
  end
  return o, nil
end

-- How every step on an existing order (stored under okey) starts: the answer
-- already given to this idempotency key, if any; then the sale, then the order
-- (404 if unknown). Returns meta, o; or nil, nil and the answer to give.
local function order_step(okey, id)
  local prev = replayed()
  if prev then return nil, nil, prev end
  local meta, early = sale_meta()
  if not meta then return nil, nil, early end
  local o, missing = order_or_404(okey, id)
  if not o then return nil, nil, missing end
  return meta, o, nil
end

-- Would qty more units take this user past the sale's limit? (0 = no limit)
local function over_limit(meta, user, qty)
  if meta.limit <= 0 then return nil end
  local mine = tonumber(redis.call('HGET', K_USERS, user) or '0')
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
  local avail = tonumber(redis.call('GET', K_AVAIL) or '0')
  if avail < o.qty then
    return refuse(409, 'sold_out', 'order_id: hold of order ' .. o.order_id .. ' expired and only '
                  .. avail .. ' of ' .. o.qty .. ' units are available')
  end
  take(meta, o.qty, 'pay')
  redis.call('HINCRBY', K_USERS, o.user_id, o.qty)
  return nil
end

-- Give a held order's units back to stock, as the reaper or a cancel does.
local function release(o, status)
  redis.call('HINCRBY', skey('released'), o.order_id, o.qty)  -- what each hold gave back: the audit's `released`
  redis.call('INCRBY', K_AVAIL, o.qty)
  redis.call('DECRBY', K_HELD, o.qty)
  redis.call('HINCRBY', K_USERS, o.user_id, -o.qty)
  redis.call('ZREM', K_HOLDS, o.order_id)
  redis.call('HSET', o.key, 'status', status)
  o.status = status
end

-- Stock sync (数据实时同步): on a sale synced with the warehouse ledger (its meta
-- has an 'epoch', set by a node started with --ledger), every sale ('sold') and
-- unsale ('unsold', e.g. a refund of a sold order) is appended to the sale's
-- event stream in the caller's atomic step, so the stream the sync worker
-- carries to the warehouse never misses nor invents one.
local function sync_event(kind, o)
  local epoch = redis.call('HGET', K_META, 'epoch')
  if epoch and epoch ~= '' then
    redis.call('XADD', skey('events'), '*', 'type', kind, 'order', o.order_id, 'qty', o.qty, 'epoch', epoch)
  end
end

local function mark_paid(o, now)
  redis.call('HSET', o.key, 'status', 'paid', 'paid_ms', now)
  redis.call('HSET', K_SOLD_SET, o.order_id, o.qty)
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

-- A new order's id: the sale's seq, then '-' and the nonce the node drew.
-- seq alone is not unique: a Sentinel failover to a replica that missed recent
-- writes rolls seq back, and the ids it had handed out would be handed out
-- again (the ledger, idempotent per order id, then acknowledged a second
-- buyer's payment without a unit). The node's random nonce is no Redis state,
-- so no failover can repeat it; seq stays in front for a rough ordering.
local function fresh_order_id(nonce)
  local id = tostring(redis.call('INCR', K_SEQ))
  if nonce and nonce ~= '' then id = id .. '-' .. nonce end
  return id
end

-- Asynchronous orders (异步处理订单). With the sale's async_orders = 1 an order
-- script does not apply the order at once: async_accept gives it its id, records
-- it as 'pending' and appends it to the sale's order queue, all in this step (an
-- accepted order is queued exactly once; a retry under the same Idempotency-Key
-- gets the same 202). An order processor later runs the same order script with
-- that id as given: the order is applied if it is still pending, else it is
-- answered as it is, unstored, so a queue entry delivered twice applies once.
-- An order script that supports this calls async_accept right after sale_meta
-- and takes its id from new_order_id.
local function async_accept(user, qty, given, nonce)
  if given and given ~= '' then
    local o = load_order(A_ORDER_PREFIX .. given, given, A_SALE)
    if not o then
      return answer({s = 404, e = 'unknown_order', m = 'order_id: no order ' .. given .. ' in sale ' .. A_SALE},
                    false)
    end
    if o.status ~= 'pending' then return answer({s = 200, o = shown(o)}, false) end
    return nil
  end
  if redis.call('HGET', K_META, 'async_orders') ~= '1' then return nil end
  local now = now_ms()
  local id = fresh_order_id(nonce)
  redis.call('HSET', A_ORDER_PREFIX .. id, 'user_id', user, 'qty', qty, 'status', 'pending', 'created_ms', now,
             'queued_ms', now)
  redis.call('XADD', skey('order_queue'), '*', 'order', id, 'user', user, 'qty', qty)
  return ok(202, {order_id = id, sale_id = A_SALE, user_id = user, qty = tonumber(qty),
                  status = 'pending', created_ms = now, expires_ms = cjson.null, paid_ms = cjson.null})
end

local function new_order_id(given, nonce)
  if given and given ~= '' then return given end
  return fresh_order_id(nonce)
end

-- A pay or cancel of an order still queued ('pending') or turned down by its
-- processor ('rejected'): there is no hold to pay. Cancelling a queued order
-- withdraws it (its processor then finds it cancelled and skips it).
local function queued_order(o, op)
  if o.status == 'pending' then
    if op == 'cancel' then
      redis.call('HSET', o.key, 'status', 'cancelled')
      o.status = 'cancelled'
      return ok(200, o)
    end
    return refuse(409, 'order_pending', 'order_id: order ' .. o.order_id .. ' is still queued; '
                  .. 'poll it until it is held')
  end
  if o.status == 'rejected' then
    if op == 'cancel' then return ok(200, o) end
    local why = redis.call('HMGET', o.key, 'error_code', 'error_message')
    return refuse(409, why[1] or 'sold_out', 'order_id: order ' .. o.order_id .. ' was rejected: '
                  .. (why[2] or 'no reason recorded'))
  end
  return nil
end

-- An order's short mode (its script's A_SHORT): 'need' answers too little stock
-- {'n', available} unstored (pre_deduct_buckets brings units over and asks
-- again); '' (or none) refuses it; a number N refuses it only if this bucket has sent
-- exactly N transfers so far: the sale's sold-out proof saw N, and a send since
-- may have taken units the proof counted on, so the order asks again.
local function short_ok_of(mode)
  if mode == 'need' then return true end
  if mode == nil or mode == '' then return false end  -- nil: a caller that never asks (pre_deduct)
  return tostring(tonumber(redis.call('HGET', K_META, 'sends') or '0')) ~= mode
end

-- What every order checks before it takes stock, in this order: the scalper
-- verdict, the user's limit, then stock. A refusal reply, or nil to go ahead.
-- With short_ok, too little stock is not refused but answered {'n', available},
-- unstored: pre_deduct_buckets then brings units over from other buckets and asks again.
local function order_refusal(meta, user, qty, verdict, judged, short_ok)
  local gated = policy_gate(meta, user, verdict, judged)
  if gated then return gated end
  local limited = over_limit(meta, user, qty)
  if limited then return limited end
  local avail = tonumber(redis.call('GET', K_AVAIL) or '0')
  if avail < qty then
    if short_ok then return {'n', tostring(avail)} end
    return refuse(409, 'sold_out', 'qty: ' .. qty .. ' asked, ' .. avail .. ' available')
  end
  return nil
end

-- pre_deduct's order: check the scalper verdict, the user's limit and stock,
-- then hold qty units until now + hold_ttl_ms (Redis's clock), all in this one
-- atomic step. given is a queued order's id ('' for a new order), nonce the
-- random part of a new id; short_ok as in order_refusal. One request per call:
-- a batch (pre_deduct_order_batch.lua) calls it once per order, req pointed at it.
local function hold_order(user, qty_arg, verdict, judged, given, nonce, short_ok)
  local prev = replayed()
  if prev then return prev end
  local meta, early = sale_meta()
  if not meta then return early end
  local queued = async_accept(user, qty_arg, given, nonce)  -- async_orders: queue it now, apply it later
  if queued then return queued end

  local qty = tonumber(qty_arg)
  local refused = order_refusal(meta, user, qty, verdict, judged, short_ok)
  if refused then return refused end

  local now = now_ms()
  local expires = now + meta.ttl
  local id = new_order_id(given, nonce)
  take(meta, qty, 'order')
  redis.call('INCRBY', K_HELD, qty)
  redis.call('HINCRBY', K_USERS, user, qty)
  redis.call('HSET', A_ORDER_PREFIX .. id, 'user_id', user, 'qty', qty, 'status', 'held',
             'created_ms', now, 'expires_ms', expires)
  redis.call('ZADD', K_HOLDS, expires, id)
  return ok(201, {order_id = id, sale_id = A_SALE, user_id = user, qty = qty, status = 'held',
                  created_ms = now, expires_ms = expires, paid_ms = cjson.null})
end
