"""The emulator's account model against a naive step-by-step replay (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tokenbudget_keepa._emulator.account import Account


class NaiveAccount:
    """Keepa's rules replayed one step at a time, as plainly as possible."""

    def __init__(self, rate, capacity, balance, first_step):
        self.rate, self.capacity, self.balance = rate, capacity, balance
        self.next_step = first_step

    def advance(self, now):
        while self.next_step <= now:
            if self.balance < self.capacity:
                self.balance = min(self.capacity, self.balance + self.rate)
            self.next_step += 60

    def request(self, cost):
        if self.balance <= 0:
            return False
        self.balance -= cost
        return True


operations = st.lists(
    st.tuples(st.floats(min_value=0, max_value=4000, allow_nan=False), st.integers(0, 400)),
    max_size=40,
)


@given(
    rate=st.integers(1, 50),
    capacity=st.integers(1, 3000),
    balance=st.integers(-500, 3000),
    first_step=st.sampled_from([60.0, 0.5, 30.25, 59.9995]),
    ops=operations,
)
def test_account_matches_a_step_by_step_replay(rate, capacity, balance, first_step, ops):
    """Skipping many steps at once gives the balance a step-by-step replay gives."""
    account = Account(
        rate=rate, capacity=capacity, balance=balance, step=60.0, first_step=first_step
    )
    naive = NaiveAccount(rate, capacity, balance, first_step)
    now = 0.0
    for gap, cost in ops:
        now += gap
        account.advance(now)
        naive.advance(now)
        assert account.try_spend(cost) == naive.request(cost)
        assert account.balance == naive.balance


@given(
    rate=st.integers(1, 1000),
    step=st.sampled_from([0.25, 0.5, 1.0, 7.5, 30.0, 90.0]),
    minutes=st.integers(1, 600),
)
def test_refill_over_time_is_exact_whatever_the_step(rate, step, minutes):
    """An empty account gains rate x elapsed minutes (within one token), whatever the step."""
    account = Account(rate=rate, capacity=10**9, balance=0, step=step, first_step=step)
    now = minutes * 60.0 + step / 2  # between two steps
    account.advance(now)
    assert account.steps == int(now // step)
    assert abs(account.balance - rate * account.steps * step / 60) < 1


@given(
    rate=st.integers(1, 100),
    spender=st.floats(min_value=0.5, max_value=500),
    gaps=st.lists(st.floats(min_value=0, max_value=500), max_size=20),
)
def test_competing_spender_never_takes_the_account_into_debt(rate, spender, gaps):
    """The background spender spends only while the balance is positive."""
    account = Account(rate=rate, capacity=60 * rate, balance=60 * rate, spender_rate=spender)
    now = 0.0
    for gap in gaps:
        now += gap
        account.advance(now)
        assert account.balance >= 0
        assert account.refilled + 60 * rate - account.spent_by_others == account.balance
