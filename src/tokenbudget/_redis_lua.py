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
    ``max_deficit``, ``step`` or 0 for none, ``in_flight``) and the starting balance
    of a new bucket as one argument of nine packed doubles (:data:`CONFIG`; the
    client packs it once per bucket), then ``op`` (``admit``, ``cancel``,
    ``settle``, ``sync``, ``rate``, ``rebook``, ``observe``), ``now`` (empty: use
    Redis ``TIME``) and the request's fields as text (Python's ``repr(float)``,
    which round-trips a double exactly; ``inf`` stands for infinity).

Numbers that the script stores or answers travel as exact binary doubles,
packed with Lua's ``struct`` library (in Redis and Valkey): no text is
formatted or parsed for them. An operation's answer is one string,
:data:`REPLY` (flags ``ok`` 8, ``recharging`` 4, ``entered`` 2, ``left`` 1; then
``delay booking_id now tokens spent``), which the client reads without
decoding; ``observe`` answers text, ``recharging now tokens rate pending
backlog booked since first_in_flight`` separated by spaces.

**The hash** (format :data:`FORMAT`). Field ``state`` holds the numbers of
:class:`~tokenbudget._core.BucketState` packed as :data:`STATE` (the version
byte, then :data:`STATE_FIELDS`: the balance and its tail, recharge mode, rate,
step anchor, next booking id, booked total, creation offset, the settled base
``base_tokens base_time base_recharging``, the first booking id a sync did not
take into the server's figure, the server's timestamp of the last sync adopted
with one and the time it was adopted (``as_of`` NaN: none), the cost returned
by cancels and lowering settles, the clock's origin and last reading, the first
id booked after a clock step back, the number of entries of ``pending`` and
``flight``, and the expiry deadline the key was last given). ``pending`` is
text, :data:`PENDING_WIDTH` words a booking (``id time cost settled before``),
``flight`` three words a booking in flight (``id time cost``); they are read
only when ``state`` counts entries in them. ``tokens`` holds
:data:`TEXT_FORMAT_GONE`, which is not a number: the scripts of earlier versions
read a state one field a number (``tokens``, ``time``, ``recharging``, ...), and
fail on it with an error instead of taking the key for a new bucket. A hash in
that earlier format is read as it is and saved in this one by its next
operation (its text fields removed).

**Expiry.** A key expires once a full refill after its last booking's time
(and the ``in_flight`` window) would have filled it. On Redis ``TIME`` the fast
path gives it :data:`EXPIRY_SLACK` more than that and stores the deadline in
``state``; it sets the expiry again only when the key needs more than it was
given, so most admits and refusals send no ``PEXPIRE``. A key that lives longer
than its idle expiry holds what a bucket that never expired would hold (as
in memory), never more. The general path sets the exact expiry (it may shorten it).

**Retries.** redis-py sends a command again after a timeout or a dropped
connection, when the first one may have run already. So every operation
but ``observe`` carries, as its last argument, a word ``@LANE:SEQ``: a
*lane* is one of the client's sequences of operations (a random id; a
client runs one operation at a time on a lane) and *SEQ* its operation's
number on it. A small prologue and epilogue (:data:`RETRY_PROLOGUE`,
:data:`RETRY_EPILOGUE`) wrap the script: the operation's reply is recorded in
the hash, field ``op:LANE`` = SEQ as a packed double followed by the reply; the
prologue answers a call whose SEQ is the recorded one with the recorded
reply without applying it again, and refuses one whose SEQ is older (a late
duplicate, which nobody waits for) with an error. A lane's record lives as
long as the hash; records of lanes idle for :data:`LANE_IDLE_S` seconds (and
records in another format) are removed when a new lane appears. A call without
the word (a test calling the script by hand) is applied as it comes.

An ``admit`` in the common case (an existing bucket with a continuous refill,
not recharging, nothing pending, admitted now or refused) takes a fast path
at the top of the script: ``admit`` with those conditions substituted, the same
double operations in the same order, creating none of the general path's
functions and tables. The prologue's one ``HMGET`` reads ``state`` and the
lane's record; the fast path writes both back in one ``HSET``. With
``TIME``, that is three commands an operation (a ``PEXPIRE`` now and then).
"""

from __future__ import annotations

import hashlib
import struct
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
#: The key's expiry on the server's clock is set to what it needs plus this share of it
#: (and not touched again until it needs more than it was given).
EXPIRY_SLACK: Final = 0.125

#: The version of the packed state (the first byte of :data:`STATE`).
FORMAT: Final = 2
#: The hash field ``state``: the version, then the numbers of :data:`STATE_FIELDS` as
#: little-endian doubles (Lua's ``struct``; booleans 0 or 1, ``as_of`` NaN for none).
STATE: Final = struct.Struct("<B" + "d" * 21)
#: The names of the numbers in :data:`STATE`, in their order.
STATE_FIELDS: Final = (
    "tokens",
    "time",
    "recharging",
    "rate",
    "anchor",
    "next_id",
    "booked",
    "since",
    "base_tokens",
    "base_time",
    "base_recharging",
    "synced",
    "as_of",
    "as_of_time",
    "returned",
    "origin",
    "seen",
    "stepped",
    "pending",
    "flight",
    "expires",
)
#: ``ARGV[1]``: capacity, rate, burst, min, deficit code, max_deficit, step (0: none),
#: in_flight and the starting balance.
CONFIG: Final = struct.Struct("<" + "d" * 9)
#: An operation's reply: flags (ok 8, recharging 4, entered 2, left 1), delay, booking id,
#: time, tokens, spent.
REPLY: Final = struct.Struct("<Bddddd")
#: What the field ``tokens`` holds in a hash of this format: not a number, so that a
#: client of an earlier version (which reads a state field by field) fails on it.
TEXT_FORMAT_GONE: Final = "see-field-state"


def unpack_state(packed: bytes) -> dict[str, float]:
    """The hash field ``state`` (:data:`STATE`) as a dict of :data:`STATE_FIELDS` (for tests)."""
    version, *numbers = STATE.unpack(packed)
    if version != FORMAT:
        raise ValueError(f"state format {version} is not {FORMAT}")
    return dict(zip(STATE_FIELDS, numbers, strict=True))


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
local FORMAT, STATE_FORMAT, CONFIG_FORMAT = @FORMAT@, '@STATE_FORMAT@', '@CONFIG_FORMAT@'
local REPLY_FORMAT, EXPIRY_SLACK = '@REPLY_FORMAT@', @EXPIRY_SLACK@
local TEXT_FORMAT_GONE = '@TEXT_FORMAT_GONE@'
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
  if keep then return MAX_TTL_MS end
  local idle = 0.0
  if time > now then idle = time - now end
  if tokens < capacity then
    idle = idle + (capacity - tokens) / rate
    if step ~= nil then idle = idle + step end
  end
  idle = idle + window
  local ttl = ceil(idle * 1000) + TTL_MARGIN_MS
  if ttl ~= ttl or ttl > MAX_TTL_MS then ttl = MAX_TTL_MS end
  return ttl
end

-- call --------------------------------------------------------------------------------------

local key = KEYS[1]
-- ARGV[1]: the config and the starting balance, packed (CONFIG_FORMAT; step 0: none)
local CAPACITY, RATE, BURST, MIN, CODE, MAX_DEFICIT, STEP, IN_FLIGHT, INITIAL =
  struct.unpack(CONFIG_FORMAT, ARGV[1])
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

local function expiry(ttl, expires)
  -- The key's expiry after an operation whose state needs ttl (milliseconds) from now, and
  -- the deadline to store (server time, seconds; 0: unknown). On the server's clock the
  -- key is given EXPIRY_SLACK more than it needs and is not touched again until it needs
  -- more than it was given: a key that lives longer than its idle expiry only keeps what a
  -- recreated one would hold or less (see the module's docstring). An injected clock is
  -- not the server's: the expiry is set every time, exactly.
  if injected then
    redis.call('PEXPIRE', key, string.format('%d', ttl))
    return 0.0
  end
  -- (a millisecond within it: ttl_ms rounds up to whole milliseconds)
  if clock + (ttl - 1) / 1000 <= expires then return expires end
  ttl = ttl + ceil(ttl * EXPIRY_SLACK)
  redis.call('PEXPIRE', key, string.format('%d', ttl))
  return clock + ttl / 1000
end

-- The packed state (STATE_FORMAT), read by the prologue (RETRY_PROLOGUE) with the lane's
-- record; nil for a new key or one in the text format of earlier versions.
local S = V[1]

-- The fast path: an admit on an existing bucket with a continuous refill, not recharging,
-- nothing pending and its tail not in the future, that is admitted now or refused. It is
-- admit() below (advance, required_balance, reached, time_to_reach) with those conditions
-- substituted, the same double operations in the same order; it writes only the packed
-- state (and the lane's record, in the same HSET). Any other case (a wait to book, or a
-- wait within the tolerance) goes on to the general path with the state as loaded. The
-- differential test pins both to _core.
if FAST_PATH and op == 'admit' and S and STEP == 0.0 and IN_FLIGHT == 0.0 then
  local version, tokens, t0, rech, rate, anchor, next_id, booked, since, base_tokens,
    base_time, base_rech, synced, as_of, as_of_time, returned, origin, seen, stepped,
    npending, nflight, expires = struct.unpack(STATE_FORMAT, S)
  local t = now - origin  -- clock_in: the offset (a step back, t0 > t, takes the general path)
  if version == FORMAT and rech == 0.0 and npending == 0.0 and t0 <= t and t <= REANCHOR then
    local capacity = CAPACITY
    local cost, max_wait = num(ARGV[4]), num(ARGV[5])
    local balance = tokens
    local moved = t > t0
    if moved then  -- advance: not recharging, so recharge mode cannot end
      local b = balance + rate * (t - t0)
      if b < capacity then balance = b else balance = capacity end
    end
    -- required_balance; recharge mode is off, so no burst threshold to wait for
    local low = MIN
    local target
    if CODE == NONE then
      target = cost + low
    elseif CODE == WHILE_POSITIVE then
      target = math.max(low, cost - MAX_DEFICIT)
    else
      target = cost - MAX_DEFICIT
    end
    local reply
    if covers(balance, target) then
      -- admitted now (at = t0 = now)
      if balance < target then balance = target end
      balance = balance - cost
      local flags, recharging = 8, 0.0  -- ok
      if debited_below(balance, low, cost) then flags, recharging = 14, 1.0 end  -- entered
      booked = booked + cost
      expires = expiry(ttl_ms(t, balance, t, capacity, rate, nil, 0.0, rate ~= RATE), expires)
      reply = struct.pack(REPLY_FORMAT, flags, 0.0, next_id, clock, balance, booked + returned)
      S = struct.pack(STATE_FORMAT, FORMAT, balance, t, recharging, rate, anchor, next_id + 1,
        booked, since, base_tokens, base_time, base_rech, synced, as_of, as_of_time, returned,
        origin, t, stepped, npending, nflight, expires)
    else
      local delay = t + (target - balance) / rate - t  -- time_to_reach, continuous
      local tol = time_tolerance(math.abs(origin) + math.abs(t))  -- clock_tolerance
      if delay > tol and delay > max_wait + tol then
        -- refused: only the refill up to now is stored. The key's expiry rarely moves: the
        -- time the bucket will be full again (the tail plus (capacity - tokens) / rate) has
        -- not, since nothing was taken; only a refill that reached the capacity (or an
        -- injected clock) sets it again.
        local was = expires
        expires = expiry(ttl_ms(t, balance, t, capacity, rate, nil, 0.0, rate ~= RATE), expires)
        reply = struct.pack(REPLY_FORMAT, 0, delay, 0, clock, balance, booked + returned)
        if moved or expires ~= was then
          S = struct.pack(STATE_FORMAT, FORMAT, balance, t, 0.0, rate, anchor, next_id, booked,
            since, base_tokens, base_time, base_rech, synced, as_of, as_of_time, returned,
            origin, t, stepped, npending, nflight, expires)
        else
          S = nil
        end
      end
    end
    if reply then
      if LANE then
        RECORDED = true
        if S then
          redis.call('HSET', key, 'state', S, 'op:' .. LANE, struct.pack('<d', SEQ) .. reply)
        else
          redis.call('HSET', key, 'op:' .. LANE, struct.pack('<d', SEQ) .. reply)
        end
      elseif S then
        redis.call('HSET', key, 'state', S)
      end
      return reply
    end
  end
end

-- config ------------------------------------------------------------------------------------

local cfg = {
  capacity = CAPACITY,
  rate = RATE,
  burst = BURST,
  min = MIN,
  code = CODE,
  max_deficit = MAX_DEFICIT,
  step = nil,
  in_flight = IN_FLIGHT,
}
if STEP ~= 0.0 then cfg.step = STEP end
local initial = INITIAL

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

-- How the state was found: 'packed' (STATE_FORMAT), 'text' (the format of earlier
-- versions: one field each, converted at the next save) or 'new' (no key).
local found = 'packed'

local function load()
  if S then
    local version, tokens, time, rech, rate, anchor, next_id, booked, since, base_tokens,
      base_time, base_rech, synced, as_of, as_of_time, returned, origin, seen, stepped,
      npending, nflight = struct.unpack(STATE_FORMAT, S)
    if version ~= FORMAT then
      error('tokenbudget: state format ' .. tostring(version) .. ' is not ' .. FORMAT
        .. ' (a newer tokenbudget wrote it)')
    end
    local pending, flight = {}, {}
    if npending > 0 or nflight > 0 then
      local r = redis.call('HMGET', key, 'pending', 'flight')
      pending, flight = words(r[1], PENDING_WIDTH), words(r[2], 3)
    end
    if as_of ~= as_of then as_of = nil end  -- NaN: none
    return {tokens = tokens, time = time, recharging = rech ~= 0.0, rate = rate,
            anchor = anchor, next_id = next_id, booked = booked, since = since,
            pending = pending, base_tokens = base_tokens, base_time = base_time,
            base_recharging = base_rech ~= 0.0, flight = flight, synced_id = synced,
            as_of = as_of, as_of_time = as_of_time, returned = returned, origin = origin,
            seen = seen, stepped_id = stepped}, false
  end
  -- the text format of earlier versions, or no key at all
  local v = redis.call('HMGET', key, 'tokens', 'time', 'recharging', 'rate', 'anchor',
                       'next_id', 'booked', 'since', 'pending', 'base', 'flight', 'synced',
                       'as_of', 'returned', 'origin', 'seen', 'stepped')
  if not v[1] then
    found = 'new'
    local first = first_id(now)
    return {tokens = initial, time = 0.0, recharging = initial < cfg.min, rate = cfg.rate,
            anchor = 0.0, next_id = first, booked = 0.0, since = 0.0, pending = {},
            base_tokens = 0.0, base_time = 0.0, base_recharging = false, flight = {},
            synced_id = first, as_of = nil, as_of_time = 0.0, returned = 0.0,
            origin = now, seen = 0.0, stepped_id = 0}, true
  end
  found = 'text'
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
    if state.seen - t > IN_FLIGHT then  -- a step back (else a reading that raced another)
      state.origin = now - state.seen
      state.stepped_id = state.next_id
    end
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
  -- a synced step anchor: one that is not the creation time
  local keep = state.rate ~= cfg.rate or (cfg.step ~= nil and state.anchor ~= state.since)
  local ttl = ttl_ms(state.time, state.tokens, now, cfg.capacity, state.rate, cfg.step,
                     cfg.in_flight, keep)
  local expires = 0.0
  if not injected then expires = clock + ttl / 1000 end
  local as_of = state.as_of
  if as_of == nil then as_of = 0 / 0 end
  local rech, base_rech = 0.0, 0.0
  if state.recharging then rech = 1.0 end
  if state.base_recharging then base_rech = 1.0 end
  local packed = struct.pack(STATE_FORMAT, FORMAT, state.tokens, state.time, rech, state.rate,
    state.anchor, state.next_id, state.booked, state.since, state.base_tokens, state.base_time,
    base_rech, state.synced_id, as_of, state.as_of_time, state.returned, state.origin,
    state.seen, state.stepped_id, #state.pending, #state.flight, expires)
  if found == 'packed' then
    redis.call('HSET', key, 'state', packed, 'pending', join(state.pending, PENDING_WIDTH),
               'flight', join(state.flight, 3))
  else
    -- A new key, or one in the text format: the fields of the text format go, and
    -- 'tokens' holds a word that is not a number, so that a client still running an
    -- earlier version fails on this key instead of taking it for a new one.
    if found == 'text' then
      redis.call('HDEL', key, 'time', 'recharging', 'rate', 'anchor', 'next_id', 'booked',
                 'since', 'base', 'synced', 'as_of', 'returned', 'origin', 'seen', 'stepped')
    end
    redis.call('HSET', key, 'state', packed, 'pending', join(state.pending, PENDING_WIDTH),
               'flight', join(state.flight, 3), 'tokens', TEXT_FORMAT_GONE)
    found = 'packed'
  end
  -- the exact expiry (after the HSET, which may create the key): an operation here may
  -- shorten it (a fast path only lengthens it)
  redis.call('PEXPIRE', key, string.format('%d', ttl))
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
  local flags = 0
  if ok then flags = 8 end
  if recharging then flags = flags + 4 end
  if entered then flags = flags + 2 end
  if left then flags = flags + 1 end
  return struct.pack(REPLY_FORMAT, flags, delay, booking_id, clock, tokens, spent)
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
  local stepped = state.seen - (now - state.origin) > IN_FLIGHT  -- mirrors _core.observe
  if stepped then now = clock_in(state) else now = reading(state) end
  local result = observe(state)
  if created or stepped or found == 'text' then save(state) end
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
-- One HMGET reads the lane's record and the packed state.
local LANE, SEQ = string.match(ARGV[#ARGV], '^@(%w+):(%d+)$')
local V
local RECORDED = false  -- the fast path writes the lane's record with the state
if LANE then
  V = redis.call('HMGET', KEYS[1], 'state', 'op:' .. LANE)
  SEQ = tonumber(SEQ)
  local record = V[2]
  if record and #record == @RECORD_SIZE@ then
    local seq = struct.unpack('<d', record)
    if seq == SEQ then return string.sub(record, 9) end
    if seq > SEQ then
      return redis.error_reply('tokenbudget: operation ' .. SEQ .. ' of lane ' .. LANE ..
        ' is older than its last one (' .. seq .. '): a late duplicate, not applied')
    end
  end
else
  V = {redis.call('HGET', KEYS[1], 'state')}
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
    -- fourth number of their reply, after the operation number)
    local now = tonumber(ARGV[3])
    if now == nil then
      local t = redis.call('TIME')
      now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    end
    local mine = 'op:' .. LANE
    for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
      if string.sub(field, 1, 3) == 'op:' and field ~= mine then
        local record = redis.call('HGET', KEYS[1], field)
        local at = nil
        if #record == @RECORD_SIZE@ then at = struct.unpack('<d', record, 26) end
        if at == nil or at < now - @LANE_IDLE_S@ then
          redis.call('HDEL', KEYS[1], field)
        end
      end
    end
  end
  if not RECORDED then
    redis.call('HSET', KEYS[1], 'op:' .. LANE, struct.pack('<d', SEQ) .. reply)
  end
end
return reply
"""


def render(*, fast_path: bool = True) -> str:
    """The script's text; ``fast_path=False`` (for tests only) always takes the general path.

    The operations (:data:`_TEMPLATE`) run inside :data:`RETRY_PROLOGUE` and
    :data:`RETRY_EPILOGUE`, which make every operation safe to send again.
    """
    text = RETRY_PROLOGUE.lstrip() + _TEMPLATE.lstrip() + RETRY_EPILOGUE
    for name, value in {
        "FAST_PATH": "true" if fast_path else "false",
        "LANE_IDLE_S": str(LANE_IDLE_S),
        "RECORD_SIZE": str(8 + REPLY.size),
        "FORMAT": str(FORMAT),
        "STATE_FORMAT": STATE.format,
        "CONFIG_FORMAT": CONFIG.format,
        "REPLY_FORMAT": REPLY.format,
        "EXPIRY_SLACK": repr(EXPIRY_SLACK),
        "TEXT_FORMAT_GONE": TEXT_FORMAT_GONE,
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
