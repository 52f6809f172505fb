"""tokenbudget: livelock-free, cost-weighted token buckets.

For APIs that charge a variable number of tokens per request from a bucket
that refills slowly (Keepa, LLM tokens per minute, cost-based GraphQL limits).
"""

from __future__ import annotations

from ._backend import Backend, MemoryBackend
from ._bucket import (
    AsyncReservation,
    AsyncTokenBucket,
    Event,
    Reservation,
    Snapshot,
    TokenBucket,
)
from ._clock import Clock, ManualClock, MonotonicClock, WallClock
from ._config import BucketConfig, DeficitRule, Rate
from ._sizer import AdaptiveBatchSizer
from ._sqlite import SQLiteBackend
from .exceptions import (
    AcquireTimeout,
    BackendError,
    CostExceedsCapacity,
    ReservationError,
    TokenBudgetError,
)


__all__ = [
    "AcquireTimeout",
    "AdaptiveBatchSizer",
    "AsyncReservation",
    "AsyncTokenBucket",
    "Backend",
    "BackendError",
    "BucketConfig",
    "Clock",
    "CostExceedsCapacity",
    "DeficitRule",
    "Event",
    "ManualClock",
    "MemoryBackend",
    "MonotonicClock",
    "Rate",
    "Reservation",
    "ReservationError",
    "SQLiteBackend",
    "Snapshot",
    "TokenBucket",
    "TokenBudgetError",
    "WallClock",
    "__version__",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from ._version import version

        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
