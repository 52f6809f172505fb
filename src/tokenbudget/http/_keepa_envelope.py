"""Keepa's response envelope, parsed and checked without I/O (shared by ``tokenbudget_keepa``).

Every Keepa answer, errors and HTTP 429 included, carries the account's token
status: ``timestamp`` (server time, Unix ms), ``tokensLeft`` (may be negative
or, from a proxy, fractional), ``refillIn`` (ms to the next refill step),
``refillRate`` (tokens per minute), ``tokenFlowReduction``, ``tokensConsumed``
(what this call cost) and on failure an ``error`` object. :func:`parse_envelope`
turns any decoded JSON into an :class:`Envelope` or raises the error class it
is given (:class:`EnvelopeError` by default; ``tokenbudget_keepa`` passes
its ``KeepaProtocolError``), never another exception: the Keepa client syncs
its bucket from every envelope it can read and treats anything else as a bad
body; the ``keepa`` dialect of :mod:`tokenbudget.http` reports it.

This module lives in ``tokenbudget.http`` so that both can import it without
``tokenbudget_keepa`` (which imports httpx).

Answers to concurrent requests can arrive out of order. :meth:`Envelope.newer_than`
orders envelopes by server time, and within one millisecond by balance (spending
only lowers it between two refill steps), so an older envelope never rolls the
bucket back.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs


__all__ = ["Envelope", "EnvelopeError", "ErrorInfo", "decode_body", "parse_envelope", "parse_error"]


class EnvelopeError(ValueError):
    """A Keepa answer whose envelope cannot be read (the default error of :func:`parse_envelope`).

    .. versionadded:: 0.1.0
    """


_E = TypeVar("_E", bound="Envelope")
_Error = type[Exception]

_UTC = dt.UTC
#: The largest timestamp accepted (year 9999, in Unix ms): later ones are garbage.
_MAX_TIMESTAMP_MS = 253_402_300_799_999
#: refillIn above this (one hour, in ms) is garbage: Keepa refills once a minute.
_MAX_REFILL_IN_MS = 3_600_000


@attrs.frozen
class ErrorInfo:
    """The ``error`` object of a failed answer (each part may be empty).

    .. versionadded:: 0.1.0
    """

    type: str
    message: str
    details: str

    def describe(self) -> str:
        """``type: message (details)``, leaving out the empty parts."""
        text = ": ".join(p for p in (self.type, self.message) if p)
        return f"{text} ({self.details})" if self.details else text


@attrs.frozen
class Envelope:
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

    timestamp_ms: int
    tokens_left: float
    refill_in: float
    refill_rate: float
    token_flow_reduction: float = 0.0
    tokens_consumed: float | None = None
    error: ErrorInfo | None = None

    @property
    def carries_token_figures(self) -> bool:
        """Whether it reports a real account: a refill rate above 0 and a server time.

        Some error answers (an HTTP 400) carry a *zeroed* envelope, ``tokensLeft``
        0 and ``refillRate`` 0: figures of no account, which must never replace
        the bucket's balance or the reported token status.
        """
        return self.refill_rate > 0 and self.timestamp_ms > 0

    @property
    def timestamp(self) -> dt.datetime:
        """The server's time of the answer, an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=_UTC)

    def newer_than(self, other: Envelope | None) -> bool:
        """Whether this envelope may update a bucket last synced from *other*.

        Later server time wins. Within the same millisecond a refill step may
        lie between the two (the later one then has the longer ``refillIn``);
        otherwise the lower balance is the later one (only spending changes a
        balance between two steps); an equal one is as new.
        """
        if other is None:
            return True
        if self.timestamp_ms != other.timestamp_ms:
            return self.timestamp_ms > other.timestamp_ms
        if self.refill_in != other.refill_in:
            return self.refill_in > other.refill_in
        return self.tokens_left <= other.tokens_left


def decode_body(content: bytes, *, error: _Error = EnvelopeError) -> object:
    """Decode a body as JSON.

    Raises:
        EnvelopeError: (or *error*) It is not UTF-8 JSON (the message
            quotes no more than its start).
    """
    try:
        decoded: object = json.loads(content)
    except (ValueError, RecursionError) as exc:
        start = content[:60].decode("utf-8", "replace")
        raise error(f"the answer is not JSON: {start!r}") from exc
    return decoded


def _number(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool,
    minimum: float | None = None,
    error: _Error = EnvelopeError,
) -> float | None:
    if name not in body or body[name] is None:
        if required:
            raise error(f"the envelope lacks {name!r}")
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"the envelope's {name!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise error(f"the envelope's {name!r} is out of range, got {value!r}") from None
    if not math.isfinite(number):
        raise error(f"the envelope's {name!r} must be finite, got {value!r}")
    if minimum is not None and number < minimum:
        raise error(f"the envelope's {name!r} must be >= {minimum:g}, got {value!r}")
    return number


def _required(
    body: Mapping[str, Any], name: str, *, minimum: float | None = None, error: _Error
) -> float:
    number = _number(body, name, required=True, minimum=minimum, error=error)
    if number is None:  # pragma: no cover -- _number raised
        raise error(f"the envelope lacks {name!r}")
    return number


def _error(value: object, error: _Error) -> ErrorInfo | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ErrorInfo("", value, "")
    if not isinstance(value, Mapping):
        raise error(f"the envelope's 'error' must be an object, got {value!r}")

    def text(key: str) -> str:
        part = value.get(key)
        return "" if part is None else str(part)[:500]

    return ErrorInfo(text("type"), text("message"), text("details"))


def parse_envelope(
    body: object,
    *,
    error: _Error = EnvelopeError,
    cls: type[_E] = Envelope,  # type: ignore[assignment]
) -> _E:
    """Read the envelope of a decoded Keepa answer.

    ``timestamp``, ``tokensLeft``, ``refillIn`` and ``refillRate`` are
    required; ``tokenFlowReduction``, ``tokensConsumed`` and ``error`` are
    optional.

    Args:
        body: The decoded JSON.
        error: The exception class to raise (called with the message).
        cls: The :class:`Envelope` (sub)class to build.

    Raises:
        EnvelopeError: (or *error*) *body* is not an object, or a field is
            missing, not a number, not finite or out of range.
    """
    if not isinstance(body, Mapping):
        raise error(f"the answer must be a JSON object, got {type(body).__name__}")
    timestamp = _required(body, "timestamp", minimum=0, error=error)
    if timestamp > _MAX_TIMESTAMP_MS:
        raise error(f"the envelope's 'timestamp' is out of range, got {timestamp!r}")
    tokens_left = _required(body, "tokensLeft", error=error)
    refill_in = _required(body, "refillIn", minimum=0, error=error)
    refill_rate = _required(body, "refillRate", minimum=0, error=error)
    if refill_in > _MAX_REFILL_IN_MS:
        raise error(f"the envelope's 'refillIn' is out of range, got {refill_in!r}")
    flow = _number(body, "tokenFlowReduction", required=False, error=error)
    consumed = _number(body, "tokensConsumed", required=False, minimum=0, error=error)
    return cls(
        timestamp_ms=int(timestamp),
        tokens_left=tokens_left,
        refill_in=refill_in / 1000.0,
        refill_rate=refill_rate,
        token_flow_reduction=0.0 if flow is None else flow,
        tokens_consumed=consumed,
        error=_error(body.get("error"), error),
    )


def parse_error(body: object) -> ErrorInfo | None:
    """The ``error`` object of a decoded answer, with or without an envelope; never raises.

    An HTTP 400 may carry only ``{"error": {...}}``: its ``type`` and ``message``
    are Keepa's word on what was wrong, wanted even where there is no envelope.
    Returns None when there is none, or none that can be read.
    """
    if not isinstance(body, Mapping):
        return None
    try:
        return _error(body.get("error"), EnvelopeError)
    except ValueError:  # EnvelopeError, or a part too long to print
        return None
