"""Validation of Rate, DeficitRule and BucketConfig; max_cost and required_balance."""

from __future__ import annotations

import math
import re

import pytest

from tokenbudget import BucketConfig, CostExceedsCapacity, DeficitRule, Rate


BAD_NUMBERS = [0, -1, -0.5, math.nan, math.inf, -math.inf]


def re_value(value: float) -> str:
    """A regex matching the repr of *value* as a float in a message."""
    return re.escape(repr(float(value)))


def _config(**kwargs: object) -> BucketConfig:
    args: dict[str, object] = {"capacity": 300, "refill": Rate.per_minute(5)}
    args.update(kwargs)
    return BucketConfig(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_rate_tokens_must_be_finite_positive(value):
    """Rate.tokens <= 0, NaN or infinite raises ValueError naming the field and value."""
    with pytest.raises(ValueError, match=r"Rate\.tokens.*" + re_value(value)):
        Rate(value)


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_rate_per_seconds_must_be_finite_positive(value):
    """Rate.per_seconds <= 0, NaN or infinite raises ValueError naming the field and value."""
    with pytest.raises(ValueError, match=r"Rate\.per_seconds.*" + re_value(value)):
        Rate(1, value)


@pytest.mark.parametrize("value", ["5", None, True])
def test_rate_rejects_non_numbers(value):
    """A Rate of a non-number raises TypeError naming the field."""
    with pytest.raises(TypeError, match=r"Rate\.tokens"):
        Rate(value)  # type: ignore[arg-type]


def test_rate_constructors():
    """per_second, per_minute and Rate(tokens, per_seconds) give tokens per second."""
    assert Rate.per_second(3).tokens_per_second == 3.0
    assert Rate.per_minute(5).tokens_per_second == pytest.approx(5 / 60)
    assert Rate(300, per_seconds=3600).tokens_per_second == pytest.approx(5 / 60)


@pytest.mark.parametrize("field", ["capacity", "burst_threshold"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_config_positive_fields(field, value):
    """capacity and burst_threshold <= 0, NaN or infinite raise ValueError naming field and value."""
    with pytest.raises(ValueError, match=field + ".*" + re_value(value)):
        _config(**{field: value})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1])
def test_config_min_threshold_finite_nonnegative(value):
    """min_threshold NaN, infinite or negative raises ValueError naming field and value."""
    with pytest.raises(ValueError, match="min_threshold.*" + re_value(value)):
        _config(burst_threshold=40, min_threshold=value)


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_config_refill_step_finite_positive(value):
    """refill_step <= 0, NaN or infinite raises ValueError naming field and value."""
    with pytest.raises(ValueError, match="refill_step.*" + re_value(value)):
        _config(refill_step=value)


def test_config_capacity_type():
    """A non-number capacity raises TypeError naming it."""
    with pytest.raises(TypeError, match="capacity"):
        _config(capacity="300")


def test_config_refill_must_be_rate():
    """refill must be a Rate, not a bare number."""
    with pytest.raises(TypeError, match="refill"):
        _config(refill=5)


def test_burst_above_capacity():
    """burst_threshold > capacity raises ValueError naming both."""
    with pytest.raises(ValueError, match=r"burst_threshold 301\.0 must not exceed capacity 300\.0"):
        _config(burst_threshold=301)


def test_min_above_burst():
    """min_threshold > burst_threshold raises ValueError naming both."""
    with pytest.raises(ValueError, match=r"min_threshold 41\.0 must not exceed burst_threshold 40"):
        _config(burst_threshold=40, min_threshold=41)


@pytest.mark.parametrize("value", [-1, -0.001, math.nan])
def test_negative_deficit(value):
    """A negative or NaN max_deficit raises ValueError naming the field and value."""
    with pytest.raises(ValueError, match="max_deficit.*" + re_value(value)):
        DeficitRule.bounded(value)
    with pytest.raises(ValueError, match="max_deficit.*" + re_value(value)):
        DeficitRule.while_positive(value)


def test_infinite_deficit_only_while_positive():
    """An infinite deficit is allowed only for while_positive."""
    with pytest.raises(ValueError, match=r"max_deficit.*inf"):
        DeficitRule.bounded(math.inf)
    assert DeficitRule.while_positive(math.inf).max_deficit == math.inf


def test_deficit_rule_unknown_kind():
    """An unknown rule kind raises ValueError naming it."""
    with pytest.raises(ValueError, match="'lenient'"):
        DeficitRule("lenient")  # type: ignore[arg-type]


def test_while_positive_needs_positive_min_threshold():
    """while_positive with min_threshold=0 is rejected with a message saying why."""
    with pytest.raises(ValueError, match=r"while_positive.*positive.*min_threshold > 0, got 0\.0"):
        _config(burst_threshold=40, deficit=DeficitRule.while_positive())


def test_defaults():
    """burst_threshold defaults to capacity, min_threshold to 0, the rule to none()."""
    config = _config()
    assert config.burst_threshold == 300.0
    assert config.min_threshold == 0.0
    assert config.deficit == DeficitRule.none()
    assert config.max_deficit == 0.0


def test_config_is_immutable():
    """A BucketConfig cannot be changed after construction."""
    config = _config()
    with pytest.raises(AttributeError):
        config.capacity = 10  # type: ignore[misc]


def test_max_cost_none():
    """With none(), max_cost is capacity minus min_threshold."""
    assert _config(burst_threshold=40, min_threshold=1).max_cost == 299.0


def test_max_cost_while_positive_default():
    """With while_positive(), max_deficit is one bucket, so max_cost is twice the capacity."""
    config = _config(burst_threshold=40, min_threshold=1, deficit=DeficitRule.while_positive())
    assert config.max_deficit == 300.0
    assert config.max_cost == 600.0


def test_max_cost_while_positive_infinite():
    """With an infinite deficit, max_cost is infinite."""
    config = _config(min_threshold=1, deficit=DeficitRule.while_positive(math.inf))
    assert config.max_cost == math.inf


def test_max_cost_bounded():
    """With bounded(d), max_cost is capacity + d (m does not limit spending)."""
    config = _config(burst_threshold=40, min_threshold=10, deficit=DeficitRule.bounded(50))
    assert config.max_cost == 350.0


def test_no_cost_fits():
    """A strict config whose min_threshold equals its capacity admits nothing: rejected."""
    with pytest.raises(ValueError, match="no cost fits"):
        _config(capacity=10, min_threshold=10)


@pytest.mark.parametrize(
    ("rule", "cost", "required"),
    [
        (DeficitRule.none(), 25, 26.0),
        (DeficitRule.none(), 100, 101.0),
        (DeficitRule.while_positive(), 100, 1.0),
        (DeficitRule.while_positive(), 450, 150.0),
        (DeficitRule.while_positive(50), 30, 1.0),
        (DeficitRule.bounded(50), 30, -20.0),
        (DeficitRule.bounded(50), 100, 50.0),
    ],
)
def test_required_balance(rule, cost, required):
    """R(c) follows SPEC §2 for each rule (C=300, B=40, m=1)."""
    config = _config(burst_threshold=40, min_threshold=1, deficit=rule)
    assert config.required_balance(cost) == required


@pytest.mark.parametrize(
    "rule", [DeficitRule.none(), DeficitRule.while_positive(), DeficitRule.bounded(50)]
)
def test_required_balance_at_max_cost_is_capacity(rule):
    """R(max_cost) equals the capacity: max_cost is the largest admissible cost."""
    config = _config(burst_threshold=40, min_threshold=1, deficit=rule)
    assert config.required_balance(config.max_cost) == config.capacity


@pytest.mark.parametrize("cost", [0, -1, math.nan])
def test_check_cost_value_error(cost):
    """check_cost rejects costs <= 0 and NaN with ValueError naming the cost."""
    with pytest.raises(ValueError, match="cost") as info:
        _config().check_cost(cost)
    assert not isinstance(info.value, CostExceedsCapacity)


@pytest.mark.parametrize(
    "deficit", [DeficitRule.none(), DeficitRule.while_positive(math.inf)], ids=["none", "inf"]
)
def test_check_cost_infinite(deficit):
    """An infinite cost raises CostExceedsCapacity, even when the deficit is unbounded."""
    with pytest.raises(CostExceedsCapacity):
        _config(min_threshold=1, deficit=deficit).check_cost(math.inf)


def test_check_cost_above_max_cost():
    """A cost above max_cost raises CostExceedsCapacity carrying cost and max_cost."""
    with pytest.raises(CostExceedsCapacity) as info:
        _config(burst_threshold=40, min_threshold=1).check_cost(299.5)
    assert (info.value.cost, info.value.max_cost) == (299.5, 299.0)


def test_with_rate():
    """with_rate returns a copy with another refill rate."""
    config = _config()
    assert config.with_rate(Rate.per_second(1)).refill == Rate.per_second(1)
    assert config.refill == Rate.per_minute(5)


def test_in_flight_must_not_be_negative():
    """A negative in_flight window is a ValueError naming it."""
    with pytest.raises(ValueError, match="in_flight"):
        BucketConfig(10, Rate.per_second(1), in_flight=-1)


def test_in_flight_defaults_to_zero():
    """in_flight defaults to 0: nothing is kept in flight."""
    assert BucketConfig(10, Rate.per_second(1)).in_flight == 0.0
