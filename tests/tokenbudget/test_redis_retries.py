"""Redis operations are safe to retry (issue 18, defect 5).

redis-py sends a command again after a timeout or a dropped connection; the
script answers an operation it has seen with its recorded reply. Proven by
hand (the same call twice, a late duplicate) and through a TCP proxy that
delays replies past the socket timeout, cuts connections mid-reply, loses
commands and duplicates them, with sync and asyncio clients, in one process
and in four.
"""

from __future__ import annotations

import multiprocessing
import struct
import uuid
from typing import Any

import pytest

from tests.tokenbudget import _retry_worker
from tests.tokenbudget._fault_proxy import FAULTS, FaultProxy
from tokenbudget import BucketConfig, ManualClock, Rate, TokenBucket, _core


redis = pytest.importorskip("redis")

from tokenbudget._redis_lua import SCRIPT, unpack_state  # noqa: E402 -- after the importorskip
from tokenbudget.redis import RedisBackend, _head, _outcome  # noqa: E402


pytestmark = pytest.mark.redis

CONFIG = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)
RATES = {"delay": 0.02, "cut": 0.02, "lost": 0.01, "twice": 0.03, "late": 0.03}


def _call(client: Any, key: str, *tail: str) -> bytes:
    head = _head(key, CONFIG, 100.0)
    reply: bytes = client.eval(SCRIPT, *head, *tail)
    return reply


def _state(client: Any, key: str) -> dict[str, float]:
    """The numbers of the bucket's state (the hash field ``state``)."""
    return unpack_state(client.hget(key, "state"))


def test_the_same_operation_twice_is_answered_once(redis_client, redis_prefix):
    key = redis_prefix + "twice"
    lane = "@" + uuid.uuid4().hex[:16] + ":"
    first = _call(redis_client, key, "admit", "1000.0", "60.0", "inf", lane + "1")
    again = _call(redis_client, key, "admit", "1000.5", "60.0", "inf", lane + "1")
    assert again == first  # the recorded reply, not a second booking
    out = _outcome(first)
    first_id = 1000 * 10**6 + 1  # ids count from the bucket's creation time in microseconds
    assert (out.ok, out.recharging, out.booking_id, out.tokens) == (True, False, first_id, 40.0)
    # settle: booking id, time, cost, actual, the spent count at its admission
    settle = ("settle", "1001.0", str(first_id), "1000.0", "60.0", "20.0", "60.0", lane + "2")
    assert _call(redis_client, key, *settle) == _call(redis_client, key, *settle)
    sync = ("sync", "1002.0", "50.0", "", "", "", lane + "3")  # tokens, refill_in, rate, as_of
    assert _call(redis_client, key, *sync) == _call(redis_client, key, *sync)
    state = _state(redis_client, key)
    assert state["booked"] == 20.0  # booked 60 once, settled to 20 once
    assert state["next_id"] == first_id + 1
    # Without an operation id (a call by hand), a call is applied as it comes.
    _call(redis_client, key, "admit", "1003.0", "1.0", "inf")
    _call(redis_client, key, "admit", "1003.0", "1.0", "inf")
    assert _state(redis_client, key)["next_id"] == first_id + 3


def test_a_rebook_sent_twice_is_applied_once(redis_client, redis_prefix):
    """A waiter booked again (op ``rebook``) and the call retried: one new booking, not two."""
    key = redis_prefix + "rebook"
    lane = "@" + uuid.uuid4().hex[:16] + ":"
    ahead = _outcome(_call(redis_client, key, "admit", "1000.0", "200.0", "inf", lane + "1"))
    last = _outcome(_call(redis_client, key, "admit", "1000.0", "10.0", "inf", lane + "2"))
    ahead_time = repr(ahead.time + ahead.delay)
    cancel = ("cancel", "1000.0", str(ahead.booking_id), ahead_time, "200.0", lane + "3")
    assert _outcome(_call(redis_client, key, *cancel)).ok
    rebook = ("rebook", "1000.0", str(last.booking_id), lane + "4")
    first = _call(redis_client, key, *rebook)
    assert _outcome(first).ok  # booked again, earlier
    assert _outcome(first).delay < last.delay
    assert _call(redis_client, key, *rebook) == first  # the recorded reply
    state = _state(redis_client, key)
    assert state["next_id"] == last.booking_id + 2  # one new booking
    assert state["booked"] == 10.0


def test_a_late_duplicate_is_refused(redis_client, redis_prefix):
    key = redis_prefix + "late"
    lane = "@" + uuid.uuid4().hex[:16] + ":"
    _call(redis_client, key, "admit", "1000.0", "10.0", "inf", lane + "1")
    _call(redis_client, key, "admit", "1000.0", "10.0", "inf", lane + "2")
    with pytest.raises(redis.ResponseError, match="late duplicate"):
        _call(redis_client, key, "admit", "1000.0", "10.0", "inf", lane + "1")
    assert _state(redis_client, key)["next_id"] == 1000 * 10**6 + 3


def test_records_of_idle_lanes_are_removed_when_a_lane_appears(redis_client, redis_prefix):
    from tokenbudget._redis_lua import LANE_IDLE_S

    key = redis_prefix + "idle"
    old, new = "@" + "a" * 16 + ":", "@" + "b" * 16 + ":"
    _call(redis_client, key, "admit", "1000.0", "1.0", "inf", old + "1")
    later = repr(1000.0 + LANE_IDLE_S + 1)
    _call(redis_client, key, "admit", later, "1.0", "inf", new + "1")
    lanes = {f for f in redis_client.hkeys(key) if f.startswith(b"op:")}
    assert lanes == {b"op:" + b"b" * 16}


def test_each_thread_and_each_fork_has_lanes_of_its_own(redis_client, redis_prefix):
    """Two operations at once never share a lane; a bucket's operations number up on it."""
    clock = ManualClock(1000.0)
    backend = RedisBackend(redis_client, prefix=redis_prefix, clock=clock)
    bucket = TokenBucket(CONFIG, clock=clock, backend=backend, key="lanes")
    for _ in range(5):
        bucket.try_acquire(1)
    (record,) = (
        v for f, v in redis_client.hgetall(redis_prefix + "lanes").items() if f[:3] == b"op:"
    )
    assert record[:8] == struct.pack("<d", 5)  # the operation's number, then its reply
    first = backend._lane()
    second = backend._lane()
    assert first[0] != second[0]


def _check(logs: list[Any], redis_client: Any, redis_key: str) -> None:
    """What the clients were told against what Redis holds and a capped model server."""
    admissions: list[tuple[float, float, int]] = []
    settles: list[tuple[float, float]] = []
    cancelled: set[int] = set()
    booked = 0.0
    operations = 0
    for adm, sett, canc, b, ops, errors in logs:
        assert errors == []
        admissions += adm
        settles += sett
        cancelled.update(canc)
        booked += b
        operations += ops
    state = _state(redis_client, redis_key)
    # No booking lost or doubled: the booked total and the count of booking ids agree.
    assert state["booked"] == booked
    ids = [i for _, _, i in admissions if i]
    first = _core.first_id(state["origin"])  # ids count from the creation time
    assert state["next_id"] - first == len(admissions)
    assert len(ids) == len(set(ids))
    # No over-admission: a capped server charged each admission at its time never goes
    # deeper than the deficit allows after an admission.
    config = _retry_worker.CONFIG
    rate = config.refill.tokens_per_second
    events = sorted(
        [(t, c, "admit") for t, c, i in admissions if i not in cancelled]
        + [(t, c, "settle") for t, c in settles]
    )
    balance, at = _retry_worker.INITIAL, state["since"]
    for t, cost, kind in events:
        if t > at:
            balance = min(config.capacity, balance + rate * (t - at))
            at = t
        balance -= cost
        if kind == "admit":
            assert balance >= -config.max_deficit - 1e-3, (t, cost, balance)
    assert operations > 0


def test_retries_through_a_faulty_proxy(redis_server, redis_client, redis_prefix):
    """One process, a sync and an asyncio client in turn: every fault is met, nothing doubled."""
    host, port = redis_client.connection_pool.connection_kwargs["host"], 6379
    port = redis_client.connection_pool.connection_kwargs.get("port", port)
    with FaultProxy((host, port), RATES, delay=_retry_worker.PROXY_DELAY, seed=1) as proxy:
        logs = []
        for kind in ("sync", "async"):
            logs += _retry_worker.run(kind, proxy.port, redis_prefix, "one", 7, 300, 4.0)
    assert all(proxy.counts[f] > 0 for f in FAULTS), proxy.counts
    _check(logs, redis_client, redis_prefix + "one")


@pytest.mark.heavy
def test_four_processes_through_a_faulty_proxy(redis_server, redis_client, redis_prefix):
    """Thousands of operations from four processes (two sync, two asyncio) on one bucket."""
    kwargs = redis_client.connection_pool.connection_kwargs
    ctx = multiprocessing.get_context("spawn")
    ready, start, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    with FaultProxy(
        (kwargs["host"], kwargs.get("port", 6379)), RATES, delay=_retry_worker.PROXY_DELAY, seed=2
    ) as proxy:
        procs = [
            ctx.Process(
                target=_retry_worker.worker,
                args=(
                    (kind, proxy.port, redis_prefix, "four", seed, 900, 8.0),
                    ready,
                    start,
                    results,
                ),
            )
            for seed, kind in enumerate(("sync", "async", "sync", "async"))
        ]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                ready.get(timeout=60)
            start.set()
            logs = []
            for _ in procs:
                logs += results.get(timeout=60)
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
    assert all(proxy.counts[f] > 0 for f in FAULTS), proxy.counts
    assert sum(log[4] for log in logs) >= 2000
    _check(logs, redis_client, redis_prefix + "four")


def test_the_hot_path_of_try_acquire_through_a_faulty_proxy(redis_client, redis_prefix):
    """``try_acquire`` with nobody listening (RedisBackend.admitter): nothing doubled or lost.

    Two threads on one backend (one on its own connection, the other, when it finds
    it busy, on the pool's), every fault of the proxy met.
    """
    import threading

    kwargs = redis_client.connection_pool.connection_kwargs
    target = (kwargs["host"], kwargs.get("port", 6379))
    with FaultProxy(target, RATES, delay=_retry_worker.PROXY_DELAY, seed=3) as proxy:
        client = _retry_worker._client("sync", proxy.port)
        backend = RedisBackend(client, prefix=redis_prefix)
        buckets = [
            TokenBucket(_retry_worker.CONFIG, tokens=0, backend=backend, key="hot")
            for _ in range(2)
        ]
        assert all(b._fast_try is not None for b in buckets)  # the hot path, not apply
        admitted = [0, 0]

        def spend(i: int) -> None:
            for _ in range(250):
                admitted[i] += buckets[i].try_acquire(1)

        threads = [threading.Thread(target=spend, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.close()
    assert all(proxy.counts[f] > 0 for f in FAULTS), proxy.counts
    assert sum(admitted) > 0
    state = _state(redis_client, redis_prefix + "hot")
    assert state["booked"] == sum(admitted)  # each admission booked once, none lost
    assert state["next_id"] - _core.first_id(state["origin"]) == sum(admitted)


def test_the_hot_path_answers_as_apply(redis_client, redis_prefix):
    """try_acquire without listeners (the admitter) and with one (apply) decide the same."""
    config = BucketConfig(10, Rate(1, 3600))  # no refill to speak of: the same decisions
    backend = RedisBackend(redis_client, prefix=redis_prefix)
    hot = TokenBucket(config, backend=backend, key="hot")
    events: list[Any] = []
    plain = TokenBucket(config, backend=backend, key="plain", on_event=events.append)
    assert hot._fast_try is not None
    assert plain._fast_try is None
    costs = [3, 3, 3, 3, 1, 0.5, 2]
    assert [hot.try_acquire(c) for c in costs] == [plain.try_acquire(c) for c in costs]
    assert [e.kind for e in events] == ["admitted"] * 3 + ["refused", "admitted"] + ["refused"] * 2
    hot_state = _state(redis_client, redis_prefix + "hot")
    assert hot_state["booked"] == _state(redis_client, redis_prefix + "plain")["booked"] == 10.0
    # Another thread holding the backend's connection: the pool's way, the same answer.
    with backend._held_lock:
        assert hot.try_acquire(1) is False
    # An injected clock or an asyncio client: no hot path (apply decides).
    clocked = RedisBackend(redis_client, prefix=redis_prefix, clock=ManualClock(1000.0))
    assert clocked.admitter("k", config, lambda: 0.0, 10.0) is None
