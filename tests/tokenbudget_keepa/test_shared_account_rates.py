"""Issue 19, item 1: when Keepa changes the account's refill rate, every process follows.

The four processes of ``test_shared_account_day`` (one Keepa account, one plain Redis
bucket, a simulated clock) for half a day while the rate changes four times: zero 429
once the first answers showing the new rate are in. A file of its own, so that the
heavy phase's two workers run it beside the day.
"""

from __future__ import annotations

import pytest

from .test_client_shared import shared_redis  # noqa: F401 -- the fixture
from .test_shared_account_day import _run_day


pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("no_key_in_logs"), pytest.mark.heavy]


def test_every_process_follows_a_change_of_the_refill_rate(shared_redis):  # noqa: F811
    """Issue 19, item 1: rate changes mid-run; no 429 once answers show the new rate."""
    keepa, reports, changes = _run_day(shared_redis, 12.0, [2, 1, 3, 1])
    try:
        stats = keepa.stats()
    finally:
        keepa.close()
    print(stats, reports, changes)
    assert all(r["errors"] == 0 for r in reports), reports
    for at_change, answered, before_next in changes:
        # A request booked at the old rate may meet the drop (Keepa says so only in its
        # answers): at most one 429 per change, and none once answers show the new rate.
        assert answered - at_change <= 1, changes
        assert before_next == answered, changes
    assert stats.throttled <= len(changes), changes
