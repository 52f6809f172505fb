"""The errors of tokenbudget, in one tree.

.. code-block:: text

    Exception
    └── TokenBudgetError
        ├── CostExceedsCapacity (also ValueError)
        │   └── RequestTooLarge      an HTTP request the server's quota can never admit
        ├── AcquireTimeout (also TimeoutError)
        ├── ReservationError (also RuntimeError)
        ├── BackendError (also ConnectionError)
        ├── RateLimited              an HTTP 429 "wait", still refused after the retries
        └── QuotaExhausted           an HTTP answer that no wait cures (billing, spend cap)

The three HTTP errors are raised by :mod:`tokenbudget.http`'s transports and
are also importable from there.

Invalid arguments (a cost of zero, a NaN, a negative timeout, a config whose
numbers do not fit together) raise the builtin :class:`ValueError` or
:class:`TypeError` with a message naming the argument and its value.
"""

from __future__ import annotations


__all__ = [
    "AcquireTimeout",
    "BackendError",
    "CostExceedsCapacity",
    "QuotaExhausted",
    "RateLimited",
    "RequestTooLarge",
    "ReservationError",
    "TokenBudgetError",
]


class TokenBudgetError(Exception):
    """Base class of every error tokenbudget raises on purpose.

    .. versionadded:: 0.1.0
    """


class CostExceedsCapacity(TokenBudgetError, ValueError):  # noqa: N818 -- pinned public name
    """A cost the bucket can never admit: it is above :attr:`BucketConfig.max_cost`.

    Raised at once, from every entry point, before any time passes: waiting
    could never help.

    Attributes:
        cost: The cost asked for.
        max_cost: The largest cost the bucket's configuration admits.

    .. versionadded:: 0.1.0
    """

    def __init__(self, cost: float, max_cost: float) -> None:
        self.cost = cost
        self.max_cost = max_cost
        super().__init__(
            f"cost {cost!r} exceeds the largest admissible cost {max_cost!r} of this bucket"
        )

    def __reduce__(self) -> tuple[type[CostExceedsCapacity], tuple[float, float]]:
        return (type(self), (self.cost, self.max_cost))


class AcquireTimeout(TokenBudgetError, TimeoutError):  # noqa: N818 -- pinned public name
    """The wait for a cost would exceed the timeout; nothing was booked.

    Attributes:
        cost: The cost asked for.
        delay: The seconds the request would have had to wait when it was
            refused. A job run by a scheduler can come back exactly then.
        timeout: The timeout that was exceeded.

    .. versionadded:: 0.1.0
    """

    def __init__(self, cost: float, delay: float, timeout: float) -> None:
        self.cost = cost
        self.delay = delay
        self.timeout = timeout
        super().__init__(
            f"cost {cost!r} would wait {delay:.6g} s, more than the timeout of {timeout!r} s"
        )

    def __reduce__(self) -> tuple[type[AcquireTimeout], tuple[float, float, float]]:
        return (type(self), (self.cost, self.delay, self.timeout))


class ReservationError(TokenBudgetError, RuntimeError):
    """A reservation was used in a way its state does not allow (settling a cancelled one).

    .. versionadded:: 0.1.0
    """


class BackendError(TokenBudgetError, ConnectionError):
    """A shared backend (SQLite, Redis) could not carry out an operation.

    Attributes:
        backend: The name of the backend (``"redis"``, ``"sqlite"``).

    .. versionadded:: 0.1.0
    """

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        super().__init__(f"{backend} backend: {message}")

    def __reduce__(self) -> tuple[type[BackendError], tuple[str, str]]:
        msg = str(self).split(": ", 1)[1]
        return (type(self), (self.backend, msg))


class RequestTooLarge(CostExceedsCapacity):
    """An HTTP request larger than the server's whole quota: it can never be served.

    OpenAI's "Request too large" 429, Shopify's ``MAX_COST_EXCEEDED``, or a
    request whose estimated cost is above a bucket's capacity. Raised at once,
    never retried: split the request or shrink it.

    Attributes:
        cost: What the request costs (the server's figure when it says one,
            else the estimate), or NaN when nobody knows.
        max_cost: The most the quota admits at once, or NaN when not known.
        limit: The name of the limit it exceeds (``"tokens"``), or None.
        message: The server's own words, or ``""``.
        status: The HTTP status of the answer, or None (refused before sending).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        cost: float,
        max_cost: float,
        *,
        limit: str | None = None,
        message: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(cost, max_cost)
        self.limit = limit
        self.message = message
        self.status = status
        what = f"limit {limit!r}" if limit else "the quota"
        text = f"request of cost {cost!r} exceeds the most {what} ever admits ({max_cost!r})"
        if message:
            text = f"{text}: {message}"
        self.args = (text,)

    def __reduce__(self) -> tuple[object, ...]:  # type: ignore[override]
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class RateLimited(TokenBudgetError):  # noqa: N818 -- pinned public name
    """An HTTP 429 of the *wait* kind, still refused after the transport's bounded retries.

    Attributes:
        retry_after: Seconds the server asked to wait (``Retry-After``, or
            the reset of the exhausted limit), or None when it did not say.
        status: The HTTP status of the last answer (429, or 403 for GitHub's
            secondary limits).
        attempts: How many times the request was sent.
        message: The server's own words, or ``""``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        retry_after: float | None,
        *,
        status: int = 429,
        attempts: int = 1,
        message: str = "",
    ) -> None:
        self.retry_after = retry_after
        self.status = status
        self.attempts = attempts
        self.message = message
        wait = "no retry time given" if retry_after is None else f"retry after {retry_after:g} s"
        text = f"HTTP {status}: rate limited after {attempts} attempt(s), {wait}"
        super().__init__(f"{text}: {message}" if message else text)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class QuotaExhausted(TokenBudgetError):  # noqa: N818 -- pinned public name
    """An HTTP answer that no waiting cures: billing, a spend cap, a monthly quota.

    OpenAI's ``insufficient_quota``, Anthropic's spend-limit 429. Never retried.

    Attributes:
        status: The HTTP status of the answer.
        code: The server's error code (``"insufficient_quota"``), or ``""``.
        message: The server's own words, or ``""``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str = "", *, status: int = 429, code: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        text = f"HTTP {status}: quota exhausted" + (f" ({code})" if code else "")
        super().__init__(f"{text}: {message}" if message else text)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(
    cls: type[TokenBudgetError], args: tuple[object, ...], state: dict[str, object]
) -> TokenBudgetError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err
