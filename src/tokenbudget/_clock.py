"""Clocks: where a bucket reads the time and how it waits."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Final, Protocol, runtime_checkable

import attrs


__all__ = ["Clock", "ManualClock", "MonotonicClock", "WallClock"]


@runtime_checkable
class Clock(Protocol):
    """Where a bucket reads the time (in seconds) and how it sleeps.

    .. versionadded:: 0.1.0
    """

    def now(self) -> float:
        """Return the current time in seconds."""

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for *seconds*."""

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for *seconds* without blocking the event loop."""


class MonotonicClock:
    """The default clock: :func:`time.monotonic`, :func:`time.sleep` and :func:`asyncio.sleep`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "MonotonicClock()"

    def now(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep with :func:`time.sleep`."""
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Sleep with :func:`asyncio.sleep`."""
        await asyncio.sleep(max(seconds, 0.0))


class WallClock(MonotonicClock):
    """Wall-clock time (:func:`time.time`): the same in every process of a host.

    The SQLite backend keeps its state in wall-clock time so that state in a
    file stays meaningful across processes and restarts.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "WallClock()"

    def now(self) -> float:
        """Return :func:`time.time`."""
        return time.time()


def _check_seconds(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


#: Each advance of a ManualClock is one step: threads sleeping at once on one clock must not
#: lose one another's advance. One lock for every manual clock (a test clock; it pickles).
_ADVANCING: Final = threading.Lock()


@attrs.define
class ManualClock:
    """A clock that moves only when told: sleeping advances it at once.

    Tests and simulations of whole days run in milliseconds with it. Threads
    may share one: each sleep and advance is one step, none is lost.

    >>> clock = ManualClock()
    >>> clock.sleep(60)
    >>> clock.now()
    60.0

    Args:
        start: The time the clock starts at.

    .. versionadded:: 0.1.0
    """

    _now: float = attrs.field(default=0.0, converter=float, alias="start")
    #: Deadlines of the tasks in :meth:`asleep`, with a sequence number for ties.
    _sleepers: list[tuple[float, int]] = attrs.field(factory=list, init=False, repr=False)
    _seq: int = attrs.field(default=0, init=False, repr=False)

    def now(self) -> float:
        """Return the current manual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds* (finite, >= 0)."""
        seconds = _check_seconds("seconds", seconds)
        with _ADVANCING:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Advance to ``now + seconds`` at once; non-positive sleeps are no-ops."""
        if seconds > 0:
            with _ADVANCING:
                self._now += seconds

    async def asleep(self, seconds: float) -> None:
        """Advance to ``max(now, time of the call + seconds)`` without real waiting.

        Concurrent sleepers do not add up: tasks sleeping 10 s and 20 s from
        the same moment wake in deadline order, at 10 s and at 20 s. The
        deadline is registered before the first yield to the event loop.

        Time moves as soon as the calling task is the earliest sleeper: the
        clock does not know about work that is not sleeping on it. A task
        waiting for something else (an HTTP answer from a server on another
        thread, a database, a queue) does not hold the clock back, so while
        one task's request is still on the wire another task's sleep may move
        time past it; the server then answers that request at the later time.
        In tests of asyncio clients that share a :class:`ManualClock` with a
        server (an emulator), expect that, or make the task that sleeps wait
        for the others first (``asyncio.gather`` the requests, then sleep), or
        advance the clock from the test with :meth:`advance`.
        """
        if not seconds > 0:
            await asyncio.sleep(0)
            return
        self._seq += 1
        entry = (self._now + seconds, self._seq)
        self._sleepers.append(entry)
        try:
            while True:
                await asyncio.sleep(0)
                if min(self._sleepers) == entry:
                    break
        finally:
            self._sleepers.remove(entry)
        with _ADVANCING:
            if entry[0] > self._now:
                self._now = entry[0]
