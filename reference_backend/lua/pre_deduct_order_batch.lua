-- prelude: batch
-- Many pre_deduct orders of one sale in one atomic step: each is placed as
-- pre_deduct_order.lua would place it alone (hold_order), one after the other,
-- so each keeps its own idempotency key, limit, scalper verdict and answer; two
-- orders of one user see each other as two calls in a row would. Answers
-- {kind 1, payload 1, kind 2, payload 2, ...} in the orders' order, each pair
-- what pre_deduct_order.lua answers for that order.

local orders = cjson.decode(A_ORDERS)
local idem_prefix = string.sub(A_ORDER_PREFIX, 1, -3) .. 'idem:order:'  -- keys.py SaleKeys.idem('order', key)
local short_ok = short_ok_of(A_SHORT)  -- the same for every order: nothing here sends a transfer
local out = {}
for i, o in ipairs(orders) do
  local key, user, qty = o[1], o[2], o[3]
  req = {keyed = key ~= '', fingerprint = qty .. ':' .. user, idem = idem_prefix .. (key ~= '' and key or '-')}
  local answer_of = hold_order(user, qty, o[4], o[5], '', o[6], short_ok)
  out[2 * i - 1] = answer_of[1]
  out[2 * i] = answer_of[2]
end
return out
