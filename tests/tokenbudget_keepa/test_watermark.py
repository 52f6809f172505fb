"""The watermark: ordering, validation, the first-run look-back and the future clamp."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget import TokenBudgetError
from tokenbudget_keepa import (
    DEFAULT_LOOKBACK_MINUTES,
    SchemaMismatch,
    StoreError,
    Watermark,
    clamp_watermark,
    first_watermark,
)


minutes = st.integers(min_value=0, max_value=2**40)
asins = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=10)
watermarks = st.builds(Watermark, minutes, asins)


@given(watermarks, watermarks)
def test_orders_by_minute_then_asin(a, b):
    """Watermarks compare exactly as their (minute, asin) tuples."""
    assert (a < b) == ((a.minute, a.asin) < (b.minute, b.asin))
    assert (a == b) == ((a.minute, a.asin) == (b.minute, b.asin))


def test_empty_asin_sorts_first_in_its_minute():
    """Watermark(m, "") lies before every ASIN of minute m and after minute m - 1."""
    assert Watermark(10, "") < Watermark(10, "B0")
    assert Watermark(9, "ZZZZ") < Watermark(10, "")


@given(watermarks, minutes, asins)
def test_covers_matches_ordering(wm, minute, asin):
    """A deal is covered iff its position is at or before the watermark."""
    assert wm.covers(minute, asin) == (Watermark(minute, asin) <= wm)


@pytest.mark.parametrize("minute", [-1, -100])
def test_negative_minute_is_refused(minute):
    """A negative minute raises ValueError naming it."""
    with pytest.raises(ValueError, match=str(minute)):
        Watermark(minute, "B0")


@pytest.mark.parametrize("minute", [1.5, "10", True, None])
def test_non_int_minute_is_refused(minute):
    """A minute that is not an int raises TypeError naming it."""
    with pytest.raises(TypeError, match="minute"):
        Watermark(minute, "B0")


@pytest.mark.parametrize("asin", [" B0", "B0\n", "B\x000"])
def test_malformed_asin_is_refused(asin):
    """An ASIN with outer spaces or control characters is refused."""
    with pytest.raises(ValueError, match="asin"):
        Watermark(1, asin)


def test_non_str_asin_is_refused():
    """An ASIN that is not a str raises TypeError."""
    with pytest.raises(TypeError, match="asin"):
        Watermark(1, 5)


@given(watermarks)
def test_dict_round_trip(wm):
    """as_dict and from_mapping are inverses."""
    assert Watermark.from_mapping(wm.as_dict()) == wm


def test_from_mapping_names_missing_key():
    """A mapping without 'asin' raises ValueError naming it."""
    with pytest.raises(ValueError, match="'asin'"):
        Watermark.from_mapping({"minute": 1})


def test_first_watermark_looks_back_one_hour_by_default():
    """The first-run watermark lies the default look-back (60 minutes) before now."""
    assert DEFAULT_LOOKBACK_MINUTES >= 60
    assert first_watermark(1000) == Watermark(1000 - DEFAULT_LOOKBACK_MINUTES, "")


def test_first_watermark_never_negative():
    """A look-back longer than the epoch's age stops at minute 0."""
    assert first_watermark(5, lookback_minutes=60) == Watermark(0, "")


def test_first_watermark_refuses_negative_lookback():
    """A negative look-back raises ValueError naming it."""
    with pytest.raises(ValueError, match="lookback_minutes"):
        first_watermark(5, lookback_minutes=-1)


@given(watermarks, minutes)
def test_clamp_rule(wm, now):
    """Only a watermark past now + tolerance is clamped, to the first-run watermark."""
    clamped_wm, clamped = clamp_watermark(wm, now, lookback_minutes=30, tolerance_minutes=5)
    if wm.minute > now + 5:
        assert clamped
        assert clamped_wm == first_watermark(now, lookback_minutes=30)
        assert clamped_wm.minute <= now
    else:
        assert not clamped
        assert clamped_wm is wm


def test_clamp_refuses_negative_tolerance():
    """A negative tolerance raises ValueError naming it."""
    with pytest.raises(ValueError, match="tolerance_minutes"):
        clamp_watermark(Watermark(1, ""), 1, tolerance_minutes=-1)


def test_store_errors_are_in_the_tree():
    """StoreError and SchemaMismatch are TokenBudgetErrors; SchemaMismatch is never transient."""
    assert issubclass(StoreError, TokenBudgetError)
    assert issubclass(SchemaMismatch, StoreError)
    assert not SchemaMismatch("x").transient
    assert StoreError("locked", transient=True).transient


def test_store_errors_pickle():
    """Store errors survive pickling with their message and transient flag."""
    err = pickle.loads(pickle.dumps(StoreError("locked", transient=True)))  # noqa: S301
    assert (type(err), str(err), err.transient) == (StoreError, "locked", True)
    err2 = pickle.loads(pickle.dumps(SchemaMismatch("v9")))  # noqa: S301
    assert (type(err2), str(err2)) == (SchemaMismatch, "v9")
