"""Buckets shared by processes and hosts through Redis or Valkey.

Needs the ``redis`` extra (redis-py; see :ref:`extras` for how to install it:
the name ``tokenbudget`` on the package index is another project for now);
importing :mod:`tokenbudget` itself never imports redis-py.

.. code-block:: python

    import redis
    from tokenbudget import BucketConfig, Rate, TokenBucket
    from tokenbudget.redis import RedisBackend

    backend = RedisBackend(redis.Redis.from_url("redis://localhost:6379/0"))
    config = BucketConfig(300, Rate.per_minute(5))
    bucket = TokenBucket(config, backend=backend, key="keepa:account-1")

Each bucket is one Redis hash, ``prefix + key``. Every operation
(``try_acquire``, ``acquire``, ``reserve``, ``cancel``, ``settle``, ``sync``,
``snapshot``) is one ``EVALSHA`` of a Lua script that applies the same
transition as the in-memory backend, atomically and in one round trip. Time
comes from the Redis server's ``TIME``, so the clocks of the hosts never
matter. Keys of idle buckets expire once a full refill would have filled them.

**Retries are safe.** redis-py sends a command again after a timeout or a
dropped connection (its ``retry`` policy; on by default), when the first one
may have run already. Every operation carries an id (its *lane*, one of the
backend's sequences of operations, and its number there), and the script
answers an operation it has seen with the reply it recorded instead of
applying it twice, in the same single round trip. A retried ``acquire`` may
sleep its booking's delay counted from its first send (never less). Records
live in the bucket's hash, one short field per lane, and go with it when it
expires: a retry that comes after the key expired (an idle bucket, a full
refill later) is applied again, which only ever takes more tokens.

**When Redis is unreachable**, every operation raises
:class:`~tokenbudget.BackendError` (a :class:`ConnectionError`) at once, after
the client's own ``socket_connect_timeout``/``socket_timeout`` and retries:
the bucket neither admits (which could over-spend the shared account) nor
waits silently. Catch it where a retry makes sense (a Celery task can retry
itself later).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

from ._clock import Clock
from ._config import BucketConfig
from ._core import Admit, Cancel, Observation, Outcome, Rebook, Request, SetRate, Settle, Sync
from ._redis_lua import CONFIG, REPLY, SCRIPT, SCRIPT_SHA1
from .exceptions import BackendError


try:
    import redis as _redis
    import redis.asyncio as _aredis
    from redis.client import NEVER_DECODE
    from redis.exceptions import NoScriptError, RedisError, ResponseError
except ImportError as exc:  # pragma: no cover -- exercised without the extra installed
    from ._install import install_hint

    raise ImportError(f"tokenbudget.redis needs redis-py: {install_hint('redis')}") from exc


__all__ = ["RedisBackend"]

_BACKEND: Final = "redis"
#: Replies are read as bytes, whatever the client decodes: an operation's is packed numbers.
_RAW: Final[dict[str, Any]] = {NEVER_DECODE: True}
#: select.poll is missing on Windows: the pool's own check is used there.
_HAS_POLL: Final = hasattr(select, "poll")


def _num(x: float) -> str:
    # repr() is the shortest text that round-trips the double; Lua reads it with strtod.
    return repr(float(x))


def _opt(x: float | None) -> str:
    return "" if x is None else _num(x)


#: The script's four outcome flags (ok 8, recharging 4, entered 2, left 1), by their byte.
_FLAGS: Final = tuple((bool(n & 8), bool(n & 4), bool(n & 2), bool(n & 1)) for n in range(16))
_unpack_reply: Final = REPLY.unpack


def _outcome(reply: bytes) -> Outcome:
    # One bulk string of packed numbers (REPLY), never decoded (NEVER_DECODE).
    flags, delay, booking_id, time, tokens, spent = _unpack_reply(reply)
    ok, recharging, entered, left = _FLAGS[flags]
    return Outcome(ok, delay, int(booking_id), time, tokens, recharging, entered, left, spent)


def _observation(reply: Any) -> Observation:
    recharging, time, tokens, rate, pending, backlog, booked, since, first = reply.split()
    return Observation(
        float(time),
        float(tokens),
        recharging in (b"1", "1"),
        float(rate),
        int(pending),
        float(backlog),
        float(booked),
        float(since),
        int(first),
    )


def _request_args(request: Request) -> tuple[str, ...]:
    if type(request) is Admit:
        return ("admit", _num(request.cost), _num(request.max_wait))
    if type(request) is Cancel:
        return ("cancel", str(request.booking_id), _num(request.time), _num(request.cost))
    if type(request) is Settle:
        return (
            "settle",
            str(request.booking_id),
            _num(request.time),
            _num(request.cost),
            _num(request.actual),
            _num(request.spent),
        )
    if type(request) is Sync:
        return (
            "sync",
            _num(request.tokens),
            _opt(request.refill_in),
            _opt(request.rate),
            _opt(request.as_of),
        )
    if type(request) is SetRate:
        return ("rate", _num(request.rate))
    if type(request) is Rebook:
        return ("rebook", str(request.booking_id))
    raise TypeError(f"unknown request {request!r}")  # pragma: no cover


#: A lane: its id (the word's start, ``@`` and hex) and the number of its last operation.
_Lane = list[Any]

#: Every backend, so that a forked child drops the lanes its parent was using.
_BACKENDS: weakref.WeakSet[RedisBackend] = weakref.WeakSet()


def _forget_lanes_after_fork() -> None:  # pragma: no cover -- runs in a forked child
    for backend in list(_BACKENDS):
        backend._lanes.clear()  # noqa: SLF001


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_lanes_after_fork)


def _new_lane() -> _Lane:
    """A lane no other client uses: 64 random bits."""
    return ["@" + os.urandom(8).hex() + ":", 0]


#: Buckets whose encoded head one backend keeps before it starts again (a bound on memory).
_MAX_HEADS: Final = 4096


def _bulk(data: bytes) -> bytes:
    """*data* as one RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


#: The start of a packed ``EVALSHA`` of *n* words in all (RESP array header and command).
_EVALSHA = tuple(b"*%d\r\n" % n + _bulk(b"EVALSHA") for n in range(16))


def _head(redis_key: str, config: BucketConfig, initial: float) -> tuple[Any, ...]:
    """What every call on one bucket starts with: numkeys, the key, the config with *initial*."""
    step = config.refill_step
    packed = CONFIG.pack(
        config.capacity,
        config.refill.tokens_per_second,
        config.burst_threshold,
        config.min_threshold,
        config.deficit_code,
        config.max_deficit,
        0.0 if step is None else step,
        config.in_flight,
        initial,
    )
    return (1, redis_key.encode(), packed)


def _packed(head: tuple[Any, ...]) -> bytes:
    """The script's SHA1 and *head*, packed as RESP bulk strings once per bucket."""
    return b"".join(_bulk(w if type(w) is bytes else str(w).encode()) for w in (SCRIPT_SHA1, *head))


#: One call: the head's words, the same packed after the SHA1, and the rest (op, now, request).
_Call = tuple[tuple[Any, ...], bytes, tuple[str, ...]]


def _is_async(client: object) -> bool:
    if isinstance(client, (_aredis.Redis, _aredis.RedisCluster)):
        return True
    if isinstance(client, (_redis.Redis, _redis.RedisCluster)):
        return False
    raise TypeError(
        f"client must be a redis.Redis or redis.asyncio.Redis (or a cluster client), got {client!r}"
    )


class RedisBackend:
    """Bucket state in Redis (or Valkey), shared by every process and host that uses it.

    The configuration travels with every call, so every process using a key
    must use the same :class:`~tokenbudget.BucketConfig` for it. A key that
    expired (idle for longer than a full refill and its backlog) starts again
    with the bucket's starting balance.

    Args:
        client: A :class:`redis.Redis` (for :class:`~tokenbudget.TokenBucket`)
            or a :class:`redis.asyncio.Redis` (for
            :class:`~tokenbudget.AsyncTokenBucket`). Its timeouts and retries
            apply to every operation. From a plain :class:`redis.Redis` the
            backend borrows one connection of the client's pool and keeps it
            (one per process; it is checked before each use as the pool checks
            a connection it lends) for the calls of whichever thread finds it
            free; other threads use the pool as usual. With
            ``single_connection_client=True`` it uses the client's connection.
        prefix: Put before each bucket's key to name its hash.
        clock: Where the time comes from. ``None`` (the default) uses the
            Redis server's ``TIME``: one clock for every host. Inject a
            :class:`~tokenbudget.ManualClock` for tests and simulations.

    Raises:
        TypeError: *client* is not a redis-py client; or, from the bucket's
            constructor, a sync client given to an
            :class:`~tokenbudget.AsyncTokenBucket` (or the reverse).
        BackendError: From any operation, when Redis cannot be reached or
            refuses the command (the message names the backend, never the
            client's credentials).

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "__weakref__",
        "_async",
        "_client",
        "_clock",
        "_execute",
        "_heads",
        "_held",
        "_held_lock",
        "_held_pid",
        "_lanes",
        "_poller",
        "_pool",
        "_prefix",
    )

    def __init__(
        self, client: Any, *, prefix: str = "tokenbudget:", clock: Clock | None = None
    ) -> None:
        self._async = _is_async(client)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {prefix!r}")
        self._client = client
        self._prefix = prefix
        self._clock = clock
        # Bound once: every operation is one call of it (EVALSHA, rarely EVAL).
        self._execute = client.execute_command
        # (key, id(config), initial) -> (config, head): the encoded start of every call on
        # one bucket (see _head); the config is kept to tell a reused id from the same one.
        self._heads: dict[tuple[str, int, float], tuple[BucketConfig, tuple[Any, ...], bytes]] = {}
        # A plain sync client's pool lends the backend one connection, which it keeps (per
        # process: a forked child takes its own) and uses whenever no other thread is using
        # it; a thread that finds it busy takes the client's usual path. Checking a
        # connection out of the pool and back for every call costs more than the script.
        self._pool: Any = None
        if (
            not self._async
            and isinstance(client, _redis.Redis)
            and getattr(client, "connection", None) is None  # not single_connection_client
            and getattr(client.connection_pool, "cache", None) is None  # no client-side cache
        ):
            self._pool = client.connection_pool
        self._held: Any = None
        self._held_pid = 0
        self._held_lock = threading.Lock()
        self._poller: tuple[Any, select.poll] | None = None
        # Lanes not in use (see _redis_lua: Retries): an operation takes one, numbers its
        # operation on it and gives it back, so one lane never has two operations at once.
        self._lanes: list[_Lane] = []
        _BACKENDS.add(self)

    def __del__(self) -> None:
        held = getattr(self, "_held", None)
        if held is not None and self._held_pid == os.getpid():
            with contextlib.suppress(Exception):  # interpreter shutdown, a closed pool
                self._pool.release(held)

    def __repr__(self) -> str:
        kind = "redis.asyncio.Redis" if self._async else "redis.Redis"
        return f"RedisBackend(<{kind}>, prefix={self._prefix!r}, clock={self._clock!r})"

    @property
    def asynchronous(self) -> bool:
        """Whether the client is a :class:`redis.asyncio.Redis` (for ``AsyncTokenBucket``).

        The buckets check it at construction: a sync client serves only
        :class:`~tokenbudget.TokenBucket`, an asyncio one only ``AsyncTokenBucket``.
        """
        return self._async

    @property
    def prefix(self) -> str:
        """Put before each bucket's key."""
        return self._prefix

    @property
    def client(self) -> Any:
        """The redis-py client."""
        return self._client

    def redis_key(self, key: str) -> str:
        """The name of the hash that holds the bucket *key*."""
        return self._prefix + key

    # -- calls ------------------------------------------------------------------------------

    def _args(
        self,
        key: str,
        config: BucketConfig,
        initial: float,
        op: tuple[str, ...],
        lane: _Lane | None = None,
    ) -> _Call:
        heads = self._heads
        entry = heads.get((key, id(config), initial))
        if entry is None or entry[0] is not config:
            if len(heads) >= _MAX_HEADS:
                heads.clear()
            head = _head(self._prefix + key, config, initial)
            entry = heads[key, id(config), initial] = (config, head, _packed(head))
        clock = self._clock
        now = "" if clock is None else _num(clock.now())
        if lane is None:
            return (entry[1], entry[2], (op[0], now, *op[1:]))
        # The operation's id, last: the script answers a second send of it from its record.
        return (entry[1], entry[2], (op[0], now, *op[1:], f"{lane[0]}{lane[1]}"))

    def _lane(self) -> _Lane:
        """A lane of this backend's that no operation is using, its operation number raised."""
        try:
            lane = self._lanes.pop()
        except IndexError:
            lane = _new_lane()
        lane[1] += 1
        return lane

    def _error(self, exc: RedisError) -> BackendError:
        text = f"{type(exc).__name__}: {exc}"
        try:
            secret = self._client.connection_pool.connection_kwargs.get("password")
        except AttributeError:  # pragma: no cover -- cluster clients
            secret = None
        if secret:
            text = text.replace(str(secret), "***")
        return BackendError(_BACKEND, text)

    def _wrong_client(self, wanted: str) -> TypeError:
        if wanted == "async":
            return TypeError(
                "RedisBackend holds a sync redis.Redis client: AsyncTokenBucket needs a "
                "redis.asyncio.Redis one (or use TokenBucket)"
            )
        return TypeError(
            "RedisBackend holds a redis.asyncio.Redis client: TokenBucket needs a redis.Redis "
            "one (or use AsyncTokenBucket)"
        )

    def _call(self, call: _Call) -> Any:
        if self._async:
            raise self._wrong_client("sync")
        lock = self._held_lock
        if self._pool is not None and lock.acquire(False):
            try:
                return self._call_held(call)
            finally:
                lock.release()
        args = [*call[0], *call[2]]
        try:
            try:
                return self._execute("EVALSHA", SCRIPT_SHA1, *args, **_RAW)
            except NoScriptError:
                # The server lost its script cache (restart, failover, SCRIPT FLUSH):
                # EVAL runs the script and caches it again.
                return self._execute("EVAL", SCRIPT, *args, **_RAW)
        except RedisError as exc:
            raise self._error(exc) from None

    def _ready(self, conn: Any) -> None:
        """What the pool checks when it lends a connection: connected, nothing unread.

        A connection the server closed (idle timeout, restart) is replaced here,
        before anything is sent, as the pool would replace it.
        """
        # The common case first, in one system call: the socket is open and nothing has
        # arrived on it since the last reply was read (RESP2 sends nothing unasked).
        sock = getattr(conn, "_sock", None)
        if sock is not None and _HAS_POLL:
            poller = self._poller
            if poller is None or poller[0] is not sock:
                poller = self._poller = (sock, select.poll())
                poller[1].register(sock, select.POLLIN | select.POLLPRI)
            if not poller[1].poll(0):
                return
        # redis-py >= 7 does not count unread data as a fault with maintenance notifications.
        maint = getattr(self._pool, "maint_notifications_enabled", None)
        try:
            stale = conn.can_read() and not (maint is not None and maint())  # data left over
        except (_redis.ConnectionError, _redis.TimeoutError, OSError):
            stale = True  # closed by the server
        if stale:
            conn.disconnect()
            conn.connect()
            if conn.can_read() and not (maint is not None and maint()):
                raise _redis.ConnectionError("Connection not ready")

    def _call_held(self, call: _Call) -> Any:
        """:meth:`_call` on the backend's own connection, with the client's retries."""
        head, packed, rest = call
        command = b"".join(
            [_EVALSHA[5 + len(rest)], packed, *[_bulk(word.encode()) for word in rest]]
        )
        return self._send_held(command, head, rest)

    def _send_held(self, command: bytes, head: tuple[Any, ...], rest: tuple[str, ...]) -> Any:
        """Send *command* (the packed ``EVALSHA`` of *head* and *rest*) on the own connection."""
        conn = self._held
        try:
            if conn is None or self._held_pid != os.getpid():
                conn = self._held = None
                conn = self._pool.get_connection()
                self._held = conn
                self._held_pid = os.getpid()
            else:
                self._ready(conn)

            def evalsha() -> Any:
                conn.send_packed_command((command,))  # one item: one sendall
                return conn.read_response(disable_decoding=True)

            def eval_() -> Any:
                conn.send_command("EVAL", SCRIPT, *head, *rest)
                return conn.read_response(disable_decoding=True)

            def fail(_error: Exception) -> None:
                conn.disconnect()

            retry = conn.retry
            try:
                try:
                    return retry.call_with_retry(evalsha, fail)
                except NoScriptError:
                    return retry.call_with_retry(eval_, fail)
            except ResponseError:
                raise  # the reply was read in full: the connection is fine
            except BaseException:
                conn.disconnect()  # a reply may be left unread: never reuse it as is
                raise
            finally:
                should_reconnect = getattr(conn, "should_reconnect", None)  # redis-py >= 7
                if should_reconnect is not None and should_reconnect():  # server maintenance
                    conn.disconnect()
                    conn.connect()
        except RedisError as exc:
            raise self._error(exc) from None

    async def _acall(self, call: _Call) -> Any:
        if not self._async:
            raise self._wrong_client("async")
        args = [*call[0], *call[2]]
        try:
            try:
                return await self._execute("EVALSHA", SCRIPT_SHA1, *args, **_RAW)
            except NoScriptError:
                return await self._execute("EVAL", SCRIPT, *args, **_RAW)
        except RedisError as exc:
            raise self._error(exc) from None

    # -- the Backend protocol ---------------------------------------------------------------

    def apply(
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,  # noqa: ARG002 -- the backend has its own clock
        initial: float,
        request: Request,
    ) -> Outcome:
        """Apply *request* to the bucket *key* in one ``EVALSHA`` (safe for the client to retry)."""
        lane = self._lane()
        try:
            return _outcome(
                self._call(self._args(key, config, initial, _request_args(request), lane))
            )
        finally:
            self._lanes.append(lane)

    def admitter(
        self,
        key: str,
        config: BucketConfig,
        now: Callable[[], float],  # noqa: ARG002 -- the backend has its own clock
        initial: float,
    ) -> Callable[[float], bool] | None:
        """A function ``cost -> bool``: :meth:`apply` of ``Admit(cost, 0.0)`` to *key*, faster.

        The hot path of :meth:`TokenBucket.try_acquire <tokenbudget.TokenBucket.try_acquire>`
        when nobody listens for its events: the same single ``EVALSHA`` and retry
        record, with no request or outcome built; the command is packed from a
        prefix made here once. ``None`` when the backend has no such path (an
        asyncio client, a client without a pool of its own, an injected clock).
        The cost must already be checked.
        """
        if self._async or self._pool is None or self._clock is not None:
            return None
        head = _head(self._prefix + key, config, initial)
        # EVALSHA sha 1 key config admit now="" cost max_wait=0.0 lane: ten words.
        start = _EVALSHA[10] + _packed(head) + _bulk(b"admit") + _bulk(b"")
        no_wait = _bulk(b"0.0")
        lanes = self._lanes
        lock = self._held_lock
        send = self._send_held

        def admit(cost: float) -> bool:
            if not lock.acquire(False):  # another thread has the connection: the pool's way
                lane = self._lane()
                try:
                    call = self._args(key, config, initial, ("admit", _num(cost), "0.0"), lane)
                    return bool(self._call(call)[0] & 8)
                finally:
                    lanes.append(lane)
            try:
                try:
                    lane = lanes.pop()
                except IndexError:
                    lane = _new_lane()
                lane[1] += 1
                try:
                    text = repr(cost)
                    word = f"{lane[0]}{lane[1]}"
                    command = b"%s$%d\r\n%s\r\n%s$%d\r\n%s\r\n" % (
                        start,
                        len(text),
                        text.encode(),
                        no_wait,
                        len(word),
                        word.encode(),
                    )
                    reply = send(command, head, ("admit", "", text, "0.0", word))
                finally:
                    lanes.append(lane)
            finally:
                lock.release()
            return bool(reply[0] & 8)  # the flag ok (REPLY)

        return admit

    def observe(
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,  # noqa: ARG002 -- the backend has its own clock
        initial: float,
    ) -> Observation:
        """Read the bucket *key* in one ``EVALSHA`` (creating it if missing)."""
        return _observation(self._call(self._args(key, config, initial, ("observe",))))

    async def aapply(
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,  # noqa: ARG002 -- the backend has its own clock
        initial: float,
        request: Request,
    ) -> Outcome:
        """:meth:`apply` with the asyncio client."""
        lane = self._lane()
        try:
            return _outcome(
                await self._acall(self._args(key, config, initial, _request_args(request), lane))
            )
        finally:
            self._lanes.append(lane)

    async def aobserve(
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,  # noqa: ARG002 -- the backend has its own clock
        initial: float,
    ) -> Observation:
        """:meth:`observe` with the asyncio client."""
        return _observation(await self._acall(self._args(key, config, initial, ("observe",))))
