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

from tokenbudget.http import Limit, QuotaReport, RequestInfo, ResponseInfo, finish


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
