"""Type-checker-only usage of ``tokenbudget_keepa.testing`` and Keepa time; never run."""

from __future__ import annotations

import datetime as dt
from typing import Any, assert_type

from tokenbudget import ManualClock
from tokenbudget_keepa import datetime_to_keepa_minutes, keepa_minutes_to_datetime
from tokenbudget_keepa.testing import EmulatorStats, Fault, KeepaEmulator


assert_type(keepa_minutes_to_datetime(0), dt.datetime)
assert_type(datetime_to_keepa_minutes(dt.datetime.now(dt.UTC)), int)

clock = ManualClock()
with KeepaEmulator(refill_per_min=5, clock=clock, seed=1) as emulator:
    assert_type(emulator, KeepaEmulator)
    assert_type(emulator.url, str)
    assert_type(emulator.tokens_left, int)
    emulator.refill_per_min = 10
    emulator.inject(Fault.server_error(503), Fault.malformed_json(), Fault.slow(0.1))
    emulator.set_fault_share(0.1, [Fault.server_error(500)])
    assert_type(emulator.spend(10), bool)
    emulator.set_competing_spender(30.0)
    assert_type(emulator.catalog_asins(3), list[str])
    assert_type(emulator.deals_between(0, 10, {"priceTypes": [1]}), list[dict[str, Any]])
    stats = emulator.stats()
    assert_type(stats, EmulatorStats)
    assert_type(stats.throttled, int)
    assert_type(stats.count("deal", 429), int)
started: KeepaEmulator = KeepaEmulator().start()
started.close()
