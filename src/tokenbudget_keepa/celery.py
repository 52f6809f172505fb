"""Run the Smart Ingestor from Celery, on an account every task shares through Redis.

Needs the ``celery`` extra of tokenbudget (Celery, redis-py and httpx);
importing ``tokenbudget_keepa`` never imports Celery.

.. code-block:: python

    # tasks.py
    from celery import Celery
    from tokenbudget_keepa.celery import KeepaAccount, register_ingest

    app = Celery("keepa", broker="redis://redis.internal:6379/1")
    account = KeepaAccount("redis://redis.internal:6379/0", name="main")
    ingest = register_ingest(
        app,
        account,
        {"domainId": 1, "priceTypes": [0], "dateRange": 0},
        store="postgresql://ingest@db.internal/keepa",
        every=60,
    )


    @app.task
    def refresh(asins):
        with account.client() as keepa:  # the same bucket as the ingestor
            return [p.asin for p in keepa.products(asins, stats=30)]

:class:`KeepaAccount` names one Keepa account's shared state: its token
bucket is one Redis hash (:class:`tokenbudget.redis.RedisBackend`) that every
process of every host spends from, whichever task it runs.
``register_ingest`` adds the ingest task and its beat entry to your app:
each run takes the job's lease (no overlapping runs), works until it is
caught up or the next wait would pass the beat interval, and returns its
``IngestReport`` as a dict.

**When Redis is unreachable** the bucket raises
:class:`~tokenbudget.BackendError` and nothing is spent (the bucket never
admits a request it could not book); the run stops without advancing past
any deal it has not stored, and the task retries later (then the next beat
tries again). **When PostgreSQL is unreachable** opening the store raises
:class:`~tokenbudget_keepa.postgres.PostgresUnavailableError` and the task
retries later; a schema at an unknown version is a
:class:`~tokenbudget_keepa.SchemaMismatch`, never retried: every run fails
at start-up with the same one line until the database is fixed, and nothing
is written meanwhile.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, Final

import attrs

from tokenbudget import BucketConfig, Clock, TokenBucket

from .redis import RedisAccountBucket, account_name, probe_config, redis_client


try:
    import celery as _celery  # noqa: F401 -- a missing extra fails at import
except ImportError as exc:  # pragma: no cover -- exercised without the extra installed
    from tokenbudget._install import install_hint

    raise ImportError(
        f"tokenbudget_keepa.celery needs Celery and redis-py: {install_hint('celery')}"
    ) from exc


__all__ = ["KeepaAccount", "time_budget"]

_DEFAULT_BASE_URL: Final = "https://api.keepa.com"


def time_budget(every: float) -> float:
    """The time budget of a run started every *every* seconds: the interval less a margin.

    The margin is a tenth of the interval, at most 5 seconds: a run started
    by a beat every minute returns after at most 55 seconds (plus the request
    on the wire), in time for the next.

    >>> from tokenbudget_keepa.celery import time_budget
    >>> time_budget(60), time_budget(10)
    (55.0, 9.0)

    .. versionadded:: 0.1.0
    """
    if not isinstance(every, (int, float)) or not 0 < every < float("inf"):
        raise ValueError(f"every must be a positive number of seconds, got {every!r}")
    return float(every) - min(5.0, every / 10)


@attrs.define
class _ProcessState:
    pid: int
    redis: Any = None
    bucket: TokenBucket | None = None
    config: BucketConfig | None = None
    storage: dict[str, Any] = attrs.field(factory=dict)


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"bucket_url must be a redis:// URL, got {url!r}")
    return url


@attrs.frozen(eq=False)
class KeepaAccount:
    """One Keepa account as every worker process sees it: its shared bucket and its client.

    Every process that builds a :class:`KeepaAccount` with the same
    *bucket_url*, *prefix* and *name* spends from the same bucket, so the
    ingest task, your own tasks and every worker on every host together never
    overspend the account. Build it once at import time (in your tasks
    module): Redis connections and the bucket are made lazily, once per
    process (a forked worker makes its own).

    Args:
        bucket_url: The Redis database of the bucket (``redis://host:6379/0``).
        name: The account's name in Redis (the bucket is ``prefix + "keepa:" + name``);
            ``None``: a digest of the API key, as ``tokenbudget-keepa ingest --bucket``
            names it, so that the command and the tasks share one bucket.
        api_key: The Keepa key; ``None`` reads ``KEEPA_API_KEY`` (never shown in a repr).
        base_url: The API's address.
        domain: The Keepa marketplace (1 = amazon.com).
        prefix: Put before the bucket's Redis key.
        config: The bucket's configuration. ``None`` (the default): the
            client's model of the account, read from a free ``/token`` call
            once per process. Every process of one account must use the same.
        clock: The bucket's and the client's clock (a test may speed it up);
            ``None``: the bucket takes its time from Redis ``TIME`` and waits
            on the monotonic clock.
        redis_timeout: Seconds to wait for Redis (connect and reply) before
            an operation fails with :class:`~tokenbudget.BackendError`.
        client_options: More keyword arguments of ``KeepaClient``
            (``timeout``, ``max_retries``, ...).

    .. versionadded:: 0.1.0
    """

    bucket_url: str = attrs.field(converter=_check_url, repr=False)
    name: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    base_url: str = _DEFAULT_BASE_URL
    domain: int = 1
    prefix: str = "tokenbudget:"
    config: BucketConfig | None = None
    clock: Clock | None = None
    redis_timeout: float = 5.0
    client_options: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    _states: dict[int, _ProcessState] = attrs.field(factory=dict, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    @property
    def key(self) -> str:
        """The bucket's key on the backend (``keepa:`` and the name)."""
        return f"keepa:{self.name if self.name is not None else account_name(self.api_key)}"

    def _state(self) -> _ProcessState:
        pid = os.getpid()
        with self._lock:
            state = self._states.get(pid)
            if state is None:
                self._states.clear()  # a forked child: its parent's connections are not its own
                state = self._states[pid] = _ProcessState(pid)
            return state

    def redis(self) -> Any:
        """The ``redis.Redis`` client of this process on *bucket_url* (made on first use)."""
        state = self._state()
        with self._lock:
            if state.redis is None:
                state.redis = redis_client(self.bucket_url, timeout=self.redis_timeout)
            return state.redis

    def bucket_config(self) -> BucketConfig:
        """The bucket's configuration: *config*, or the client's model of the account."""
        if self.config is not None:
            return self.config
        state = self._state()
        if state.config is None:
            state.config = probe_config(
                api_key=self.api_key, base_url=self.base_url, domain=self.domain
            )
        return state.config

    def bucket(self) -> TokenBucket:
        """The account's shared bucket (one per process, on Redis).

        A bucket that does not exist yet in Redis starts empty and follows the
        first answer's token count: never ahead of the server.
        """
        state = self._state()
        if state.bucket is None:
            config = self.bucket_config()
            bucket = RedisAccountBucket(
                config, self.redis(), key=self.key, prefix=self.prefix, clock=self.clock
            )
            with self._lock:
                if state.bucket is None:
                    state.bucket = bucket
        assert state.bucket is not None  # noqa: S101 -- set above
        return state.bucket

    def client(self) -> Any:
        """A ``KeepaClient`` spending from the account's shared bucket.

        Use it in your own tasks (refreshes, backfills) so that they share the
        budget with the ingestor; close it after use (``with account.client()
        as keepa: ...``).
        """
        from ._client import KeepaClient

        bucket = self.bucket()
        assert isinstance(bucket, RedisAccountBucket)  # noqa: S101 -- built by bucket()
        return KeepaClient(
            self.api_key,
            base_url=self.base_url,
            domain=self.domain,
            bucket=bucket,
            clock=bucket.client_clock(self.clock),
            **self.client_options,
        )

    def close(self) -> None:
        """Close this process's Redis connections (they reopen on use)."""
        state = self._state()
        with self._lock:
            client, state.redis, state.bucket = state.redis, None, None
        if client is not None:
            client.close()
