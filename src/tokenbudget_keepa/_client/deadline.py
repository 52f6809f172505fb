"""A deadline for each HTTP exchange, not for each read.

httpx's ``timeout`` bounds each socket operation: a server that trickles its
answer a byte at a time keeps every read short and holds a request for as long
as it likes. Here the client's ``timeout`` is a deadline for the whole
exchange (connect, send, the answer's headers and body): a context variable
holds it (on the monotonic clock) while the request runs, and the network
streams under httpcore clamp each operation's timeout to what is left of it.

A caller may lower it for the requests made within a block
(:func:`deadline_cap`): the ingestor does, so a run never passes its time budget
while a request is on the wire. The async client uses :func:`asyncio.timeout`
with the same numbers.

A caller may also bound the clients' waits for tokens within a block
(:func:`wait_limit`, on the clock the waits run on): a booking that would be due
past it is given back and refused with the wait it would have taken. The
ingestor does, because its plan of a request's wait is not a reservation:
another process sharing the account may book first, and push the request's
time past the run's budget.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import ssl
import time
import typing
from collections.abc import Iterable, Iterator
from typing import Final

import httpcore

from tokenbudget import Clock


__all__ = [
    "attempt_deadline",
    "attempt_seconds",
    "capped",
    "deadline_cap",
    "end_attempt",
    "past_wait_limit",
    "remaining",
    "start_attempt",
    "wait_limit",
    "with_deadlines",
]

#: No deadline, no cap.
_NONE: Final = math.inf
_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar(
    "tokenbudget_keepa_deadline", default=math.inf
)
_CAP: contextvars.ContextVar[float] = contextvars.ContextVar(
    "tokenbudget_keepa_deadline_cap", default=math.inf
)
_WAIT_LIMIT: contextvars.ContextVar[tuple[Clock, float] | None] = contextvars.ContextVar(
    "tokenbudget_keepa_wait_limit", default=None
)


@contextlib.contextmanager
def wait_limit(clock: Clock, until: float) -> Iterator[None]:
    """Within the block, no Keepa client waits for tokens past *until* on *clock*."""
    token = _WAIT_LIMIT.set((clock, until))
    try:
        yield
    finally:
        _WAIT_LIMIT.reset(token)


def past_wait_limit(delay: float) -> bool:
    """Whether a wait of *delay* seconds from now passes this context's :func:`wait_limit`."""
    limit = _WAIT_LIMIT.get()
    return limit is not None and limit[0].now() + delay > limit[1]


@contextlib.contextmanager
def deadline_cap(seconds: float) -> Iterator[None]:
    """Within the block, no request of a Keepa client lasts past *seconds* from now."""
    cap = min(_CAP.get(), time.monotonic() + max(0.0, seconds))
    token = _CAP.set(cap)
    try:
        yield
    finally:
        _CAP.reset(token)


def capped() -> bool:
    """Whether a :func:`deadline_cap` of this context has passed."""
    return time.monotonic() >= _CAP.get()


def attempt_seconds(timeout: float) -> float:
    """The seconds one exchange may take now: *timeout* (>= 0), or less under a cap."""
    cap = _CAP.get()
    if cap == _NONE:
        return timeout
    return max(0.0, min(timeout, cap - time.monotonic()))


def start_attempt(timeout: float) -> contextvars.Token[float]:
    """Start the deadline of one HTTP exchange; end it with :func:`end_attempt` of the token.

    :func:`attempt_deadline` without a context manager, for every request's path.
    """
    return _DEADLINE.set(time.monotonic() + attempt_seconds(timeout))


#: End the deadline :func:`start_attempt` started (given its token).
end_attempt = _DEADLINE.reset


@contextlib.contextmanager
def attempt_deadline(timeout: float) -> Iterator[None]:
    """Within the block (one HTTP exchange), every socket operation ends by the deadline."""
    token = start_attempt(timeout)
    try:
        yield
    finally:
        end_attempt(token)


def remaining(timeout: float | None, error: type[Exception]) -> float | None:
    """*timeout* clamped to what is left of the exchange's deadline; *error* once it passed."""
    deadline = _DEADLINE.get()
    if deadline == _NONE:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the exchange's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, remaining(timeout, httpcore.ConnectTimeout)
        )
        return _Stream(inner)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """The sync network backend, its streams bound by the exchange's deadline."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, remaining(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _Stream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, remaining(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _Stream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def with_deadlines(transport: typing.Any) -> typing.Any:
    """*transport* (an ``httpx.HTTPTransport``) with its streams bound by each deadline.

    A transport whose insides are not httpcore's pool (another httpx) is returned as
    it is: its requests keep httpx's per-operation timeouts.
    """
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _Backend):
        pool._network_backend = _Backend(backend)  # type: ignore[union-attr]  # noqa: SLF001
    return transport
