"""Properties of the transport against a model server: alone on the key, never a refusal."""

from __future__ import annotations

import math
import random
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget import ManualClock
from tokenbudget.http.httpx import QuotaTransport

from ._dialect_fixture import LoopbackDialect, body


class ModelServer:
    """A continuously refilled quota of *limit* units per *window*, as the API keeps it.

    A request books its ``x-cost-units`` on arrival; its true cost (a share of that) is
    given back at once when *refund* (the answer then reports the balance after it,
    as Shopify does), else the answer reports the balance as booked (as OpenAI's
    headers do) and the unused units come back just after. Remaining units are
    reported rounded down. It forgives a microsecond of refill: a ManualClock at
    wall-clock magnitudes (~1.7e9 s) adds a sleep with an error of up to a quarter
    of one, and a request booked for the very instant its units are back may then
    arrive that much early (a real request arrives a network's latency late).
    """

    def __init__(self, limit: int, window: float, clock: ManualClock, seed: int, refund: bool):
        self.limit, self.rate, self.clock = float(limit), limit / window, clock
        self.window = window
        self.balance, self.time = float(limit), clock.now()
        self.rng = random.Random(seed)
        self.refund = refund
        self.refused = 0
        self.later = 0.0

    def _refill(self) -> None:
        now = self.clock.now()
        self.balance = min(self.limit, self.balance + self.later + (now - self.time) * self.rate)
        self.later = 0.0
        self.time = now

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self._refill()
        cost = float(request.headers["x-cost-units"])
        headers = {"x-limit-units": f"{self.limit:g}", "x-window-units": repr(self.window)}
        if self.balance + 1e-6 + self.rate * 1e-6 < cost:
            self.refused += 1
            headers["x-remaining-units"] = str(max(0, math.floor(self.balance)))
            return httpx.Response(429, headers={**headers, "x-kind": "wait"}, content=b"{}")
        actual = max(1, math.ceil(cost * self.rng.uniform(0.2, 1.0)))
        self.balance -= cost
        if self.refund:
            self.balance += cost - actual
        else:
            self.later = cost - actual
        headers["x-remaining-units"] = str(max(0, math.floor(self.balance + 1e-9)))
        return httpx.Response(200, headers=headers, content=body(cost={"units": actual}))


@given(
    limit=st.integers(2, 5000),
    window=st.sampled_from([1.0, 60.0, 3600.0, 86400.0]) | st.floats(0.5, 1e5),
    start=st.floats(1.6e9, 1.8e9),
    seed=st.integers(0, 2**32),
    refund=st.booleans(),
    data=st.data(),
)
def test_alone_on_the_key_no_request_is_refused(limit, window, start, seed, refund, data):
    """Any mix of costs and idle gaps, at wall-clock magnitudes: the server refuses nothing."""
    clock = ManualClock(start)
    server = ModelServer(limit, window, clock, seed, refund)
    transport = QuotaTransport(
        LoopbackDialect(), transport=httpx.MockTransport(server), clock=clock, retries=0
    )
    steps = data.draw(
        st.lists(
            st.tuples(st.floats(0, window) | st.just(0.0), st.integers(1, limit)),
            max_size=30,
        )
    )
    with httpx.Client(transport=transport, base_url="http://api.test") as client:
        for gap, cost in steps:
            clock.advance(gap)
            response: Any = client.get("/", headers={"x-cost-units": str(cost)})
            assert response.status_code == 200
    assert server.refused == 0
