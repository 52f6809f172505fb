"""How one piece of request logic serves both clients: it yields its I/O, each client runs it.

The logic of a request (book, send, settle, sync, retry: ``_Base._send_steps``
and the generators beside it) is a generator that never does I/O itself. Where
it needs some, it yields a :data:`Step`, a callable of no arguments (a bucket's
``reserve``, the client's ``_get`` or ``_sleep_gated``, bound to its
arguments), and receives the step's result, or its exception, back at the
``yield``. The sync client runs the steps by calling them (:func:`run`); the
async client by awaiting what they return (:func:`arun`). So the two clients
differ only in their steps: a lock or an asyncio lock, ``sleep`` or
``asleep``, a call or an ``await``.

:func:`awaited` and :func:`async_pages` make the async twin of a method written
once for the sync client: the same body, run over the async client, returns
what the async client's steps return (a coroutine, an async iterator).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar, cast


__all__ = ["Step", "Steps", "arun", "async_pages", "awaited", "run", "twins"]

T = TypeVar("T")
P = ParamSpec("P")

#: One piece of I/O: called by the sync client, its result awaited by the async one.
Step: TypeAlias = Callable[[], Any]
#: Request logic that yields its steps, receives their results and returns a *T*.
Steps: TypeAlias = Generator[Step, Any, T]


class _Outcome:
    """Where a driver stands: the last step's result or exception, and at the end the value."""

    __slots__ = ("failure", "result", "value")

    def __init__(self) -> None:
        self.result: Any = None
        self.failure: BaseException | None = None
        self.value: Any = None

    def next_step(self, steps: Steps[Any]) -> Step | None:
        """Hand the last outcome to *steps*; the step it yields next, or None once it returned."""
        failure, self.failure = self.failure, None
        try:
            return steps.send(self.result) if failure is None else steps.throw(failure)
        except StopIteration as done:
            self.value = done.value
            return None


def run(steps: Steps[T]) -> T:
    """Run *steps* by calling each one; what the logic returns (or raises).

    An exception that reaches the driver itself between two steps (a Ctrl-C
    landing just after a step returned) is handed to the logic like a step's
    own, so that its cleanup (settle, cancel, leave the wire) still runs.
    """
    outcome = _Outcome()
    while True:
        try:
            step = outcome.next_step(steps)
            if step is None:
                return cast("T", outcome.value)
            outcome.result = step()
        except BaseException as exc:
            if inspect.getgeneratorstate(steps) != inspect.GEN_SUSPENDED:
                raise  # the logic's own outcome (it returned or raised)
            outcome.failure = exc


async def arun(steps: Steps[T]) -> T:
    """Run *steps* by awaiting what each one returns; what the logic returns (or raises)."""
    outcome = _Outcome()
    while (step := outcome.next_step(steps)) is not None:
        try:
            outcome.result = await step()
        except BaseException as exc:  # noqa: BLE001 -- handed to the logic, which decides
            outcome.failure = exc
    return cast("T", outcome.value)


def _typed_like(twin: Callable[..., Any], method: Callable[..., Any], returns: Any) -> None:
    """Give *twin* *method*'s signature with its hints evaluated, returning *returns*.

    ``functools.wraps`` would point ``__wrapped__`` at the sync method, whose
    signature (``-> Iterator[...]`` for a page iterator) tools and the reference
    would then show for the twin.
    """
    hints = typing.get_type_hints(method)
    signature = inspect.signature(method)
    parameters = [
        parameter.replace(annotation=hints.get(name, parameter.annotation))
        for name, parameter in signature.parameters.items()
    ]
    twin.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=returns
    )
    twin.__annotations__ = {**hints, "return": returns}
    del twin.__wrapped__  # type: ignore[attr-defined]


def awaited(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The async twin of a sync client's method: the same body, its result awaited.

    Run over the async client, the body's last call (``self._drive(...)``,
    ``self._call(...)``) returns a coroutine: the twin awaits it. The class
    that holds twins names them its own with :func:`twins`.
    """

    @functools.wraps(method)
    async def twin(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await cast("Awaitable[T]", method(self, *args, **kwargs))

    _typed_like(twin, method, typing.get_type_hints(method).get("return"))
    twin.__twin__ = True  # type: ignore[attr-defined]
    return twin


def async_pages(
    method: Callable[Concatenate[Any, P], Iterator[T]],
) -> Callable[Concatenate[Any, P], AsyncIterator[T]]:
    """The async twin of a page iterator: the same body, over the async client's ``_pages``."""

    @functools.wraps(method)
    def twin(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        return cast("AsyncIterator[T]", method(self, *args, **kwargs))

    (page,) = typing.get_args(typing.get_type_hints(method)["return"])
    _typed_like(twin, method, AsyncIterator[page])  # type: ignore[valid-type]
    twin.__twin__ = True  # type: ignore[attr-defined]
    return twin


C = TypeVar("C", bound=type)


def twins(cls: C) -> C:
    """Class decorator: name the twins of *cls* as its own methods.

    The twins (:func:`awaited`, :func:`async_pages`) are then
    ``AsyncKeepaClient.products``, not ``KeepaClient.products``.
    """
    for name, value in vars(cls).items():
        if getattr(value, "__twin__", False):
            value.__qualname__ = f"{cls.__qualname__}.{name}"
    return cls
