"""The ``openai`` and ``groq`` dialects: ``x-ratelimit-{limit,remaining,reset}-*`` headers."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final, TypeAlias

from ._dialect import finish
from ._llm import DEFAULT_MAX_TOKENS, dig, max_output_tokens, prompt_tokens, stream_events
from ._message import (
    _FLOAT_MAX,
    MESSAGE_CHARS,
    RequestInfo,
    ResponseInfo,
    _decode_json,
    decimal,
    finite,
    http_date,
    warn_malformed,
)
from ._report import Kind, Limit, QuotaReport


__all__ = ["GroqDialect", "OpenAIDialect", "go_duration"]

#: Unit -> nanoseconds. A duration is summed exactly in integers (units of
#: 1e-29 s: nanoseconds times 20 fractional digits) and divided once, so that
#: "167.523205ms" is the float nearest 0.167523205, not one rounding off it.
_UNITS: Final = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_FRACTION_DIGITS: Final = 20
_SCALE: Final = 10 ** (9 + _FRACTION_DIGITS)
_PART = re.compile(r"([0-9]{0,20})(?:\.([0-9]{0,20}))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def go_duration(text: str) -> float | None:
    """A Go-style duration (``6m0s``, ``12ms``, ``172.799999ms``, ``1m26.4s``) in seconds, or None.

    >>> from tokenbudget.http._openai import go_duration
    >>> go_duration("1m26.4s"), go_duration("172.799999ms"), go_duration("soon")
    (86.4, 0.172799999, None)

    ``"0"`` is zero; a bare number without a unit is not a duration.

    .. versionadded:: 0.1.0
    """
    # The forms servers send ("12ms", "172.799999ms", "8s", "1m26.4s"), read at once: the
    # same exact sum over a power of ten (int / int: the float nearest it, as below).
    match = _USUAL_DURATION(text)
    if match is not None:
        minutes, whole, fraction, unit = match.groups()
        if fraction is None:
            fraction = ""
        if minutes is None:
            scale = len(fraction) + 3 if unit == "ms" else len(fraction)
            return int(whole + fraction) / _POWERS[scale]
        if unit == "s":
            scale = len(fraction)
            return (int(minutes) * 60 * _POWERS[scale] + int(whole + fraction)) / _POWERS[scale]
    return _summed_duration(text)


#: The usual forms of a Go duration, ``[M "m"] S ["." F] ("s" | "ms")``, in digits of at most 20.
_USUAL_DURATION: Final = re.compile(
    r"(?:([0-9]{1,20})m)?([0-9]{1,20})(?:\.([0-9]{1,20}))?(ms|s)"
).fullmatch
_POWERS: Final[tuple[int, ...]] = tuple(10**k for k in range(24))


def _summed_duration(text: str) -> float | None:
    """:func:`go_duration` of any text: its parts summed one by one."""
    text = text.strip()
    if text == "0":
        return 0.0
    if not text or len(text) > 100:
        return None
    total, pos = 0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            return None
        whole, fraction, unit = match.groups()
        fraction = fraction or ""
        if not whole and not fraction:
            return None  # a unit without a number ("ms", ".s")
        digits = int(whole + fraction)
        total += digits * _UNITS[unit] * 10 ** (_FRACTION_DIGITS - len(fraction))
        pos = match.end()
    return total / _SCALE  # int / int: the float nearest the exact sum


#: go_duration of the reset fields seen lately: a server repeats the same few (``1s``, ``6m0s``).
_cached_duration = functools.lru_cache(maxsize=512)(go_duration)


_TERMINAL_CODES: Final = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "access_terminated"}
)
_TRY_AGAIN = re.compile(r"try again in ((?:[0-9.]+(?:ns|us|\u00b5s|ms|s|m|h))+)", re.IGNORECASE)
_FIGURE = re.compile(r"\b(Limit|Used|Requested) ([0-9]{1,15})\b")
_GENERATING: Final = ("/chat/completions", "/completions", "/responses", "/messages")


def _error_object(body: object) -> tuple[str, str, str]:
    """(code, type, message) of an OpenAI-style ``{"error": {...}}`` body (or a flat one)."""
    error = dig(body, "error")
    if isinstance(error, str):
        return "", "", error[:MESSAGE_CHARS]
    if not isinstance(error, Mapping):
        if not isinstance(body, Mapping) or "message" not in body:
            return "", "", ""
        error = body  # Mistral's flat {"message": ..., "type": ..., "code": ...}

    def text(key: str) -> str:
        value = error.get(key)
        return value[:MESSAGE_CHARS] if isinstance(value, str) else ""

    return text("code"), text("type"), text("message")


_ON_LIMIT = re.compile(r"\bon (tokens|requests)\b", re.IGNORECASE)


def _limit_named(message: str) -> str:
    """The limit a refusal's words name: ``"... on tokens per min (TPM)"`` -> ``"tokens"``."""
    match = _ON_LIMIT.search(message)
    return "requests" if match is not None and match.group(1).lower() == "requests" else "tokens"


@functools.cache
def _fields_of(limit_name: str) -> tuple[str, str, str]:
    return tuple(f"x-ratelimit-{part}-{limit_name}" for part in ("limit", "remaining", "reset"))  # type: ignore[return-value]


def usage_tokens(response: ResponseInfo) -> float | None:
    """The tokens an OpenAI-style answer (or its stream) reports in ``usage``, or None."""
    candidates: list[object] = [dig(response.json(), "usage")]
    for event in stream_events(response):
        candidates.extend((event.get("usage"), dig(event, "response", "usage")))
    found = None
    for usage in candidates:
        if type(usage) is not dict and not isinstance(usage, Mapping):
            continue
        total = finite(usage.get("total_tokens"))
        if total is None:
            parts = [
                finite(usage.get(key))
                for key in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
            ]
            known = [part for part in parts if part is not None]
            total = sum(known) if known else None
        if total is not None and total >= 0:
            found = total  # the last one of a stream is the whole answer's
    return found


#: A limit of the usual answer: ``(name, limit, remaining, reset, window, unit)``, the
#: figures of ``Limit(limit, remaining, reset, window=window, unit=unit)``.
UsualLimit: TypeAlias = tuple[str, float, float, float, float, str]
#: What :meth:`OpenAIDialect._usual_answer` reads: the limits, the true cost, ``as_of``.
UsualAnswer: TypeAlias = tuple[tuple[UsualLimit, ...], dict[str, float], float | None]


#: One window as :meth:`OpenAIDialect._usual_answer` reads it: its name, its three
#: fields' names, its window in seconds and its unit.
_UsualWindow: TypeAlias = tuple[str, str, str, str, float, str]


def _usual_plan_of(
    windows: Mapping[str, float],
) -> tuple[Mapping[str, float], tuple[_UsualWindow, ...], tuple[str, ...]]:
    """(*windows*, each window as read, the names a true cost is booked on)."""
    plan = tuple(
        (name, *_fields_of(name), window, "requests" if name == "requests" else "tokens")
        for name, window in windows.items()
    )
    return windows, plan, tuple(name for name in windows if name != "requests")


def _usual_cost(body: bytes | dict[str, object], names: tuple[str, ...]) -> dict[str, float] | None:
    """The true cost of a usual answer's *body* (:func:`usage_tokens` of a JSON object), or None.

    *body* is the raw body, or the JSON object it decodes to.
    """
    decoded = _decode_json(body) if isinstance(body, bytes) else body
    if type(decoded) is not dict:
        return None
    usage = decoded.get("usage")
    if usage is None:
        return {}
    if type(usage) is not dict:
        return None
    total = usage.get("total_tokens")
    if type(total) is int and 0 <= total <= _FLOAT_MAX:  # finite(), its usual case inline
        return dict.fromkeys(names, float(total))
    tokens = finite(total)
    if tokens is None:
        return None  # the parts, or a stream's events: parse() reads them
    return dict.fromkeys(names, tokens) if tokens >= 0 else {}


class OpenAIDialect:
    """OpenAI's ``x-ratelimit-*`` headers (requests and tokens per minute).

    .. versionadded:: 0.1.0
    """

    name = "openai"

    def __init__(self, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int):
            raise TypeError(f"default_max_tokens must be an int, got {default_max_tokens!r}")
        if default_max_tokens < 0:
            raise ValueError(f"default_max_tokens must be >= 0, got {default_max_tokens!r}")
        self.default_max_tokens = default_max_tokens

    #: Limit name -> its window in seconds.
    windows: Mapping[str, float] = {"requests": 60.0, "tokens": 60.0, "tokens_usage_based": 60.0}

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        limits: dict[str, Limit] = {}
        headers = response.headers
        # The fields by their lowercase names (a ResponseInfo's headers are a HeaderFields):
        # a window the answer does not report costs three lookups, no method call.
        fields = headers._fields
        for limit_name, window in self.windows.items():
            limit_field, remaining_field, reset_field = _fields_of(limit_name)
            if (
                limit_field not in fields
                and remaining_field not in fields
                and reset_field not in fields
            ):
                continue
            raw_limit = headers.get(limit_field)
            raw_remaining = headers.get(remaining_field)
            raw_reset = headers.get(reset_field)
            limit = None
            if raw_limit is not None and (limit := decimal(raw_limit)) is None:
                warn_malformed(self.name, limit_field, raw_limit)
            remaining = None
            if raw_remaining is not None and (remaining := decimal(raw_remaining)) is None:
                warn_malformed(self.name, remaining_field, raw_remaining)
            reset = None
            if raw_reset is not None and (reset := _cached_duration(raw_reset)) is None:
                warn_malformed(self.name, reset_field, raw_reset)
            if limit is None and remaining is None and reset is None:
                continue
            unit = "requests" if limit_name == "requests" else "tokens"
            limits[limit_name] = Limit(limit, remaining, reset, window=window, unit=unit)
        kind, message, wait, requested, allowed = self._refusal(response)
        tokens = usage_tokens(response)
        cost = {} if tokens is None else {n: tokens for n in self.windows if n != "requests"}
        return finish(
            response,
            self.name,
            limits,
            cost=cost,
            kind=kind,
            retry_after=wait,
            requested=requested,
            allowed=allowed,
            message=message,
        )

    def _usual_answer(
        self, fields: Mapping[str, list[str]], body: bytes | dict[str, object] | None, status: int
    ) -> UsualAnswer | None:
        """The usual answer's report in plain figures, or None when the answer is not usual.

        The quota transport's fast path: for an answer that is no refusal (status
        below 400, no ``Retry-After`` / ``retry-after-ms``), whose reported windows
        each carry their three fields once and well formed, whose ``Date`` (if any)
        is well formed and whose body is absent or a JSON object with no ``usage``
        or a ``usage`` with a ``total_tokens``, it gives what :meth:`parse` would
        report (limits as ``Limit(limit, remaining, reset, window=..., unit=...)``,
        the true cost, ``as_of``: its ``kind`` None, nothing else) without building
        the report. Anything else (a refusal, a missing or malformed field, which
        :meth:`parse` warns about, a stream) is None: ask :meth:`parse`.
        *fields* are a :class:`~tokenbudget.http.HeaderFields`' values by lowercase name;
        *body* is the raw body or, decoded already, the JSON object it is.
        """
        if status >= 400 or "retry-after-ms" in fields or "retry-after" in fields:
            return None
        as_of = None
        raw_date = fields.get("date")
        if raw_date is not None:
            try:
                (text,) = raw_date
            except ValueError:
                return None  # repeated
            if (as_of := http_date(text)) is None:
                return None
        made_of, plan, cost_names = self._usual_plan
        if made_of is not self.windows:
            made_of, plan, cost_names = self._usual_plan = _usual_plan_of(self.windows)
        limits = self._usual_limits(fields, plan)
        if limits is None:
            return None
        if body is None:
            return limits, {}, as_of
        cost = _usual_cost(body, cost_names)
        return None if cost is None else (limits, cost, as_of)

    #: What :meth:`_usual_answer` reads, made of :attr:`windows` (see :func:`_usual_plan_of`):
    #: made again when the windows are other ones.
    _usual_plan: tuple[Mapping[str, float] | None, tuple[_UsualWindow, ...], tuple[str, ...]] = (
        None,
        (),
        (),
    )

    @staticmethod
    def _usual_limits(
        fields: Mapping[str, list[str]], plan: tuple[_UsualWindow, ...]
    ) -> tuple[UsualLimit, ...] | None:
        """The limits of :meth:`_usual_answer`: each window's three fields once, well formed."""
        limits: list[UsualLimit] = []
        get = fields.get
        for limit_name, limit_field, remaining_field, reset_field, window, unit in plan:
            raw_limit = get(limit_field)
            raw_remaining = get(remaining_field)
            raw_reset = get(reset_field)
            if raw_limit is None and raw_remaining is None and raw_reset is None:
                continue
            try:  # each field there, once
                (limit_text,) = raw_limit  # type: ignore[misc]
                (remaining_text,) = raw_remaining  # type: ignore[misc]
                (reset_text,) = raw_reset  # type: ignore[misc]
            except (TypeError, ValueError):
                return None
            reset = _cached_duration(reset_text)
            if reset is None:
                return None
            # decimal(), its usual case (whole digits) inline
            if limit_text.isdigit() and limit_text.isascii() and len(limit_text) <= 20:
                limit = float(limit_text)
            elif (read := decimal(limit_text)) is not None:
                limit = read
            else:
                return None
            if remaining_text.isdigit() and remaining_text.isascii() and len(remaining_text) <= 20:
                remaining = float(remaining_text)
            elif (read := decimal(remaining_text)) is not None:
                remaining = read
            else:
                return None
            limits.append((limit_name, limit, remaining, reset, window, unit))
        return tuple(limits)

    def _refusal(
        self, response: ResponseInfo
    ) -> tuple[Kind | None, str, float | None, dict[str, float], dict[str, float]]:
        if response.status < 400:
            return None, "", None, {}, {}
        code, kind_of, message = _error_object(response.json())
        figures = {name: float(value) for name, value in _FIGURE.findall(message)}
        limit = _limit_named(message)
        requested = {limit: figures["Requested"]} if "Requested" in figures else {}
        if code in _TERMINAL_CODES or kind_of in _TERMINAL_CODES:
            return "terminal", message, None, {}, {}
        if "request too large" in message.lower():
            allowed = {limit: figures["Limit"]} if "Limit" in figures else {}
            return "too_large", message, None, requested, allowed
        if response.status != 429:
            return None, message, None, {}, {}
        match = _TRY_AGAIN.search(message)
        wait = None if match is None else go_duration(match.group(1).rstrip("."))
        return "wait", message, wait, requested, {}

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One request, and the prompt estimate plus the output bound in tokens.

        See :mod:`tokenbudget.http._llm` for the estimate. Requests that
        generate nothing (``GET``, embeddings, moderations) book no output.
        """
        del limits
        body = request.json()
        tokens = prompt_tokens(body) if body is not None else 0
        generating = (
            (type(body) is dict and "messages" in body)  # the cheapest test first
            or request.path.endswith(_GENERATING)
            or (isinstance(body, Mapping) and "messages" in body)
        )
        if generating:
            tokens += max_output_tokens(body, self.default_max_tokens)
        return self._costs(tokens)

    def _usual_estimate(self, body: dict[str, object]) -> dict[str, float] | None:
        """:meth:`estimate` of a request whose body decodes to *body*, an object with ``messages``.

        The quota transport's fast path: no :class:`~tokenbudget.http.RequestInfo`,
        and figures that need no checking (floats >= 0). None when they would (a
        ``default_max_tokens`` set to no count since): ask :meth:`estimate`.
        """
        tokens = prompt_tokens(body) + max_output_tokens(body, self.default_max_tokens)
        return self._costs(tokens) if tokens >= 0 else None

    def _costs(self, tokens: int) -> dict[str, float]:
        """One request, and *tokens* on each window of tokens."""
        made_of, _, names = self._usual_plan
        if made_of is not self.windows:
            made_of, _, names = self._usual_plan = _usual_plan_of(self.windows)
        costs = {"requests": 1.0}
        costs.update(dict.fromkeys(names, float(tokens)))
        return costs


class GroqDialect(OpenAIDialect):
    """Groq's ``x-ratelimit-*`` headers: requests per *day*, tokens per minute.

    .. versionadded:: 0.1.0
    """

    name = "groq"
    windows: Mapping[str, float] = {"requests": 86400.0, "tokens": 60.0}
