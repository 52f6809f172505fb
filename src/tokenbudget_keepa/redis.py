"""Watermarks and leases in Redis (or Valkey), for ingestors on several hosts.

Needs the ``redis`` extra of tokenbudget (redis-py); importing
``tokenbudget_keepa`` never imports redis-py.

.. code-block:: python

    import redis
    from tokenbudget_keepa.redis import RedisLease, RedisWatermarkStore

    client = redis.Redis.from_url("redis://localhost:6379/0")
    store = RedisWatermarkStore(client)
    lease = RedisLease(client)

The watermark of a key is one hash, advanced by a Lua script that compares
and sets it atomically, only ever forward. The lease of a key is one string
set with ``SET NX PX`` (the owner token and the holder), renewed and released
by scripts that act only when the caller's token still holds it, and expired
by Redis when a crashed holder stops renewing it. Neither expires otherwise:
watermarks are kept until :meth:`RedisWatermarkStore.reset`.

A Redis failure raises :class:`RedisStoreError` (a :class:`ConnectionError`);
nothing half-done is left behind (each operation is one command or script).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

from tokenbudget import (
    AcquireTimeout,
    BackendError,
    BucketConfig,
    Clock,
    MonotonicClock,
    Rate,
    Reservation,
    Snapshot,
    TokenBucket,
)

from ._client import _into_debt
from ._lease import HolderProcess, check_key, check_ttl, new_token
from ._watermark import StoreError, Watermark


try:
    import redis as _redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover -- exercised without the extra installed
    from tokenbudget._install import install_hint

    raise ImportError(f"tokenbudget_keepa.redis needs redis-py: {install_hint('redis')}") from exc

from tokenbudget.redis import RedisBackend


__all__ = [
    "RedisAccountBucket",
    "RedisLease",
    "RedisStoreError",
    "RedisWatermarkStore",
    "account_name",
    "bucket_from_url",
    "probe_config",
    "redis_client",
]

_DEFAULT_BASE_URL: Final = "https://api.keepa.com"

_T = TypeVar("_T")

#: KEYS: the watermark hash, the set of keys. ARGV: minute, asin, the job's key.
#: Compares (minute, asin) as the Watermark does (minute as a number, asin bytewise).
_ADVANCE: Final = """
local cur = redis.call('HMGET', KEYS[1], 'minute', 'asin')
local minute = tonumber(ARGV[1])
if cur[1] then
  local m = tonumber(cur[1])
  if minute < m or (minute == m and ARGV[2] <= cur[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'minute', ARGV[1], 'asin', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""

#: KEYS: the lease. ARGV: token, ttl in ms, the holder's whole value. Extends it iff the
#: token holds it; a lease that expired and that nobody took is the holder's again.
_RENEW: Final = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  return 1
end
if string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: KEYS: the lease. ARGV: token. Deletes it iff the token holds it.
_RELEASE: Final = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: KEYS: the lease. ARGV: the dead holder's whole value, the new value, ttl in ms.
_TAKE_OVER: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisStoreError(StoreError, ConnectionError):
    """Redis could not carry out a watermark or lease operation; nothing changed.

    Transient: a job can retry later.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message, transient=transient)


def _check_client(client: object) -> None:
    if not isinstance(client, (_redis.Redis, _redis.RedisCluster)):
        raise TypeError(f"client must be a sync redis.Redis client, got {client!r}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisBase:
    __slots__ = ("_client", "_prefix", "_scripts")

    def __init__(self, client: Any, prefix: str, scripts: dict[str, str]) -> None:
        _check_client(client)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {prefix!r}")
        self._client = client
        self._prefix = prefix
        self._scripts = {name: client.register_script(src) for name, src in scripts.items()}

    def _error(self, exc: RedisError, what: str) -> RedisStoreError:
        text = f"{type(exc).__name__}: {exc}"
        try:
            secret = self._client.connection_pool.connection_kwargs.get("password")
        except AttributeError:  # pragma: no cover -- cluster clients
            secret = None
        if secret:
            text = text.replace(str(secret), "***")
        return RedisStoreError(f"redis {what} failed: {text}")

    def _run(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except RedisError as exc:
            raise self._error(exc, what) from None

    @property
    def prefix(self) -> str:
        """Put before each Redis key it uses."""
        return self._prefix


class RedisWatermarkStore(_RedisBase):
    """Watermarks in Redis: a compare-and-set (one Lua script) that never moves one backwards.

    The watermark of *key* is the hash ``prefix + "watermark:" + key``
    (fields ``minute`` and ``asin``); the keys are listed in the set
    ``prefix + "watermarks"``.

    Args:
        client: A sync :class:`redis.Redis` client (its timeouts and retries apply).
        prefix: Put before each Redis key.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def __init__(self, client: Any, *, prefix: str = "tokenbudget_keepa:") -> None:
        super().__init__(client, prefix, {"advance": _ADVANCE})

    def __repr__(self) -> str:
        return f"RedisWatermarkStore(<redis.Redis>, prefix={self._prefix!r})"

    def _key(self, key: str) -> str:
        return f"{self._prefix}watermark:{_check_key(key)}"

    def load(self, key: str) -> Watermark | None:
        """The watermark of *key*, or ``None`` if none is stored."""
        minute, asin = self._run(
            "load", lambda: self._client.hmget(self._key(key), "minute", "asin")
        )
        if minute is None or asin is None:
            return None
        return Watermark(int(minute), _text(asin))

    def advance(self, key: str, watermark: Watermark) -> bool:
        """Store *watermark* iff it is past the stored one (or none is); ``True`` if it moved."""
        if not isinstance(watermark, Watermark):
            raise TypeError(f"advance() takes a Watermark, got {watermark!r}")
        if not watermark.asin.isascii():
            raise ValueError(f"watermark asin must be ASCII, got {watermark.asin!r}")
        keys = [self._key(key), f"{self._prefix}watermarks"]
        args = [str(int(watermark.minute)), watermark.asin, key]
        script = self._scripts["advance"]
        return bool(self._run("advance", lambda: script(keys=keys, args=args)))

    def reset(self, key: str) -> None:
        """Forget the watermark of *key*."""

        def reset() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self._key(key))
            pipe.srem(f"{self._prefix}watermarks", key)
            pipe.execute()

        self._run("reset", reset)

    def keys(self) -> list[str]:
        """Every key with a stored watermark, sorted."""
        members = self._run("keys", lambda: self._client.smembers(f"{self._prefix}watermarks"))
        return sorted(_text(m) for m in members)

    def close(self) -> None:
        """Nothing to close: the client belongs to the caller."""


class RedisLease(_RedisBase):
    """One holder per key: ``SET NX PX`` with an owner token, expiring for crashed holders.

    The lease of *key* is the string ``prefix + "lease:" + key``, whose value
    is the owner token followed by the holder (its process, host and boot). Renewal and
    release are scripts that act only while the caller's token holds the
    lease. On one host (same host name and PID namespace) a lease whose
    holding process is gone is taken over at once instead of after its expiry.

    Args:
        client: A sync :class:`redis.Redis` client.
        prefix: Put before each Redis key.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def __init__(self, client: Any, *, prefix: str = "tokenbudget_keepa:") -> None:
        super().__init__(
            client, prefix, {"renew": _RENEW, "release": _RELEASE, "take_over": _TAKE_OVER}
        )

    def __repr__(self) -> str:
        return f"RedisLease(<redis.Redis>, prefix={self._prefix!r})"

    def _key(self, key: str) -> str:
        return f"{self._prefix}lease:{check_key(key)}"

    @staticmethod
    def _value(token: str) -> str:
        me = HolderProcess.current()
        return f"{token} {json.dumps([me.pid, me.host, me.boot_id, me.started])}"

    def acquire(self, key: str, *, ttl: float) -> str | None:
        """Take the lease of *key* for *ttl* seconds: its owner token, or ``None`` if held."""
        name = self._key(key)
        ms = _ttl_ms(ttl)
        token = new_token()
        value = self._value(token)
        if self._run("acquire", lambda: self._client.set(name, value, nx=True, px=ms)):
            return token
        held = self._run("acquire", lambda: self._client.get(name))
        if held is None:
            return None  # expired just now: the next try takes it
        if _parse(_text(held)).is_gone():
            script = self._scripts["take_over"]
            if self._run("acquire", lambda: script(keys=[name], args=[held, value, ms])):
                return token
        return None

    def renew(self, key: str, token: str, *, ttl: float) -> bool:
        """Extend the lease to *ttl* seconds from now; ``False`` if *token* no longer holds it.

        A holder whose ttl ran out still renews it as long as nobody took it.
        """
        name = self._key(key)
        ms = _ttl_ms(ttl)
        if not isinstance(token, str) or " " in token or not token:
            return False
        args = [token, ms, self._value(token)]
        script = self._scripts["renew"]
        return bool(self._run("renew", lambda: script(keys=[name], args=args)))

    def release(self, key: str, token: str) -> bool:
        """Give the lease back, only if *token* holds it; ``True`` if it did."""
        name = self._key(key)
        if not isinstance(token, str) or " " in token or not token:
            return False
        script = self._scripts["release"]
        return bool(self._run("release", lambda: script(keys=[name], args=[token])))

    def holder(self, key: str) -> str | None:
        """Who holds the lease of *key* (``pid 12 on host, 30 s left``), or ``None``."""
        name = self._key(key)

        def read() -> tuple[Any, Any]:
            pipe = self._client.pipeline(transaction=True)
            pipe.get(name)
            pipe.pttl(name)
            value, pttl = pipe.execute()
            return value, pttl

        value, pttl = self._run("holder", read)
        if value is None:
            return None
        return f"{_parse(_text(value)).describe()}, {max(0, int(pttl)) / 1000:.0f} s left"

    def close(self) -> None:
        """Nothing to close: the client belongs to the caller."""


def _this_process() -> str:
    me = HolderProcess.current()
    return json.dumps([me.pid, me.host, me.boot_id, me.started])


def _holder_of(text: str) -> HolderProcess:
    """A booking's process (an unreadable record: one never judged gone)."""
    try:
        pid, host, boot_id, started = json.loads(text)
        return HolderProcess(int(pid), str(host), boot_id, started)
    except (ValueError, TypeError):
        return HolderProcess(0, "unknown")


def _parse(value: str) -> HolderProcess:
    """The holder recorded after a lease's token."""
    return _holder_of(value.partition(" ")[2])


def _ttl_ms(ttl: float) -> int:
    return max(1, round(check_ttl(ttl) * 1000))


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a watermark key must be a non-empty str, got {key!r}")
    return key


# -- a Keepa account's bucket shared by several processes --------------------------------------

#: KEYS: the in-flight set, the settle counter, the booking counter, the holders. ARGV: the
#: booking's id and cost ("id:cost"), its due time, its process. Its member (the booking's
#: number first, so that members sort in booking order) and the count of settles.
_BOOK: Final = """
local seq = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], 86400)
local member = string.format('%020d', seq) .. ':' .. ARGV[1]
redis.call('ZADD', KEYS[1], ARGV[2], member)
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('HSET', KEYS[4], member, ARGV[3])
redis.call('EXPIRE', KEYS[4], 86400)
return {member, redis.call('GET', KEYS[2]) or '0'}
"""

#: KEYS: the in-flight set, the settle counter, the holders. ARGV: member. The new count of
#: settles.
_SETTLE: Final = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 86400)
return n
"""

#: KEYS: the in-flight set, the settle counter. ARGV: now ('' for Redis TIME), horizon,
#: lookahead. The tokens booked, not settled and due by now + lookahead (after forgetting
#: those older than the horizon: their process died), and the count of settles.
_VIEW: Final = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
local due = 0
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + tonumber(ARGV[3]))) do
  due = due + tonumber(string.match(member, ':([^:]*)$'))
end
return {tostring(due), redis.call('GET', KEYS[2]) or '0'}
"""

#: KEYS: the in-flight set, the holders. ARGV: a member and its due time. The bookings on
#: the wire booked before it (members sort in booking order) and due by its time, each
#: followed by its process.
_EARLIER: Final = """
local found = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])) do
  if member ~= ARGV[1] then
    local score = tonumber(redis.call('ZSCORE', KEYS[1], member))
    if score < tonumber(ARGV[2]) or member < ARGV[1] then
      table.insert(found, member)
      table.insert(found, redis.call('HGET', KEYS[2], member) or '')
    end
  end
end
return found
"""

#: KEYS: the mutex. ARGV: its owner. Deletes it iff the owner holds it.
_UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Seconds after which a booking still not settled is taken for one of a dead process.
_FLIGHT_HORIZON: Final = 300.0
#: Bookings due this soon count as on the wire already (one may be sent while a sync runs).
_LOOKAHEAD: Final = 1.0
#: The longest a booking or a sync waits for another process's (milliseconds-long) turn.
_MUTEX_WAIT: Final = 10.0
#: The longest a request that takes the balance below the threshold waits for the requests
#: booked before it to leave the wire (then it goes anyway: their process may be gone).
_GATE_WAIT: Final = 60.0


class _Marks(threading.local):
    """What one thread saw of the account: the settle count at its last booking, and after."""

    def __init__(self) -> None:
        self.booked_at: int | None = None
        self.settled_clean: int | None = None
        self.settled: bool = False
        self.unsent: _TrackedReservation | None = None


class RedisAccountBucket(TokenBucket):
    """The bucket of one Keepa account shared by processes and hosts, never ahead of the server.

    A ``KeepaClient`` corrects its bucket from every
    answer's ``tokensLeft``. In one process that is exact. With several
    processes on one bucket it is not: an answer says nothing of the requests
    other processes had sent that the server charged after answering, and an
    answer may arrive after others that are newer. Adopting such a count puts
    the bucket ahead of the account, and a request meets an HTTP 429.

    This bucket (a :class:`~tokenbudget.TokenBucket` on a
    :class:`~tokenbudget.redis.RedisBackend`) keeps, beside the bucket's
    hash, the bookings that are due and not yet settled (the requests on the
    wire, of every process) and a count of settled requests. It adopts a
    reported count (:meth:`sync`) only when the count is exact: no request of
    any process is on the wire and none was settled since the request whose
    answer it is was booked; or when nothing was ever booked on the bucket
    (a new one: the server's count is the only truth there is); or, lowered
    by what is on the wire, when the count is zero or below (a refusal).
    Otherwise the bucket's own model stands: the refill as configured,
    anchored by the last adopted ``refillIn``, minus every booking, corrected
    to each request's true cost when it is settled.

    Args:
        config: The account's configuration (the same in every process).
        client: A sync :class:`redis.Redis` client.
        key: The bucket's key (one per account).
        prefix: Put before the bucket's Redis keys.
        tokens: The balance of a bucket that does not exist yet (``0``: wait
            for the server's count).
        clock: The bucket's clock; ``None``: time from Redis ``TIME``, waits
            on the monotonic clock.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_flight",
        "_holders",
        "_marks",
        "_mutex",
        "_owned",
        "_redis",
        "_scripts",
        "_seq",
        "_settles",
        "_time_source",
    )

    def __init__(
        self,
        config: BucketConfig,
        client: Any,
        *,
        key: str,
        prefix: str = "tokenbudget:",
        tokens: float = 0,
        clock: Clock | None = None,
    ) -> None:
        backend = RedisBackend(client, prefix=prefix, clock=clock)
        super().__init__(config, backend=backend, key=key, tokens=tokens, clock=clock)
        base = backend.redis_key(key)
        self._redis = client
        self._owned = False
        self._flight = f"{base}:inflight"
        self._settles = f"{base}:settles"
        self._mutex = f"{base}:mutex"
        self._seq = f"{base}:bookings"
        self._holders = f"{base}:holders"
        self._time_source = clock
        self._marks = _Marks()
        self._scripts = {
            name: client.register_script(src)
            for name, src in (("book", _BOOK), ("settle", _SETTLE), ("view", _VIEW))
        }
        self._scripts["unlock"] = client.register_script(_UNLOCK)
        self._scripts["earlier"] = client.register_script(_EARLIER)

    def close(self) -> None:
        """Close the Redis client if the bucket opened it (:func:`bucket_from_url`)."""
        if self._owned:
            self._redis.close()

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """A few milliseconds alone on the account: no booking comes between a view and a sync."""
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + _MUTEX_WAIT
        pause = 0.0005
        try:
            while not self._redis.set(self._mutex, owner, nx=True, px=2000):
                if time.monotonic() > deadline:
                    raise BackendError("redis", f"the account's mutex {self._mutex!r} stayed held")
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
        except RedisError as exc:
            raise BackendError("redis", f"{type(exc).__name__}: {exc}") from None
        try:
            yield
        finally:
            with contextlib.suppress(RedisError):  # it expires by itself
                self._scripts["unlock"](keys=[self._mutex], args=[owner])

    def _call(self, name: str, *args: Any) -> Any:
        keys = [self._flight, self._settles]
        if name == "settle":
            keys.append(self._holders)
        try:
            return self._scripts[name](keys=keys, args=list(args))
        except RedisError as exc:
            raise BackendError("redis", f"{type(exc).__name__}: {exc}") from None

    def reserve(self, cost: float = 1, *, timeout: float | None = None) -> Reservation:
        """Like :meth:`~tokenbudget.TokenBucket.reserve`; the booking is tracked until settled.

        A booking due at once that takes the balance below the minimum
        threshold (a request the account runs into debt) returns only once
        the requests booked before it have left the wire: sent first, it could
        overtake them and leave them to meet an empty account.
        """
        marks = self._marks
        marks.settled = False
        marks.settled_clean = None
        marks.unsent = None
        try:
            with self._turn():
                booking = super().reserve(cost, timeout=timeout)
                try:
                    member_raw, count = self._scripts["book"](
                        keys=[self._flight, self._settles, self._seq, self._holders],
                        args=[
                            f"{uuid.uuid4().hex}:{float(booking.cost)!r}",
                            repr(float(booking.time)),
                            _this_process(),
                        ],
                    )
                    member = member_raw.decode() if isinstance(member_raw, bytes) else member_raw
                    marks.booked_at = int(count)
                    into_debt = _into_debt(self.snapshot(), self.config)
                except RedisError as exc:
                    booking.cancel()
                    raise BackendError("redis", f"{type(exc).__name__}: {exc}") from None
                except BaseException:
                    booking.cancel()
                    raise
        except AcquireTimeout:
            # A status request may follow (the client reconciles before a long wait).
            try:
                marks.booked_at = int(self._redis.get(self._settles) or 0)
            except RedisError as exc:
                raise BackendError("redis", f"{type(exc).__name__}: {exc}") from None
            raise
        tracked = _TrackedReservation(self, booking, member, into_debt=into_debt)
        if booking.delay > 0:
            marks.unsent = tracked  # checked when the client's wait is over (before_send)
        elif into_debt:
            self._wait_for_earlier(tracked)
        return tracked

    def before_send(self) -> None:
        """Called by the client's clock after it waited for this thread's booking.

        A booking that takes the account into debt waits, then, for the
        requests booked before it to leave the wire (see :meth:`reserve`).
        """
        tracked, self._marks.unsent = self._marks.unsent, None
        if tracked is not None and tracked.into_debt and not tracked.cancelled:
            self._wait_for_earlier(tracked)

    def _wait_for_earlier(self, tracked: _TrackedReservation) -> None:
        deadline = time.monotonic() + _GATE_WAIT
        pause = 0.001
        args = [tracked.member, repr(float(tracked.time))]
        while time.monotonic() < deadline:
            try:
                found = self._scripts["earlier"](keys=[self._flight, self._holders], args=args)
                waiting = []
                for member, holder in zip(found[::2], found[1::2], strict=True):
                    if _holder_of(_text(holder)).is_gone():
                        self._forget(_text(member))  # its process died: it never answers
                    else:
                        waiting.append(member)
            except RedisError as exc:
                raise BackendError("redis", f"{type(exc).__name__}: {exc}") from None
            if not waiting:
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def client_clock(self, clock: Clock | None = None) -> Clock:
        """The clock to give the ``KeepaClient`` that spends from this bucket.

        It waits on *clock* (default: the monotonic clock) and, after the
        client's wait for a booking, holds a request that takes the account
        into debt until the requests booked before it have left the wire.
        """
        return _SendGate(MonotonicClock() if clock is None else clock, self)

    def _settled(self, member: str) -> None:
        count = int(self._call("settle", member))
        marks = self._marks
        marks.settled = True
        clean = marks.booked_at is not None and count == marks.booked_at + 1
        marks.settled_clean = count if clean else None

    def _forget(self, member: str) -> None:
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zrem(self._flight, member)
            pipe.hdel(self._holders, member)
            pipe.execute()
        except RedisError as exc:
            raise BackendError("redis", f"{type(exc).__name__}: {exc}") from None

    def sync(
        self,
        tokens: float,
        *,
        refill_in: float | None = None,
        rate: Rate | None = None,
        as_of: float | None = None,
    ) -> Snapshot:
        """Adopt the server's count where it is exact (see the class); else keep the model."""
        marks = self._marks
        own, clean, booked_at = marks.settled, marks.settled_clean, marks.booked_at
        marks.settled, marks.settled_clean, marks.booked_at = False, None, None
        with self._turn():
            now = "" if self._time_source is None else repr(float(self._time_source.now()))
            due_text, count_text = self._call("view", now, repr(_FLIGHT_HORIZON), repr(_LOOKAHEAD))
            due, count = float(due_text), int(count_text)
            exact = due == 0 and (count == clean if own else count == booked_at)
            if exact:
                return super().sync(tokens, refill_in=refill_in, rate=rate, as_of=as_of)
            snap = self.snapshot()
            if snap.booked == 0 and snap.pending == 0 and due == 0:
                return super().sync(
                    tokens, refill_in=refill_in, rate=rate, as_of=as_of
                )  # a new bucket
            if tokens <= 0 and snap.pending == 0:
                # Refused (or in debt): never above the server's count, less what is on the wire.
                return super().sync(
                    min(float(tokens) - due, snap.tokens), refill_in=refill_in, as_of=as_of
                )
            return snap


class _TrackedReservation(Reservation):
    """A booking of a :class:`RedisAccountBucket`: off the wire once settled or cancelled."""

    __slots__ = ("into_debt", "member")

    def __init__(
        self, bucket: RedisAccountBucket, booking: Reservation, member: str, *, into_debt: bool
    ) -> None:
        super().__init__(bucket, booking._state)  # noqa: SLF001 -- the same booking, tracked
        self.member = member
        self.into_debt = into_debt

    def settle(self, actual_cost: float) -> None:
        """Like :meth:`Reservation.settle`; the request is then off the wire."""
        super().settle(actual_cost)
        bucket = self._bucket
        assert isinstance(bucket, RedisAccountBucket)  # noqa: S101
        bucket._settled(self.member)  # noqa: SLF001

    def cancel(self) -> bool:
        """Like :meth:`Reservation.cancel`; the booking is forgotten (no request follows)."""
        ok = super().cancel()
        bucket = self._bucket
        assert isinstance(bucket, RedisAccountBucket)  # noqa: S101
        bucket._forget(self.member)  # noqa: SLF001
        return ok


class _SendGate:
    """A client's clock: waits on its base clock, then lets the bucket hold a request in debt."""

    __slots__ = ("_base", "_bucket")

    def __init__(self, base: Clock, bucket: RedisAccountBucket) -> None:
        self._base = base
        self._bucket = bucket

    def __repr__(self) -> str:
        return f"<send gate on {self._base!r}>"

    def now(self) -> float:
        return self._base.now()

    def sleep(self, seconds: float) -> None:
        self._base.sleep(seconds)
        self._bucket.before_send()

    async def asleep(self, seconds: float) -> None:
        await self._base.asleep(seconds)


def account_name(api_key: str | None = None) -> str:
    """The name of an account's shared bucket: a digest of its API key (never the key).

    Every process that uses the same key (``None``: ``KEEPA_API_KEY``) finds
    the same bucket; the key itself never reaches Redis.

    Raises:
        ValueError: Neither *api_key* nor ``KEEPA_API_KEY`` is set.

    .. versionadded:: 0.1.0
    """
    key = api_key if api_key is not None else os.environ.get("KEEPA_API_KEY")
    if not key:
        raise ValueError("no API key: pass api_key= or set KEEPA_API_KEY")
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def redis_client(url: str, *, timeout: float = 5.0) -> Any:
    """A ``redis.Redis`` client on *url* whose operations fail after *timeout* seconds.

    Raises:
        ValueError: *url* is malformed: a database that is not a number
            (``redis://host/abc``, which redis-py would read as database 0), a bad port.

    .. versionadded:: 0.1.0
    """
    _check_redis_url(url)
    return _redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
    )


def probe_config(
    *, api_key: str | None = None, base_url: str = _DEFAULT_BASE_URL, domain: int = 1
) -> BucketConfig:
    """The client's model of the account (one free ``/token`` call).

    .. versionadded:: 0.1.0
    """
    from ._client import KeepaClient

    with KeepaClient(api_key, base_url=base_url, domain=domain) as probe:
        return probe.bucket.config


def bucket_from_url(
    url: str,
    *,
    clock: Clock | None = None,
    api_key: str | None = None,
    base_url: str = _DEFAULT_BASE_URL,
    domain: int = 1,
    prefix: str = "tokenbudget:",
    config: BucketConfig | None = None,
) -> RedisAccountBucket:
    """The account's bucket shared through the Redis database *url* (``--bucket``).

    Every process that names the same URL and uses the same API key spends
    from the same bucket (named by :func:`account_name`). The configuration
    is the client's model of the account, read by one free ``/token`` call,
    unless *config* is given.

    Raises:
        ValueError: *url* is not a Redis URL or is malformed (a database that is not a
            number), or no API key is set.

    .. versionadded:: 0.1.0
    """
    if not isinstance(url, str) or url.partition("://")[0].lower() not in {
        "redis",
        "rediss",
        "unix",
    }:
        raise ValueError(f"a shared bucket needs a redis:// URL, got {url!r}")
    name = account_name(api_key)
    redis = redis_client(url)  # the URL's host, port and options checked: nothing sent yet
    try:
        if config is None:
            config = probe_config(api_key=api_key, base_url=base_url, domain=domain)
        bucket = RedisAccountBucket(config, redis, key=f"keepa:{name}", prefix=prefix, clock=clock)
    except BaseException:
        redis.close()
        raise
    bucket._owned = True  # noqa: SLF001 -- its own class: the client is the bucket's
    return bucket


def _check_redis_url(url: str) -> None:
    """Refuse a ``redis://`` URL whose database is not a number (redis-py reads it as 0)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "unix":
        return  # the path is the socket's; the database is in ?db=
    database = parts.path.removeprefix("/")
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(
            f"the database in a Redis URL must be a number (redis://HOST:PORT/DB), got {database!r}"
        )
