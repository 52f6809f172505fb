"""The Lua twin of :mod:`tokenbudget._core`, run atomically by Redis (``EVALSHA``).

Each function below mirrors the Python function of the same name in
``_core.py``, operation for operation and in the same order, so that both
compute the same IEEE doubles (Lua numbers are doubles). A differential test
(``tests/tokenbudget/test_backend_differential.py``) pins the two together:
when a rule changes in ``_core.py`` it must change here too.

One call is one operation on one bucket:

``KEYS[1]``
    The bucket's hash.
``ARGV``
    The config (``capacity``, ``rate``, ``burst``, ``min``, ``deficit code``,
    ``max_deficit``, ``step`` or empty) and the starting balance of a new
    bucket as one argument of eight words separated by single spaces (the
    client encodes it once per bucket), then ``op`` (``admit``, ``cancel``,
    ``settle``, ``sync``, ``observe``), ``now`` (empty: use Redis ``TIME``)
    and the request's fields.

Numbers travel as text: Python sends ``repr(float)`` and the script answers
with ``%.17g``; both round-trip a double exactly. ``inf`` stands for infinity.

The answer is one string of words separated by spaces, so that the client
parses one bulk reply instead of an array: for an operation ``FLAGS delay
booking_id now tokens``, ``FLAGS`` being four digits (``ok``, ``recharging``,
``entered``, ``left``); for ``observe`` ``recharging now tokens rate pending
backlog booked since``.

The hash holds the :class:`~tokenbudget._core.BucketState` fields; ``pending``
is one string of words separated by spaces, :data:`PENDING_WIDTH` words a
booking (``id time cost``).

An ``admit`` in the common case (an existing bucket with a continuous refill,
not recharging, nothing pending, admitted now or refused) takes a fast path
at the top of the script: ``admit`` with those conditions substituted, the same
double operations in the same order, writing only the fields that change and
creating none of the general path's functions and tables. Every other call
goes on to the general path with the state as loaded.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ._config import BOUNDED, NONE, WHILE_POSITIVE
from ._core import TIME_TOLERANCE, TOKEN_TOLERANCE


__all__ = ["SCRIPT", "SCRIPT_SHA1"]

#: The longest idle expiry set on a key (ten years, in milliseconds).
MAX_TTL_MS: Final = 10 * 365 * 24 * 3600 * 1000
#: Added to the computed idle expiry (milliseconds).
TTL_MARGIN_MS: Final = 1000
#: Fields of one pending booking (``_core.BucketState.pending``: id, time, cost), stored as
#: that many words per booking; the script reads and writes any width the same way.
PENDING_WIDTH: Final = 4

_TEMPLATE = r"""
-- tokenbudget: the Lua twin of _core.py (see _redis_lua.py). Generated; do not edit.
local TIME_TOLERANCE = @TIME_TOLERANCE@
local TOKEN_TOLERANCE = @TOKEN_TOLERANCE@
local NONE, WHILE_POSITIVE, BOUNDED = @NONE@, @WHILE_POSITIVE@, @BOUNDED@
local MAX_TTL_MS, TTL_MARGIN_MS = @MAX_TTL_MS@, @TTL_MARGIN_MS@
local PENDING_WIDTH = @PENDING_WIDTH@
local FAST_PATH = @FAST_PATH@
local floor, ceil, huge = math.floor, math.ceil, math.huge

local function num(s)
  if s == 'inf' then return huge end
  if s == '-inf' then return -huge end
  local x = tonumber(s)
  if x == nil then error('tokenbudget: not a number: ' .. tostring(s)) end
  return x
end

local function opt(s)
  if s == nil or s == '' then return nil end
  return num(s)
end

local function fmt(x)
  if x == huge then return 'inf' end
  if x == -huge then return '-inf' end
  return string.format('%.17g', x)
end

local function flag(b)
  if b then return '1' end
  return '0'
end

-- idle expiry (milliseconds) of a state whose tail is at time, holding tokens --------------

local function ttl_ms(time, tokens, now, capacity, rate, step)
  -- Idle keys expire once a full refill (after the backlog) would have filled the bucket:
  -- a bucket recreated then, holding its starting balance, is never ahead of the real one.
  local idle = 0.0
  if time > now then idle = time - now end
  if tokens < capacity then
    idle = idle + (capacity - tokens) / rate
    if step ~= nil then idle = idle + step end
  end
  local ttl = ceil(idle * 1000) + TTL_MARGIN_MS
  if ttl ~= ttl or ttl > MAX_TTL_MS then ttl = MAX_TTL_MS end
  return string.format('%d', ttl)
end

-- call --------------------------------------------------------------------------------------

local key = KEYS[1]
-- ARGV[1]: the config and the starting balance, one word each (the step may be empty)
local CAPACITY, RATE, BURST, MIN, CODE, MAX_DEFICIT, STEP, INITIAL = string.match(ARGV[1],
  '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S*) (%S+)$')
if CAPACITY == nil then error('tokenbudget: bad config ' .. tostring(ARGV[1])) end
local op = ARGV[2]
local now = opt(ARGV[3])
local injected = now ~= nil
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local v = redis.call('HMGET', key, 'tokens', 'time', 'recharging', 'rate', 'anchor', 'next_id',
                     'booked', 'since', 'pending')

-- The fast path: an admit on an existing bucket with a continuous refill, not recharging,
-- nothing pending and its tail not in the future, that is admitted now or refused. It is
-- admit() below (advance, required_balance, reached, time_to_reach) with those conditions
-- substituted, the same double operations in the same order; it writes only the fields
-- that change. Any other case (a wait to book, or a wait within the tolerance) goes on to
-- the general path with the state as loaded. The differential test pins both to _core.
if FAST_PATH and op == 'admit' and v[1] and v[3] == '0' and (not v[9] or v[9] == '')
    and STEP == '' then
  local t0 = num(v[2])
  if t0 <= now then
    local capacity, rate = num(CAPACITY), num(v[4])
    local cost, max_wait = num(ARGV[4]), num(ARGV[5])
    local balance = num(v[1])
    local moved = now > t0
    if moved then  -- advance: not recharging, so recharge mode cannot end
      local b = balance + rate * (now - t0)
      if b < capacity then balance = b else balance = capacity end
    end
    -- required_balance; recharge mode is off, so no burst threshold to wait for
    local code, low = tonumber(CODE), num(MIN)
    local target
    if code == NONE then
      target = cost + low
    elseif code == WHILE_POSITIVE then
      target = math.max(low, cost - num(MAX_DEFICIT))
    else
      target = cost - num(MAX_DEFICIT)
    end
    if target - balance
        <= rate * TIME_TOLERANCE + TOKEN_TOLERANCE * math.max(1.0, math.abs(target)) then
      -- admitted now (at = t0 = now)
      if balance < target then balance = target end
      balance = balance - cost
      local entered = balance < low
      local booking_id = num(v[6])
      local tokens, time = fmt(balance), fmt(now)
      redis.call('HSET', key, 'tokens', tokens, 'time', time, 'recharging', flag(entered),
                 'next_id', fmt(booking_id + 1), 'booked', fmt(num(v[7]) + cost))
      redis.call('PEXPIRE', key, ttl_ms(now, balance, now, capacity, rate, nil))
      local flags = '1000 0 '
      if entered then flags = '1110 0 ' end
      return flags .. string.format('%d', booking_id) .. ' ' .. time .. ' ' .. tokens
    end
    local delay = now + (target - balance) / rate - now  -- time_to_reach, continuous
    if delay > TIME_TOLERANCE and delay > max_wait + TIME_TOLERANCE then
      -- refused: only the refill up to now is stored. The key's expiry stays: the time the
      -- bucket will be full again (the tail plus (capacity - tokens) / rate) has not moved,
      -- since nothing was taken and the refill did not reach the capacity. Only an injected
      -- clock, which is not the server's, sets it again (from the server's time), as save does.
      local tokens, time = fmt(balance), fmt(now)
      if moved then redis.call('HSET', key, 'tokens', tokens, 'time', time) end
      if injected or not (balance < capacity) then
        redis.call('PEXPIRE', key, ttl_ms(now, balance, now, capacity, rate, nil))
      end
      return '0000 ' .. fmt(delay) .. ' 0 ' .. time .. ' ' .. tokens
    end
  end
end

-- config ------------------------------------------------------------------------------------

local cfg = {
  capacity = num(CAPACITY),
  rate = num(RATE),
  burst = num(BURST),
  min = num(MIN),
  code = tonumber(CODE),
  max_deficit = num(MAX_DEFICIT),
  step = opt(STEP),
}
local initial = num(INITIAL)

local function required_balance(cost)
  if cfg.code == NONE then return cost + cfg.min end
  if cfg.code == WHILE_POSITIVE then return math.max(cfg.min, cost - cfg.max_deficit) end
  return cost - cfg.max_deficit
end

-- state -------------------------------------------------------------------------------------

local function load()
  if not v[1] then
    return {tokens = initial, time = now, recharging = initial < cfg.min, rate = cfg.rate,
            anchor = now, next_id = 1, booked = 0.0, since = now, pending = {}}, true
  end
  -- pending: bookings separated by spaces, PENDING_WIDTH fields each (see _core.BucketState)
  local pending = {}
  if v[9] and v[9] ~= '' then
    local entry = {}
    for word in string.gmatch(v[9], '%S+') do
      entry[#entry + 1] = num(word)
      if #entry == PENDING_WIDTH then
        pending[#pending + 1] = entry
        entry = {}
      end
    end
  end
  return {tokens = num(v[1]), time = num(v[2]), recharging = v[3] == '1', rate = num(v[4]),
          anchor = num(v[5]), next_id = num(v[6]), booked = num(v[7]), since = num(v[8]),
          pending = pending}, false
end

local function save(state)
  local parts = {}
  for _, e in ipairs(state.pending) do
    local words = {}
    for i = 1, PENDING_WIDTH do words[i] = fmt(e[i]) end
    parts[#parts + 1] = table.concat(words, ' ')
  end
  redis.call('HSET', key,
    'tokens', fmt(state.tokens), 'time', fmt(state.time), 'recharging', flag(state.recharging),
    'rate', fmt(state.rate), 'anchor', fmt(state.anchor), 'next_id', fmt(state.next_id),
    'booked', fmt(state.booked), 'since', fmt(state.since), 'pending', table.concat(parts, ' '))
  redis.call('PEXPIRE', key,
    ttl_ms(state.time, state.tokens, now, cfg.capacity, state.rate, cfg.step))
end

-- refill (mirrors _core.refill_between, _time_to_reach, _advance, net_tokens, _reached) -------

local function refill_between(state, t0, t1)
  local step = cfg.step
  if step == nil then
    return state.rate * (t1 - t0)
  end
  local a = state.anchor
  local steps = floor((t1 - a + TIME_TOLERANCE) / step) - floor((t0 - a + TIME_TOLERANCE) / step)
  return steps * state.rate * step
end

local function time_to_reach(state, balance, t0, target)
  local step = cfg.step
  if step == nil then
    return t0 + (target - balance) / state.rate, target
  end
  local per_step = state.rate * step
  local needed = math.max(1, ceil((target - balance) / per_step - TOKEN_TOLERANCE))
  local a = state.anchor
  local first = a + (floor((t0 - a + TIME_TOLERANCE) / step) + 1) * step
  local reached = math.min(cfg.capacity, balance + needed * per_step)
  return first + (needed - 1) * step, math.max(reached, target)
end

local function advance(state)
  local left = false
  if now > state.time then
    local b = state.tokens + refill_between(state, state.time, now)
    local cap = cfg.capacity
    if b < cap then state.tokens = b else state.tokens = cap end
    state.time = now
    if state.recharging and state.tokens >= cfg.burst then
      state.recharging = false
      left = true
    end
  end
  local pending = state.pending
  if #pending > 0 and pending[1][2] <= now + TIME_TOLERANCE then
    local limit = now + TIME_TOLERANCE
    local kept = {}
    for _, e in ipairs(pending) do
      if e[2] > limit or #kept > 0 then kept[#kept + 1] = e end
    end
    state.pending = kept
  end
  return left
end

local function net_tokens(state)
  if state.time > now then
    return state.tokens - refill_between(state, now, state.time)
  end
  return state.tokens
end

local function reached(balance, target, rate)
  return target - balance
    <= rate * TIME_TOLERANCE + TOKEN_TOLERANCE * math.max(1.0, math.abs(target))
end

local function outcome(ok, delay, booking_id, tokens, recharging, entered, left)
  return flag(ok) .. flag(recharging) .. flag(entered) .. flag(left) .. ' ' .. fmt(delay) .. ' '
    .. string.format('%d', booking_id) .. ' ' .. fmt(now) .. ' ' .. fmt(tokens)
end

local function plain_outcome(state, ok, entered, left)
  return outcome(ok, 0.0, 0, net_tokens(state), state.recharging, entered, left)
end

local function set_tail(state, tokens)
  state.tokens = math.min(cfg.capacity, tokens)
  local was = state.recharging
  if state.tokens < cfg.min then
    state.recharging = true
  elseif state.tokens >= cfg.burst then
    state.recharging = false
  end
  return state.recharging and not was, was and not state.recharging
end

-- operations (mirror _core.admit, _drop_tail, cancel, settle, sync, observe) ---------------

local function admit(state, cost, max_wait)
  local left = advance(state)
  local t0 = state.time
  local balance = state.tokens
  local target = required_balance(cost)
  local rech = state.recharging
  if rech and target < cfg.burst then
    target = cfg.burst
  end
  local at
  if reached(balance, target, state.rate) then
    at = t0
    if balance < target then balance = target end
  else
    at, balance = time_to_reach(state, balance, t0, target)
  end
  local delay = at - now
  if delay <= TIME_TOLERANCE then delay = 0.0 end
  if delay > max_wait + TIME_TOLERANCE then
    return outcome(false, delay, 0, net_tokens(state), rech, false, left)
  end
  balance = balance - cost
  state.tokens = balance
  if at > t0 then state.time = at else state.time = t0 end
  local entered = balance < cfg.min
  left = left or rech
  state.recharging = entered
  state.booked = state.booked + cost
  local booking_id = state.next_id
  state.next_id = booking_id + 1
  if delay > 0.0 then
    local waited = 0
    if rech then waited = 1 end
    state.pending[#state.pending + 1] = {booking_id, state.time, cost, waited}
  end
  local tokens
  if delay == 0.0 and t0 <= now then tokens = balance else tokens = net_tokens(state) end
  return outcome(true, delay, booking_id, tokens, entered, entered, left)
end

local function drop_tail(state, cost)
  local pending = state.pending
  local back = now
  if #pending > 0 then back = pending[#pending][2] end
  if back < now then back = now end
  local before = state.tokens + cost
  local balance = before - refill_between(state, back, state.time)
  local waited = state.time > back + TIME_TOLERANCE
  local was = state.recharging
  -- The balance there is reconstructed: compare it with the thresholds within rounding.
  local rate = state.rate
  local recharging
  if balance < cfg.min and not reached(balance, cfg.min, rate) then
    recharging = true
  elseif reached(balance, cfg.burst, rate) then
    recharging = false
  else
    recharging = waited and reached(before, cfg.burst, rate)
  end
  if balance < cfg.capacity then state.tokens = balance else state.tokens = cfg.capacity end
  state.time = back
  state.recharging = recharging
  return was and not recharging
end

local function cancel(state, booking_id, time, cost)
  local left = advance(state)
  if time < now - TIME_TOLERANCE then
    return plain_outcome(state, false, false, left)
  end
  local pending = state.pending
  local found = false
  for i, e in ipairs(pending) do
    if e[1] == booking_id then
      table.remove(pending, i)
      found = true
      break
    end
  end
  if not found and time > now + TIME_TOLERANCE then
    return plain_outcome(state, false, false, left)
  end
  state.booked = state.booked - cost
  if time >= state.time - TIME_TOLERANCE then
    -- The tail's own booking: the tail goes back to the booking before it (or now).
    local dropped_left = drop_tail(state, cost)  -- always undo the booking
    return plain_outcome(state, true, false, left or dropped_left)
  end
  local _, left2 = set_tail(state, state.tokens + cost)
  return plain_outcome(state, true, false, left or left2)
end

local function settle(state, booking_id, time, cost, actual)
  local left = advance(state)
  local delta = actual - cost
  for _, e in ipairs(state.pending) do
    if e[1] == booking_id then
      e[3] = actual
      break
    end
  end
  state.booked = state.booked + delta
  local entered, left2 = set_tail(state, state.tokens - delta)
  return plain_outcome(state, true, entered, left or left2)
end

local function sync(state, tokens, refill_in, rate)
  local left = advance(state)
  if rate ~= nil then state.rate = rate end
  local balance = tokens
  if refill_in ~= nil then
    if cfg.step == nil then
      balance = balance - state.rate * refill_in
    else
      state.anchor = now + refill_in
    end
  end
  -- Replay the pending bookings from the server's balance (see _core.sync).
  local cap, low, high = cfg.capacity, cfg.min, cfg.burst
  local was = state.recharging
  local t = now
  balance = math.min(cap, balance)
  local recharging
  if balance < low then
    recharging = true
  elseif balance >= high then
    recharging = false
  else
    recharging = was
  end
  local rate_now = state.rate
  for _, e in ipairs(state.pending) do
    balance = math.min(cap, balance + refill_between(state, t, e[2]))
    if recharging and reached(balance, high, rate_now) then recharging = false end
    balance = balance - e[3]
    if balance < low then recharging = true end
    t = e[2]
  end
  local tail = now
  if state.time > now then tail = state.time end
  balance = math.min(cap, balance + refill_between(state, t, tail))
  if recharging and reached(balance, high, rate_now) then recharging = false end
  state.time = tail
  state.tokens = balance
  state.recharging = recharging
  return plain_outcome(state, true, recharging and not was, left or (was and not recharging))
end

local function observe(state)
  local tail = state.time
  local b, recharging, backlog
  if now >= tail then
    b = math.min(cfg.capacity, state.tokens + refill_between(state, tail, now))
    recharging = state.recharging and b < cfg.burst
    backlog = 0.0
  else
    b = state.tokens - refill_between(state, now, tail)
    recharging = state.recharging
    backlog = tail - now
  end
  local limit = now + TIME_TOLERANCE
  local pending = 0
  local first = nil
  local before = b
  for _, e in ipairs(state.pending) do
    if e[2] > limit then
      pending = pending + 1
      if first == nil then first = e end
      before = before + e[3]
    end
  end
  if first ~= nil then
    -- the mode now is the one the first pending booking waits in (mirror of _core.observe)
    recharging = first[4] ~= 0 and not reached(before, cfg.burst, state.rate)
  end
  return flag(recharging) .. ' ' .. fmt(now) .. ' ' .. fmt(b) .. ' ' .. fmt(state.rate) .. ' '
    .. string.format('%d', pending) .. ' ' .. fmt(backlog) .. ' ' .. fmt(state.booked) .. ' '
    .. fmt(state.since)
end

-- dispatch ----------------------------------------------------------------------------------

local state, created = load()
if op == 'observe' then
  local result = observe(state)
  if created then save(state) end
  return result
end
local result
if op == 'admit' then
  result = admit(state, num(ARGV[4]), num(ARGV[5]))
elseif op == 'cancel' then
  result = cancel(state, num(ARGV[4]), num(ARGV[5]), num(ARGV[6]))
elseif op == 'settle' then
  result = settle(state, num(ARGV[4]), num(ARGV[5]), num(ARGV[6]), num(ARGV[7]))
elseif op == 'sync' then
  result = sync(state, num(ARGV[4]), opt(ARGV[5]), opt(ARGV[6]))
else
  error('tokenbudget: unknown operation ' .. tostring(op))
end
save(state)
return result
"""


def render(*, fast_path: bool = True) -> str:
    """The script's text; ``fast_path=False`` (for tests only) always takes the general path."""
    text = _TEMPLATE
    for name, value in {
        "FAST_PATH": "true" if fast_path else "false",
        "TIME_TOLERANCE": repr(TIME_TOLERANCE),
        "TOKEN_TOLERANCE": repr(TOKEN_TOLERANCE),
        "NONE": str(NONE),
        "WHILE_POSITIVE": str(WHILE_POSITIVE),
        "BOUNDED": str(BOUNDED),
        "MAX_TTL_MS": str(MAX_TTL_MS),
        "TTL_MARGIN_MS": str(TTL_MARGIN_MS),
        "PENDING_WIDTH": str(PENDING_WIDTH),
    }.items():
        text = text.replace(f"@{name}@", value)
    return text.lstrip()


#: The script's text, with the tolerances and deficit codes of ``_core`` and ``_config``.
SCRIPT: Final = render()
#: What ``EVALSHA`` calls it.
SCRIPT_SHA1: Final = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
