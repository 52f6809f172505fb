"""Keepa's response envelope, parsed and checked without I/O.

Every Keepa answer, errors and HTTP 429 included, carries the account's token
status: ``timestamp`` (server time, Unix ms), ``tokensLeft`` (may be negative
or, from a proxy, fractional), ``refillIn`` (ms to the next refill step),
``refillRate`` (tokens per minute), ``tokenFlowReduction``, ``tokensConsumed``
(what this call cost) and on failure an ``error`` object. :func:`parse_envelope`
turns any decoded JSON into an :class:`Envelope` or raises
:class:`KeepaProtocolError`, never another exception: the client syncs its
bucket from every envelope it can read and treats anything else as a bad body.

The parser itself is shared with the ``keepa`` dialect of
:mod:`tokenbudget.http` (``tokenbudget.http._keepa_envelope``, importable
without httpx); this module gives it Keepa's error and :class:`TokenStatus`.

Answers to concurrent requests can arrive out of order. :meth:`Envelope.newer_than`
orders envelopes by server time, and within one millisecond by balance (spending
only lowers it between two refill steps), so an older envelope never rolls the
bucket back.
"""

from __future__ import annotations

import attrs

from tokenbudget.http import _keepa_envelope as _shared
from tokenbudget.http._keepa_envelope import ErrorInfo, parse_error

from .errors import KeepaProtocolError
from .models.products import TokenStatus


__all__ = ["Envelope", "ErrorInfo", "decode_body", "parse_envelope", "parse_error"]


@attrs.frozen
class Envelope(_shared.Envelope):
    """The token status and cost that come with every Keepa answer.

    Attributes:
        timestamp_ms: The server's time of the answer, Unix milliseconds.
        tokens_left: The account's balance after the request (negative in debt).
        refill_in: Seconds until the next refill step.
        refill_rate: Tokens added per minute (0 when Keepa reports none).
        token_flow_reduction: Keepa's ``tokenFlowReduction`` (0 when absent).
        tokens_consumed: What the request cost, or None when the answer does not say.
        error: The ``error`` object of a failed answer, or None.

    .. versionadded:: 0.1.0
    """

    def status(self) -> TokenStatus:
        """The :class:`TokenStatus` this envelope reports."""
        return TokenStatus(
            tokens_left=self.tokens_left,
            refill_in=self.refill_in,
            refill_rate=self.refill_rate,
            token_flow_reduction=self.token_flow_reduction,
            timestamp=self.timestamp,
        )


def decode_body(content: bytes) -> object:
    """Decode a body as JSON.

    Raises:
        KeepaProtocolError: It is not UTF-8 JSON (the message quotes no more
            than its start).
    """
    return _shared.decode_body(content, error=KeepaProtocolError)


def parse_envelope(body: object) -> Envelope:
    """Read the envelope of a decoded Keepa answer.

    ``timestamp``, ``tokensLeft``, ``refillIn`` and ``refillRate`` are
    required; ``tokenFlowReduction``, ``tokensConsumed`` and ``error`` are
    optional.

    Raises:
        KeepaProtocolError: *body* is not an object, or a field is missing,
            not a number, not finite or out of range.
    """
    return _shared.parse_envelope(body, error=KeepaProtocolError, cls=Envelope)
