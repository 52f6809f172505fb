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

import hashlib
import json
import os
import urllib.parse
from collections.abc import Callable
from typing import Any, Final, TypeVar

import attrs

from tokenbudget import (
    BucketConfig,
    Clock,
    MonotonicClock,
    TokenBucket,
)

from ._ingestor.lease import HolderProcess, check_key, check_ttl, new_token
from ._ingestor.watermark import StoreError, Watermark


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

#: The in-flight window given to a configuration without one: a request on the wire longer
#: than this (seconds) is taken for one of a dead process.
_FLIGHT_HORIZON: Final = 300.0


class RedisAccountBucket(TokenBucket):
    """The bucket of one Keepa account shared by processes and hosts: a plain Redis bucket.

    A :class:`~tokenbudget.TokenBucket` on a
    :class:`~tokenbudget.redis.RedisBackend` whose configuration keeps
    bookings in flight (``BucketConfig.in_flight``; a configuration without
    a window gets five minutes). That is all a shared account needs now: the
    core keeps every process's requests on the wire in the bucket's state (a
    sync subtracts them from the server's count), the Keepa clients pass the
    server's timestamp of each answer (``sync(as_of=...)``, so an answer
    overtaken by a newer one that another process synced already changes
    nothing), and a request that takes the account into debt waits until the
    requests booked before it, by any process, are answered. Sync and asyncio
    clients share it alike: build an :class:`~tokenbudget.AsyncTokenBucket`
    the same way for an ``AsyncKeepaClient``.

    Kept for compatibility: ``TokenBucket(config, backend=RedisBackend(client,
    prefix=prefix), key=key, tokens=0)`` with an ``in_flight`` window is the
    same bucket.

    Args:
        config: The account's configuration (the same in every process).
        client: A sync :class:`redis.Redis` client.
        key: The bucket's key (one per account).
        prefix: Put before the bucket's Redis key.
        tokens: The balance of a bucket that does not exist yet (``0``: wait
            for the server's count).
        clock: The bucket's clock; ``None``: time from Redis ``TIME``, waits
            on the monotonic clock.

    .. versionadded:: 0.1.0

    .. versionchanged:: 0.1.0
       A plain Redis bucket: no records of its own in Redis, no mutex, one
       round trip per operation.
    """

    __slots__ = ("_owned", "_redis")

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
        if isinstance(config, BucketConfig) and config.in_flight <= 0:
            config = attrs.evolve(config, in_flight=_FLIGHT_HORIZON)
        backend = RedisBackend(client, prefix=prefix, clock=clock)
        super().__init__(config, backend=backend, key=key, tokens=tokens, clock=clock)
        self._redis = client
        self._owned = False

    def close(self) -> None:
        """Close the Redis client if the bucket opened it (:func:`bucket_from_url`)."""
        if self._owned:
            self._redis.close()

    def client_clock(self, clock: Clock | None = None) -> Clock:
        """The clock to give the ``KeepaClient`` that spends from this bucket: *clock* itself.

        Kept for compatibility: the client's own send gate now waits for other
        processes' requests (default: the monotonic clock).
        """
        return MonotonicClock() if clock is None else clock


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
    from ._client.clients import KeepaClient

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
