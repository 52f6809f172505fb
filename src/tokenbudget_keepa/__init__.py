"""tokenbudget_keepa: the Keepa API on top of tokenbudget (work in progress).

The Keepa client and the Smart Ingestor arrive in later commits; the
ingestor's data layer (watermark, stores, sinks, leases) is here.
"""

from __future__ import annotations

from ._lease import Lease, LeaseHeld, MemoryLease
from ._sinks import AcceptedDeal, DealSink, MemoryDealSink
from ._stores import MemoryWatermarkStore
from ._watermark import (
    DEFAULT_FUTURE_TOLERANCE_MINUTES,
    DEFAULT_LOOKBACK_MINUTES,
    SchemaMismatch,
    StoreError,
    Watermark,
    WatermarkStore,
    clamp_watermark,
    first_watermark,
)


__all__ = [
    "DEFAULT_FUTURE_TOLERANCE_MINUTES",
    "DEFAULT_LOOKBACK_MINUTES",
    "AcceptedDeal",
    "DealSink",
    "Lease",
    "LeaseHeld",
    "MemoryDealSink",
    "MemoryLease",
    "MemoryWatermarkStore",
    "SchemaMismatch",
    "StoreError",
    "Watermark",
    "WatermarkStore",
    "clamp_watermark",
    "first_watermark",
]
