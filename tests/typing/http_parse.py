"""Type-checker-only usage of tokenbudget.http's pure part (``mypy src tests/typing``); never run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_type

import httpx
import httpx2

from tokenbudget import CostExceedsCapacity, TokenBudgetError
from tokenbudget.http import (
    Dialect,
    HeaderFields,
    Kind,
    Limit,
    OpenAIDialect,
    QuotaExhausted,
    QuotaReport,
    RateLimited,
    RequestInfo,
    RequestTooLarge,
    ResponseInfo,
    dialect,
    estimate,
    finish,
    parse,
)


report = parse("openai", {"x-ratelimit-remaining-tokens": "5"}, b"{}", status=429)
assert_type(report, QuotaReport)
assert_type(report.limits, Mapping[str, Limit])
assert_type(report.cost, Mapping[str, float])
assert_type(report.retry_after, float | None)
assert_type(report.kind, Kind | None)
assert_type(report.as_of, float | None)
assert_type(report.limits["tokens"].remaining, float | None)

parse("github", httpx.Headers({"x-ratelimit-remaining": "1"}), url="https://api.github.com/")
parse("github", httpx2.Headers({"x-ratelimit-remaining": "1"}))
parse("ietf", [("RateLimit", '"a";r=1'), ("RateLimit", '"b";r=2')])
parse(OpenAIDialect(default_max_tokens=512), {}, {"usage": {"total_tokens": 3}})

assert_type(
    estimate("openai", "POST", "https://api.openai.com/v1/responses", {}, b"{}"), dict[str, float]
)
assert_type(dialect("shopify"), Dialect)
assert_type(HeaderFields({"a": "b"}).get_all("A"), tuple[str, ...])


class Widgets:
    name = "widgets"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        return finish(response, self.name, {"calls": Limit(10, 9, None, window=60)})

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        return {"calls": 1}


mine: Dialect = Widgets()
parse(mine, {})

too_large: CostExceedsCapacity = RequestTooLarge(2.0, 1.0, limit="graphql")
waited: TokenBudgetError = RateLimited(1.5, attempts=4)
assert_type(RateLimited(None).retry_after, float | None)
ended: TokenBudgetError = QuotaExhausted("billing", code="insufficient_quota")
