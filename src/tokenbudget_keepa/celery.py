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
:func:`register_ingest` adds the ingest task and its beat entry to your app:
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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from tokenbudget import BackendError, BucketConfig, Clock, TokenBucket, TokenBudgetError

from ._ingestor.watermark import StoreError
from .redis import RedisAccountBucket, account_name, probe_config, redis_client


try:
    import celery as _celery
except ImportError as exc:  # pragma: no cover -- exercised without the extra installed
    from tokenbudget._install import install_hint

    raise ImportError(
        f"tokenbudget_keepa.celery needs Celery and redis-py: {install_hint('celery')}"
    ) from exc


__all__ = ["DEFAULT_TASK_NAME", "IngestRunError", "KeepaAccount", "register_ingest", "time_budget"]

#: The name of the ingest task unless told otherwise.
DEFAULT_TASK_NAME: Final = "tokenbudget_keepa.ingest"
_DEFAULT_BASE_URL: Final = "https://api.keepa.com"


class IngestRunError(TokenBudgetError):
    """A run stopped on an error: retried later if transient, else the task fails.

    Raised inside the ingest task when the run's report says ``stopped ==
    "error"`` (a transient error persisted: the task retries later) or
    ``"fatal_error"`` (Keepa refused the key or the selection, a filter
    raised: retrying cannot help, the task fails and the next beat tries
    again). Either way the watermark stayed before every deal without an
    outcome: nothing was lost.

    Attributes:
        transient: Whether a retry may help.
        report: The run's report, as a dict.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, message: str, *, transient: bool = True, report: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_run_error, (str(self), self.transient, self.report))


def _rebuild_run_error(
    message: str, transient: bool, report: dict[str, Any] | None
) -> IngestRunError:
    return IngestRunError(message, transient=transient, report=report)


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
        """A :class:`~tokenbudget_keepa.KeepaClient` spending from the account's shared bucket.

        Use it in your own tasks (refreshes, backfills) so that they share the
        budget with the ingestor; close it after use (``with account.client()
        as keepa: ...``).
        """
        from ._client.clients import KeepaClient

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


def _open_storage(store: str) -> Any:
    from ._ingestor.storage import open_storage

    return open_storage(store)


def register_ingest(
    app: Any,
    account: KeepaAccount,
    selection: Any,
    *,
    store: str,
    every: float = 60.0,
    name: str = DEFAULT_TASK_NAME,
    filters: Sequence[Any] | None = None,
    enrich: Mapping[str, Any] | None = None,
    key: str | None = None,
    schedule: bool = True,
    retry_delay: float | None = None,
    max_retries: int = 3,
    **ingestor_options: Any,
) -> Any:
    """Add the ingest task (and its beat entry) to the Celery *app*.

    Each run opens *store* once per worker process (a PostgreSQL URL or a
    SQLite path: the watermark, the lease, the ``deals`` table and the
    backlog; a PostgreSQL database is migrated then, under a lock), builds a
    ``SmartIngestor`` on ``account.client()`` and runs
    it once with the time budget :func:`time_budget` derives from *every*.
    The ingestor's lease keeps runs of one job from overlapping: a run that
    finds it held returns at once (``stopped == "lease_held"``).

    A run that stops on a fatal error (the key or the selection refused)
    raises :class:`IngestRunError` and the task fails (the next beat tries
    again). A run that stops on a transient error (Redis or PostgreSQL
    unreachable, the API failing) raises it through ``task.retry``: it
    runs again after *retry_delay* seconds (default: half of *every*), at
    most *max_retries* times, and the beat starts the next run anyway.
    Nothing is lost meanwhile: the watermark only ever moves past stored or
    rejected deals.

    Args:
        app: The :class:`celery.Celery` application.
        account: The account the ingestor spends from.
        selection: The deal selection (a :class:`~tokenbudget_keepa.DealQuery`
            or a mapping of Keepa's fields).
        store: Where the job's state lives (``postgresql://...`` or a SQLite path).
        every: The beat interval in seconds (and the source of the time budget).
        name: The task's name.
        filters: The ingestor's filters (``None``: the built-in defaults).
        enrich: The ingestor's ``products()`` arguments (``None``: what the
            filters need).
        key: The job's key in the stores (default: derived from the selection).
        schedule: Add the beat entry (``app.conf.beat_schedule[name]``), whose
            messages expire after *every* (a backlog of beats never piles up).
        retry_delay: Seconds before a retry (default: ``every / 2``).
        max_retries: Retries of one run at most.
        ingestor_options: More keyword arguments of
            ``SmartIngestor`` (``lease_ttl``, ...).

    Returns:
        The registered task (``task.delay()`` starts a run by hand;
        ``task.close_storage()`` closes this process's connections to *store*,
        which the next run opens again).

    .. versionadded:: 0.1.0
    """
    if not isinstance(app, _celery.Celery):
        raise TypeError(f"app must be a celery.Celery application, got {app!r}")
    if not isinstance(account, KeepaAccount):
        raise TypeError(f"account must be a KeepaAccount, got {account!r}")
    budget = time_budget(every)
    delay = every / 2 if retry_delay is None else float(retry_delay)
    if not 0 <= delay < float("inf"):
        raise ValueError(f"retry_delay must be >= 0 seconds, got {retry_delay!r}")
    job = _IngestJob(
        account=account,
        selection=selection,
        store=store,
        budget=budget,
        options={"filters": filters, "enrich": enrich, "key": key, **ingestor_options},
    )

    def ingest(self: Any) -> dict[str, Any]:
        return job.call(self, delay, max_retries)

    task = app.task(name=name, bind=True, ignore_result=False)(_named(ingest, name))
    # Closes this process's connections to the store (the next run opens them again).
    task.close_storage = job.forget_storage
    if schedule:
        beat = dict(app.conf.beat_schedule or {})
        beat[name] = {"task": name, "schedule": float(every), "options": {"expires": every}}
        app.conf.beat_schedule = beat
    return task


@attrs.define
class _IngestJob:
    """What one registered ingest task runs, with its storage opened once per process."""

    account: KeepaAccount
    selection: Any
    store: str
    budget: float
    options: Mapping[str, Any]
    _storages: dict[int, Any] = attrs.field(factory=dict, init=False)
    _guard: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def storage(self) -> Any:
        pid = os.getpid()
        with self._guard:
            opened = self._storages.get(pid)
            if opened is None:
                self._storages.clear()  # a forked child opens its own connections
                opened = self._storages[pid] = _open_storage(self.store)
            return opened

    def forget_storage(self) -> None:
        with self._guard:
            opened = self._storages.pop(os.getpid(), None)
        if opened is not None:
            opened.close()

    def call(self, task: Any, delay: float, max_retries: int) -> dict[str, Any]:
        """One run for the Celery *task*: its report, or a retry on a transient error."""
        try:
            return self.run()
        except BackendError as exc:
            raise task.retry(exc=exc, countdown=delay, max_retries=max_retries) from None
        except IngestRunError as exc:
            if exc.transient:
                raise task.retry(exc=exc, countdown=delay, max_retries=max_retries) from None
            raise
        except StoreError as exc:
            self.forget_storage()  # reopened (and checked again) by the next run
            if exc.transient:
                raise task.retry(exc=exc, countdown=delay, max_retries=max_retries) from None
            raise

    def run(self) -> dict[str, Any]:
        from ._ingestor.ingestor import SmartIngestor

        opened = self.storage()
        with self.account.client() as client:
            ingestor = SmartIngestor(
                client,
                self.selection,
                store=opened.store,
                sink=opened.sink,
                lease=opened.lease,
                backlog=opened.backlog,
                **self.options,
            )
            report = ingestor.run_once(time_budget=self.budget)
        result: dict[str, Any] = report.to_dict()
        if report.stopped in {"error", "fatal_error"}:
            last = report.errors[-1] if report.errors else report.stopped
            raise IngestRunError(
                f"the run stopped on {last}", transient=report.stopped == "error", report=result
            )
        return result


def _named(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    function.__name__ = function.__qualname__ = name.rpartition(".")[2] or "ingest"
    function.__doc__ = f"Run the Keepa ingestor once ({name})."
    return function
