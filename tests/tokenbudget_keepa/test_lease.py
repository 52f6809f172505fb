"""Leases: one holder at a time, renew/release by the holder only, expiry."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

import pytest

from tokenbudget import ManualClock, TokenBudgetError
from tokenbudget_keepa import HolderProcess, Lease, LeaseHeld, MemoryLease, SQLiteLease


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ingest.db"


@pytest.fixture(params=["memory", "sqlite"])
def lease(request, clock, path):
    lease = (
        MemoryLease(clock=clock) if request.param == "memory" else SQLiteLease(path, clock=clock)
    )
    yield lease
    lease.close()


def test_lease_is_a_lease(lease):
    """Every lease satisfies the Lease protocol."""
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


def test_renew_after_expiry_while_nobody_took_it(lease, clock):
    """A holder whose ttl ran out can renew as long as nobody took the lease."""
    token = lease.acquire("job", ttl=10)
    clock.advance(30)
    assert lease.renew("job", token, ttl=10)
    assert lease.acquire("job", ttl=10) is None


def test_holder_describes_a_live_lease_only(lease, clock):
    """holder() describes a held lease and is None once it expired."""
    assert lease.holder("job") is None
    lease.acquire("job", ttl=10)
    assert lease.holder("job")
    clock.advance(10)
    assert lease.holder("job") is None


# -- SQLite: the holder's process ----------------------------------------------------------


def test_sqlite_holder_names_pid_and_host(path):
    """The SQLite lease's holder names the holding process."""
    with SQLiteLease(path) as lease:
        lease.acquire("job", ttl=60)
        assert lease.holder("job").startswith(f"pid {os.getpid()} on ")


def test_two_sqlite_leases_on_one_file_exclude_each_other(path):
    """Two lease objects (connections) on one file see one holder."""
    with SQLiteLease(path) as a, SQLiteLease(path) as b:
        token = a.acquire("job", ttl=60)
        assert b.acquire("job", ttl=60) is None
        assert not b.release("job", "wrong")
        assert a.release("job", token)
        assert b.acquire("job", ttl=60) is not None


HOLDER = """
import sys
from tokenbudget_keepa import SQLiteLease
lease = SQLiteLease(sys.argv[1])
print(lease.acquire("job", ttl=3600), flush=True)
sys.stdin.read()  # hold it until the test kills us (or closes stdin)
"""


def _spawn_holder(path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    token = proc.stdout.readline().strip()
    return proc, token


def test_lease_of_a_killed_holder_is_taken_over_at_once(path):
    """After the holder process is killed (SIGKILL), the next acquire takes the lease at once."""
    proc, token = _spawn_holder(path)
    try:
        assert token not in ("", "None")
        with SQLiteLease(path) as lease:
            assert lease.acquire("job", ttl=60) is None
            assert lease.holder("job").startswith(f"pid {proc.pid} ")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert lease.holder("job") is None
            mine = lease.acquire("job", ttl=60)
            assert mine is not None
            assert mine != token
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def test_live_holder_in_another_process_keeps_it(path):
    """While the holding process runs, the lease stays held until its ttl."""
    proc, _token = _spawn_holder(path)
    try:
        with SQLiteLease(path) as lease:
            assert lease.acquire("job", ttl=60) is None
    finally:
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()


def test_reused_pid_is_gone():
    """A holder record whose pid now runs with another start time counts as gone."""
    me = HolderProcess.current()
    if me.started is None:
        pytest.skip("no /proc start times on this platform")
    assert not me.is_gone()
    assert HolderProcess(me.pid, me.host, me.boot_id, "1").is_gone()


def test_other_boot_is_gone():
    """A holder recorded under another boot id of this host counts as gone."""
    me = HolderProcess.current()
    if me.boot_id is None:
        pytest.skip("no boot id on this platform")
    assert HolderProcess(me.pid, me.host, "another-boot", me.started).is_gone()


def test_holder_on_another_host_is_never_gone():
    """Nothing is concluded about a process of another host: it waits for the ttl."""
    assert not HolderProcess(2**22 + 12345, "elsewhere/pid:[1]").is_gone()


def test_dead_pid_on_this_host_is_gone():
    """A pid that no longer runs on this host counts as gone."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    me = HolderProcess.current()
    assert HolderProcess(proc.pid, me.host, me.boot_id, None).is_gone()
