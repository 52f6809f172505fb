"""Keepa minutes <-> aware UTC datetimes, against fixed dates both ways."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tokenbudget_keepa
from tokenbudget_keepa import KEEPA_EPOCH, datetime_to_keepa_minutes, keepa_minutes_to_datetime


UTC = dt.UTC

#: (Keepa minute, the datetime), each worked out by hand from
#: Unix ms = (minutes + 21564000) * 60000.
KNOWN = [
    # The epoch itself.
    (0, dt.datetime(2011, 1, 1, tzinfo=UTC)),
    # One day later: 1440 minutes.
    (1440, dt.datetime(2011, 1, 2, tzinfo=UTC)),
    # 2026-01-01: Unix 1767225600 s = 29453760 min; 29453760 - 21564000 = 7889760.
    (7_889_760, dt.datetime(2026, 1, 1, tzinfo=UTC)),
    # 2020-02-29T12:34Z: Unix 1582979640 s = 26382994 min; minus 21564000 = 4818994.
    (4_818_994, dt.datetime(2020, 2, 29, 12, 34, tzinfo=UTC)),
    # Before the epoch: 2010-12-31T23:59Z is minute -1.
    (-1, dt.datetime(2010, 12, 31, 23, 59, tzinfo=UTC)),
]


def test_epoch_is_2011_utc():
    """KEEPA_EPOCH is 2011-01-01T00:00Z."""
    assert dt.datetime(2011, 1, 1, tzinfo=UTC) == KEEPA_EPOCH


@pytest.mark.parametrize(("minutes", "moment"), KNOWN)
def test_minutes_to_datetime_known_values(minutes, moment):
    """A Keepa minute converts to the datetime worked out by hand."""
    assert keepa_minutes_to_datetime(minutes) == moment


@pytest.mark.parametrize(("minutes", "moment"), KNOWN)
def test_datetime_to_minutes_known_values(minutes, moment):
    """A datetime converts to the Keepa minute worked out by hand."""
    assert datetime_to_keepa_minutes(moment) == minutes


@pytest.mark.parametrize(("minutes", "moment"), KNOWN)
def test_unix_ms_formula(minutes, moment):
    """Unix ms = (minutes + 21564000) * 60000, as Keepa documents."""
    assert int(moment.timestamp()) * 1000 == (minutes + 21_564_000) * 60_000


def test_result_is_aware_utc():
    """The datetime returned is aware, in UTC."""
    moment = keepa_minutes_to_datetime(123)
    assert moment.tzinfo is not None
    assert moment.utcoffset() == dt.timedelta(0)


def test_other_time_zones_name_the_same_instant():
    """An aware datetime in another zone converts by its instant."""
    paris = dt.timezone(dt.timedelta(hours=1))
    assert datetime_to_keepa_minutes(dt.datetime(2026, 1, 1, 1, 0, tzinfo=paris)) == 7_889_760


def test_seconds_round_down_to_the_minute():
    """Seconds within a minute belong to that minute, also before the epoch."""
    assert datetime_to_keepa_minutes(dt.datetime(2011, 1, 1, 0, 0, 59, 999, tzinfo=UTC)) == 0
    assert datetime_to_keepa_minutes(dt.datetime(2010, 12, 31, 23, 59, 30, tzinfo=UTC)) == -1


def test_naive_datetime_is_refused():
    """A naive datetime names no instant: ValueError naming it."""
    with pytest.raises(ValueError, match="naive"):
        datetime_to_keepa_minutes(dt.datetime(2026, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize("bad", [1.5, "7889760", True, None])
def test_minutes_must_be_an_int(bad):
    """Keepa minutes are integers: anything else is a TypeError naming the value."""
    with pytest.raises(TypeError, match="minutes must be an int"):
        keepa_minutes_to_datetime(bad)


def test_moment_must_be_a_datetime():
    """A date (not a datetime) is a TypeError."""
    with pytest.raises(TypeError, match="must be a datetime"):
        datetime_to_keepa_minutes(dt.date(2026, 1, 1))  # type: ignore[arg-type]


@given(st.integers(min_value=-10_000_000, max_value=100_000_000))
def test_round_trip(minutes):
    """Converting a minute to a datetime and back gives the minute."""
    assert datetime_to_keepa_minutes(keepa_minutes_to_datetime(minutes)) == minutes


def test_exported_from_the_package():
    """The functions are public names of tokenbudget_keepa."""
    assert {"datetime_to_keepa_minutes", "keepa_minutes_to_datetime"} <= set(
        tokenbudget_keepa.__all__
    )
