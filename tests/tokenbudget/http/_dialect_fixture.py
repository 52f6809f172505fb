"""A small dialect of the tests' own, and answers in it, to drive the transports precisely.

Headers ``x-limit-NAME``, ``x-remaining-NAME`` and ``x-window-NAME`` report limit
``NAME`` (refilled continuously over the window; ``x-step-NAME: yes`` makes it one step
per window, reset in ``x-reset-NAME``); ``x-kind`` classifies a refusal; a JSON body
``{"cost": {NAME: units}}`` reports the true cost. A request costs what its
``x-cost-NAME`` headers say (one request by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from tokenbudget.http import Limit, QuotaReport, RequestInfo, ResponseInfo, finish, parse


class LoopbackDialect:
    """The tests' dialect (see the module docstring)."""

    name = "test"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        headers = response.headers
        limits: dict[str, Limit] = {}
        for field in headers:
            if not field.startswith("x-limit-"):
                continue
            name = field.removeprefix("x-limit-")
            remaining = headers.get(f"x-remaining-{name}")
            window = float(headers.get(f"x-window-{name}") or 60)
            stepped = headers.get(f"x-step-{name}") == "yes"
            reset = headers.get(f"x-reset-{name}")
            limits[name] = Limit(
                float(headers[field]),
                None if remaining is None else float(remaining),
                None if reset is None else float(reset),
                window=window,
                step=window if stepped else None,
            )
        body = response.json()
        cost: dict[str, float] = {}
        if isinstance(body, dict) and isinstance(body.get("cost"), dict):
            cost = {str(k): float(v) for k, v in body["cost"].items()}
        kind = headers.get("x-kind")
        return finish(
            response,
            self.name,
            limits,
            cost=cost,
            kind=kind,  # type: ignore[arg-type]
            message=str(body.get("message", "")) if isinstance(body, dict) else "",
        )

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        costs = {"requests": 1.0}
        for field in request.headers:
            if field.startswith("x-cost-"):
                costs[field.removeprefix("x-cost-")] = float(request.headers[field])
        return costs


def quota_headers(**remaining: tuple[float, float]) -> dict[str, str]:
    """Headers reporting limits: ``name=(limit, remaining)``, per minute."""
    headers: dict[str, str] = {}
    for name, (limit, left) in remaining.items():
        headers[f"x-limit-{name}"] = f"{limit:g}"
        headers[f"x-remaining-{name}"] = f"{left:g}"
    return headers


def body(**fields: Any) -> bytes:
    """A JSON body."""
    return json.dumps(fields).encode()


#: One answer per built-in dialect that reports a limit, to tell whether the dialect reads it.
_SAMPLES: dict[str, tuple[dict[str, str], object]] = {
    "openai": ({"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59"}, None),
    "anthropic": (
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2024-10-15T09:49:10Z",
            "date": "Tue, 15 Oct 2024 09:48:23 GMT",
        },
        None,
    ),
    "github": (
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4986",
            "x-ratelimit-reset": "1665662666",
            "x-ratelimit-resource": "core",
            "date": "Thu, 13 Oct 2022 11:21:25 GMT",
        },
        None,
    ),
    "shopify": (
        {},
        {
            "data": {},
            "extensions": {
                "cost": {
                    "requestedQueryCost": 101,
                    "actualQueryCost": 46,
                    "throttleStatus": {
                        "maximumAvailable": 1000,
                        "currentlyAvailable": 954,
                        "restoreRate": 50,
                    },
                }
            },
        },
    ),
    "ietf": (
        {"ratelimit-policy": '"default";q=100;w=60', "ratelimit": '"default";r=50;t=30'},
        None,
    ),
}


def dialect_reads_limits(name: str) -> bool:
    """Whether the built-in dialect *name* reads its API's limits (not only ``Retry-After``)."""
    headers, body = _SAMPLES[name]
    return bool(parse(name, headers, body).limits)


def needs_dialect(name: str) -> pytest.MarkDecorator:
    """Skip a test until the dialect *name* reads its limits (it is being written alongside)."""
    return pytest.mark.skipif(
        not dialect_reads_limits(name),
        reason=f"the {name!r} dialect does not read its limits yet",
    )


def dialect_classifies(name: str, body: object, kind: str) -> bool:
    """Whether the dialect *name* reads a 429 with *body* as a refusal of *kind*."""
    return parse(name, {}, body, status=429).kind == kind
