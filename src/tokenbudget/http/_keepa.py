"""The ``keepa`` dialect: the token status in the JSON envelope of every Keepa answer."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ._dialect import finish
from ._keepa_envelope import Envelope, parse_envelope, parse_error
from ._message import RequestInfo, ResponseInfo, warn_malformed
from ._report import Kind, Limit, QuotaReport


__all__ = ["KeepaDialect"]

#: Keepa keeps unused tokens for an hour: the balance holds at most 60 minutes of refill.
_HOUR = 3600.0
_STEP = 60.0


class KeepaDialect:
    """Keepa's body envelope (``tokensLeft``, ``refillIn``, ``refillRate``, ``tokensConsumed``).

    One limit, ``"tokens"``: ``Limit(60 x refillRate, tokensLeft, refillIn,
    window=3600, step=60)`` (a negative ``tokensLeft`` is the account's debt,
    reported as is); the cost is ``tokensConsumed``; ``as_of`` the envelope's
    ``timestamp``. The zeroed envelope of some error answers (``refillRate``
    0) reports no limit. A 429 waits until the refill steps bring the balance above
    zero; a 402 (the key has no access) is *terminal*. The envelope is read by
    the same parser as ``tokenbudget_keepa``'s client. The default estimate is
    one token a request: Keepa's costs depend on the endpoint and its options,
    which :class:`tokenbudget_keepa.KeepaClient` models in full.

    .. versionadded:: 0.1.0
    """

    name = "keepa"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        body = response.json()
        kind: Kind | None = "terminal" if response.status == 402 else None
        envelope: Envelope | None = None
        if body is not None or response.body:
            try:
                envelope = parse_envelope(body)
            except ValueError as exc:  # EnvelopeError, or an int too long to print
                warn_malformed(self.name, "envelope", str(exc))
        if envelope is None or not envelope.carries_token_figures:
            # No envelope, or the zeroed one of some error answers: figures of no account.
            error = parse_error(body) if envelope is None else envelope.error
            message = "" if error is None else error.describe()
            return finish(response, self.name, {}, kind=kind, message=message)
        rate = envelope.refill_rate
        limit = Limit(
            _HOUR / _STEP * rate if rate > 0 else None,
            envelope.tokens_left,
            envelope.refill_in,
            window=_HOUR,
            step=_STEP,
            unit="tokens",
        )
        wait = None
        if response.status == 429 and rate > 0:
            steps = max(1, math.ceil((1 - envelope.tokens_left) / rate))
            wait = envelope.refill_in + _STEP * (steps - 1)
        cost = {} if envelope.tokens_consumed is None else {"tokens": envelope.tokens_consumed}
        message = "" if envelope.error is None else envelope.error.describe()
        return finish(
            response,
            self.name,
            {"tokens": limit},
            cost=cost,
            kind=kind,
            retry_after=wait,
            as_of=envelope.timestamp_ms / 1000.0,
            message=message if kind or response.status >= 400 else "",
        )

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One token (see the class's note)."""
        del request, limits
        return {"tokens": 1.0}
