"""Bad arguments fail at construction with one sentence that says what is expected."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from fractions import Fraction

import pytest

from tokenbudget import (
    AsyncTokenBucket,
    BucketConfig,
    DeficitRule,
    ManualClock,
    MemoryBackend,
    Rate,
    TokenBucket,
)


CONFIG = BucketConfig(10, Rate.per_second(1))
BUCKETS = [TokenBucket, AsyncTokenBucket]


def one_sentence(message: str) -> None:
    assert "\n" not in message
    assert "Attribute(" not in message  # not attrs' raw tuple
    assert not message.startswith("(")


def test_refill_as_a_number_says_how_to_build_a_rate():
    """``BucketConfig(300, 5)`` names ``refill`` and shows ``Rate.per_minute(5)``."""
    with pytest.raises(TypeError) as info:
        BucketConfig(300, 5)  # type: ignore[arg-type]
    message = str(info.value)
    one_sentence(message)
    assert message.startswith("refill must be a Rate, got 5 (int)")
    assert "Rate.per_minute(5)" in message


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("none", "DeficitRule.none()"),
        ("while-positive", "DeficitRule.while_positive()"),
        ("bounded", "DeficitRule.bounded(max_deficit)"),
        (3, "DeficitRule.none(), DeficitRule.while_positive() or DeficitRule.bounded"),
    ],
)
def test_deficit_as_a_string_says_how_to_build_a_rule(given, hint):
    """``deficit="none"`` names ``deficit`` and shows the matching ``DeficitRule`` constructor."""
    with pytest.raises(TypeError) as info:
        BucketConfig(300, Rate.per_minute(5), deficit=given, min_threshold=1)
    message = str(info.value)
    one_sentence(message)
    assert message.startswith(f"deficit must be a DeficitRule, got {given!r}")
    assert hint in message


@pytest.mark.parametrize("bucket_type", BUCKETS)
def test_backend_that_is_not_a_backend_is_refused(bucket_type):
    """``backend="x"`` raises TypeError at construction, listing the backends."""
    with pytest.raises(
        TypeError, match=r"^backend must be a Backend .*MemoryBackend\(\).*got 'x'$"
    ):
        bucket_type(CONFIG, backend="x")


@pytest.mark.parametrize("bucket_type", BUCKETS)
def test_clock_function_is_refused_with_a_hint(bucket_type):
    """``clock=time.monotonic`` raises TypeError at construction pointing to MonotonicClock()."""
    with pytest.raises(TypeError, match=r"^clock must be a Clock .*pass MonotonicClock\(\)\)$"):
        bucket_type(CONFIG, clock=time.monotonic)


@pytest.mark.parametrize("bucket_type", BUCKETS)
def test_on_event_that_is_not_callable_is_refused(bucket_type):
    """``on_event=`` must be callable (or None)."""
    with pytest.raises(TypeError, match=r"^on_event must be a callable"):
        bucket_type(CONFIG, on_event="print")


def test_good_parts_are_accepted():
    """A clock, a backend and a hook of the expected kinds construct a bucket."""
    bucket = TokenBucket(CONFIG, clock=ManualClock(), backend=MemoryBackend(), on_event=print)
    assert bucket.config is CONFIG


@pytest.mark.parametrize("cost", [Fraction(1, 2), Decimal("0.5")])
def test_real_number_costs_are_accepted(cost):
    """A Fraction or a Decimal cost is taken as its float value."""
    bucket = TokenBucket(CONFIG, clock=ManualClock())
    assert bucket.try_acquire(cost)
    assert bucket.reserve(cost).cost == 0.5
    assert bucket.acquire(cost) == 0.0
    assert bucket.snapshot().tokens == 8.5


def test_real_number_cost_async():
    """AsyncTokenBucket takes a Fraction cost too."""
    bucket = AsyncTokenBucket(CONFIG, clock=ManualClock())
    assert asyncio.run(bucket.acquire(Fraction(5, 2))) == 0.0


@pytest.mark.parametrize("cost", ["1", 1j, None, True])
def test_other_costs_name_the_accepted_types(cost):
    """A cost that is not a real number raises TypeError naming the accepted types."""
    bucket = TokenBucket(CONFIG, clock=ManualClock())
    with pytest.raises(TypeError, match=r"^cost must be a real number \(int, float, fractions"):
        bucket.try_acquire(cost)


def test_real_numbers_in_the_config():
    """Capacity, thresholds, rates and deficits accept Fraction and Decimal too."""
    config = BucketConfig(
        Decimal(300),
        Rate(Fraction(5), 60),
        burst_threshold=Fraction(40),
        min_threshold=Decimal(1),
        deficit=DeficitRule.bounded(Fraction(10)),
    )
    assert config.max_cost == 310.0
    assert type(config.capacity) is float


class SyncOnlyClock:
    """A clock with ``now`` and ``sleep`` but no ``asleep``."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds


def test_sync_bucket_needs_only_now_and_sleep():
    """TokenBucket accepts a clock without ``asleep``; it never calls it."""
    bucket = TokenBucket(CONFIG, clock=SyncOnlyClock(), tokens=0)
    assert bucket.acquire(5) == 5.0


def test_async_bucket_names_asleep():
    """AsyncTokenBucket refuses a clock without ``asleep``, naming it."""
    with pytest.raises(TypeError, match=r"^clock must be a Clock with now\(\) and asleep\(\)"):
        AsyncTokenBucket(CONFIG, clock=SyncOnlyClock())


def test_async_bucket_names_the_async_backend_methods():
    """AsyncTokenBucket refuses a backend without ``aapply``/``aobserve``, naming them."""

    class SyncOnlyBackend:
        def apply(self, *args):
            raise AssertionError

        def observe(self, *args):
            raise AssertionError

    with pytest.raises(TypeError, match=r"^backend must be a Backend with aapply\(\) and aobserve"):
        AsyncTokenBucket(CONFIG, backend=SyncOnlyBackend())
