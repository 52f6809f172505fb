"""Adaptive batch sizing: the largest batch a recharged bucket admits at once."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from ._config import BucketConfig, real_number
from ._core import covers
from .exceptions import CostExceedsCapacity


__all__ = ["AdaptiveBatchSizer"]

#: The largest batch :meth:`AdaptiveBatchSizer.size` proposes without a ``max_batch``: the
#: largest count a float holds exactly (only a tiny item cost reaches it).
_MAX_BATCH = 2**53


def _phases(value: float | Sequence[float]) -> tuple[float, ...]:
    raw = (value,) if isinstance(value, (int, float)) else tuple(value)
    if not raw:
        raise ValueError("item_cost must be a number or a non-empty sequence of numbers, got ()")
    phases = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise TypeError(f"item_cost must be a number or a sequence of numbers, got {value!r}")
        cost = float(item)
        if not math.isfinite(cost) or cost <= 0:
            raise ValueError(f"item_cost must be finite and > 0, got {value!r}")
        phases.append(cost)
    return tuple(phases)


def _check_count(name: str, value: object, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@attrs.define(init=False)
class AdaptiveBatchSizer:
    """Sizes batches so that every exit from recharge mode admits one at once.

    :meth:`size` returns the largest ``n <= max_batch`` whose cost the bucket
    admits at its burst threshold, so a bucket leaving recharge mode never
    waits twice: the livelock of the seed incident cannot happen.

    >>> from tokenbudget import AdaptiveBatchSizer, BucketConfig, Rate
    >>> config = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)
    >>> sizer = AdaptiveBatchSizer(5)
    >>> sizer.size(config)  # 7 x 5 + 1 <= 40
    7
    >>> sizer.observe(items=7, tokens=56)  # 8 per item: adopted at once
    >>> sizer.size(config)
    4

    A unit of work made of several calls (a cheap peek, then a dearer commit)
    is sized on all of them: pass the per-item cost of each call in order,
    ``AdaptiveBatchSizer([1, 5])``. The batch is then the largest one whose
    calls are all admitted one after the other from the burst threshold
    without entering recharge mode in between, so a unit started at the
    threshold can always finish.

    Args:
        item_cost: Estimated tokens per item (an upper bound), or the per-item
            cost of each call of a unit of work.
        min_batch: The smallest batch proposed; when even one item needs more
            than the burst threshold the sizer proposes it anyway (booking
            admits it later).
        max_batch: The largest batch proposed (required when the bucket's
            deficit is unbounded).
        min_item_cost: The estimate never falls below this (default: the
            given *item_cost*, so observations can only raise it and then let
            it return).
        recovery: The share of the gap to a lower observed cost closed per
            observation (``0 < recovery <= 1``).

    .. versionadded:: 0.1.0
    """

    _phases: tuple[float, ...]
    min_batch: int
    max_batch: int | None
    min_item_cost: float
    recovery: float
    _estimate: float

    def __init__(
        self,
        item_cost: float | Sequence[float],
        *,
        min_batch: int = 1,
        max_batch: int | None = None,
        min_item_cost: float | None = None,
        recovery: float = 0.2,
    ) -> None:
        phases = _phases(item_cost)
        total = math.fsum(phases)
        lo = _check_count("min_batch", min_batch)
        hi = _check_count("max_batch", max_batch, allow_none=True)
        assert lo is not None  # noqa: S101 -- _check_count returns an int here
        if hi is not None and hi < lo:
            raise ValueError(f"max_batch {hi!r} must be >= min_batch {lo!r}")
        if min_item_cost is None:
            floor = total
        else:
            floor = _phases(min_item_cost)[0]
        if isinstance(recovery, bool) or not isinstance(recovery, (int, float)):
            raise TypeError(f"recovery must be a number, got {recovery!r}")
        if not 0 < recovery <= 1:
            raise ValueError(f"recovery must lie in (0, 1], got {recovery!r}")
        self.__attrs_init__(phases, lo, hi, floor, float(recovery), total)

    @property
    def item_cost(self) -> float:
        """The current estimate of tokens per item (all calls of a unit together)."""
        return self._estimate

    def phase_costs(self, batch: int) -> tuple[float, ...]:
        """The estimated cost of each call of a unit of *batch* items."""
        scale = self._estimate / math.fsum(self._phases)
        return tuple(batch * p * scale for p in self._phases)

    def _admits_at_burst(self, config: BucketConfig, batch: int) -> bool:
        balance = config.burst_threshold
        costs = self.phase_costs(batch)
        last = len(costs) - 1
        for i, cost in enumerate(costs):
            if cost > config.max_cost:
                return False
            need = config.required_balance(cost)
            if not covers(balance, need):  # the admission rule's own tolerance
                return False
            balance -= cost
            if i < last and not covers(balance, config.min_threshold):
                return False  # the next call would wait for a whole recharge
        return True

    def size(self, config: BucketConfig) -> int:
        """The largest batch admitted at once at *config*'s burst threshold.

        Raises:
            CostExceedsCapacity: One item (or *min_batch* items) can never be admitted.
            ValueError: The deficit is unbounded and there is no *max_batch*.
        """
        for cost in self.phase_costs(self.min_batch):
            if cost > config.max_cost:
                raise CostExceedsCapacity(cost, config.max_cost)
        hi = self.max_batch
        if hi is None:
            if math.isinf(config.max_cost):
                raise ValueError(
                    "max_batch is required when the bucket's deficit is unbounded "
                    f"(max_deficit={config.max_deficit!r})"
                )
            per_item = config.max_cost / max(self.phase_costs(1))
            # A tiny item cost (5e-324) makes the quotient infinite: batches stop at 2**53.
            hi = max(1, math.floor(per_item)) if per_item < _MAX_BATCH else _MAX_BATCH
            # The division may have rounded down a whole item.
            if hi < _MAX_BATCH and self._admits_at_burst(config, hi + 1):
                hi += 1
        lo = 0  # invariant: lo admissible (0 trivially), hi + 1 not
        if self._admits_at_burst(config, hi):
            lo = hi
        else:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._admits_at_burst(config, mid):
                    lo = mid
                else:
                    hi = mid
        return max(self.min_batch, lo)

    def observe(self, items: int, tokens: float) -> None:
        """Learn from a finished unit: *items* items cost *tokens* in all.

        A higher cost per item is adopted at once (one breach never becomes
        a series); a lower one is followed gradually, never below
        *min_item_cost*.
        """
        if isinstance(items, bool) or not isinstance(items, int) or items < 1:
            raise ValueError(f"items must be an integer >= 1, got {items!r}")
        if isinstance(tokens, bool) or not isinstance(tokens, (int, float)):
            raise TypeError(f"tokens must be a number, got {tokens!r}")
        tokens = real_number("tokens", tokens)  # 10**400: infinite
        if not math.isfinite(tokens) or tokens < 0:
            raise ValueError(f"tokens must be finite and >= 0, got {tokens!r}")
        per_item = tokens / items
        if per_item >= self._estimate:
            self._estimate = per_item
        else:
            lowered = self._estimate - self.recovery * (self._estimate - per_item)
            # Never below what was just observed, even by a rounding error.
            self._estimate = max(self.min_item_cost, per_item, lowered)
