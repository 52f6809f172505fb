"""Leases: one holder at a time, renew/release by the holder only, expiry."""

from __future__ import annotations

import pickle

import pytest

from tokenbudget import ManualClock, TokenBudgetError
from tokenbudget_keepa import Lease, LeaseHeld, MemoryLease


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def lease(clock):
    return MemoryLease(clock=clock)


def test_memory_lease_is_a_lease(lease):
    """MemoryLease satisfies the Lease protocol."""
    assert isinstance(lease, Lease)


def test_one_holder_at_a_time(lease):
    """A held lease cannot be acquired again; another key can."""
    assert lease.acquire("job", ttl=10) is not None
    assert lease.acquire("job", ttl=10) is None
    assert lease.acquire("other", ttl=10) is not None


def test_expires_when_not_renewed(lease, clock):
    """After its ttl, a lease that was not renewed can be taken."""
    lease.acquire("job", ttl=10)
    clock.advance(10)
    assert lease.acquire("job", ttl=10) is not None


def test_renew_extends(lease, clock):
    """A renewed lease stays held past its first ttl."""
    token = lease.acquire("job", ttl=10)
    clock.advance(8)
    assert lease.renew("job", token, ttl=10)
    clock.advance(8)
    assert lease.acquire("job", ttl=10) is None


def test_renew_and_release_by_holder_only(lease):
    """A wrong token can neither renew nor release the lease."""
    token = lease.acquire("job", ttl=10)
    assert not lease.renew("job", "not-the-token", ttl=10)
    assert not lease.release("job", "not-the-token")
    assert lease.holder("job") is not None
    assert lease.release("job", token)
    assert lease.holder("job") is None
    assert not lease.release("job", token)


def test_taken_over_lease_cannot_be_renewed(lease, clock):
    """The first holder cannot renew once another took the expired lease."""
    first = lease.acquire("job", ttl=10)
    clock.advance(11)
    lease.acquire("job", ttl=10)
    assert not lease.renew("job", first, ttl=10)


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_bad_ttl_is_refused(lease, ttl):
    """A ttl that is not a finite positive number raises ValueError naming it."""
    with pytest.raises(ValueError, match="ttl"):
        lease.acquire("job", ttl=ttl)


def test_lease_held_error():
    """LeaseHeld names the key and holder, is a TokenBudgetError and pickles."""
    err = LeaseHeld("job", "pid 1 on host")
    assert isinstance(err, TokenBudgetError)
    assert "job" in str(err)
    assert "pid 1 on host" in str(err)
    again = pickle.loads(pickle.dumps(err))  # noqa: S301
    assert (again.key, again.holder) == ("job", "pid 1 on host")
