"""Immutable, validated configuration: `Rate`, `DeficitRule`, `BucketConfig`."""

from __future__ import annotations

import math
import numbers
from typing import Final, Literal

import attrs

from .exceptions import CostExceedsCapacity


__all__ = ["BucketConfig", "DeficitRule", "Rate"]

#: Codes of the deficit rules, used by the transition core and its Lua twin.
NONE: Final = 0
WHILE_POSITIVE: Final = 1
BOUNDED: Final = 2

DeficitKind = Literal["none", "while_positive", "bounded"]
_KIND_CODES: Final = {"none": NONE, "while_positive": WHILE_POSITIVE, "bounded": BOUNDED}


#: What a number argument may be, for messages.
REAL_TYPES: Final = (
    "a real number (int, float, fractions.Fraction, decimal.Decimal, any numbers.Real)"
)


def real_number(name: str, value: object) -> float:
    """*value* as a float when it is a real number (not a bool), else a ``TypeError`` naming *name*.

    Accepted: every :class:`numbers.Real` (int, float, :class:`~fractions.Fraction`,
    NumPy scalars) and :class:`~decimal.Decimal` (a :class:`numbers.Number` that
    is not complex). NaN and infinities are returned as such: the caller decides;
    so is a real too large for a float (``10**400``, a huge ``Fraction``): it is
    returned as the infinity of its sign, as ``float(Decimal("1e400"))`` is.
    """
    if type(value) is float:
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Number)
        or (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real))
    ):
        raise TypeError(f"{name} must be {REAL_TYPES}, got {value!r} ({type(value).__name__})")
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be {REAL_TYPES}, got {value!r} ({exc})") from None


def _to_float(value: object) -> object:
    """A real number other than an int as a float (a ``Decimal`` rate computes as floats do).

    Anything else is passed on as is, for the validator to refuse with its message.
    """
    if isinstance(value, bool) or type(value) in (int, float):
        return value
    try:
        return real_number("value", value)
    except (TypeError, ValueError):
        return value


def _finite_positive(name: str, value: object) -> float:
    value = real_number(name, value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _finite(name: str, value: object) -> float:
    value = real_number(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


@attrs.frozen
class Rate:
    """A refill rate: *tokens* every *per_seconds* seconds.

    >>> Rate.per_minute(5).tokens_per_second
    0.08333333333333333
    >>> Rate(300, per_seconds=3600) == Rate.per_minute(5)
    False

    Two rates compare equal only when written the same way; compare
    :attr:`tokens_per_second` to compare speeds. Any real number is accepted
    (a ``Decimal`` or ``Fraction`` is kept as a
    float).

    .. versionchanged:: 0.1.0
       A ``Decimal`` or ``Fraction`` is converted to a float at construction.

    .. versionadded:: 0.1.0
    """

    tokens: float = attrs.field(converter=_to_float)
    per_seconds: float = attrs.field(default=1.0, converter=_to_float)

    @tokens.validator
    def _check_tokens(self, _: attrs.Attribute[float], value: float) -> None:
        _finite_positive("Rate.tokens", value)

    @per_seconds.validator
    def _check_per_seconds(self, _: attrs.Attribute[float], value: float) -> None:
        _finite_positive("Rate.per_seconds", value)

    @classmethod
    def per_second(cls, tokens: float) -> Rate:
        """*tokens* every second."""
        return cls(tokens, 1.0)

    @classmethod
    def per_minute(cls, tokens: float) -> Rate:
        """*tokens* every minute (Keepa's ``refillRate``)."""
        return cls(tokens, 60.0)

    @property
    def tokens_per_second(self) -> float:
        """The rate in tokens per second."""
        return self.tokens / self.per_seconds


@attrs.frozen
class DeficitRule:
    """Decides the balance a cost needs before it is admitted: its *required balance*.

    Build one with :meth:`none`, :meth:`while_positive` or :meth:`bounded`.

    .. versionadded:: 0.1.0
    """

    kind: DeficitKind
    max_deficit: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind not in _KIND_CODES:
            raise ValueError(
                f"DeficitRule.kind must be one of {sorted(_KIND_CODES)}, got {self.kind!r}"
            )
        d = self.max_deficit
        if d is None:
            if self.kind == "bounded":
                raise ValueError("DeficitRule.bounded needs a max_deficit, got None")
            return
        d = real_number("max_deficit", d)
        object.__setattr__(self, "max_deficit", d)
        if math.isnan(d) or d < 0:
            raise ValueError(f"max_deficit must be >= 0, got {d!r}")
        if math.isinf(d) and self.kind != "while_positive":
            raise ValueError(f"max_deficit may be infinite only with while_positive, got {d!r}")
        if self.kind == "none" and d != 0:
            raise ValueError(f"DeficitRule.none has no deficit, got max_deficit={d!r}")

    @classmethod
    def none(cls) -> DeficitRule:
        """Strict: a cost *c* needs ``c + min_threshold``; the balance never drops below it."""
        return cls("none", None)

    @classmethod
    def while_positive(cls, max_deficit: float | None = None) -> DeficitRule:
        """Keepa's rule: a request runs whenever the balance is at least ``min_threshold``.

        The debt a request leaves may be at most *max_deficit* (``None``: one
        full bucket; :data:`math.inf`: unbounded, and then the batch sizer
        needs a ``max_batch``). The required balance is
        ``max(min_threshold, c - max_deficit)``; the config needs
        ``min_threshold > 0``.
        """
        return cls("while_positive", None if max_deficit is None else float(max_deficit))

    @classmethod
    def bounded(cls, max_deficit: float) -> DeficitRule:
        """The balance may go down to ``-max_deficit``: a cost *c* needs ``c - max_deficit``."""
        return cls("bounded", float(max_deficit))


def _number_hint(value: object) -> str:
    """*value* as it would be written inside a constructor call, else a placeholder."""
    if type(value) in (int, float):
        return repr(value)
    return "N"


def _check_refill(_: object, __: attrs.Attribute[Rate], value: object) -> None:
    if not isinstance(value, Rate):
        n = _number_hint(value)
        raise TypeError(
            f"refill must be a Rate, got {value!r} ({type(value).__name__}): build one with "
            f"Rate.per_minute({n}), Rate.per_second({n}) or Rate(tokens, per_seconds)"
        )


def _check_deficit(_: object, __: attrs.Attribute[DeficitRule], value: object) -> None:
    if not isinstance(value, DeficitRule):
        name = str(value).replace("-", "_") if isinstance(value, str) else None
        if name == "bounded":
            hint = "DeficitRule.bounded(max_deficit)"
        elif name in _KIND_CODES:
            hint = f"DeficitRule.{name}()"
        else:
            hint = (
                "DeficitRule.none(), DeficitRule.while_positive() or "
                "DeficitRule.bounded(max_deficit)"
            )
        raise TypeError(
            f"deficit must be a DeficitRule, got {value!r} ({type(value).__name__}): "
            f"build one with {hint}"
        )


def _default_burst(self: BucketConfig) -> float:
    return self.capacity


def _window(value: object) -> float:
    w = _finite("in_flight", value)
    if w < 0:
        raise ValueError(f"in_flight must be >= 0 seconds, got {w!r}")
    return w


@attrs.frozen
class BucketConfig:
    """The immutable parameters of one bucket, validated at construction.

    >>> cfg = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)
    >>> cfg.required_balance(25), cfg.max_cost
    (26.0, 299.0)

    Args:
        capacity: The most tokens the bucket holds (> 0).
        refill: The refill :class:`Rate`.
        burst_threshold: The balance at which recharge mode ends
            (``0 < burst_threshold <= capacity``, default: *capacity*).
        min_threshold: A debit that leaves the balance below it enters
            recharge mode (``0 <= min_threshold <= burst_threshold``).
        deficit: The :class:`DeficitRule` (default :meth:`DeficitRule.none`).
        refill_step: ``None`` for a continuous refill, or the seconds between
            refill steps when the server adds its refill in steps (Keepa: 60).
            Each step adds ``refill.tokens_per_second * refill_step`` tokens.
        in_flight: Seconds an admitted booking counts as *in flight* after its
            time, until it is settled or cancelled (default 0: never). A
            :meth:`~tokenbudget.TokenBucket.sync` subtracts the bookings in
            flight from the server's figure, as requests that other processes
            (or this one) admitted and whose answers are still on the way, so
            the server has not counted them yet. Set it to the longest time a
            request may take (Keepa: the client's request timeout) when several
            processes share one account. Every admission is then recorded until
            its window ends, so keep it off for plain rate limiting. A clock
            reading earlier than the bucket's latest by at most this window is
            taken as one that raced another process's (the origin stays), not
            as the clock stepping back (see the semantics page).

    .. versionchanged:: 0.1.0
       The *in_flight* window.

    .. versionadded:: 0.1.0
    """

    capacity: float = attrs.field()
    refill: Rate = attrs.field(validator=_check_refill)
    burst_threshold: float = attrs.field(
        kw_only=True, default=attrs.Factory(_default_burst, takes_self=True)
    )
    min_threshold: float = attrs.field(kw_only=True, default=0.0)
    deficit: DeficitRule = attrs.field(
        kw_only=True,
        factory=DeficitRule.none,
        validator=_check_deficit,
    )
    refill_step: float | None = attrs.field(kw_only=True, default=None)
    in_flight: float = attrs.field(kw_only=True, default=0.0)

    #: Resolved, derived numbers (set in ``__attrs_post_init__``).
    max_deficit: float = attrs.field(init=False, repr=False, eq=False)
    max_cost: float = attrs.field(init=False, repr=False, eq=False)
    deficit_code: int = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        c = _finite_positive("capacity", self.capacity)
        b = _finite_positive("burst_threshold", self.burst_threshold)
        m = _finite("min_threshold", self.min_threshold)
        if b > c:
            raise ValueError(f"burst_threshold {b!r} must not exceed capacity {c!r}")
        if m < 0:
            raise ValueError(f"min_threshold must be >= 0, got {m!r}")
        if m > b:
            raise ValueError(f"min_threshold {m!r} must not exceed burst_threshold {b!r}")
        if self.refill_step is not None:
            object.__setattr__(
                self, "refill_step", _finite_positive("refill_step", self.refill_step)
            )
        object.__setattr__(self, "in_flight", _window(self.in_flight))
        object.__setattr__(self, "capacity", c)
        object.__setattr__(self, "burst_threshold", b)
        object.__setattr__(self, "min_threshold", m)
        rule = self.deficit
        code = _KIND_CODES[rule.kind]
        if code == WHILE_POSITIVE and m <= 0:
            raise ValueError(
                "DeficitRule.while_positive admits a request only while the balance is positive: "
                f"it needs min_threshold > 0, got {m!r}"
            )
        if code == NONE:
            d = 0.0
        elif rule.max_deficit is None:
            d = c
        else:
            d = rule.max_deficit
        if code == NONE:
            max_cost = c - m
        else:
            max_cost = c + d
        if max_cost <= 0:
            raise ValueError(
                f"no cost fits: capacity {c!r} minus min_threshold {m!r} leaves nothing to spend"
            )
        object.__setattr__(self, "max_deficit", d)
        object.__setattr__(self, "max_cost", max_cost)
        object.__setattr__(self, "deficit_code", code)

    def required_balance(self, cost: float) -> float:
        """The balance a *cost* needs before it is admitted, ``R(cost)``."""
        code = self.deficit_code
        if code == NONE:
            return cost + self.min_threshold
        if code == WHILE_POSITIVE:
            return max(self.min_threshold, cost - self.max_deficit)
        return cost - self.max_deficit

    def check_cost(self, cost: float) -> float:
        """Return *cost* as a float, or raise if no bucket of this config could ever admit it.

        Raises:
            ValueError: *cost* is not a number > 0 (zero, negative, NaN).
            CostExceedsCapacity: *cost* is infinite or above :attr:`max_cost`.
        """
        cost = real_number("cost", cost)
        if math.isnan(cost) or cost <= 0:
            raise ValueError(f"cost must be a number > 0, got {cost!r}")
        if cost > self.max_cost or math.isinf(cost):
            raise CostExceedsCapacity(cost, self.max_cost)
        return cost

    def with_rate(self, refill: Rate) -> BucketConfig:
        """Return a copy with another refill rate."""
        return attrs.evolve(self, refill=refill)
