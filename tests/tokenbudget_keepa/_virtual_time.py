"""Virtual time shared by processes through Redis: it moves only while every process sleeps.

A compressed real-time clock (:class:`._day_worker.SharedFastClock`) turns the machine's
scheduling noise into simulated time: at 1800 times real time, a process descheduled for
half a second loses fifteen simulated minutes, and a run's time budget measures the load,
not the code. Here time is a number in Redis that a :class:`TimeKeeper` thread moves to
the earliest wake-up asked for, and only once every participant sleeps (in
:meth:`VirtualClock.sleep`) or is done: requests and computing take no simulated time,
and what a test measures on this clock is what the code under test decided.

Participants are named before they start (:meth:`TimeKeeper.expect`), so that time stands
still until each has come to its first sleep. A participant that is not sleeping holds
time; one that ends calls :meth:`VirtualClock.done`.
"""

from __future__ import annotations

import threading
from typing import Any


__all__ = ["TimeKeeper", "VirtualClock"]

BUSY = "busy"
#: Real seconds a sleeper waits for time to move before it gives up.
PATIENCE = 120


class VirtualClock:
    """One participant's clock (or, with no *name*, a reader's: ``now()`` only)."""

    def __init__(self, client: Any, prefix: str, name: str | None = None) -> None:
        self._redis = client
        self._prefix = prefix
        self.name = name

    def __repr__(self) -> str:
        return f"VirtualClock({self.name!r})"

    def now(self) -> float:
        """The virtual time now."""
        return float(self._redis.get(f"{self._prefix}vt:now") or 0.0)

    def sleep(self, seconds: float) -> None:
        """Wait until the virtual time is *seconds* later (time moves once all others sleep)."""
        if seconds <= 0:
            return
        if self.name is None:
            raise RuntimeError("a reader's VirtualClock cannot sleep")
        wake = self.now() + seconds
        pipe = self._redis.pipeline()
        pipe.hset(f"{self._prefix}vt:wake", self.name, repr(wake))
        pipe.rpush(f"{self._prefix}vt:events", self.name)
        pipe.execute()
        for _ in range(PATIENCE):  # short blocking reads: redis-py's socket timeout is 5 s
            if self._redis.blpop([f"{self._prefix}vt:go:{self.name}"], timeout=1) is not None:
                return
        raise RuntimeError(f"{self.name}: virtual time did not move for {PATIENCE} real seconds")

    async def asleep(self, seconds: float) -> None:  # pragma: no cover -- sync participants only
        raise NotImplementedError("virtual time has sync participants only")

    def done(self) -> None:
        """This participant ends: it no longer holds time."""
        pipe = self._redis.pipeline()
        pipe.hdel(f"{self._prefix}vt:wake", self.name)
        pipe.rpush(f"{self._prefix}vt:events", self.name or "")
        pipe.execute()


class TimeKeeper:
    """Moves the virtual time to the earliest wake-up whenever every participant sleeps."""

    def __init__(self, client: Any, prefix: str, *, start: float = 0.0) -> None:
        self._redis = client
        self._prefix = prefix
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="time-keeper", daemon=True)
        self.steps = 0
        client.set(f"{prefix}vt:now", repr(start))
        client.delete(f"{prefix}vt:wake", f"{prefix}vt:events")

    def expect(self, *names: str) -> None:
        """Hold time until each of *names* has come to its first sleep (or is done)."""
        for name in names:
            self._redis.hset(f"{self._prefix}vt:wake", name, BUSY)

    def clock(self, name: str | None = None) -> VirtualClock:
        """A participant's clock (expect its name first), or a reader's."""
        return VirtualClock(self._redis, self._prefix, name)

    def start(self) -> TimeKeeper:
        """Start moving time (in a thread of this process)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop moving time."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        key_wake, key_now = f"{self._prefix}vt:wake", f"{self._prefix}vt:now"
        while not self._stop.is_set():
            if self._redis.blpop([f"{self._prefix}vt:events"], timeout=0.2) is None:
                continue
            wakes = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in self._redis.hgetall(key_wake).items()
            }
            if not wakes or BUSY in wakes.values():
                continue
            times = {name: float(value) for name, value in wakes.items()}
            now = max(float(self._redis.get(key_now) or 0.0), min(times.values()))
            pipe = self._redis.pipeline()
            pipe.set(key_now, repr(now))
            for name, wake in times.items():
                if wake <= now:
                    pipe.hset(key_wake, name, BUSY)
                    pipe.rpush(f"{self._prefix}vt:go:{name}", "1")
            pipe.execute()
            self.steps += 1
