"""The retry decisions shared by both clients (sans-I/O), against the error tree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenbudget_keepa._client.exchange import BackOff, Done, Exchange, GiveUp, Resend


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 405, 302, 418])
def test_final_answers_are_never_retried(status: int) -> None:
    """The error tree's final answers give up at the first try."""
    exchange = Exchange(max_retries=4, max_token_retries=4)
    exchange.start()
    assert exchange.answered(status, envelope=True) == GiveUp(answered=True)


def test_a_success_is_done() -> None:
    """HTTP 200 is read."""
    assert Exchange(max_retries=0, max_token_retries=0).answered(200, envelope=False) == Done()


def test_a_refusal_without_envelope_resends_after_a_sync_to_zero() -> None:
    """A 429 whose body has no envelope: the balance is zero at most."""
    exchange = Exchange(max_retries=0, max_token_retries=2)
    assert exchange.answered(429, envelope=False) == Resend(unknown_balance=True)
    assert exchange.answered(429, envelope=True) == Resend(unknown_balance=False)
    assert exchange.answered(429, envelope=True) == GiveUp(answered=True)


def test_server_errors_and_lost_answers_share_one_budget() -> None:
    """5xx answers and missing answers count against max_retries together, backoff growing."""
    exchange = Exchange(max_retries=3, max_token_retries=0)
    assert exchange.answered(500, envelope=True) == BackOff(1)
    assert exchange.no_answer() == BackOff(2)
    assert exchange.answered(503, envelope=False) == BackOff(3)
    assert exchange.no_answer() == GiveUp(answered=False)


@given(
    st.lists(st.sampled_from([429, 500, 503, None]), max_size=30),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=5),
)
def test_tries_are_bounded(outcomes: list[int | None], retries: int, token_retries: int) -> None:
    """Whatever comes back, an exchange gives up after at most 1 + both budgets tries."""
    exchange = Exchange(max_retries=retries, max_token_retries=token_retries)
    for outcome in outcomes:
        exchange.start()
        decision = (
            exchange.no_answer() if outcome is None else exchange.answered(outcome, envelope=True)
        )
        if isinstance(decision, GiveUp):
            break
    assert exchange.attempt <= 1 + retries + token_retries
    assert exchange.server_retries <= retries + 1
    assert exchange.token_retries <= token_retries
