"""The ``mistral`` dialect: Mistral's two generations of token-budget headers."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

from ._dialect import finish
from ._llm import DEFAULT_MAX_TOKENS, max_output_tokens, prompt_tokens
from ._message import RequestInfo, ResponseInfo, decimal, warn_malformed
from ._openai import OpenAIDialect, usage_tokens
from ._report import Limit, QuotaReport


__all__ = ["MistralDialect"]

_SECONDS: Final = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "month": 30 * 86400.0,
}
#: 2025 on: ``x-ratelimit-{limit,remaining}-{tokens,req}-[N-]{second,minute,...}``.
_CURRENT = re.compile(
    r"x-ratelimit-(limit|remaining)-(tokens|req)-(?:([0-9]{1,6})-)?(second|minute|hour|day|month)"
)
#: 2024: ``x-ratelimitbysize-{limit,remaining}-{minute,day}``.
_BYSIZE = re.compile(r"x-ratelimitbysize-(limit|remaining)-(minute|day|month)")


def _known(figure: float | None) -> float | None:
    """*figure*, or None where one of its fields left it unknown (NaN: see ``_figure``)."""
    return None if figure is None or math.isnan(figure) else figure


class MistralDialect:
    """Mistral's headers, both generations (they report the tokens a request was charged).

    2025 on: ``x-ratelimit-{limit,remaining}-tokens-minute`` / ``-tokens-month``
    and ``-req-10-second`` become the limits ``"tokens-minute"``,
    ``"tokens-month"`` (a month counted as 30 days) and
    ``"requests-10-second"``; ``x-ratelimit-tokens-query-cost`` is the cost on
    every token limit.

    2024: ``ratelimitbysize-limit`` / ``-remaining`` / ``-reset`` (delta
    seconds to the end of a fixed minute: ``step=60``) and
    ``x-ratelimitbysize-*-minute`` are the ``"tokens-minute"`` limit,
    ``x-ratelimitbysize-*-day`` the ``"tokens-day"`` one;
    ``ratelimitbysize-query-cost`` the cost (in the real captures it is what
    the server took from the balance, not the body's ``usage``).

    Without a query-cost header the body's ``usage`` is the cost. Errors are
    read as OpenAI's. The estimate books one request and the LLM estimate of
    the prompt plus ``max_tokens`` on each token limit.

    .. versionadded:: 0.1.0
    """

    name = "mistral"

    def __init__(self, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self._errors = OpenAIDialect(default_max_tokens=default_max_tokens)
        self.default_max_tokens = default_max_tokens

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        limits = self._limits(response)
        charged = self._charged(response)
        token_limits = [n for n, lim in limits.items() if lim.unit == "tokens"] or ["tokens-minute"]
        cost = {} if charged is None else dict.fromkeys(token_limits, charged)
        refusal = self._errors.parse(response)
        return finish(
            response,
            self.name,
            limits,
            cost=cost,
            kind=refusal.kind,
            retry_after=refusal.retry_after,
            requested=refusal.requested,
            allowed=refusal.allowed,
            message=refusal.message,
        )

    def _charged(self, response: ResponseInfo) -> float | None:
        for field in ("x-ratelimit-tokens-query-cost", "ratelimitbysize-query-cost"):
            raw = response.headers.get(field)
            if raw is not None:
                charged = decimal(raw)
                if charged is not None:
                    return charged
                warn_malformed(self.name, field, raw)
        return usage_tokens(response)

    def _limits(self, response: ResponseInfo) -> dict[str, Limit]:
        figures: dict[str, dict[str, float]] = {}
        windows: dict[str, float] = {}
        units: dict[str, str] = {}
        headers = response.headers
        for field in headers:
            match = _CURRENT.fullmatch(field)
            if match is not None:
                part, what, count, span = match.groups()
                unit = "tokens" if what == "tokens" else "requests"
                name = f"{unit}-{count}-{span}" if count else f"{unit}-{span}"
                window = _SECONDS[span] * (int(count) if count else 1)
            else:
                match = _BYSIZE.fullmatch(field)
                if match is None:
                    continue
                part, span = match.groups()
                unit, name, window = "tokens", f"tokens-{span}", _SECONDS[span]
            if window <= 0:
                continue
            self._figure(figures, name, part, field, headers.get_all(field))
            windows[name], units[name] = window, unit
        for part in ("limit", "remaining"):
            field = f"ratelimitbysize-{part}"
            if field in headers:
                self._figure(figures, "tokens-minute", part, field, headers.get_all(field))
                windows["tokens-minute"], units["tokens-minute"] = 60.0, "tokens"
        reset = None
        raw = headers.get("ratelimitbysize-reset")
        if raw is not None:
            reset = decimal(raw)
            if reset is None:
                warn_malformed(self.name, "ratelimitbysize-reset", raw)
            else:
                windows.setdefault("tokens-minute", 60.0)
                units.setdefault("tokens-minute", "tokens")
        # The 2024 reset counts down a fixed minute (42 s, then 22 s, after spending 1,027 of
        # 500,000 tokens: a continuous refill would be whole again in 0.12 s), so that limit
        # comes back in one step at its reset; a continuous one would run ahead of the server.
        return {
            name: Limit(
                _known(figures.get(name, {}).get("limit")),
                _known(figures.get(name, {}).get("remaining")),
                reset if name == "tokens-minute" else None,
                window=window,
                step=window if name == "tokens-minute" and reset is not None else None,
                unit=units[name],
            )
            for name, window in windows.items()
        }

    def _figure(
        self,
        figures: dict[str, dict[str, float]],
        name: str,
        part: str,
        field: str,
        raws: tuple[str, ...],
    ) -> None:
        # A repeated field, and the same limit named by both header generations, count at
        # their lowest: a bucket must never run ahead of any figure the server sent. One bad
        # value makes the whole field malformed (as a field joined with ", " is elsewhere),
        # and the figure unknown even where another generation's field names it: the bad
        # one may have been the lowest ("-1.0" beside a "0").
        values = [decimal(raw) for raw in raws]
        known = figures.setdefault(name, {}).get(part)
        if not values or any(value is None for value in values):
            warn_malformed(self.name, field, ", ".join(raws))
            figures[name][part] = math.nan
            return
        lowest = min(value for value in values if value is not None)
        figures[name][part] = lowest if known is None else min(known, lowest)

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One request on each request limit; prompt plus output on each token limit."""
        body = request.json()
        tokens = 0.0
        if body is not None:
            tokens = float(prompt_tokens(body) + max_output_tokens(body, self.default_max_tokens))
        names = {name: limit.unit for name, limit in limits.items()}
        if not names:
            names = {"tokens-minute": "tokens", "requests-10-second": "requests"}
        return {name: 1.0 if unit == "requests" else tokens for name, unit in names.items()}
