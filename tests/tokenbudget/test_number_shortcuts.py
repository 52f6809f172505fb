"""A plain int or float takes a shortcut past the general checks: it must answer as they do.

``reserve``, ``Reservation.settle`` and ``sync`` check a plain ``float`` or
``int`` without the general checks' calls (the common case, on the hot path of
the HTTP transport and the Keepa client). A subclass of ``int`` or ``float``
is not a plain one and takes the general checks: for every odd value, both
must raise the same error or give the same result.
"""

from __future__ import annotations

import pytest

from tokenbudget import BucketConfig, ManualClock, Rate, TokenBucket


class Float(float):
    """A float the shortcuts do not take."""


class Int(int):
    """An int the shortcuts do not take."""


FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, -1.0, 1e-320, 5.0, 99.5, 1e300]
INTS = [0, -1, 1, 5, 100, 101, 2**60, 10**400]
VALUES = [(v, Float(v)) for v in FLOATS] + [(v, Int(v)) for v in INTS]


def _outcome(action):
    try:
        return ("ok", action())
    except Exception as exc:
        return (type(exc), None)


def _bucket() -> TokenBucket:
    return TokenBucket(BucketConfig(100, Rate(1, 1), in_flight=5), clock=ManualClock(1.7e9))


def _same(outcome, checked) -> bool:
    if outcome[0] != checked[0]:
        return False
    if outcome[0] == "ok":
        return outcome[1] == checked[1] or (outcome[1] != outcome[1] and checked[1] != checked[1])
    return True  # the same error type (its message spells the value as its type does)


@pytest.mark.parametrize(("plain", "wrapped"), VALUES, ids=repr)
def test_reserve_settle_and_sync_answer_a_plain_number_as_the_general_checks(plain, wrapped):
    """Each operation answers a plain number as it answers the same number in a subclass."""
    for value in (plain, wrapped):
        assert type(value) in (float, int, Float, Int)
    results = []
    for value in (plain, wrapped):
        bucket = _bucket()
        booked = _outcome(lambda v=value, b=bucket: b.reserve(v).cost)
        reservation = bucket.reserve(1)
        settled = _outcome(lambda v=value, r=reservation: r.settle(v))
        synced = _outcome(lambda v=value, b=bucket: b.sync(v).tokens)
        stamped = _outcome(lambda v=value, b=bucket: b.sync(5, as_of=v).tokens)
        results.append((booked, settled, synced, stamped, bucket.snapshot().tokens))
    ours, checked = results
    for outcome, general in zip(ours[:4], checked[:4], strict=True):
        assert _same(outcome, general), (plain, outcome, general)
    assert ours[4] == checked[4]
