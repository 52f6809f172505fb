"""Where bucket state lives: the :class:`Backend` protocol and the in-memory backend."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from . import _core
from ._clock import Clock, MonotonicClock
from ._config import BucketConfig
from ._core import BucketState, Observation, Outcome, Request


__all__ = ["Backend", "MemoryBackend"]

R = TypeVar("R")
_monotonic = time.monotonic


@runtime_checkable
class Backend(Protocol):
    """Stores the state of named buckets and applies the transition core to it atomically.

    A backend applies :mod:`tokenbudget._core`'s functions (or, for Redis, their
    Lua twin) to the state stored under *key*, in one atomic step. A missing
    key is created holding *initial* tokens. The time comes from the backend's
    own clock when it has one (Redis ``TIME``, the SQLite backend's wall
    clock), else from *clock*, the bucket's.

    .. versionadded:: 0.1.0
    """

    def apply(
        self, key: str, config: BucketConfig, clock: Clock, initial: float, request: Request
    ) -> Outcome:
        """Apply *request* to the bucket *key* atomically and return its outcome."""

    def observe(self, key: str, config: BucketConfig, clock: Clock, initial: float) -> Observation:
        """Read the bucket *key* now, changing nothing."""

    async def aapply(
        self, key: str, config: BucketConfig, clock: Clock, initial: float, request: Request
    ) -> Outcome:
        """:meth:`apply` for :class:`AsyncTokenBucket`: never blocks the event loop."""

    async def aobserve(
        self, key: str, config: BucketConfig, clock: Clock, initial: float
    ) -> Observation:
        """:meth:`observe` for :class:`AsyncTokenBucket`."""


class MemoryBackend:
    """Bucket state in this process's memory: the default backend.

    Thread-safe: one lock serialises every operation, so bookings are first
    come, first served across threads. Share one instance (with distinct
    ``key=`` values) to keep many buckets in one place, or share one key
    between several :class:`TokenBucket` objects.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_lock", "_states")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, BucketState] = {}

    def __repr__(self) -> str:
        return f"MemoryBackend(<{len(self._states)} buckets>)"

    def _state(self, key: str, config: BucketConfig, now: float, initial: float) -> BucketState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _core.new_state(config, initial, now)
        return state

    def apply(
        self, key: str, config: BucketConfig, clock: Clock, initial: float, request: Request
    ) -> Outcome:
        """Apply *request* under the lock."""
        lock = self._lock
        lock.acquire()  # not `with`: this is on every operation's path, and cheaper
        try:
            # The default clock's reading without its method's frame (the same time.monotonic).
            now = _monotonic() if type(clock) is MonotonicClock else clock.now()
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = _core.new_state(config, initial, now)
            return _core.apply(config, state, now, request)
        finally:
            lock.release()

    def apply_many(
        self, key: str, config: BucketConfig, clock: Clock, initial: float, requests: list[Request]
    ) -> list[Outcome]:
        """Apply *requests* in order, at one time, under one hold of the lock (nothing between)."""
        with self._lock:
            now = clock.now()
            state = self._state(key, config, now, initial)
            return [_core.apply(config, state, now, request) for request in requests]

    def book(
        self, key: str, config: BucketConfig, clock: Clock, initial: float, cost: float
    ) -> tuple[float, float, int, float, float]:
        """Book *cost* as :meth:`apply` of ``Admit(cost, inf)`` does, without its objects.

        ``(time, delay, booking_id, spent, tokens)``: the backend time of the
        booking and its outcome's figures (``_core.book``).
        """
        lock = self._lock
        lock.acquire()
        try:
            now = _monotonic() if type(clock) is MonotonicClock else clock.now()
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = _core.new_state(config, initial, now)
            delay, booking_id, spent, tokens = _core.book(config, state, now, cost)
            return now, delay, booking_id, spent, tokens
        finally:
            lock.release()

    def settle_sync(  # noqa: PLR0917 -- the transition's scalars, no request objects
        self,
        key: str,
        config: BucketConfig,
        clock: Clock,
        initial: float,
        booking: tuple[int, float, float, float],
        tokens: float,
        refill_in: float | None,
        as_of: float | None,
    ) -> bool:
        """Settle a *booking* ``(id, cost, actual, spent)`` and sync the bucket in one lock hold.

        :meth:`apply` of the ``Settle`` and then of the ``Sync`` at one time
        (``_core.settle_then_sync``), without request or outcome objects;
        whether the sync was adopted.
        """
        lock = self._lock
        lock.acquire()
        try:
            now = _monotonic() if type(clock) is MonotonicClock else clock.now()
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = _core.new_state(config, initial, now)
            booking_id, cost, actual, spent = booking
            return _core.settle_then_sync(
                config, state, now, booking_id, cost, actual, spent, tokens, refill_in, as_of
            )
        finally:
            lock.release()

    def admitter(
        self,
        key: str,
        config: BucketConfig,
        now: Callable[[], float],
        initial: float,
        *,
        fallback: Callable[[float], R],
        logger: logging.Logger | None = None,
    ) -> Callable[[float], bool | R]:
        """A function ``cost -> bool``: :meth:`apply` of ``Admit(cost, 0.0)`` to *key*, faster.

        The hot path of :meth:`TokenBucket.try_acquire` when nobody listens
        for its events: it builds no request and no outcome. *now* reads the
        time (the bucket clock's ``now``). It decides only a plain int or
        float cost in (0, max_cost] while *logger* has DEBUG off; any other
        call returns ``fallback(cost)`` (see ``_core.admitter``).
        """
        with self._lock:
            state = self._state(key, config, now(), initial)
        return _core.admitter(
            config,
            state=state,
            now=now,
            lock=self._lock,
            fallback=fallback,
            logger=logger,
        )

    def observe(self, key: str, config: BucketConfig, clock: Clock, initial: float) -> Observation:
        """Read the bucket under the lock."""
        with self._lock:
            now = clock.now()
            return _core.observe(config, self._state(key, config, now, initial), now)

    async def aapply(
        self, key: str, config: BucketConfig, clock: Clock, initial: float, request: Request
    ) -> Outcome:
        """Apply *request*; the lock is held for microseconds, never across an ``await``."""
        return self.apply(key, config, clock, initial, request)

    async def aobserve(
        self, key: str, config: BucketConfig, clock: Clock, initial: float
    ) -> Observation:
        """Read the bucket."""
        return self.observe(key, config, clock, initial)
