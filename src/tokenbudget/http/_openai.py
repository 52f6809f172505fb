"""The ``openai`` and ``groq`` dialects: ``x-ratelimit-{limit,remaining,reset}-*`` headers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from ._dialect import finish
from ._message import RequestInfo, ResponseInfo, decimal, warn_malformed
from ._report import Limit, QuotaReport


__all__ = ["GroqDialect", "OpenAIDialect", "go_duration"]

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"([0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def go_duration(text: str) -> float | None:
    """A Go-style duration (``6m0s``, ``12ms``, ``172.799999ms``, ``1m26.4s``) in seconds, or None.

    >>> from tokenbudget.http._openai import go_duration
    >>> go_duration("1m26.4s"), go_duration("172.799999ms"), go_duration("soon")
    (86.4, 0.172799999, None)

    ``"0"`` is zero; a bare number without a unit is not a duration.

    .. versionadded:: 0.1.0
    """
    text = text.strip()
    if text == "0":
        return 0.0
    if not text or len(text) > 100:
        return None
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total


class OpenAIDialect:
    """OpenAI's ``x-ratelimit-*`` headers (requests and tokens per minute).

    .. versionadded:: 0.1.0
    """

    name = "openai"
    #: Limit name -> its window in seconds.
    windows: Mapping[str, float] = {"requests": 60.0, "tokens": 60.0, "tokens_usage_based": 60.0}

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        limits: dict[str, Limit] = {}
        headers = response.headers
        for limit_name, window in self.windows.items():
            figures: list[float | None] = []
            for part in ("limit", "remaining"):
                field = f"x-ratelimit-{part}-{limit_name}"
                raw = headers.get(field)
                value = None if raw is None else decimal(raw)
                if raw is not None and value is None:
                    warn_malformed(self.name, field, raw)
                figures.append(value)
            field = f"x-ratelimit-reset-{limit_name}"
            raw = headers.get(field)
            reset = None if raw is None else go_duration(raw)
            if raw is not None and reset is None:
                warn_malformed(self.name, field, raw)
            if figures == [None, None] and reset is None:
                continue
            unit = "requests" if limit_name == "requests" else "tokens"
            limits[limit_name] = Limit(figures[0], figures[1], reset, window=window, unit=unit)
        return finish(response, self.name, limits)

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One request (token estimate being written)."""
        del request, limits
        return {"requests": 1.0}


class GroqDialect(OpenAIDialect):
    """Groq's ``x-ratelimit-*`` headers: requests per *day*, tokens per minute.

    .. versionadded:: 0.1.0
    """

    name = "groq"
    windows: Mapping[str, float] = {"requests": 86400.0, "tokens": 60.0}
