"""The errors of the Keepa client, in one tree under :class:`tokenbudget.TokenBudgetError`.

.. code-block:: text

    TokenBudgetError
    └── KeepaError
        ├── KeepaAuthError          402: the key has no access (never retried)
        ├── KeepaRequestError       400, 404, 405: the request was refused (never retried)
        ├── KeepaTokenError         429, still refused after the bounded retries
        ├── KeepaServerError        5xx, still failing after the bounded retries
        ├── KeepaTransportError     no answer (connection, timeout), after the bounded retries
        │                           (also ConnectionError)
        └── KeepaProtocolError      an answer that is not the JSON Keepa sends

No message, attribute or ``repr`` of these errors ever holds the API key: the
client builds them from the endpoint's path, the HTTP status and the error
object of Keepa's answer only.
"""

from __future__ import annotations

from tokenbudget import TokenBudgetError


__all__ = [
    "KeepaAuthError",
    "KeepaError",
    "KeepaProtocolError",
    "KeepaRequestError",
    "KeepaServerError",
    "KeepaTokenError",
    "KeepaTransportError",
]


class KeepaError(TokenBudgetError):
    """Base class of every error the Keepa client raises on purpose.

    Attributes:
        endpoint: The endpoint's path (``"/product"``), or None.
        status: The HTTP status of the last answer, or None (no answer).
        attempts: How many times the request was sent.
        error_type: The ``type`` of the ``error`` object Keepa answered with
            (``"invalidParameter"``), or None (no error object).
        error_message: Its ``message``, or None.
        error_details: Its ``details``, or None.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.1.0
       ``error_type``, ``error_message`` and ``error_details``.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        attempts: int = 1,
        error_type: str | None = None,
        error_message: str | None = None,
        error_details: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.attempts = attempts
        self.error_type = error_type
        self.error_message = error_message
        self.error_details = error_details

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type[KeepaError], message: str, state: dict[str, object]) -> KeepaError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class KeepaAuthError(KeepaError):
    """HTTP 402: the key was refused (no access, or no paid plan). Never retried.

    .. versionadded:: 0.1.0
    """


class KeepaRequestError(KeepaError):
    """HTTP 400, 404 or 405: Keepa refused the request as malformed. Never retried.

    .. versionadded:: 0.1.0
    """


class KeepaTokenError(KeepaError):
    """HTTP 429: still not enough tokens after the bounded retries.

    Another program spends the same account faster than its refill, or the
    account's refill rate dropped. The bucket was synced from every refusal.

    Also raised, before anything is sent, when the bucket would make a request
    wait longer than the client's ``MAX_WAIT`` (a day): the account reported a
    balance so deep in debt (or so absurd) that waiting it out is no answer.

    Attributes:
        tokens_left: The balance the last refusal (or the last answer) reported.
        refill_in: Seconds until the account's next refill, as last reported.
        wait: The seconds the bucket would have waited, when the client refused
            to wait that long; ``None`` after HTTP 429s.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = 429,
        attempts: int = 1,
        tokens_left: float | None = None,
        refill_in: float | None = None,
        wait: float | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        error_details: str | None = None,
    ) -> None:
        super().__init__(
            message,
            endpoint=endpoint,
            status=status,
            attempts=attempts,
            error_type=error_type,
            error_message=error_message,
            error_details=error_details,
        )
        self.tokens_left = tokens_left
        self.refill_in = refill_in
        self.wait = wait


class KeepaServerError(KeepaError):
    """HTTP 5xx: Keepa failed, still after the bounded retries with backoff.

    .. versionadded:: 0.1.0
    """


class KeepaTransportError(KeepaError, ConnectionError):
    """No answer at all (connection refused or reset, timeout), after the bounded retries.

    .. versionadded:: 0.1.0
    """


class KeepaProtocolError(KeepaError):
    """An answer that is not the JSON Keepa sends (not JSON, missing or mistyped fields).

    .. versionadded:: 0.1.0
    """
