"""What an answer says about the quota: :class:`Limit` and :class:`QuotaReport`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

import attrs


__all__ = ["EMPTY", "Kind", "Limit", "QuotaReport"]

#: What a refusal asks of the client: wait and retry, give up on this request
#: (it can never fit), or stop using the key (billing, spend cap).
Kind = Literal["wait", "too_large", "terminal"]
_KINDS: Final = (None, "wait", "too_large", "terminal")


def _optional_number(name: str, value: float | None, *, minimum: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Limit.{name} must be a number or None, got {value!r}")
    number = float(value)
    if math.isnan(number) or (minimum is not None and number < minimum):
        raise ValueError(f"Limit.{name} must be a number >= {minimum}, got {value!r}")
    return number


#: The frozen empty mapping, shared (nothing can change it).
_EMPTY_MAP: Final[Mapping[str, float]] = MappingProxyType({})


def _frozen_map(value: Mapping[str, float]) -> Mapping[str, float]:
    return _EMPTY_MAP if type(value) is dict and not value else MappingProxyType(dict(value))


def _frozen_limits(value: Mapping[str, Limit]) -> Mapping[str, Limit]:
    if type(value) is dict and not value:
        return _EMPTY_MAP  # type: ignore[return-value]
    return MappingProxyType(dict(value))


#: The numeric fields of a Limit and their least values (remaining: any finite number).
_LIMIT_FIELDS: Final = (
    ("limit", 0.0),
    ("remaining", -math.inf),
    ("reset", 0.0),
    ("window", 0.0),
    ("step", 0.0),
    ("rounding", 0.0),
)


@attrs.frozen
class Limit:
    """One limit of a quota, as one answer reports it.

    Attributes:
        limit: The most the quota holds (a window's allowance: 5,000 requests
            an hour, 30,000 tokens a minute), or None when the answer does not say.
        remaining: What is left of it now, or None when the answer does not say
            (a policy announced without its current state). Never more than the
            server's field says; negative only where the server reports a debt (Keepa).
        reset: Seconds from the answer until the quota is whole again (or, for a
            stepped refill, until its next step), measured against the answer's
            ``Date``; 0 when the server's instant already lies before it; None
            when the answer does not say.
        window: Seconds in which a whole *limit* comes back (60 for a
            per-minute limit, 3,600 for GitHub's hourly one), or None when
            neither the answer nor the dialect knows it.
        step: None when the quota refills continuously (OpenAI, Anthropic,
            Shopify); else the seconds between the steps in which it comes back
            (GitHub's window: 3,600; Keepa: 60).
        unit: What the limit counts (``"requests"``, ``"tokens"``, ``"points"``,
            or an IETF ``qu`` such as ``"content-bytes"``).
        rounding: None when *remaining* is exact; else the server rounds it to the
            nearest multiple of this many units (Anthropic's token figures: 1,000),
            so that what is truly left may be up to half of it less
            (:attr:`least_remaining`).

    A bucket mirroring the limit is ``BucketConfig(limit, Rate(limit, window),
    refill_step=step)``.

    .. versionadded:: 0.1.0
    """

    limit: float | None = attrs.field()
    remaining: float | None = attrs.field()
    reset: float | None = attrs.field()
    window: float | None = attrs.field(default=None, kw_only=True)
    step: float | None = attrs.field(default=None, kw_only=True)
    unit: str = attrs.field(default="requests", kw_only=True)
    rounding: float | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        limit, remaining, reset = self.limit, self.remaining, self.reset
        if (
            (limit is None or (type(limit) is float and 0.0 <= limit < math.inf))
            and (
                remaining is None or (type(remaining) is float and -math.inf < remaining < math.inf)
            )
            and (reset is None or (type(reset) is float and 0.0 <= reset < math.inf))
            and self.step is None
            and self.rounding is None
            and (
                self.window is None or (type(self.window) is float and 0.0 < self.window < math.inf)
            )
        ):
            return  # the usual answer's figures: nothing to convert or to refuse (NaN fails <)
        for name, minimum in _LIMIT_FIELDS:
            value = getattr(self, name)
            if value is None or (
                type(value) is float and minimum <= value < math.inf and value == value  # noqa: PLR0124
            ):
                continue  # the common case, checked at no cost
            value = _optional_number(name, value, minimum=minimum if name != "remaining" else None)
            if value is not None and math.isinf(value) and name != "limit":
                raise ValueError(f"Limit.{name} must be finite, got {value!r}")
            object.__setattr__(self, name, value)
        if self.window == 0.0 or self.step == 0.0 or self.rounding == 0.0:
            raise ValueError(
                f"Limit.window, Limit.step and Limit.rounding must be > 0, got {self!r}"
            )

    @property
    def least_remaining(self) -> float | None:
        """The least that may truly be left, *remaining* less half its :attr:`rounding`.

        *remaining* itself when it is exact (or None); never below zero for the
        rounding's sake. What a bucket mirroring the limit may count on.

        >>> from tokenbudget.http import Limit
        >>> Limit(80000, 80000, 0.0, rounding=1000).least_remaining
        79500.0

        .. versionadded:: 0.1.0
        """
        remaining = self.remaining
        if remaining is None or self.rounding is None or remaining <= 0.0:
            return remaining
        least = remaining - self.rounding / 2
        return least if least > 0.0 else 0.0

    @property
    def exhausted(self) -> bool:
        """Whether the answer reports nothing left (``remaining <= 0``)."""
        return self.remaining is not None and self.remaining <= 0


@attrs.frozen(eq=False)
class QuotaReport:
    """Everything one HTTP answer says about its quota, in one dialect-free value.

    Attributes:
        limits: Limit name (``"requests"``, ``"tokens"``, ``"core"``, an IETF
            policy name) to :class:`Limit`; empty when the answer reports none.
        retry_after: Seconds the server asks the client to wait before the next
            request (``retry-after-ms``, then ``Retry-After``, which take
            precedence over every reset; for a *wait* refusal that names no time,
            the latest reset among the exhausted limits), or None.
        cost: The true cost of this request, per limit name, where the answer
            reports it (``usage`` of an LLM answer, GraphQL ``rateLimit.cost``,
            Shopify ``actualQueryCost``, Keepa ``tokensConsumed``); empty when
            it does not. Settle the booking with it.
        kind: None for an answer that is not a quota refusal; ``"wait"`` (retry
            after *retry_after*), ``"too_large"`` (this request can never fit:
            raise :class:`~tokenbudget.http.RequestTooLarge`) or ``"terminal"``
            (billing, spend cap: raise :class:`~tokenbudget.http.QuotaExhausted`,
            never retry).
        requested: What the server says the request asked for, per limit name
            (Shopify ``requestedQueryCost``, the ``Requested N`` of OpenAI's
            refusals), or empty.
        allowed: The most the server admits for one request, per limit name,
            where a *too_large* refusal says it (Shopify ``maxCost``, the
            ``Limit N`` of OpenAI's "Request too large"), or empty.
        as_of: The server's time of the answer, Unix seconds (its ``Date``, or
            Keepa's ``timestamp``), or None. Use it to order answers that
            overtake each other.
        message: The server's own words for a refusal (at most 500 characters),
            or ``""``.

    .. versionadded:: 0.1.0
    """

    limits: Mapping[str, Limit] = attrs.field(factory=dict, converter=_frozen_limits)
    retry_after: float | None = attrs.field(default=None)
    cost: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)
    kind: Kind | None = attrs.field(default=None)
    requested: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)
    allowed: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_map)
    as_of: float | None = attrs.field(default=None)
    message: str = attrs.field(default="")

    def __attrs_post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"QuotaReport.kind must be one of {_KINDS}, got {self.kind!r}")
        if self.retry_after is not None and not (
            math.isfinite(self.retry_after) and self.retry_after >= 0
        ):
            raise ValueError(
                f"QuotaReport.retry_after must be a finite number >= 0, got {self.retry_after!r}"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuotaReport):
            return NotImplemented
        return (
            dict(self.limits) == dict(other.limits)
            and self.retry_after == other.retry_after
            and dict(self.cost) == dict(other.cost)
            and self.kind == other.kind
            and dict(self.requested) == dict(other.requested)
            and dict(self.allowed) == dict(other.allowed)
            and self.as_of == other.as_of
            and self.message == other.message
        )

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.limits.items())), self.retry_after, self.kind))


#: The report of an answer that says nothing about its quota.
EMPTY: Final = QuotaReport()
