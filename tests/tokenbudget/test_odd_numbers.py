"""Numbers at the edges (issue 18, defect 9): huge ints, Decimal rates, the tiniest item cost."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from fractions import Fraction

import pytest

from tokenbudget import (
    AdaptiveBatchSizer,
    AsyncTokenBucket,
    BucketConfig,
    CostExceedsCapacity,
    ManualClock,
    Rate,
    TokenBucket,
)


CONFIG = BucketConfig(10, Rate.per_second(1))
HUGE = 10**400  # no float holds it


@pytest.mark.parametrize("on_event", [None, lambda _event: None])  # the fast path, the full one
@pytest.mark.parametrize("call", ["try_acquire", "acquire", "reserve"])
def test_a_cost_too_large_for_a_float_exceeds_the_capacity(call, on_event):
    bucket = TokenBucket(CONFIG, clock=ManualClock(), on_event=on_event)
    with pytest.raises(CostExceedsCapacity):
        getattr(bucket, call)(HUGE)
    with pytest.raises(CostExceedsCapacity):
        getattr(bucket, call)(Fraction(HUGE))
    with pytest.raises(ValueError, match="> 0"):
        getattr(bucket, call)(-HUGE)
    assert bucket.snapshot().tokens == 10


@pytest.mark.parametrize("call", ["try_acquire", "acquire", "reserve"])
def test_a_cost_too_large_for_a_float_exceeds_the_capacity_async(call):
    bucket = AsyncTokenBucket(CONFIG, clock=ManualClock())
    with pytest.raises(CostExceedsCapacity):
        asyncio.run(getattr(bucket, call)(HUGE))


@pytest.mark.parametrize("tokens", [Decimal(5), Fraction(5), Decimal("5.0")])
def test_a_decimal_or_fraction_rate_is_a_float_rate(tokens):
    rate = Rate(tokens, Decimal(60))
    assert type(rate.tokens) is float
    assert type(rate.per_seconds) is float
    assert rate.tokens_per_second == Rate.per_minute(5).tokens_per_second
    bucket = TokenBucket(BucketConfig(10, rate), clock=ManualClock(), tokens=0)
    assert bucket.acquire(1) == pytest.approx(12.0)


def test_an_int_rate_keeps_its_form():
    assert repr(Rate(5, 60)) == "Rate(tokens=5, per_seconds=60)"


@pytest.mark.parametrize("bad", ["5", None, True, complex(5, 0)])
def test_a_rate_that_is_not_a_real_number_is_refused_naming_it(bad):
    with pytest.raises(
        TypeError, match=r"Rate\.tokens must be a real number.*" + re.escape(repr(bad))
    ):
        Rate(bad, 60)


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), HUGE, Decimal(0)])
def test_a_rate_that_is_not_finite_and_positive_is_refused(bad):
    with pytest.raises(ValueError, match=r"Rate\.tokens must be a finite number > 0"):
        Rate(bad, 60)


def test_the_tiniest_item_cost_sizes_a_batch():
    sizer = AdaptiveBatchSizer(5e-324)
    n = sizer.size(CONFIG)
    assert n == 2**53
    assert sizer.size(BucketConfig(10, Rate.per_second(1), min_threshold=1)) == 2**53


def test_an_observed_cost_too_large_for_a_float_is_refused():
    sizer = AdaptiveBatchSizer(1)
    with pytest.raises(ValueError, match="finite"):
        sizer.observe(1, HUGE)
