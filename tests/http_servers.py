"""Loopback servers that enforce a quota the way real HTTP APIs do, for the tests and the docs.

Each server is a real HTTP/1.1 server on ``127.0.0.1`` and a free port, one thread per
connection, closable at once (every open connection is ended). It keeps its own books, not
tokenbudget's: it plays the API that a client must keep up with, answers in that API's
dialect (headers, ``usage`` bodies, 429 bodies of each kind) and counts what it refused.

- :class:`OpenAIServer`: requests and tokens per minute, refilled continuously; a request
  books one request and its prompt plus ``max_tokens`` at arrival, and the unused part is
  given back when the completion ends (a stream: at its last chunk); ``x-ratelimit-*``
  headers with Go-style durations; 429 bodies *rate limit reached* (wait), *request too
  large* (never fits) and ``insufficient_quota`` (terminal, once a spend cap is crossed).
- :class:`AnthropicServer`: requests, input and output tokens per minute, refilled
  continuously; ``anthropic-ratelimit-*`` headers with RFC 3339 resets; ``rate_limit_error``
  bodies, and the spend cap's terminal one.
- :class:`GitHubServer`: fixed windows per resource (``core`` 5,000 an hour, ``search`` 30 a
  minute, ``graphql`` 5,000 points an hour), each starting at its first request and reset
  at an epoch second; ``x-ratelimit-*`` headers; 403 on an exhausted window; GraphQL
  ``rateLimit`` with the query's cost.
- :class:`ShopifyServer`: the GraphQL Admin leaky bucket (1,000 points, 50 a second back):
  a query books its requested cost and is refunded the difference to its actual cost;
  ``THROTTLED`` and ``MAX_COST_EXCEEDED`` bodies; the REST call-limit bucket (40 calls, 2 a
  second) with ``X-Shopify-Shop-Api-Call-Limit``.
- :class:`IETFServer`: fixed windows announced with the IETF ``RateLimit-Policy`` and
  ``RateLimit`` fields (draft -10), or the older ``RateLimit-Limit/-Remaining/-Reset``.

Time comes from ``clock`` (anything with ``now()``): a :class:`tokenbudget.ManualClock`
shared with the client's buckets simulates a day in seconds, :class:`FastClock` runs real
threads faster than real time. Every answer carries a ``Date`` header: ``epoch`` plus the
clock's time since the server was made (whole seconds, as HTTP dates are).

:meth:`QuotaServer.spend` plays a competitor: it spends from the same quota outside the
client's buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import random
import re
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self

import attrs

from tokenbudget import MonotonicClock


__all__ = [
    "AnthropicServer",
    "FastClock",
    "GitHubServer",
    "GroqServer",
    "IETFServer",
    "MistralServer",
    "OpenAIServer",
    "QuotaServer",
    "Reply",
    "ShopifyServer",
    "count_tokens",
    "go_duration",
]

#: Units the servers forgive for float rounding when they compare a balance with a cost.
TOLERANCE = 1e-6


class _Clock(Protocol):
    def now(self) -> float: ...


class FastClock:
    """A clock that runs *factor* times faster than real time (sleeps are that much shorter).

    A test whose threads really wait (real sockets, no :class:`~tokenbudget.ManualClock`)
    simulates an hour in a minute with ``FastClock(60)``.
    """

    def __init__(self, factor: float, *, start: float = 0.0) -> None:
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor!r}")
        self.factor = float(factor)
        self._start = float(start)
        self._origin = time.monotonic()
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"FastClock({self.factor!r})"

    def advance(self, seconds: float) -> None:
        """Jump *seconds* of simulated time ahead at once (between a test's phases)."""
        if seconds > 0:
            with self._guard:
                self._start += seconds

    def now(self) -> float:
        """Seconds of simulated time."""
        return self._start + (time.monotonic() - self._origin) * self.factor

    def sleep(self, seconds: float) -> None:
        """Sleep *seconds* of simulated time."""
        if seconds > 0:
            time.sleep(seconds / self.factor)

    async def asleep(self, seconds: float) -> None:
        """Sleep *seconds* of simulated time without blocking the loop."""
        if seconds > 0:
            await asyncio.sleep(seconds / self.factor)


def count_tokens(text: str) -> int:
    """The tokens the LLM servers count for *text*: one per four characters, at least one."""
    return max(1, math.ceil(len(text) / 4))


def _prompt_text(body: Mapping[str, Any]) -> str:
    """Every text of a chat request's prompt (system and messages), joined."""
    parts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                str(block.get("text", "")) for block in content if isinstance(block, Mapping)
            )
    return "\n".join(parts)


def go_duration(seconds: float) -> str:
    """*seconds* as Go's ``time.Duration`` prints it, as OpenAI's headers do (``6m0s``, ``12ms``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = round(seconds * 1000, 3)
        return f"{ms:g}ms" if ms >= 0.001 else "1µs"
    whole_minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(whole_minutes), 60)
    text = f"{round(rest, 3):g}s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _num(value: float) -> str:
    """A number as a header writes it: whole numbers without a point or an exponent."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _rfc3339(wall: float) -> str:
    return dt.datetime.fromtimestamp(math.ceil(wall), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class Reply:
    """One answer: status, headers, and a body (bytes, or chunks sent as they come)."""

    status: int
    headers: Mapping[str, str]
    body: bytes | Iterator[bytes]
    content_type: str = "application/json"


def _json(status: int, headers: Mapping[str, str], body: object) -> Reply:
    return Reply(status, headers, json.dumps(body).encode())


class _Continuous:
    """A quota refilled continuously: *limit* units per *window* seconds, at most *limit*."""

    def __init__(self, limit: float, window: float, now: float) -> None:
        self.limit = float(limit)
        self.rate = self.limit / window
        self.balance = self.limit
        self.time = now

    def refill(self, now: float) -> float:
        if now > self.time:
            self.balance = min(self.limit, self.balance + (now - self.time) * self.rate)
            self.time = now
        return self.balance

    def fits(self, cost: float) -> bool:
        return self.balance + TOLERANCE >= cost

    def wait(self, cost: float) -> float:
        """Seconds until *cost* fits."""
        return max(0.0, (cost - self.balance) / self.rate)

    def full_in(self) -> float:
        """Seconds until the quota is whole again."""
        return max(0.0, (self.limit - self.balance) / self.rate)


class _Window:
    """A fixed window: *limit* units, all back at the window's end; it starts at first use."""

    def __init__(self, limit: float, window: float) -> None:
        self.limit = float(limit)
        self.window = float(window)
        self.used = 0.0
        self.end: float | None = None

    def roll(self, now: float) -> None:
        if self.end is None or now >= self.end:
            self.used = 0.0
            self.end = now + self.window

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.used)

    def reset_in(self, now: float) -> float:
        return self.window if self.end is None else max(0.0, self.end - now)


class QuotaServer:
    """What every loopback quota server shares: the socket, the clock, ``Date``, counters.

    Args:
        clock: Where the server reads time (default :class:`~tokenbudget.MonotonicClock`).
        epoch: The wall-clock time (UNIX seconds) the clock's start stands for (default: now).
        seed: Seeds the servers' choices (completion lengths, actual costs).

    Attributes:
        requests: Requests answered.
        statuses: How many answers of each status.
        refused: How many refusals of each kind (``wait``, ``too_large``, ``terminal``).
        sdk_retries: How many requests carried each ``x-stainless-retry-count`` (the
            OpenAI and Anthropic SDKs number their retries so; ``"-"``: no such header).
    """

    def __init__(
        self, *, clock: _Clock | None = None, epoch: float | None = None, seed: int = 0
    ) -> None:
        self.clock: _Clock = MonotonicClock() if clock is None else clock
        self._origin = self.clock.now()
        self.epoch = time.time() if epoch is None else float(epoch)
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.refused: Counter[str] = Counter()
        self.sdk_retries: Counter[str] = Counter()
        #: Every refusal: its kind, time and reason.
        self.refusals: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Serve on a free port of ``127.0.0.1`` in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.api = self
        thread = threading.Thread(
            target=server.serve_until_stopped, name=f"{type(self).__name__}", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def close(self) -> None:
        """Stop serving and end every open connection at once (idempotent)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.stop()
        thread.join()
        server.close_connections()
        server.server_close()

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- time --------------------------------------------------------------------------

    def now(self) -> float:
        """The clock's time now."""
        return self.clock.now()

    def wall(self, now: float | None = None) -> float:
        """The wall-clock time (UNIX seconds) of the clock's *now*."""
        return self.epoch + ((self.now() if now is None else now) - self._origin)

    def date(self, now: float | None = None) -> str:
        """The ``Date`` header of an answer at *now* (whole seconds, rounded down)."""
        return formatdate(math.floor(self.wall(now)), usegmt=True)

    # -- answering ---------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one request (counted, under the server's lock, ``Date`` added)."""
        with self._lock:
            now = self.now()
            try:
                payload: Any = json.loads(body) if body else {}
            except ValueError:
                reply = _json(400, {}, {"error": {"message": "the body is not JSON"}})
            else:
                reply = self.handle(method, path, headers, payload, now)
            self.requests += 1
            self.statuses[reply.status] += 1
            self.sdk_retries[headers.get("x-stainless-retry-count", "-")] += 1
            return attrs.evolve(reply, headers={"Date": self.date(now), **reply.headers})

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> Reply:
        """The dialect's answer (subclasses); the lock is held."""
        raise NotImplementedError

    def refuse(self, kind: str, why: str = "") -> None:
        """Count a refusal of *kind* (*why* is kept in :attr:`refusals`, for messages)."""
        self.refused[kind] += 1
        self.refusals.append(f"{kind} at {self.now():.3f}: {why}")

    def spend(self, **costs: float) -> None:
        """A competitor spends *costs* (limit name to units) from the quota, refused nothing."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------
# LLM servers


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(("quota", "token", "bucket", "refill", "answer")) for _ in range(n))


class _LLMServer(QuotaServer):
    """Continuous per-minute quotas, a spend cap, completions of a seeded length."""

    def __init__(
        self,
        *,
        spend_cap: float | None = None,
        clock: _Clock | None = None,
        epoch: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(clock=clock, epoch=epoch, seed=seed)
        self.spend_cap = spend_cap
        #: Tokens spent in all (the spend cap counts these).
        self.spent = 0.0
        #: Completions whose stream was left unfinished (charged what was booked).
        self.abandoned = 0
        self.quotas: dict[str, _Continuous] = {}

    def _refill(self, now: float) -> None:
        for quota in self.quotas.values():
            quota.refill(now)

    def spend(self, **costs: float) -> None:
        with self._lock:
            now = self.now()
            self._refill(now)
            for name, cost in costs.items():
                self.quotas[name].balance -= cost

    def _completion(self, max_tokens: int) -> int:
        return self._rng.randint(1, max(1, max_tokens))

    def _stream(
        self, events: list[bytes], finish: bytes, refund: dict[str, float]
    ) -> Iterator[bytes]:
        """The chunks of a stream; the refund is made when its last chunk is sent."""
        done = False
        try:
            yield from events
            done = True
            yield finish
        finally:
            with self._lock:
                if done:
                    self._give_back(refund)
                else:
                    self.abandoned += 1

    def _give_back(self, refund: Mapping[str, float]) -> None:
        now = self.now()
        self._refill(now)
        for name, units in refund.items():
            quota = self.quotas[name]
            quota.balance = min(quota.limit, quota.balance + units)
        self.spent -= sum(refund.values())


class OpenAIServer(_LLMServer):
    """OpenAI's chat completions with its requests- and tokens-per-minute limits.

    ``POST /v1/chat/completions``: a request books one request and ``prompt + max_tokens``
    tokens (the prompt counted by :func:`count_tokens`, ``max_tokens`` or
    ``max_completion_tokens``, default 1,024) on arrival; the completion uses a seeded number
    of tokens up to ``max_tokens``, and the rest is given back when it ends (a stream at its
    last chunk, when the ``usage`` chunk goes out; an abandoned stream keeps its booking).
    The headers report the quota as booked at arrival.

    Refusals (HTTP 429): ``insufficient_quota`` once ``spend_cap`` tokens are spent
    (terminal); *Request too large* when the booking exceeds the tokens-per-minute limit
    (never fits); *Rate limit reached ... Please try again in 1.2s* otherwise (wait), with
    ``retry-after`` in whole seconds.
    """

    #: The window of the requests limit, in seconds (Groq's is a day).
    request_window = 60.0

    def __init__(
        self,
        *,
        rpm: float = 60,
        tpm: float = 10_000,
        spend_cap: float | None = None,
        clock: _Clock | None = None,
        epoch: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(spend_cap=spend_cap, clock=clock, epoch=epoch, seed=seed)
        now = self.now()
        self.quotas = {
            "requests": _Continuous(rpm, self.request_window, now),
            "tokens": _Continuous(tpm, 60, now),
        }

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, quota in self.quotas.items():
            headers[f"x-ratelimit-limit-{name}"] = f"{_num(quota.limit)}"
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(quota.balance)))
            headers[f"x-ratelimit-reset-{name}"] = go_duration(quota.full_in())
        return headers

    def _error(self, kind: str, message: str, code: str, type_: str, wait: float = 0.0) -> Reply:
        self.refuse(kind, message)
        headers = self._headers()
        if kind == "wait":
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return _json(429, headers, body)

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> Reply:
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return _json(404, {}, {"error": {"message": f"no route {method} {path}"}})
        self._refill(now)
        prompt = count_tokens(_prompt_text(body))
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 1024)
        booked = prompt + max_tokens
        model = body.get("model", "gpt-4o")
        tokens, requests = self.quotas["tokens"], self.quotas["requests"]
        if self.spend_cap is not None and self.spent >= self.spend_cap:
            return self._error(
                "terminal",
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if booked > tokens.limit:
            return self._error(
                "too_large",
                f"Request too large for {model} in organization org-loopback on tokens per min "
                f"(TPM): Limit {_num(tokens.limit)}, Requested {booked}. The input or output tokens "
                "must be reduced in order to run successfully.",
                "rate_limit_exceeded",
                "tokens",
            )
        for name, cost in (("requests", 1.0), ("tokens", float(booked))):
            quota = self.quotas[name]
            if not quota.fits(cost):
                wait = quota.wait(cost)
                unit = "requests per min (RPM)" if name == "requests" else "tokens per min (TPM)"
                used = math.ceil(quota.limit - quota.balance)
                return self._error(
                    "wait",
                    f"Rate limit reached for {model} in organization org-loopback on {unit}: "
                    f"Limit {_num(quota.limit)}, Used {used}, Requested {_num(cost)}. "
                    f"Please try again in {go_duration(wait)}.",
                    "rate_limit_exceeded",
                    name,
                    wait,
                )
        requests.balance -= 1
        tokens.balance -= booked
        self.spent += booked
        answer_headers = self._headers()
        completion = self._completion(max_tokens)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        refund = {"tokens": float(max_tokens - completion)}
        text = _words(self._rng, min(completion, 20))
        if body.get("stream"):
            chunks = [
                {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model,
                 "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
                for word in text.split()
            ]  # fmt: skip
            chunks.append(
                {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            )  # fmt: skip
            events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
            last: dict[str, Any] = {
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model,
                "choices": [],
                "usage": usage if (body.get("stream_options") or {}).get("include_usage") else None,
            }  # fmt: skip
            finish = b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n"
            stream = self._stream(events, finish, refund)
            return Reply(200, answer_headers, stream, "text/event-stream")
        self._give_back(refund)
        return _json(
            200,
            answer_headers,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(self.wall(now)),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )


class GroqServer(OpenAIServer):
    """Groq's chat completions: OpenAI's protocol and headers, requests per *day* (``rpm``
    is then the day's requests), tokens per minute."""

    request_window = 86400.0


class MistralServer(_LLMServer):
    """Mistral's chat completions with its tokens-per-minute and requests-per-10-seconds limits.

    ``POST /v1/chat/completions``: a request books one request and ``prompt + max_tokens``
    tokens on arrival, and is settled to the tokens it really used when it is answered; the
    answer reports the balances after that (``x-ratelimit-remaining-tokens-minute``,
    ``x-ratelimit-remaining-req-10-second``, and the month's tokens) and the request's
    cost (``x-ratelimit-tokens-query-cost``). Both limits refill continuously. A request that
    does not fit is refused with HTTP 429 (wait).
    """

    def __init__(
        self,
        *,
        tokens_per_minute: float = 10_000,
        requests_per_10s: float = 5,
        tokens_per_month: float = 10**9,
        clock: _Clock | None = None,
        epoch: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(clock=clock, epoch=epoch, seed=seed)
        now = self.now()
        self.quotas = {
            "tokens-minute": _Continuous(tokens_per_minute, 60, now),
            "req-10-second": _Continuous(requests_per_10s, 10, now),
            "tokens-month": _Continuous(tokens_per_month, 30 * 86400, now),
        }

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, quota in self.quotas.items():
            headers[f"x-ratelimit-limit-{name}"] = _num(quota.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(quota.balance)))
        return headers

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> Reply:
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return _json(404, {}, {"object": "error", "message": f"no route {path}"})
        self._refill(now)
        prompt = count_tokens(_prompt_text(body))
        max_tokens = int(body.get("max_tokens") or 1024)
        costs = {
            "req-10-second": 1.0,
            "tokens-minute": float(prompt + max_tokens),
            "tokens-month": float(prompt + max_tokens),
        }
        for name, cost in costs.items():
            if not self.quotas[name].fits(cost):
                self.refuse("wait", f"{name}: {cost:g} > {self.quotas[name].balance:.3f}")
                return _json(
                    429,
                    self._headers(),
                    {"object": "error", "message": "Requests rate limit exceeded",
                     "type": "rate_limited", "code": "1300"},
                )  # fmt: skip
        for name, cost in costs.items():
            self.quotas[name].balance -= cost
        completion = self._completion(max_tokens)
        unused = float(max_tokens - completion)
        self._give_back({"tokens-minute": unused, "tokens-month": unused})
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        answer_headers = {
            **self._headers(),
            "x-ratelimit-tokens-query-cost": str(prompt + completion),
        }
        return _json(
            200,
            answer_headers,
            {"id": "cmpl-1", "object": "chat.completion", "model": body.get("model", "m"),
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                          "finish_reason": "stop"}],
             "usage": usage},
        )  # fmt: skip


class AnthropicServer(_LLMServer):
    """Anthropic's messages with its requests, input- and output-tokens-per-minute limits.

    ``POST /v1/messages``: a request books one request, its input tokens (counted by
    :func:`count_tokens`) and ``max_tokens`` output tokens on arrival; the output tokens it
    did not use are given back when it ends. The headers report each limit with its
    remaining units (the token figures rounded down to *round_to*, default 1; or, as
    Anthropic does, to the nearest multiple of *nearest_to*: 1,000, which may report up to
    500 more than is left) and an RFC 3339 reset (when the limit is whole again).

    Refusals (HTTP 429, ``rate_limit_error``): the spend cap (terminal, no ``retry-after``)
    once ``spend_cap`` tokens are spent; a request whose input or output alone exceeds its
    limit (never fits: *This request would exceed the rate limit ... Please reduce the
    prompt length or the maximum tokens requested*); else wait, with ``retry-after``.
    """

    def __init__(
        self,
        *,
        rpm: float = 50,
        itpm: float = 20_000,
        otpm: float = 8_000,
        round_to: int = 1,
        nearest_to: int | None = None,
        spend_cap: float | None = None,
        clock: _Clock | None = None,
        epoch: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(spend_cap=spend_cap, clock=clock, epoch=epoch, seed=seed)
        now = self.now()
        self.round_to = round_to
        self.nearest_to = nearest_to
        self.quotas = {
            "requests": _Continuous(rpm, 60, now),
            "input-tokens": _Continuous(itpm, 60, now),
            "output-tokens": _Continuous(otpm, 60, now),
        }

    def _headers(self, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, quota in self.quotas.items():
            step = 1 if name == "requests" else self.round_to
            remaining = max(0, math.floor(quota.balance / step) * step)
            if self.nearest_to is not None and name != "requests":  # the real API's rounding
                near = self.nearest_to
                remaining = max(0, math.floor(quota.balance / near + 0.5) * near)
            prefix = f"anthropic-ratelimit-{name}"
            headers[f"{prefix}-limit"] = f"{_num(quota.limit)}"
            headers[f"{prefix}-remaining"] = str(remaining)
            headers[f"{prefix}-reset"] = _rfc3339(self.wall(now) + quota.full_in())
        return headers

    def _error(self, kind: str, message: str, now: float, wait: float = 0.0, **extra: Any) -> Reply:
        self.refuse(kind, message)
        headers = self._headers(now)
        if kind == "wait":
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        error: dict[str, Any] = {"type": "rate_limit_error", "message": message, **extra}
        return _json(429, headers, {"type": "error", "error": error, "request_id": "req_1"})

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> Reply:
        if method != "POST" or not path.rstrip("/").endswith("/messages"):
            return _json(404, {}, {"type": "error", "error": {"type": "not_found_error"}})
        self._refill(now)
        prompt = count_tokens(_prompt_text(body))
        max_tokens = int(body.get("max_tokens") or 1024)
        model = body.get("model", "claude-sonnet-4-5")
        if self.spend_cap is not None and self.spent >= self.spend_cap:
            return self._error(
                "terminal",
                "You have reached your API usage limits: your organization has crossed its "
                "monthly API usage threshold. You will regain access on 2026-09-01 at 00:00 UTC.",
                now,
                details={"error_code": "enforced_spend_limit_reached"},
            )
        costs = {"requests": 1.0, "input-tokens": float(prompt), "output-tokens": float(max_tokens)}
        for name, cost in costs.items():
            quota = self.quotas[name]
            if cost > quota.limit:
                return self._error(
                    "too_large",
                    f"This request would exceed the rate limit for your organization of "
                    f"{quota.limit:,.0f} {name.replace('-', ' ')} per minute. Please reduce the "
                    "prompt length or the maximum tokens requested.",
                    now,
                )
        for name, cost in costs.items():
            quota = self.quotas[name]
            if not quota.fits(cost):
                return self._error(
                    "wait",
                    f"This request would exceed the rate limit for your organization of "
                    f"{quota.limit:,.0f} {name.replace('-', ' ')} per minute. "
                    "Please try again later.",
                    now,
                    quota.wait(cost),
                )
        for name, cost in costs.items():
            self.quotas[name].balance -= cost
        self.spent += prompt + max_tokens
        answer_headers = self._headers(now)
        completion = self._completion(max_tokens)
        refund = {"output-tokens": float(max_tokens - completion)}
        text = _words(self._rng, min(completion, 20))
        message: dict[str, Any] = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }
        if body.get("stream"):
            start = {**message, "content": [], "stop_reason": None}
            start["usage"] = {"input_tokens": prompt, "output_tokens": 1}
            events = [
                ("message_start", {"type": "message_start", "message": start}),
                ("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
                *(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": w + " "}})
                  for w in text.split()),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": completion}}),
            ]  # fmt: skip
            encoded = [
                f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
            ]
            finish = b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
            stream = self._stream(encoded, finish, refund)
            return Reply(200, answer_headers, stream, "text/event-stream")
        self._give_back(refund)
        return _json(200, answer_headers, message)


# --------------------------------------------------------------------------------------
# GitHub

_FIRST = re.compile(r"\b(?:first|last)\s*:\s*(\d+)")


def github_graphql_cost(query: str) -> int:
    """A GraphQL query's cost as GitHub counts it: connections' sizes / 100, at least 1.

    Each ``first: N`` (or ``last: N``) is a connection of N nodes fetched by the
    connections above it (their sizes multiply, as GitHub's rule says): the
    requests needed are summed and divided by 100, rounded, at least 1.
    """
    sizes = [int(n) for n in _FIRST.findall(query)]
    requests = 0
    outer = 1
    for size in sizes:
        requests += outer
        outer *= size
    return max(1, round(requests / 100))


class GitHubServer(QuotaServer):
    """GitHub's REST and GraphQL APIs with their hourly (and per-minute) fixed windows.

    ``GET /search/...`` spends the ``search`` resource, ``POST /graphql`` the ``graphql``
    resource (its query's cost, :func:`github_graphql_cost`), any other request ``core``.
    Each resource's window starts with its first request and resets, whole, at the window's
    end (an epoch second in ``x-ratelimit-reset``). An exhausted window answers 403 with
    *API rate limit exceeded* (wait, until the reset); GraphQL answers its ``rateLimit``
    field when the query asks for it.
    """

    def __init__(
        self,
        *,
        core: float = 5000,
        search: float = 30,
        graphql: float = 5000,
        window: float = 3600,
        clock: _Clock | None = None,
        epoch: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(clock=clock, epoch=epoch, seed=seed)
        self.windows = {
            "core": _Window(core, window),
            "search": _Window(search, 60),
            "graphql": _Window(graphql, window),
        }

    def _headers(self, resource: str, now: float) -> dict[str, str]:
        win = self.windows[resource]
        reset = math.ceil(self.wall(now) + win.reset_in(now))
        return {
            "x-ratelimit-limit": f"{_num(win.limit)}",
            "x-ratelimit-remaining": f"{_num(win.remaining)}",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": f"{_num(win.used)}",
            "x-ratelimit-resource": resource,
        }

    def spend(self, **costs: float) -> None:
        with self._lock:
            now = self.now()
            for resource, cost in costs.items():
                win = self.windows[resource]
                win.roll(now)
                win.used += cost

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> Reply:
        graphql = method == "POST" and path.rstrip("/") == "/graphql"
        if graphql:
            resource = "graphql"
            query = str(body.get("query", "")) if isinstance(body, Mapping) else ""
            cost = float(github_graphql_cost(query))
        else:
            resource = "search" if path.startswith("/search/") else "core"
            query, cost = "", 1.0
        win = self.windows[resource]
        win.roll(now)
        if win.used + cost > win.limit + TOLERANCE:
            self.refuse("wait", f"{resource}: used {win.used:g} + {cost:g} > {win.limit:g}")
            message = "API rate limit exceeded for user ID 1."
            if graphql:
                return _json(
                    403,
                    self._headers(resource, now),
                    {"errors": [{"type": "RATE_LIMITED", "message": message}]},
                )
            docs = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
            return _json(
                403, self._headers(resource, now), {"message": message, "documentation_url": docs}
            )
        win.used += cost
        answer_headers = self._headers(resource, now)
        if not graphql:
            return _json(200, answer_headers, {"path": path, "id": self.requests})
        data: dict[str, Any] = {"viewer": {"login": "octocat"}}
        if "rateLimit" in query:
            reset = self.wall(now) + win.reset_in(now)
            data["rateLimit"] = {
                "limit": int(win.limit),
                "cost": int(cost),
                "remaining": int(win.remaining),
                "used": int(win.used),
                "resetAt": _rfc3339(reset),
            }
        return _json(200, answer_headers, {"data": data})


# --------------------------------------------------------------------------------------
# Shopify

_SHOPIFY_FIRST = re.compile(r"\bfirst\s*:\s*(\d+)")


def shopify_requested_cost(query: str) -> int:
    """A GraphQL query's requested cost as Shopify counts it (simplified).

    One point for the query (ten for a ``mutation``), plus, per connection
    ``first: N``, two points plus one per node.
    """
    base = 10 if query.lstrip().startswith("mutation") else 1
    return base + sum(2 + int(n) for n in _SHOPIFY_FIRST.findall(query))


class ShopifyServer(QuotaServer):
    """Shopify's Admin APIs: the GraphQL cost leaky bucket with refunds, and REST's call limit.

    GraphQL (``POST .../graphql.json``): a bucket of *maximum* points, *restore_rate* back a
    second. A query books its requested cost (:func:`shopify_requested_cost`) and is refunded
    the difference to its actual cost (a seeded share of it) at once; the answer's
    ``extensions.cost`` reports both and the ``throttleStatus`` after the refund. A query
    above *single_query_max* answers ``MAX_COST_EXCEEDED`` (never fits); one above what is
    available answers ``THROTTLED`` (HTTP 200, wait).

    REST (any other path): a bucket of *rest_limit* calls leaking *rest_leak* a second;
    ``X-Shopify-Shop-Api-Call-Limit: used/limit``; HTTP 429 with ``Retry-After: 2.0`` when full.
    """

    def __init__(
        self,
        *,
        maximum: float = 1000,
        restore_rate: float = 50,
        single_query_max: float = 1000,
        rest_limit: float = 40,
        rest_leak: float = 2,
        clock: _Clock | None = None,
        epoch: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(clock=clock, epoch=epoch, seed=seed)
        now = self.now()
        self.points = _Continuous(maximum, maximum / restore_rate, now)
        self.calls = _Continuous(rest_limit, rest_limit / rest_leak, now)
        self.single_query_max = float(single_query_max)

    def spend(self, **costs: float) -> None:
        with self._lock:
            now = self.now()
            for name, cost in costs.items():
                quota = self.points if name == "graphql" else self.calls
                quota.refill(now)
                quota.balance -= cost

    def _throttle_status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.points.limit,
            "currentlyAvailable": math.floor(self.points.balance),
            "restoreRate": self.points.rate,
        }

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> Reply:
        if path.rstrip("/").endswith("/graphql.json"):
            return self._graphql(body, now)
        calls = self.calls
        calls.refill(now)
        if not calls.fits(1):
            self.refuse("wait", f"rest: {calls.balance:.3f} calls left")
            used = f"{math.ceil(calls.limit - calls.balance):d}/{_num(calls.limit)}"
            return _json(
                429,
                {"X-Shopify-Shop-Api-Call-Limit": used, "Retry-After": "2.0"},
                {"errors": "Exceeded 2 calls per second for api client. Reduce request rates "
                           "to resume uninterrupted service."},
            )  # fmt: skip
        calls.balance -= 1
        used = f"{math.ceil(calls.limit - calls.balance - TOLERANCE):d}/{_num(calls.limit)}"
        return _json(200, {"X-Shopify-Shop-Api-Call-Limit": used}, {"products": []})

    def _graphql(self, body: Any, now: float) -> Reply:
        query = str(body.get("query", "")) if isinstance(body, Mapping) else ""
        requested = shopify_requested_cost(query)
        points = self.points
        points.refill(now)
        if requested > self.single_query_max:
            self.refuse("too_large", f"graphql: {requested} > {self.single_query_max:g}")
            message = (
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({_num(self.single_query_max)})."
            )
            error = {
                "message": message,
                "extensions": {
                    "code": "MAX_COST_EXCEEDED",
                    "cost": requested,
                    "maxCost": self.single_query_max,
                },
            }
            return _json(200, {}, {"errors": [error]})
        if not points.fits(requested):
            self.refuse("wait", f"graphql: {requested} > {points.balance:.3f} available")
            cost = {
                "requestedQueryCost": requested,
                "actualQueryCost": None,
                "throttleStatus": self._throttle_status(),
            }
            error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
            return _json(200, {}, {"errors": [error], "extensions": {"cost": cost}})
        actual = max(1, math.ceil(requested * self._rng.uniform(0.3, 1.0)))
        points.balance -= actual  # the requested cost, less its refund at once
        cost = {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": self._throttle_status(),
        }
        return _json(
            200, {}, {"data": {"shop": {"name": "loopback"}}, "extensions": {"cost": cost}}
        )


# --------------------------------------------------------------------------------------
# IETF RateLimit fields


class IETFServer(QuotaServer):
    """A server announcing fixed-window quotas with the IETF ``RateLimit`` fields.

    Every request costs one unit of each policy (*policies* maps a name to ``(quota,
    window seconds)``; default a minute's 100 and a day's 2,000). Each policy's window
    starts at its first request. The answer carries ``RateLimit-Policy`` and ``RateLimit``
    (draft -10, every policy), or with ``legacy=True`` the older ``RateLimit-Limit``,
    ``-Remaining`` and ``-Reset`` (delta seconds) of the policy closest to exhaustion.
    An exhausted policy answers 429 with ``Retry-After`` (whole seconds).
    """

    def __init__(
        self,
        *,
        policies: Mapping[str, tuple[float, float]] | None = None,
        legacy: bool = False,
        clock: _Clock | None = None,
        epoch: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(clock=clock, epoch=epoch, seed=seed)
        chosen = (
            {"minute": (100.0, 60.0), "day": (2000.0, 86400.0)} if policies is None else policies
        )
        self.windows = {name: _Window(q, w) for name, (q, w) in chosen.items()}
        self.legacy = legacy

    def spend(self, **costs: float) -> None:
        with self._lock:
            now = self.now()
            for name, cost in costs.items():
                win = self.windows[name]
                win.roll(now)
                win.used += cost

    def _headers(self, now: float) -> dict[str, str]:
        if self.legacy:
            name = min(self.windows, key=lambda n: self.windows[n].remaining)
            win = self.windows[name]
            return {
                "RateLimit-Limit": f"{_num(win.limit)}",
                "RateLimit-Remaining": f"{math.floor(win.remaining):d}",
                "RateLimit-Reset": str(math.ceil(win.reset_in(now))),
            }
        policy = ", ".join(
            f'"{name}";q={_num(win.limit)};w={_num(win.window)}'
            for name, win in self.windows.items()
        )
        state = ", ".join(
            f'"{name}";r={math.floor(win.remaining):d};t={math.ceil(win.reset_in(now)):d}'
            for name, win in self.windows.items()
        )
        return {"RateLimit-Policy": policy, "RateLimit": state}

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any, now: float
    ) -> Reply:
        for win in self.windows.values():
            win.roll(now)
        full = [win for win in self.windows.values() if win.used + 1 > win.limit + TOLERANCE]
        if full:
            self.refuse("wait", ", ".join(f"{w.used:g} of {w.limit:g} used" for w in full))
            wait = max(win.reset_in(now) for win in full)
            answer = {**self._headers(now), "Retry-After": str(max(1, math.ceil(wait)))}
            return _json(429, answer, {"title": "Too Many Requests", "status": 429})
        for win in self.windows.values():
            win.used += 1
        return _json(200, self._headers(now), {"path": path, "id": self.requests})


# --------------------------------------------------------------------------------------
# The HTTP plumbing


class _Server(ThreadingHTTPServer):
    """The HTTP server: it remembers its connections so that closing ends them."""

    daemon_threads = True
    allow_reuse_address = False
    api: QuotaServer
    #: ``handle_request`` is only called once the socket is readable: never wait in it.
    timeout = 0

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._handlers: set[threading.Thread] = set()
        self._stopping = False
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, handler)

    def serve_until_stopped(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stopping:
                for key, _events in selector.select():
                    if key.fileobj is self.socket and not self._stopping:
                        self.handle_request()

    def stop(self) -> None:
        self._stopping = True
        self._wake_writer.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._connections.add(request)
            self._handlers.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
                self._handlers.discard(threading.current_thread())
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client that hangs up is no news in tests."""

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
            handlers = list(self._handlers)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for handler in handlers:
            handler.join(timeout=2.0)


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive; a body with a length, or chunked for a stream."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the tests read the counters instead."""

    def _answer(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?", 1)[0]
        reply = self.server.api.answer(self.command, path, self.headers, body)
        self.send_response_only(reply.status)  # no Server or Date of its own: ours
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if isinstance(reply.body, bytes):
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = reply.body
        try:
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    do_GET = _answer  # noqa: N815
    do_POST = _answer  # noqa: N815
    do_PUT = _answer  # noqa: N815
    do_DELETE = _answer  # noqa: N815
    do_PATCH = _answer  # noqa: N815
