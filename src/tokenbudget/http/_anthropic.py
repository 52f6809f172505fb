"""The ``anthropic`` dialect: ``anthropic-ratelimit-*`` headers, ``usage`` and error bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ._dialect import finish
from ._llm import DEFAULT_MAX_TOKENS, dig, max_output_tokens, prompt_tokens, stream_events
from ._message import (
    MESSAGE_CHARS,
    RequestInfo,
    ResponseInfo,
    decimal,
    finite,
    rfc3339,
    warn_malformed,
)
from ._report import Kind, Limit, QuotaReport


__all__ = ["AnthropicDialect"]

#: The limits, each a minute's allowance refilled continuously.
LIMITS: Final = ("requests", "tokens", "input-tokens", "output-tokens")
#: Anthropic rounds its token figures to the nearest thousand: the truth may be 500 below.
TOKEN_ROUNDING: Final = 1000.0
_SPEND_CAP_CODES: Final = frozenset({"enforced_spend_limit_reached"})


class AnthropicDialect:
    """Anthropic's ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*`` headers.

    Each limit is a minute's allowance (``window=60``), refilled continuously.
    Resets are RFC 3339 instants measured against the answer's ``Date``; one
    before it (most real answers) means now. The API rounds the token figures
    to the nearest thousand: a token limit's ``remaining`` is reported as sent,
    with ``rounding=1000`` when it is a multiple of a thousand, so that a bucket
    following it counts on 500 fewer (:attr:`~tokenbudget.http.Limit.least_remaining`)
    and never runs ahead of the server. The cost is the
    answer's ``usage`` (in the JSON body, or the ``message_start`` and
    ``message_delta`` events of a stream): ``input-tokens`` counts
    ``input_tokens + cache_creation_input_tokens`` (cache reads do not count
    against the input limit), ``output-tokens`` the ``output_tokens``,
    ``tokens`` both. A 429 ``rate_limit_error`` is a *wait*, unless it is the
    spend cap (``enforced_spend_limit_reached``: *terminal*); a 413
    ``request_too_large`` is *too large*.

    .. versionadded:: 0.1.0
    """

    name = "anthropic"

    def __init__(self, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int):
            raise TypeError(f"default_max_tokens must be an int, got {default_max_tokens!r}")
        if default_max_tokens < 0:
            raise ValueError(f"default_max_tokens must be >= 0, got {default_max_tokens!r}")
        self.default_max_tokens = default_max_tokens

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        limits: dict[str, Limit] = {}
        headers = response.headers
        for limit_name in LIMITS:
            prefix = f"anthropic-ratelimit-{limit_name}"
            figures: list[float | None] = []
            for part in ("limit", "remaining"):
                raw = headers.get(f"{prefix}-{part}")
                value = None if raw is None else decimal(raw)
                if raw is not None and value is None:
                    warn_malformed(self.name, f"{prefix}-{part}", raw)
                figures.append(value)
            raw = headers.get(f"{prefix}-reset")
            reset = None
            if raw is not None:
                instant = rfc3339(raw)
                if instant is None:
                    warn_malformed(self.name, f"{prefix}-reset", raw)
                else:
                    reset = response.seconds_until(instant)
            if figures == [None, None] and reset is None:
                continue
            unit = "requests" if limit_name == "requests" else "tokens"
            remaining = figures[1]
            rounded = unit == "tokens" and remaining is not None and remaining % TOKEN_ROUNDING == 0
            limits[limit_name] = Limit(
                figures[0],
                remaining,
                reset,
                window=60.0,
                unit=unit,
                rounding=TOKEN_ROUNDING if rounded else None,
            )
        kind, message = self._refusal(response)
        return finish(
            response, self.name, limits, cost=self._usage(response), kind=kind, message=message
        )

    def _refusal(self, response: ResponseInfo) -> tuple[Kind | None, str]:
        if response.status < 400:
            return None, ""
        error = dig(response.json(), "error")
        if not isinstance(error, Mapping):
            return None, ""
        message = error.get("message")
        message = message[:MESSAGE_CHARS] if isinstance(message, str) else ""
        code = dig(error, "details", "error_code")
        spend_cap = isinstance(code, str) and code in _SPEND_CAP_CODES
        if spend_cap or "reached your api usage limits" in message.lower():
            return "terminal", message
        if error.get("type") == "request_too_large" or response.status == 413:
            return "too_large", message
        return (None, message) if response.status != 429 else ("wait", message)

    def _usage(self, response: ResponseInfo) -> dict[str, float]:
        found: dict[str, float] = {}
        usages = [dig(response.json(), "usage")]
        for event in stream_events(response):
            usages.extend((event.get("usage"), dig(event, "message", "usage")))
        for usage in usages:
            if not isinstance(usage, Mapping):
                continue
            for key in ("input_tokens", "cache_creation_input_tokens", "output_tokens"):
                value = finite(usage.get(key))
                if value is not None and value >= 0:  # a stream's counts only grow
                    found[key] = max(found.get(key, 0.0), value)
        if not found:
            return {}
        cost: dict[str, float] = {}
        if "input_tokens" in found or "cache_creation_input_tokens" in found:
            cost["input-tokens"] = found.get("input_tokens", 0.0) + found.get(
                "cache_creation_input_tokens", 0.0
            )
        if "output_tokens" in found:
            cost["output-tokens"] = found["output_tokens"]
        cost["tokens"] = cost.get("input-tokens", 0.0) + cost.get("output-tokens", 0.0)
        return cost

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One request; the prompt estimate as input, ``max_tokens`` as output, both as tokens."""
        del limits
        body = request.json()
        if request.method == "GET" or body is None:
            return {"requests": 1.0}
        prompt = float(prompt_tokens(body))
        output = 0.0
        generating = request.path.endswith("/messages") or (
            isinstance(body, Mapping) and "messages" in body
        )
        if generating and not request.path.endswith("/count_tokens"):
            output = float(max_output_tokens(body, self.default_max_tokens))
        return {
            "requests": 1.0,
            "input-tokens": prompt,
            "output-tokens": output,
            "tokens": prompt + output,
        }
