"""The drivers that run the clients' request logic (``_client.steps``): what reaches the logic."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Generator
from typing import Any

import pytest

from tokenbudget_keepa import AsyncKeepaClient
from tokenbudget_keepa._client import steps


def _line_of(function: Any, text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_an_interrupt_between_two_steps_reaches_the_logic_and_its_cleanup_runs() -> None:
    """A Ctrl-C landing in the sync driver just after a step returned, before the logic has
    its result, is handed to the logic: its cleanup step (settle, cancel, leave the wire)
    still runs, instead of the generator being abandoned with its cleanup unrun."""
    done: list[str] = []

    def logic() -> Generator[steps.Step, Any, None]:
        try:
            yield lambda: "answer"
            yield lambda: done.append("never")
        except KeyboardInterrupt:
            yield lambda: done.append("cleanup")
            raise

    line = _line_of(steps.run, "outcome.next_step(steps)")
    fired: list[bool] = []

    def local(frame: Any, event: str, arg: Any) -> Any:
        outcome = frame.f_locals.get("outcome")
        between = event == "line" and frame.f_lineno == line and not fired
        if between and outcome is not None and outcome.result == "answer":
            fired.append(True)
            raise KeyboardInterrupt  # as a signal would, between two steps
        return local

    def calls(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is steps.run.__code__ else None

    sys.settrace(calls)
    try:
        with pytest.raises(KeyboardInterrupt):
            steps.run(logic())
    finally:
        sys.settrace(None)
    assert fired
    assert done == ["cleanup"]


def test_the_logic_outcome_is_the_driver_outcome() -> None:
    """What the logic returns or raises is what ``run`` returns or raises, once."""

    def returns() -> Generator[steps.Step, Any, int]:
        got = yield lambda: 20
        return got + 1

    def raises() -> Generator[steps.Step, Any, None]:
        try:
            yield lambda: 1 / 0
        except ZeroDivisionError:
            raise ValueError("the logic's own") from None

    assert steps.run(returns()) == 21
    with pytest.raises(ValueError, match="the logic's own"):
        steps.run(raises())


def test_the_async_twins_are_named_and_typed_as_the_async_client_s_own() -> None:
    """``AsyncKeepaClient``'s methods written once for both clients show as its own: their
    name, a coroutine function, and an async iterator for the page iterators."""
    products = AsyncKeepaClient.products
    assert products.__qualname__ == "AsyncKeepaClient.products"
    assert inspect.iscoroutinefunction(products)
    pages = inspect.signature(AsyncKeepaClient.iter_search).return_annotation
    assert str(pages).startswith("collections.abc.AsyncIterator[")
    assert AsyncKeepaClient.iter_search.__qualname__ == "AsyncEndpoints.iter_search"
