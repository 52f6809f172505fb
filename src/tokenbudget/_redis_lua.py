"""The Lua twin of :mod:`tokenbudget._core`, run atomically by Redis (``EVALSHA``).

Each function below mirrors the Python function of the same name in
``_core.py``, operation for operation and in the same order, so that both
compute the same IEEE doubles (Lua numbers are doubles). A differential test
(``tests/tokenbudget/test_backend_differential.py``) pins the two together:
when a rule changes in ``_core.py`` it must change here too.

One call is one operation on one bucket (safe to retry: see *Retries* below):

``KEYS[1]``
    The bucket's hash.
``ARGV``
    The config (``capacity``, ``rate``, ``burst``, ``min``, ``deficit code``,
    ``max_deficit``, ``step`` or empty, ``in_flight``) and the starting balance
    of a new bucket as one argument of nine words separated by single spaces (the
    client encodes it once per bucket), then ``op`` (``admit``, ``cancel``,
    ``settle``, ``sync``, ``rate``, ``rebook``, ``observe``), ``now`` (empty: use Redis ``TIME``)
    and the request's fields.

Numbers travel as text: Python sends ``repr(float)`` and the script answers
with ``%.17g``; both round-trip a double exactly. ``inf`` stands for infinity.

The answer is one string of words separated by spaces, so that the client
parses one bulk reply instead of an array: for an operation ``FLAGS delay
booking_id now tokens spent``, ``FLAGS`` being four digits (``ok``, ``recharging``,
``entered``, ``left``); for ``observe`` ``recharging now tokens rate pending
backlog booked since first_in_flight``.

The hash holds the :class:`~tokenbudget._core.BucketState` fields; ``pending``
is one string of words separated by spaces, :data:`PENDING_WIDTH` words a
booking (``id time cost settled before``); ``base`` is ``tokens time recharging``
(the settled base), ``flight`` three words a booking in flight (``id time
cost``), ``synced`` the first booking id a sync did not take into the
server's figure, ``as_of`` the server's timestamp of the last sync adopted
with one and the time it was adopted (``stamp time``; empty: none),
``returned`` the cost returned by cancels and lowering settles.

**Retries.** redis-py sends a command again after a timeout or a dropped
connection, when the first one may have run already. So every operation
but ``observe`` carries, as its last argument, a word ``@LANE:SEQ``: a
*lane* is one of the client's sequences of operations (a random id; a
client runs one operation at a time on a lane) and *SEQ* its operation's
number on it. A small prologue and epilogue (:data:`RETRY_PROLOGUE`,
:data:`RETRY_EPILOGUE`) wrap the script: the epilogue records the
operation's reply in the hash, field ``op:LANE`` = ``SEQ reply``; the
prologue answers a call whose SEQ is the recorded one with the recorded
reply without applying it again, and refuses one whose SEQ is older (a late
duplicate, which nobody waits for) with an error. A lane's record lives as
long as the hash; records of lanes idle for :data:`LANE_IDLE_S` seconds are
removed when a new lane appears. A call without the word (a test calling the
script by hand) is applied as it comes.

An ``admit`` in the common case (an existing bucket with a continuous refill,
not recharging, nothing pending, admitted now or refused) takes a fast path
at the top of the script: ``admit`` with those conditions substituted, the same
double operations in the same order, writing only the fields that change and
creating none of the general path's functions and tables. It reads only the
nine fields it needs, in the prologue's ``HMGET`` with the lane's record (each
field read costs the server time: the reply becomes Lua strings); every other
call goes on to the general path, which reads the eight others with a second
``HMGET``.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ._config import BOUNDED, NONE, WHILE_POSITIVE
from ._core import _EPS, _ID_LIMIT, REANCHOR, TIME_TOLERANCE, TIME_ULPS, TOKEN_TOLERANCE


__all__ = ["RETRY_EPILOGUE", "RETRY_PROLOGUE", "SCRIPT", "SCRIPT_SHA1"]

#: The longest idle expiry set on a key (ten years, in milliseconds).
MAX_TTL_MS: Final = 10 * 365 * 24 * 3600 * 1000
#: Added to the computed idle expiry (milliseconds).
TTL_MARGIN_MS: Final = 1000
#: Fields of one pending booking (``_core.BucketState.pending``: id, time, cost, settled,
#: before), as
#: that many words per booking; the script reads and writes any width the same way.
PENDING_WIDTH: Final = 5

_TEMPLATE = r"""
-- tokenbudget: the Lua twin of _core.py (see _redis_lua.py). Generated; do not edit.
local TIME_TOLERANCE = @TIME_TOLERANCE@
local TIME_ULPS = @TIME_ULPS@
local EPS = @EPS@
local TOKEN_TOLERANCE = @TOKEN_TOLERANCE@
local NONE, WHILE_POSITIVE, BOUNDED = @NONE@, @WHILE_POSITIVE@, @BOUNDED@
local MAX_TTL_MS, TTL_MARGIN_MS = @MAX_TTL_MS@, @TTL_MARGIN_MS@
local PENDING_WIDTH = @PENDING_WIDTH@
local REANCHOR = @REANCHOR@
local ID_LIMIT = @ID_LIMIT@
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

local function time_tolerance(t)  -- mirrors _core.time_tolerance
  local x = t * TIME_ULPS
  if x < 0.0 then x = -x end
  if x > TIME_TOLERANCE then return x end
  return TIME_TOLERANCE
end

local function covers(balance, need)  -- mirrors _core.covers
  return need - balance <= TOKEN_TOLERANCE * math.max(1.0, math.abs(need))
end

local function debited_below(balance, low, cost)  -- mirrors _core.debited_below
  return low - balance > TOKEN_TOLERANCE * math.max(1.0, math.abs(low), cost)
end

-- idle expiry (milliseconds) of a state whose tail is at time, holding tokens --------------

local function ttl_ms(time, tokens, now, capacity, rate, step, window, keep)
  -- Idle keys expire once a full refill (after the backlog) would have filled the bucket
  -- and no booking is in flight any more (the window after the last booking's time): a
  -- bucket recreated then, holding its starting balance, is never ahead of the real one.
  -- A key holding what the config cannot recreate (keep: a rate adopted by a sync, a step
  -- anchor set by a sync) keeps the longest expiry.
  if keep then return string.format('%d', MAX_TTL_MS) end
  local idle = 0.0
  if time > now then idle = time - now end
  if tokens < capacity then
    idle = idle + (capacity - tokens) / rate
    if step ~= nil then idle = idle + step end
  end
  idle = idle + window
  local ttl = ceil(idle * 1000) + TTL_MARGIN_MS
  if ttl ~= ttl or ttl > MAX_TTL_MS then ttl = MAX_TTL_MS end
  return string.format('%d', ttl)
end

-- call --------------------------------------------------------------------------------------

local key = KEYS[1]
-- ARGV[1]: the config and the starting balance, one word each (the step may be empty)
local CAPACITY, RATE, BURST, MIN, CODE, MAX_DEFICIT, STEP, IN_FLIGHT, INITIAL =
  string.match(ARGV[1], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S*) (%S+) (%S+)$')
if CAPACITY == nil then error('tokenbudget: bad config ' .. tostring(ARGV[1])) end
local op = ARGV[2]
local now = opt(ARGV[3])
local injected = now ~= nil
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local clock = now  -- the backend time (absolute), as answers carry it

local function clock_tolerance(state)  -- mirrors _core.clock_tolerance (now: the offset)
  return time_tolerance(math.abs(state.origin) + math.abs(now))
end

-- The fields the fast path reads, read by the prologue (RETRY_PROLOGUE) with the lane's
-- record: tokens, time, recharging, rate, next_id, booked, pending, returned, origin.
local v = V

-- The fast path: an admit on an existing bucket with a continuous refill, not recharging,
-- nothing pending and its tail not in the future, that is admitted now or refused. It is
-- admit() below (advance, required_balance, reached, time_to_reach) with those conditions
-- substituted, the same double operations in the same order; it writes only the fields
-- that change. Any other case (a wait to book, or a wait within the tolerance) goes on to
-- the general path with the state as loaded. The differential test pins both to _core.
if FAST_PATH and op == 'admit' and v[1] and v[3] == '0' and (not v[7] or v[7] == '')
    and STEP == '' and num(IN_FLIGHT) == 0.0 then
  local t0 = num(v[2])
  local returned = 0.0
  if v[8] then returned = num(v[8]) end
  local origin = 0.0
  if v[9] then origin = num(v[9]) end
  local t = now - origin  -- clock_in: the offset (a step back, t0 > t, takes the general path)
  if t0 <= t and t <= REANCHOR then
    local capacity, rate = num(CAPACITY), num(v[4])
    local cost, max_wait = num(ARGV[4]), num(ARGV[5])
    local balance = num(v[1])
    local moved = t > t0
    if moved then  -- advance: not recharging, so recharge mode cannot end
      local b = balance + rate * (t - t0)
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
    if covers(balance, target) then
      -- admitted now (at = t0 = now)
      if balance < target then balance = target end
      balance = balance - cost
      local entered = debited_below(balance, low, cost)
      local booking_id = num(v[5])
      local tokens, time = fmt(balance), fmt(t)
      local booked = num(v[6]) + cost
      redis.call('HSET', key, 'tokens', tokens, 'time', time, 'seen', time,
                 'recharging', flag(entered), 'next_id', fmt(booking_id + 1),
                 'booked', fmt(booked))
      redis.call('PEXPIRE', key, ttl_ms(t, balance, t, capacity, rate, nil, 0.0,
                                        rate ~= num(RATE)))
      local flags = '1000 0 '
      if entered then flags = '1110 0 ' end
      return flags .. string.format('%d', booking_id) .. ' ' .. fmt(clock) .. ' ' .. tokens
        .. ' ' .. fmt(booked + returned)
    end
    local delay = t + (target - balance) / rate - t  -- time_to_reach, continuous
    local tol = time_tolerance(math.abs(origin) + math.abs(t))  -- clock_tolerance
    if delay > tol and delay > max_wait + tol then
      -- refused: only the refill up to now is stored. The key's expiry stays: the time the
      -- bucket will be full again (the tail plus (capacity - tokens) / rate) has not moved,
      -- since nothing was taken and the refill did not reach the capacity. Only an injected
      -- clock, which is not the server's, sets it again (from the server's time), as save does.
      local tokens, time = fmt(balance), fmt(t)
      if moved then redis.call('HSET', key, 'tokens', tokens, 'time', time, 'seen', time) end
      if injected or not (balance < capacity) then
        redis.call('PEXPIRE', key, ttl_ms(t, balance, t, capacity, rate, nil, 0.0,
                                          rate ~= num(RATE)))
      end
      return '0000 ' .. fmt(delay) .. ' 0 ' .. fmt(clock) .. ' ' .. tokens .. ' '
        .. fmt(num(v[6]) + returned)
    end
  end
end

-- The general path reads the other fields and puts all seventeen in their order.
do
  local r = redis.call('HMGET', key, 'anchor', 'since', 'base', 'flight', 'synced', 'as_of',
                       'seen', 'stepped')
  v = {v[1], v[2], v[3], v[4], r[1], v[5], v[6], r[2], v[7], r[3], r[4], r[5], r[6], v[8], v[9],
       r[7], r[8]}
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
  in_flight = num(IN_FLIGHT),
}
local initial = num(INITIAL)

local function required_balance(cost)
  if cfg.code == NONE then return cost + cfg.min end
  if cfg.code == WHILE_POSITIVE then return math.max(cfg.min, cost - cfg.max_deficit) end
  return cost - cfg.max_deficit
end

-- state -------------------------------------------------------------------------------------

local function words(text, width)
  -- entries of width numbers each, separated by spaces
  local list = {}
  if text and text ~= '' then
    local entry = {}
    for word in string.gmatch(text, '%S+') do
      entry[#entry + 1] = num(word)
      if #entry == width then
        list[#list + 1] = entry
        entry = {}
      end
    end
  end
  return list
end

local function first_id(t)  -- mirrors _core.first_id
  local micros = t * 1000000.0
  if 0.0 < micros and micros < ID_LIMIT then return floor(micros) + 1 end
  return 1
end

local function load()
  if not v[1] then
    local first = first_id(now)
    return {tokens = initial, time = 0.0, recharging = initial < cfg.min, rate = cfg.rate,
            anchor = 0.0, next_id = first, booked = 0.0, since = 0.0, pending = {},
            base_tokens = 0.0, base_time = 0.0, base_recharging = false, flight = {},
            synced_id = first, as_of = nil, as_of_time = 0.0, returned = 0.0,
            origin = now, seen = 0.0, stepped_id = 0}, true
  end
  local origin, seen = 0.0, 0.0
  if v[15] then origin = num(v[15]) end
  if v[16] then seen = num(v[16]) end
  local stepped = 0
  if v[17] then stepped = num(v[17]) end
  local returned = 0.0
  if v[14] then returned = num(v[14]) end
  local base = words(v[10], 3)[1]
  if base == nil then base = {num(v[1]), num(v[2]), 0} ; if v[3] == '1' then base[3] = 1 end end
  local synced = 0
  if v[12] then synced = num(v[12]) end
  local stamp = words(v[13], 2)[1]
  if stamp == nil then stamp = {nil, 0.0} end
  return {tokens = num(v[1]), time = num(v[2]), recharging = v[3] == '1', rate = num(v[4]),
          anchor = num(v[5]), next_id = num(v[6]), booked = num(v[7]), since = num(v[8]),
          pending = words(v[9], PENDING_WIDTH), base_tokens = base[1], base_time = base[2],
          base_recharging = base[3] ~= 0, flight = words(v[11], 3), synced_id = synced,
          as_of = stamp[1], as_of_time = stamp[2], returned = returned,
          origin = origin, seen = seen, stepped_id = stepped}, false
end

local function reanchor(state, t)  -- mirrors _core._reanchor
  local origin = state.origin + t
  local shift = origin - state.origin
  state.origin = origin
  state.time = state.time - shift
  state.anchor = state.anchor - shift
  state.since = state.since - shift
  state.base_time = state.base_time - shift
  state.as_of_time = state.as_of_time - shift
  state.seen = t - shift
  for _, e in ipairs(state.pending) do e[2] = e[2] - shift end
  for _, f in ipairs(state.flight) do f[2] = f[2] - shift end
end

local function clock_in(state)  -- mirrors _core.clock_in: the offset of now
  local t = now - state.origin
  if t < state.seen then
    state.origin = now - state.seen
    state.stepped_id = state.next_id
    t = state.seen
  elseif t > REANCHOR then
    reanchor(state, t)
    t = state.seen
  end
  state.seen = t
  return t
end

local function reading(state)  -- mirrors _core.reading
  local t = now - state.origin
  if t >= state.seen then return t end
  return state.seen
end

local function join(list, width)
  local parts = {}
  for _, e in ipairs(list) do
    local w = {}
    for i = 1, width do w[i] = fmt(e[i]) end
    parts[#parts + 1] = table.concat(w, ' ')
  end
  return table.concat(parts, ' ')
end

local function save(state)
  local stamp = ''
  if state.as_of ~= nil then stamp = fmt(state.as_of) .. ' ' .. fmt(state.as_of_time) end
  local base_rech = 0
  if state.base_recharging then base_rech = 1 end
  redis.call('HSET', key,
    'tokens', fmt(state.tokens), 'time', fmt(state.time), 'recharging', flag(state.recharging),
    'rate', fmt(state.rate), 'anchor', fmt(state.anchor), 'next_id', fmt(state.next_id),
    'booked', fmt(state.booked), 'since', fmt(state.since),
    'pending', join(state.pending, PENDING_WIDTH),
    'base', join({{state.base_tokens, state.base_time, base_rech}}, 3),
    'flight', join(state.flight, 3), 'synced', fmt(state.synced_id), 'as_of', stamp,
    'returned', fmt(state.returned), 'origin', fmt(state.origin), 'seen', fmt(state.seen),
    'stepped', fmt(state.stepped_id))
  -- a synced step anchor: one that is not the creation time
  local keep = state.rate ~= cfg.rate or (cfg.step ~= nil and state.anchor ~= state.since)
  redis.call('PEXPIRE', key, ttl_ms(state.time, state.tokens, now, cfg.capacity, state.rate,
                                    cfg.step, cfg.in_flight, keep))
end

-- refill (mirrors _core._step_index, refill_between, _time_to_reach, _refill_to, _run,
-- _replay, _advance, net_tokens, _base_now) -------------------------------------------------

local function step_index(state, step, t)
  local a = state.anchor
  return floor((t - a + time_tolerance(math.abs(state.origin) + math.abs(t) + math.abs(a)))
    / step)
end

local function refill_between(state, t0, t1)
  local step = cfg.step
  if step == nil then
    return state.rate * (t1 - t0)
  end
  local steps = step_index(state, step, t1) - step_index(state, step, t0)
  return steps * (state.rate * step)
end

local function time_to_reach(state, balance, t0, target)
  local step = cfg.step
  if step == nil then
    local at = t0 + (target - balance) / state.rate
    if at <= t0 then at = t0 + math.abs(t0) * EPS end
    return at, target
  end
  local per_step = state.rate * step
  local needed = math.max(1, ceil((target - balance) / per_step - TOKEN_TOLERANCE))
  local at = state.anchor + (step_index(state, step, t0) + needed) * step
  local reached = math.min(cfg.capacity, balance + needed * per_step)
  return at, math.max(reached, target)
end

local function refill_to(state)
  local t0 = state.time
  if now > t0 then
    local b
    if cfg.step == nil then
      b = state.tokens + state.rate * (now - t0)
    else
      b = state.tokens + refill_between(state, t0, now)
    end
    local cap = cfg.capacity
    if b < cap then state.tokens = b else state.tokens = cap end
    state.time = now
    if state.recharging and state.tokens >= cfg.burst then
      state.recharging = false
      return true
    end
  end
  return false
end

local function run(state, balance, t, recharging, entries)
  local cap, low, high = cfg.capacity, cfg.min, cfg.burst
  local rate = state.rate
  for _, e in ipairs(entries) do
    local at = e[2]
    if at > t then
      balance = balance + refill_between(state, t, at)
      if balance > cap then balance = cap end
      t = at
    end
    local before = e[5]
    local off = balance - before
    if off < 0.0 then off = -off end
    if off <= rate * time_tolerance(at) + TOKEN_TOLERANCE * math.max(1.0, math.abs(before)) then
      balance = before
    end
    if recharging and covers(balance, high) then recharging = false end
    balance = balance - e[3]
    if debited_below(balance, low, e[3]) then recharging = true end
  end
  return balance, t, recharging
end

local function rebook(state)  -- mirrors _core._rebook
  local balance, t, recharging = state.base_tokens, state.base_time, state.base_recharging
  local cap, low, high = cfg.capacity, cfg.min, cfg.burst
  local rate = state.rate
  for i, e in ipairs(state.pending) do
    local at = e[2]
    local moved = at < t
    if moved then
      at = t
    elseif at > t then
      balance = balance + refill_between(state, t, at)
      if balance > cap then balance = cap end
      t = at
    end
    local before = e[5]
    local off = balance - before
    if off < 0.0 then off = -off end
    if not moved and off <= rate * time_tolerance(at)
        + TOKEN_TOLERANCE * math.max(1.0, math.abs(before)) then
      balance = before
    end
    local target = required_balance(e[3])
    if target > cap then target = cap end
    if recharging and target < high then target = high end
    if not covers(balance, target) then
      at, balance = time_to_reach(state, balance, t, target)
      t = at
      moved = true
    end
    if moved then state.pending[i] = {e[1], at, e[3], e[4], balance} end
    balance = balance - e[3]
    recharging = debited_below(balance, low, e[3])
  end
end

local function replay(state)
  local was = state.recharging
  if #state.pending > 0 then
    state.tokens, state.time, state.recharging = run(state, state.base_tokens, state.base_time,
      state.base_recharging, state.pending)
    return was and not state.recharging
  end
  state.tokens = state.base_tokens
  state.time = state.base_time
  state.recharging = state.base_recharging
  local left = refill_to(state)
  return left or (was and not state.recharging)
end

local function advance(state)
  local pending = state.pending
  local limit = now + clock_tolerance(state)
  if #pending > 0 and pending[1][2] <= limit then
    local done, kept = {}, {}
    for _, e in ipairs(pending) do
      if #kept == 0 and e[2] <= limit then done[#done + 1] = e else kept[#kept + 1] = e end
    end
    state.pending = kept
    if cfg.in_flight > 0.0 then
      for _, e in ipairs(done) do
        if e[4] == 0.0 then state.flight[#state.flight + 1] = {e[1], e[2], e[3]} end
      end
    end
    if #kept > 0 then
      state.base_tokens, state.base_time, state.base_recharging = run(state, state.base_tokens,
        state.base_time, state.base_recharging, done)
    end
  end
  if #state.flight > 0 then
    local window = cfg.in_flight
    local kept = {}
    for _, f in ipairs(state.flight) do
      if f[2] + window > now then kept[#kept + 1] = f end
    end
    state.flight = kept
  end
  return refill_to(state)
end

local function net_tokens(state)
  if state.time > now then
    return state.tokens - refill_between(state, now, state.time)
  end
  return state.tokens
end

local function base_now(state)
  local b = state.base_tokens + refill_between(state, state.base_time, now)
  if b > cfg.capacity then b = cfg.capacity end
  return b, state.base_recharging and b < cfg.burst
end

local function outcome(ok, delay, booking_id, tokens, recharging, entered, left, spent)
  return flag(ok) .. flag(recharging) .. flag(entered) .. flag(left) .. ' ' .. fmt(delay) .. ' '
    .. string.format('%d', booking_id) .. ' ' .. fmt(clock) .. ' ' .. fmt(tokens) .. ' '
    .. fmt(spent)
end

local function plain_outcome(state, ok, entered, left)
  return outcome(ok, 0.0, 0, net_tokens(state), state.recharging, entered, left,
                 state.booked + state.returned)
end

-- operations (mirror _core.admit, cancel, settle, sync, observe) ----------------------------

local function admit(state, cost, max_wait)
  local left = advance(state)
  local t0 = state.time
  local start = state.tokens
  local balance = start
  local target = required_balance(cost)
  local rech = state.recharging
  if rech and target < cfg.burst then
    target = cfg.burst
  end
  local at
  if covers(balance, target) then
    at = t0
    if balance < target then balance = target end
  else
    at, balance = time_to_reach(state, balance, t0, target)
  end
  local tol = clock_tolerance(state)
  local delay = at - now
  if delay <= tol then delay = 0.0 end
  if delay > max_wait + tol then
    return outcome(false, delay, 0, net_tokens(state), rech, false, left,
                   state.booked + state.returned)
  end
  local pending = state.pending
  local booking_id = state.next_id
  if delay > 0.0 then
    if #pending == 0 then
      state.base_tokens = start
      state.base_time = t0
      state.base_recharging = rech
    end
    pending[#pending + 1] = {booking_id, at, cost, 0.0, balance}
  elseif cfg.in_flight > 0.0 then
    state.flight[#state.flight + 1] = {booking_id, now, cost}
  end
  balance = balance - cost
  state.tokens = balance
  if at > t0 then state.time = at else state.time = t0 end
  local entered = debited_below(balance, cfg.min, cost)
  left = left or rech
  state.recharging = entered
  state.booked = state.booked + cost
  state.next_id = booking_id + 1
  local tokens
  if state.time <= now then tokens = balance else tokens = net_tokens(state) end
  return outcome(true, delay, booking_id, tokens, entered, entered, left,
                 state.booked + state.returned)
end

local function absorbed(state, booking_id)
  if booking_id >= state.synced_id then return false end
  for _, f in ipairs(state.flight) do
    if f[1] == booking_id then return false end
  end
  return true
end

local function end_flight(state, booking_id)
  for i, f in ipairs(state.flight) do
    if f[1] == booking_id then
      table.remove(state.flight, i)
      return
    end
  end
end

local function correct_now(state, credit)
  local cap = cfg.capacity
  if #state.pending > 0 then
    local b, rech = base_now(state)
    b = b + credit
    if b > cap then b = cap end
    if not covers(b, cfg.min) then
      rech = true
    elseif b >= cfg.burst then
      rech = false
    end
    state.base_tokens, state.base_time, state.base_recharging = b, now, rech
    return replay(state)
  end
  local b = state.tokens + credit
  if b < cap then state.tokens = b else state.tokens = cap end
  local was = state.recharging
  if not covers(state.tokens, cfg.min) then
    state.recharging = true
  elseif state.tokens >= cfg.burst then
    state.recharging = false
  end
  return was and not state.recharging
end

local function cancel(state, booking_id, time, cost)
  local left = advance(state)
  local pending = state.pending
  for i, e in ipairs(pending) do
    if e[1] == booking_id then
      table.remove(pending, i)
      state.booked = state.booked - e[3]
      state.returned = state.returned + e[3]
      local left2 = replay(state)
      return plain_outcome(state, true, false, left or left2)
    end
  end
  local tol = clock_tolerance(state)
  if time < now - tol or time > now + tol or absorbed(state, booking_id)
      or booking_id < state.stepped_id then
    return plain_outcome(state, false, false, left)
  end
  end_flight(state, booking_id)
  state.booked = state.booked - cost
  state.returned = state.returned + cost
  local left2 = correct_now(state, cost)
  return plain_outcome(state, true, false, left or left2)
end

local function copy(x)
  if type(x) ~= 'table' then return x end
  local c = {}
  for k, value in pairs(x) do c[k] = copy(value) end
  return c
end

local function rebook_last(state, booking_id)  -- mirrors _core.rebook_last
  local left = advance(state)
  local pending = state.pending
  local n = #pending
  if n == 0 or pending[n][1] ~= booking_id then
    return plain_outcome(state, false, false, left)
  end
  local old = pending[n]
  local saved = copy(state)
  table.remove(pending, n)
  state.booked = state.booked - old[3]
  replay(state)
  local result = admit(state, old[3], math.huge)
  if state.time < old[2] then return result end
  for k in pairs(state) do state[k] = nil end
  for k, value in pairs(saved) do state[k] = value end
  return plain_outcome(state, false, false, left)
end

local function late_credit(state, credit, since)  -- mirrors _core._late_credit
  local b
  if #state.pending > 0 then
    local _
    b, _ = base_now(state)
  else
    b = state.tokens
  end
  if since > 0.0 then b = b + since end
  local room = cfg.capacity - b
  if room < credit then
    if room > 0.0 then return room end
    return 0.0
  end
  return credit
end

local function settle(state, booking_id, time, cost, actual, spent)
  local left = advance(state)
  local delta = actual - cost
  local spent_now = state.booked + state.returned
  state.booked = state.booked + delta
  if delta < 0.0 then state.returned = state.returned - delta end
  local is_absorbed = absorbed(state, booking_id)
  end_flight(state, booking_id)
  local was = state.recharging
  local left2 = nil
  for i, e in ipairs(state.pending) do
    if e[1] == booking_id then
      state.pending[i] = {booking_id, e[2], actual, 1.0, e[5]}
      left2 = replay(state)
      break
    end
  end
  if left2 == nil then
    if is_absorbed then
      left2 = false
    else
      local credit = -delta
      if credit > 0.0 then credit = late_credit(state, credit, spent_now - spent) end
      left2 = correct_now(state, credit)
    end
  end
  local entered = state.recharging and not was
  return plain_outcome(state, true, entered, left or left2)
end

local function sync(state, tokens, refill_in, rate, as_of)
  local left = advance(state)
  if as_of ~= nil then
    local last = state.as_of
    if last ~= nil and as_of < last and now <= state.as_of_time + cfg.in_flight then
      return plain_outcome(state, false, false, left)
    end
    state.as_of = as_of
    state.as_of_time = now
  end
  local was
  if #state.pending > 0 then
    local _
    _, was = base_now(state)
  else
    was = state.recharging
  end
  local before = state.recharging
  if rate ~= nil then state.rate = rate end
  local balance = tokens
  for _, f in ipairs(state.flight) do balance = balance - f[3] end
  local step = cfg.step
  if step == nil then
    if refill_in ~= nil then balance = balance - state.rate * refill_in end
  else
    if refill_in ~= nil then state.anchor = now + refill_in end
    local early = -step_index(state, step, now) - 1
    if early > 0 then balance = balance - early * (state.rate * step) end
  end
  local cap = cfg.capacity
  if balance > cap then balance = cap end
  local recharging
  if balance < cfg.min then
    recharging = true
  elseif balance >= cfg.burst then
    recharging = false
  else
    recharging = was
  end
  state.base_tokens, state.base_time, state.base_recharging = balance, now, recharging
  if #state.pending > 0 then
    state.synced_id = state.pending[1][1]
  else
    state.synced_id = state.next_id
  end
  rebook(state)
  replay(state)
  local after = state.recharging
  return plain_outcome(state, true, after and not before, left or (before and not after))
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
  local limit = now + clock_tolerance(state)
  local done = {}
  for _, e in ipairs(state.pending) do
    if e[2] <= limit then done[#done + 1] = e end
  end
  local waiting = #state.pending - #done
  if waiting > 0 then
    -- the mode now is the base's, after the bookings whose time came (mirror of _core.observe)
    local base, t, rech = state.base_tokens, state.base_time, state.base_recharging
    if #done > 0 then base, t, rech = run(state, base, t, rech, done) end
    if now > t then
      base = math.min(cfg.capacity, base + refill_between(state, t, now))
    end
    recharging = rech and base < cfg.burst
  end
  -- the smallest id in flight (mirror of _core._first_in_flight)
  local first = 0
  local window = cfg.in_flight
  if window > 0.0 then
    for _, f in ipairs(state.flight) do
      if f[2] + window > now and (first == 0 or f[1] < first) then first = f[1] end
    end
    for _, e in ipairs(done) do
      if e[4] == 0.0 and e[2] + window > now and (first == 0 or e[1] < first) then first = e[1] end
    end
  end
  return flag(recharging) .. ' ' .. fmt(clock) .. ' ' .. fmt(b) .. ' ' .. fmt(state.rate) .. ' '
    .. string.format('%d', waiting) .. ' ' .. fmt(backlog) .. ' ' .. fmt(state.booked) .. ' '
    .. fmt(state.origin + state.since) .. ' ' .. string.format('%d', first)
end

local function set_rate(state, rate)  -- mirrors _core.set_rate
  local left = advance(state)
  local before = state.recharging
  if #state.pending > 0 then
    local b, rech = base_now(state)
    state.base_tokens, state.base_time, state.base_recharging = b, now, rech
    state.rate = rate
    replay(state)
  else
    state.rate = rate
  end
  local after = state.recharging
  return plain_outcome(state, true, after and not before, left or (before and not after))
end

-- dispatch ----------------------------------------------------------------------------------

local state, created = load()
if op == 'observe' then
  local stepped = now - state.origin < state.seen  -- mirrors _core.observe
  if stepped then now = clock_in(state) else now = reading(state) end
  local result = observe(state)
  if created or stepped then save(state) end
  return result
end
now = clock_in(state)  -- from here on, now is the offset (mirrors _core.apply)
local result
if op == 'admit' then
  result = admit(state, num(ARGV[4]), num(ARGV[5]))
elseif op == 'cancel' then
  result = cancel(state, num(ARGV[4]), num(ARGV[5]) - state.origin, num(ARGV[6]))
elseif op == 'settle' then
  result = settle(state, num(ARGV[4]), num(ARGV[5]), num(ARGV[6]), num(ARGV[7]), num(ARGV[8]))
elseif op == 'sync' then
  result = sync(state, num(ARGV[4]), opt(ARGV[5]), opt(ARGV[6]), opt(ARGV[7]))
elseif op == 'rate' then
  result = set_rate(state, num(ARGV[4]))
elseif op == 'rebook' then
  result = rebook_last(state, num(ARGV[4]))
else
  error('tokenbudget: unknown operation ' .. tostring(op))
end
save(state)
return result
"""


#: Seconds after which the reply record of an idle lane may be removed (see *Retries*).
LANE_IDLE_S: Final = 600

#: Runs first: answers a repeated operation from its lane's record (see *Retries*).
RETRY_PROLOGUE: Final = r"""
-- tokenbudget: an operation sent again (a client's retry) is answered, not applied twice.
-- One HMGET reads the lane's record and the state's fields the fast path needs (the
-- general path reads the others).
local LANE, SEQ = string.match(ARGV[#ARGV], '^@(%w+):(%d+)$')
local V
if LANE then
  V = redis.call('HMGET', KEYS[1], 'tokens', 'time', 'recharging', 'rate', 'next_id', 'booked',
                 'pending', 'returned', 'origin', 'op:' .. LANE)
  SEQ = tonumber(SEQ)
  local record = V[10]
  if record then
    local seq, reply = string.match(record, '^(%d+) (.*)$')
    seq = tonumber(seq)
    if seq == SEQ then return reply end
    if seq > SEQ then
      return redis.error_reply('tokenbudget: operation ' .. SEQ .. ' of lane ' .. LANE ..
        ' is older than its last one (' .. seq .. '): a late duplicate, not applied')
    end
  end
else
  V = redis.call('HMGET', KEYS[1], 'tokens', 'time', 'recharging', 'rate', 'next_id', 'booked',
                 'pending', 'returned', 'origin')
end
local function operation()
"""

#: Runs last: records the reply of the operation on its lane (see *Retries*).
RETRY_EPILOGUE: Final = r"""
end
local reply = operation()
if LANE then
  if SEQ == 1 then
    -- a new lane: remove the records of lanes idle for LANE_IDLE_S (their time is the
    -- fourth word of their reply)
    local now = tonumber(ARGV[3])
    if now == nil then
      local t = redis.call('TIME')
      now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
    for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
      if string.sub(field, 1, 3) == 'op:' then
        local at = string.match(redis.call('HGET', KEYS[1], field), '^%d+ %S+ %S+ %S+ (%S+)')
        if at == nil or tonumber(at) == nil or tonumber(at) < now - @LANE_IDLE_S@ then
          redis.call('HDEL', KEYS[1], field)
        end
      end
    end
  end
  redis.call('HSET', KEYS[1], 'op:' .. LANE, SEQ .. ' ' .. reply)
end
return reply
"""


def render(*, fast_path: bool = True) -> str:
    """The script's text; ``fast_path=False`` (for tests only) always takes the general path.

    The operations (:data:`_TEMPLATE`) run inside :data:`RETRY_PROLOGUE` and
    :data:`RETRY_EPILOGUE`, which make every operation safe to send again.
    """
    text = (
        RETRY_PROLOGUE.lstrip()
        + _TEMPLATE.lstrip()
        + RETRY_EPILOGUE.replace("@LANE_IDLE_S@", str(LANE_IDLE_S))
    )
    for name, value in {
        "FAST_PATH": "true" if fast_path else "false",
        "TIME_TOLERANCE": repr(TIME_TOLERANCE),
        "TOKEN_TOLERANCE": repr(TOKEN_TOLERANCE),
        "TIME_ULPS": repr(TIME_ULPS),
        "EPS": repr(_EPS),
        "NONE": str(NONE),
        "WHILE_POSITIVE": str(WHILE_POSITIVE),
        "BOUNDED": str(BOUNDED),
        "MAX_TTL_MS": str(MAX_TTL_MS),
        "TTL_MARGIN_MS": str(TTL_MARGIN_MS),
        "PENDING_WIDTH": str(PENDING_WIDTH),
        "ID_LIMIT": repr(_ID_LIMIT),
        "REANCHOR": repr(REANCHOR),
    }.items():
        text = text.replace(f"@{name}@", value)
    return text.lstrip()


#: The script's text, with the tolerances and deficit codes of ``_core`` and ``_config``.
SCRIPT: Final = render()
#: What ``EVALSHA`` calls it.
SCRIPT_SHA1: Final = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()
