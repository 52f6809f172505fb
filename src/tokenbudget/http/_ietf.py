"""The ``ietf`` dialect: the IETF ``RateLimit-Policy`` and ``RateLimit`` fields, every generation.

- Draft -08 to -10 (current): Structured Field Lists of named items.
  ``RateLimit-Policy: "burst";q=100;w=60`` announces a policy (``q`` its quota,
  ``w`` its window in seconds, ``qu`` its unit, ``requests`` when absent, ``pk``
  a partition key); ``RateLimit: "burst";r=50;t=30`` its state (``r`` remaining,
  ``t`` seconds to reset). The limit is named by the policy's name.
- Draft -07: ``RateLimit: limit=100, remaining=50, reset=5`` (a Dictionary) and
  ``RateLimit-Policy: 100;w=10`` (unnamed policies).
- Draft -06 and earlier: ``RateLimit-Limit``, ``RateLimit-Remaining``,
  ``RateLimit-Reset`` (delta seconds); up to -03 the policies sit in
  ``RateLimit-Limit`` after the current limit (``10, 10;w=1, 50;w=60``).

Unnamed policies of the older drafts are named as they are written
(``"10;w=1"``); the current state of an older draft takes the name of the
policy whose quota it shows, else ``"default"``. Parsing is lenient as the
draft asks: a member that does not parse, a parameter of the wrong type and
unknown parameters (``burst=1000``) are skipped, a bare token is accepted as a
policy name, ``l`` (an intermediate draft's name) stands for a missing
``q``, and everything else in the field is kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ._dialect import finish
from ._message import RequestInfo, ResponseInfo, decimal, warn_malformed
from ._report import Limit, QuotaReport
from ._sf import InnerList, Item, SFError, parse_dictionary, parse_list


__all__ = ["IETFDialect"]

_DICTIONARY_FORM = re.compile(r"\s*(limit|remaining|reset)\s*=", re.IGNORECASE)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _fmt(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def _merge(old: Limit | None, new: Limit) -> Limit:
    """Two reports of one limit in one answer: the more conservative figures of each."""
    if old is None:
        return new

    def low(a: float | None, b: float | None) -> float | None:
        return b if a is None else a if b is None else min(a, b)

    def high(a: float | None, b: float | None) -> float | None:
        return b if a is None else a if b is None else max(a, b)

    return Limit(
        low(old.limit, new.limit),
        low(old.remaining, new.remaining),
        high(old.reset, new.reset),
        window=old.window if old.window is not None else new.window,
        step=old.step if old.step is not None else new.step,
        unit=old.unit if old.unit != "requests" else new.unit,
    )


_State = tuple[float | None, float | None, float | None]


def _lower_state(old: _State | None, new: _State) -> _State:
    """Two states of an older draft in one answer: lower limit and remaining, later reset."""
    if old is None:
        return new
    merged = _merge(Limit(*old), Limit(*new))
    return merged.limit, merged.remaining, merged.reset


class IETFDialect:
    """The IETF RateLimit header fields (draft -10, and the older generations still in use).

    Limits are named by the server's policy names; :meth:`estimate` books one
    request on each known limit counted in requests (``qu`` absent or
    ``"requests"``, and ``"concurrent-requests"``) and the request's body size
    on each counted in ``"content-bytes"``. Before the first answer it knows no
    policy and books nothing.

    .. versionadded:: 0.1.0
    """

    name = "ietf"

    def parse(self, response: ResponseInfo) -> QuotaReport:
        """Everything *response* says about the quota."""
        limits: dict[str, Limit] = {}
        unnamed: list[tuple[str, float, float | None]] = []  # older drafts: (name, q, w)
        for raw in response.headers.get_all("ratelimit-policy"):
            for member in self._members(raw, "RateLimit-Policy"):
                self._policy(member, limits, unnamed)
        state: tuple[float | None, float | None, float | None] | None = None
        for raw in response.headers.get_all("ratelimit"):
            if _DICTIONARY_FORM.match(raw):
                state = _lower_state(state, self._dictionary_state(raw))
                continue
            for member in self._members(raw, "RateLimit"):
                self._state(member, limits)
        old = self._old_fields(response, limits, unnamed)
        if old is not None:
            state = _lower_state(state, old)
        if state is not None:
            self._name_state(state, limits, unnamed)
        return finish(response, self.name, limits)

    def estimate(self, request: RequestInfo, limits: Mapping[str, Limit]) -> Mapping[str, float]:
        """One request per request-counted limit, the body's bytes per byte-counted one."""
        costs: dict[str, float] = {}
        for name, limit in limits.items():
            if limit.unit in {"requests", "request", "concurrent-requests"}:
                costs[name] = 1.0
            elif limit.unit == "content-bytes":
                body = request.body
                size = len(body.encode() if isinstance(body, str) else body or b"")
                costs[name] = float(size)
        return costs

    # -- the current drafts ------------------------------------------------------------------

    def _members(self, raw: str, field: str) -> list[Item | InnerList]:
        def bad(member: str, exc: SFError) -> None:
            warn_malformed(self.name, field, member, str(exc))

        return parse_list(raw, lenient=True, on_error=bad)

    def _params(self, item: Item, field: str, keys: tuple[str, ...]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key in keys:
            if key not in item.params:
                continue
            number = _number(item.params[key])
            if number is None:
                warn_malformed(self.name, f"{field} parameter {key}", item.params[key])
            else:
                out[key] = number
        return out

    def _policy(
        self,
        member: Item | InnerList,
        limits: dict[str, Limit],
        unnamed: list[tuple[str, float, float | None]],
    ) -> None:
        if isinstance(member, InnerList):
            warn_malformed(self.name, "RateLimit-Policy member", member)
            return
        figures = self._params(member, "RateLimit-Policy", ("q", "l", "w"))
        if "q" not in figures and "l" in figures:  # "l", an intermediate draft's name for q
            figures["q"] = figures["l"]
        window = figures.get("w")
        if window == 0:
            warn_malformed(self.name, "RateLimit-Policy parameter w", 0)
            window = None
        unit = member.params.get("qu", "requests")
        if not isinstance(unit, str):
            warn_malformed(self.name, "RateLimit-Policy parameter qu", unit)
            unit = "requests"
        if isinstance(member.value, str):  # a String, or a Token where the draft is loose
            quota = figures.get("q")
            limits[member.value] = _merge(
                limits.get(member.value), Limit(quota, None, None, window=window, unit=unit)
            )
            return
        quota = _number(member.value)
        if quota is None:
            warn_malformed(self.name, "RateLimit-Policy member", member.value)
            return
        name = _fmt(quota) if window is None else f"{_fmt(quota)};w={_fmt(window)}"
        unnamed.append((name, quota, window))
        limits[name] = _merge(limits.get(name), Limit(quota, None, None, window=window))

    def _state(self, member: Item | InnerList, limits: dict[str, Limit]) -> None:
        if isinstance(member, InnerList) or not isinstance(member.value, str):
            warn_malformed(self.name, "RateLimit member", getattr(member, "value", member))
            return
        figures = self._params(member, "RateLimit", ("r", "t"))
        known = limits.get(member.value)
        limits[member.value] = _merge(
            known,
            Limit(
                None if known is None else known.limit,
                figures.get("r"),
                figures.get("t"),
                window=None if known is None else known.window,
                unit="requests" if known is None else known.unit,
            ),
        )

    # -- the older drafts --------------------------------------------------------------------

    def _dictionary_state(self, raw: str) -> tuple[float | None, float | None, float | None]:
        def bad(member: str, exc: SFError) -> None:
            warn_malformed(self.name, "RateLimit", member, str(exc))

        fields = parse_dictionary(raw, lenient=True, on_error=bad)
        figures: list[float | None] = []
        for key in ("limit", "remaining", "reset"):
            member = fields.get(key)
            number = _number(member.value) if isinstance(member, Item) else None
            if member is not None and number is None:
                warn_malformed(self.name, f"RateLimit {key}", member)
            figures.append(number)
        return figures[0], figures[1], figures[2]

    def _old_fields(
        self,
        response: ResponseInfo,
        limits: dict[str, Limit],
        unnamed: list[tuple[str, float, float | None]],
    ) -> tuple[float | None, float | None, float | None] | None:
        headers = response.headers
        if not any(f"ratelimit-{p}" in headers for p in ("limit", "remaining", "reset")):
            return None
        quota = None
        raw_limit = headers.get("ratelimit-limit")
        if raw_limit is not None:
            members = self._members(raw_limit, "RateLimit-Limit")
            for i, member in enumerate(members):
                if not isinstance(member, Item) or _number(member.value) is None:
                    warn_malformed(self.name, "RateLimit-Limit member", member)
                    continue
                if i == 0:
                    quota = _number(member.value)
                if i > 0 or member.params:  # drafts -01 to -03: policies after the limit
                    self._policy(member, limits, unnamed)
        figures = [quota]
        for part in ("remaining", "reset"):
            raw = headers.get(f"ratelimit-{part}")
            number = None if raw is None else decimal(raw)
            if raw is not None and number is None:
                warn_malformed(self.name, f"RateLimit-{part.title()}", raw)
            figures.append(number)
        return figures[0], figures[1], figures[2]

    def _name_state(
        self,
        state: tuple[float | None, float | None, float | None],
        limits: dict[str, Limit],
        unnamed: list[tuple[str, float, float | None]],
    ) -> None:
        quota, remaining, reset = state
        name, window = "default", None
        for policy_name, policy_quota, policy_window in unnamed:
            if quota is not None and policy_quota == quota:
                name, window = policy_name, policy_window
                break
        known = limits.get(name)
        limits[name] = _merge(
            known,
            Limit(
                quota if quota is not None or known is None else known.limit,
                remaining,
                reset,
                window=window if known is None else known.window,
            ),
        )
