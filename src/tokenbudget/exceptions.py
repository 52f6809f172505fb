"""The errors of tokenbudget, in one tree.

.. code-block:: text

    Exception
    └── TokenBudgetError
        ├── CostExceedsCapacity (also ValueError)
        ├── AcquireTimeout (also TimeoutError)
        ├── ReservationError (also RuntimeError)
        └── BackendError (also ConnectionError)

Invalid arguments (a cost of zero, a NaN, a negative timeout, a config whose
numbers do not fit together) raise the builtin :class:`ValueError` or
:class:`TypeError` with a message naming the argument and its value.
"""

from __future__ import annotations


__all__ = [
    "AcquireTimeout",
    "BackendError",
    "CostExceedsCapacity",
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
