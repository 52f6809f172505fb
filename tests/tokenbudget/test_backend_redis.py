"""The Redis backend: one EVALSHA per operation, Redis time, expiring keys, both clients."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time

import pytest

from tests.tokenbudget import _contention
from tokenbudget import (
    AsyncTokenBucket,
    Backend,
    BackendError,
    BucketConfig,
    DeficitRule,
    ManualClock,
    Rate,
    TokenBucket,
)


redis = pytest.importorskip("redis")

from tokenbudget._redis_lua import REPLY, STATE_FIELDS, unpack_state  # noqa: E402
from tokenbudget.redis import RedisBackend  # noqa: E402 -- after the importorskip


pytestmark = pytest.mark.redis

CONFIG = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)


@pytest.fixture
def clock():
    return ManualClock(1_000.0)


@pytest.fixture
def backend(redis_client, redis_prefix, clock):
    return RedisBackend(redis_client, prefix=redis_prefix, clock=clock)


def _server_time(client) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def test_is_a_backend(backend):
    """RedisBackend implements the Backend protocol."""
    assert isinstance(backend, Backend)
    assert "RedisBackend(<redis.Redis>" in repr(backend)


def test_importing_tokenbudget_does_not_import_redis():
    """redis-py is an optional extra: ``import tokenbudget`` never needs it."""
    import subprocess
    import sys

    code = "import sys, tokenbudget; assert 'redis' not in sys.modules, 'redis imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_incident_numbers(backend, clock):
    """The worked numbers of SPEC §2 hold on Redis."""
    bucket = TokenBucket(CONFIG, clock=clock, tokens=40, backend=backend, key="keepa")
    assert bucket.try_acquire(100) is False
    assert bucket.acquire(100) == pytest.approx(732.0, abs=1e-9)
    assert bucket.snapshot().tokens == pytest.approx(1.0)


def test_state_is_one_hash_under_the_prefix(backend, redis_client, redis_prefix, clock):
    """A bucket is one hash named prefix + key, holding the state fields."""
    bucket = TokenBucket(CONFIG, clock=clock, backend=backend, key="acct")
    bucket.reserve(299)
    bucket.reserve(10)
    assert backend.redis_key("acct") == redis_prefix + "acct"
    assert redis_client.type(redis_prefix + "acct") == b"hash"
    fields = redis_client.hgetall(redis_prefix + "acct")
    # The reply of each lane's last operation (one lane here: one thread, two operations):
    # its number, then the reply (packed numbers).
    lanes = {f: v for f, v in fields.items() if f.startswith(b"op:")}
    assert len(lanes) == 1
    (record,) = lanes.values()
    assert struct.unpack("<d", record[:8]) == (2.0,)  # operation 2
    flags, delay, _id, now, _tokens, _spent = REPLY.unpack(record[8:])
    assert (flags, now) == (8, 1000.0)  # ok (booked), at 1000
    assert delay > 0.0  # it waits
    # The numbers in one packed field; the bookings as text; 'tokens' not a number.
    assert set(fields) - set(lanes) == {b"state", b"pending", b"flight", b"tokens"}
    assert fields[b"tokens"] == b"see-field-state"
    state = unpack_state(fields[b"state"])
    assert set(state) == set(STATE_FIELDS)
    assert (state["pending"], state["flight"], state["booked"]) == (1.0, 0.0, 309.0)
    assert state["origin"] == 1000.0
    booking_id, time, cost, settled, _before = fields[b"pending"].split()
    assert (int(booking_id), float(cost), float(settled)) == (1000 * 10**6 + 2, 10.0, 0.0)
    assert float(time) == pytest.approx(10 / (5 / 60))  # an offset from the bucket's origin


def test_client_decoding_responses(redis_server, redis_prefix, clock):
    """A client with decode_responses=True works the same."""
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    try:
        backend = RedisBackend(client, prefix=redis_prefix, clock=clock)
        bucket = TokenBucket(CONFIG, clock=clock, tokens=40, backend=backend, key="k")
        assert bucket.acquire(100) == pytest.approx(732.0, abs=1e-9)
        assert bucket.snapshot().pending == 0
    finally:
        client.close()


def test_time_comes_from_redis(redis_client, redis_prefix):
    """Without a clock, the backend runs on the Redis server's TIME."""
    backend = RedisBackend(redis_client, prefix=redis_prefix)
    bucket = TokenBucket(CONFIG, backend=backend, key="k")
    before = _server_time(redis_client)
    snap = bucket.snapshot()
    after = _server_time(redis_client)
    assert before <= snap.time <= after
    assert bucket.try_acquire(10)


def test_one_round_trip_per_operation(redis_server, redis_prefix, clock):
    """Every operation is exactly one EVALSHA from the client (counted with MONITOR)."""
    client = redis.Redis.from_url(redis_server, single_connection_client=True)
    monitor_client = redis.Redis.from_url(redis_server)
    backend = RedisBackend(client, prefix=redis_prefix, clock=clock)
    bucket = TokenBucket(CONFIG, clock=clock, backend=backend, key="rt")
    bucket.snapshot()  # the script is loaded; the connection is open
    address = client.client_info()["addr"]
    operations = 0
    try:
        with monitor_client.monitor() as monitor:
            bucket.try_acquire(10)
            reservation = bucket.reserve(295)
            reservation.cancel()
            bucket.reserve(5).settle(7)
            bucket.acquire(1, timeout=10_000)
            bucket.sync(100, refill_in=30)  # a sync, then its snapshot: two operations
            bucket.snapshot()
            operations = 9
            client.echo("tokenbudget-end-of-test")
            seen = []
            while True:
                command = monitor.next_command()
                if f"{command['client_address']}:{command['client_port']}" != address:
                    continue  # the script's own commands, and other clients
                if "tokenbudget-end-of-test" in command["command"]:
                    break
                seen.append(command["command"].split()[0].upper())
    finally:
        client.close()
        monitor_client.close()
    assert seen == ["EVALSHA"] * operations


def test_threads_share_one_bucket(backend, clock):
    """Eight threads on one client admit exactly the capacity on a still clock."""
    assert _contention.admitted_by_threads(backend, clock) == 100


def test_noscript_reloads(backend, redis_client, clock):
    """After SCRIPT FLUSH the next operation still works (and caches the script again)."""
    from tokenbudget._redis_lua import SCRIPT_SHA1

    bucket = TokenBucket(CONFIG, clock=clock, backend=backend, key="k")
    assert bucket.try_acquire(1)
    redis_client.script_flush()
    assert redis_client.script_exists(SCRIPT_SHA1) == [False]
    assert bucket.try_acquire(1)
    assert redis_client.script_exists(SCRIPT_SHA1) == [True]
    assert bucket.snapshot().tokens == pytest.approx(298.0)


def test_idle_keys_expire_after_a_full_refill(backend, redis_client, redis_prefix, clock):
    """The key's TTL is the time a full refill takes after the backlog, plus one second."""
    config = BucketConfig(10, Rate.per_second(1))
    bucket = TokenBucket(config, clock=clock, backend=backend, key="ttl")
    key = redis_prefix + "ttl"
    bucket.snapshot()
    assert 0 < redis_client.pttl(key) <= 1_000  # full: only the margin
    assert bucket.try_acquire(4)  # 4 s to refill
    assert 4_000 < redis_client.pttl(key) <= 5_000
    bucket.reserve(10)  # booked 4 s from now, leaving 0: then 10 s to refill
    assert 14_000 < redis_client.pttl(key) <= 15_000


def test_stepped_refill_expiry_adds_a_step(backend, redis_client, redis_prefix, clock):
    """With a stepped refill the TTL leaves room for one more step."""
    config = BucketConfig(10, Rate.per_minute(60), refill_step=60)
    bucket = TokenBucket(config, clock=clock, backend=backend, key="ttl")
    assert bucket.try_acquire(4)
    assert 64_000 < redis_client.pttl(redis_prefix + "ttl") <= 65_000


def test_infinite_deficit_travels_through_lua(backend, clock):
    """An unbounded while_positive deficit reaches the script as inf and back."""
    config = BucketConfig(
        10, Rate.per_second(1), min_threshold=1, deficit=DeficitRule.while_positive(math.inf)
    )
    bucket = TokenBucket(config, clock=clock, backend=backend, key="inf")
    assert bucket.try_acquire(1_000)
    snap = bucket.snapshot()
    assert snap.tokens == -990.0
    assert snap.recharging
    assert bucket.reserve(1).delay == pytest.approx(1_000.0)


def test_async_client_with_async_bucket(redis_server, redis_prefix):
    """redis.asyncio.Redis serves AsyncTokenBucket: acquire, reserve, cancel, settle, sync."""
    import redis.asyncio as aredis

    async def main() -> None:
        client = aredis.Redis.from_url(redis_server)
        clock = ManualClock()
        try:
            backend = RedisBackend(client, prefix=redis_prefix, clock=clock)
            assert "redis.asyncio.Redis" in repr(backend)
            bucket = AsyncTokenBucket(CONFIG, clock=clock, tokens=40, backend=backend, key="a")
            assert await bucket.try_acquire(100) is False
            assert await bucket.acquire(100) == pytest.approx(732.0)
            reservation = await bucket.reserve(10)
            assert reservation.delay == pytest.approx(120.0)
            assert await reservation.cancel()
            booked = await bucket.reserve(5)
            await booked.settle(2)
            snap = await bucket.sync(30)
            assert snap.tokens == pytest.approx(28.0)
            # Many tasks on one bucket: first come, first served.
            delays = await asyncio.gather(*(bucket.reserve(1) for _ in range(5)))
            times = [r.time for r in delays]
            assert times == sorted(times)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_async_bucket_with_sync_client_is_a_type_error(backend):
    """An AsyncTokenBucket needs the asyncio client; construction says so."""
    with pytest.raises(TypeError, match=r"^AsyncTokenBucket needs .* redis\.asyncio\.Redis$"):
        AsyncTokenBucket(CONFIG, backend=backend, key="k")


def test_sync_bucket_with_async_client_is_a_type_error(redis_server, redis_prefix):
    """A TokenBucket needs the sync client; construction says so."""
    import redis.asyncio as aredis

    backend = RedisBackend(aredis.Redis.from_url(redis_server), prefix=redis_prefix)
    with pytest.raises(TypeError, match=r"^TokenBucket needs .* a RedisBackend of a redis\.Redis$"):
        TokenBucket(CONFIG, backend=backend, key="k")


def test_wrong_client_kind_at_the_first_call_is_a_type_error(backend):
    """Calling the async methods of a backend holding a sync client raises TypeError."""
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis"):
        asyncio.run(backend.aobserve("k", CONFIG, None, 1.0))


def test_not_a_client_is_a_type_error():
    """Anything but a redis-py client is refused at construction."""
    with pytest.raises(TypeError, match="client must be"):
        RedisBackend("redis://localhost")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_redis_raises_backend_error():
    """A closed port raises BackendError naming redis, without the password."""
    port = _closed_port()
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        password="s3cret-pa55word",  # noqa: S106 -- a fake, to check it never shows
        socket_connect_timeout=0.5,
        retry=None,
    )
    bucket = TokenBucket(CONFIG, backend=RedisBackend(client), key="k")
    with pytest.raises(BackendError) as info:
        bucket.try_acquire(1)
    assert info.value.backend == "redis"
    assert isinstance(info.value, ConnectionError)
    assert str(info.value).startswith("redis backend: ")
    assert "s3cret-pa55word" not in str(info.value)
    assert info.value.__cause__ is None  # nothing that holds the client's secrets travels along
    with pytest.raises(BackendError):
        bucket.snapshot()


def test_unreachable_redis_raises_backend_error_async():
    """The asyncio client raises the same BackendError."""
    import redis.asyncio as aredis

    async def main() -> None:
        client = aredis.Redis(
            host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5, retry=None
        )
        bucket = AsyncTokenBucket(CONFIG, backend=RedisBackend(client), key="k")
        try:
            with pytest.raises(BackendError, match="redis backend"):
                await bucket.try_acquire(1)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_four_processes_never_over_admit(redis_server, redis_prefix, redis_client):
    """4 spawned processes on one Redis bucket admit no more than balance + refill + deficit."""
    admitted, budget, calls = _contention.contend(
        ("redis", (redis_server, redis_prefix)), "contended", lambda: _server_time(redis_client)
    )
    assert calls > 100  # they really contended
    assert admitted <= budget + 1e-6
    assert admitted >= 0.25 * budget  # and the bucket did admit most of what it could


def test_refused_on_server_time_keeps_the_expiry(redis_client, redis_prefix):
    """A refusal on Redis TIME stores the refill but leaves the expiry where it was."""
    backend = RedisBackend(redis_client, prefix=redis_prefix)
    config = BucketConfig(100, Rate.per_second(1))
    bucket = TokenBucket(config, backend=backend, key="ttl")
    key = redis_prefix + "ttl"
    assert bucket.try_acquire(100)  # empty: full again in 100 s
    first = redis_client.pttl(key)
    assert 100_000 < first <= 101_000
    assert not bucket.try_acquire(50)  # refused
    assert first - 1_000 < redis_client.pttl(key) <= first
    state = unpack_state(redis_client.hget(key, "state"))
    time = state["origin"] + state["time"]
    assert time >= _server_time(redis_client) - 1.0  # (times are offsets from the origin)


def test_a_dropped_connection_is_replaced(redis_client, redis_prefix, clock):
    """The backend's own connection, killed by the server, is reconnected (client retries)."""
    backend = RedisBackend(redis_client, prefix=redis_prefix, clock=clock)
    bucket = TokenBucket(CONFIG, clock=clock, backend=backend, key="k")
    assert bucket.try_acquire(1)
    # Only this backend's own connection: other processes may share the server.
    host, port = backend._held._sock.getsockname()[:2]
    killed = redis_client.client_kill_filter(addr=f"{host}:{port}")
    assert killed == 1
    assert bucket.try_acquire(1)
    assert bucket.snapshot().tokens == pytest.approx(298.0)


def _use_in_child(backend, queue) -> None:  # pragma: no cover -- runs in the forked child
    bucket = TokenBucket(BucketConfig(10, Rate(1, 3600)), backend=backend, key="fork")
    queue.put([bucket.try_acquire(1) for _ in range(3)])


def test_a_forked_child_takes_its_own_connection(redis_client, redis_prefix):
    """A backend made before a fork (Celery's prefork pool) works in the parent and the child."""
    import multiprocessing

    backend = RedisBackend(redis_client, prefix=redis_prefix)
    # One token an hour: the balance checked at the end does not depend on how long the
    # child took (Redis TIME is real time; a loaded machine took over 0.1 s).
    config = BucketConfig(10, Rate(1, 3600))
    bucket = TokenBucket(config, backend=backend, key="fork")
    assert bucket.try_acquire(1)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_use_in_child, args=(backend, queue))
    child.start()
    assert queue.get(timeout=20) == [True, True, True]
    child.join(20)
    assert child.exitcode == 0
    assert bucket.try_acquire(1)
    assert bucket.snapshot().tokens == pytest.approx(5.0, abs=0.1)


def _admits(config: BucketConfig):
    from hypothesis import strategies as st

    from tests.strategies import costs

    span = config.capacity / config.refill.tokens_per_second
    waits = st.one_of(
        st.just(0.0), st.just(math.inf), st.floats(0.0, span, allow_nan=False), st.just(1e-10)
    )
    dts = st.one_of(st.just(0.0), st.just(1e-10), st.floats(0.0, span, allow_nan=False))
    return st.lists(st.tuples(dts, costs(config), waits), min_size=1, max_size=30)


@pytest.mark.redis
def test_the_fast_path_equals_the_general_path(redis_client, redis_prefix):
    """The script's fast path answers, stores and expires exactly as its general admit.

    The same admits at the same (injected) times go to the script and to a copy
    whose fast path is switched off; every reply must be the same bytes and the
    two hashes the same fields, after every call.
    """
    import uuid

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from redis.exceptions import NoScriptError

    from tests.strategies import configs, starting_balances
    from tokenbudget._redis_lua import SCRIPT_SHA1, render
    from tokenbudget.redis import _head, _num

    general = redis_client.script_load(render(fast_path=False))
    assert redis_client.script_load(render()) == SCRIPT_SHA1

    scripts = {SCRIPT_SHA1: render(), general: render(fast_path=False)}

    def evalsha(sha: str, *args: object) -> object:
        # Another test (in another xdist worker) may run SCRIPT FLUSH at any time: a call
        # refused with NOSCRIPT ran nothing, so it is sent again after loading the script.
        try:
            return redis_client.execute_command("EVALSHA", sha, *args)
        except NoScriptError:
            assert redis_client.script_load(scripts[sha]) == sha
            return redis_client.execute_command("EVALSHA", sha, *args)

    def compare(config: BucketConfig, initial: float, ops: list[tuple[float, float, float]]):
        name = uuid.uuid4().hex
        keys = {sha: f"{redis_prefix}{name}:{sha[:6]}" for sha in (SCRIPT_SHA1, general)}
        now = 1000.0
        for dt, cost, max_wait in [(0.0, None, None), *ops]:
            now += dt
            replies = []
            started = time.monotonic()
            for sha, key in keys.items():
                head = _head(key, config, initial)
                if cost is None:
                    tail = ("observe", _num(now))
                else:
                    tail = ("admit", _num(now), _num(cost), _num(max_wait))
                replies.append(evalsha(sha, *head, *tail))
            assert replies[0] == replies[1], (config, initial, ops)
            fast, slow = (redis_client.hgetall(key) for key in keys.values())
            assert fast == slow, (config, initial, ops)
            ttls = [redis_client.pttl(key) for key in keys.values()]
            # Each key's expiry counts from its own call: allow the time between them.
            apart = (time.monotonic() - started) * 1000
            assert abs(ttls[0] - ttls[1]) <= 50 + apart

    # The corners random draws seldom reach: a shortfall within the tolerance (admitted,
    # the balance raised to the required one first), a refill capped at the capacity, a
    # wait within the tolerance of max_wait (booked, not refused), admissions that enter
    # recharge mode, each deficit rule's required balance.
    rate = Rate.per_second(1)
    compare(BucketConfig(10, rate), 5 - 1e-13, [(0.0, 5.0, 0.0), (1e-10, 1.0, 0.0)])
    compare(BucketConfig(10, rate, min_threshold=1), 6 - 1e-13, [(0.0, 5.0, 0.0)])
    compare(BucketConfig(10, rate), 9.5, [(100.0, 10.0, 0.0), (0.5, 1.0, 0.0)])
    compare(BucketConfig(10, rate), 4.0, [(0.0, 5.0, 1.0 - 5e-10), (0.0, 1.0, 0.0)])
    bounded = BucketConfig(10, rate, min_threshold=2, deficit=DeficitRule.bounded(5))
    compare(bounded, 10.0, [(0.0, 9.0, 0.0), (0.0, 1.0, 0.0), (3.0, 1.0, 0.0)])
    positive = BucketConfig(10, rate, min_threshold=1, deficit=DeficitRule.while_positive(3))
    compare(positive, 4.0, [(0.0, 6.0, 0.0), (0.0, 2.0, 5.0), (1.0, 1.0, 0.0)])

    @settings(
        max_examples=settings.default.max_examples * 3,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
        deadline=None,
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        config = data.draw(configs())
        compare(config, data.draw(starting_balances(config)), data.draw(_admits(config)))

    run()


#: A bucket's hash as versions before the packed state wrote it (one field a number; made by
#: the history in test_a_hash_in_the_text_format_is_converted, with the code of 2026-12-06).
TEXT_FORMAT_HASH = {
    "tokens": "1",
    "time": "1335",
    "recharging": "0",
    "rate": "0.083333333333333329",
    "anchor": "0",
    "next_id": "1000000003",
    "booked": "130",
    "since": "0",
    "pending": "1000000002 1335 100 0 101",
    "base": "-10 3 1",
    "flight": "1000000001 0 30",
    "synced": "1000000002",
    "as_of": "1002.5 3",
    "returned": "0",
    "origin": "1000",
    "seen": "3",
    "stepped": "0",
}


def test_a_hash_in_the_text_format_is_converted(redis_client, redis_prefix):
    """A key written by an earlier version keeps its state: read as it is, saved packed."""
    config = BucketConfig(
        300, Rate.per_minute(5), burst_threshold=40, min_threshold=1, in_flight=30
    )
    memory_clock = ManualClock(1000.0)
    memory = TokenBucket(config, clock=memory_clock, tokens=40)
    assert memory.try_acquire(30)
    memory_clock.advance(2)
    memory.reserve(100)
    memory_clock.advance(1)
    memory.sync(20, as_of=1002.5)

    key = redis_prefix + "old"
    redis_client.hset(key, mapping=TEXT_FORMAT_HASH)
    redis_client.pexpire(key, 60_000)
    clock = ManualClock(1003.0)
    backend = RedisBackend(redis_client, prefix=redis_prefix, clock=clock)
    bucket = TokenBucket(config, clock=clock, tokens=40, backend=backend, key="old")
    # Read as it is: the same as the memory backend after the same history.
    assert bucket.snapshot() == memory.snapshot()
    assert bucket.snapshot().pending == 1
    assert bucket.snapshot().first_in_flight == 1_000_000_001
    # The first operation saves it packed: the text fields go, 'tokens' is not a number.
    clock.advance(5)
    memory_clock.advance(5)
    assert bucket.try_acquire(1) == memory.try_acquire(1)
    fields = {f for f in redis_client.hkeys(key) if not f.startswith(b"op:")}
    assert fields == {b"state", b"pending", b"flight", b"tokens"}
    assert redis_client.hget(key, "tokens") == b"see-field-state"
    assert redis_client.hget(key, "pending") == b"1000000002 1335 100 0 101"
    assert redis_client.pttl(key) > 0
    for _ in range(3):
        clock.advance(100)
        memory_clock.advance(100)
        assert bucket.try_acquire(5) == memory.try_acquire(5)
        assert bucket.snapshot() == memory.snapshot()
    reservation, twin = bucket.reserve(50), memory.reserve(50)
    assert (reservation.delay, reservation.booking_id) == (twin.delay, twin.booking_id)
    assert bucket.snapshot() == memory.snapshot()


def test_an_observation_converts_a_hash_in_the_text_format(redis_client, redis_prefix):
    """``snapshot()`` alone converts an old key too (a read that saves once)."""
    config = BucketConfig(
        300, Rate.per_minute(5), burst_threshold=40, min_threshold=1, in_flight=30
    )
    key = redis_prefix + "old"
    redis_client.hset(key, mapping=TEXT_FORMAT_HASH)
    clock = ManualClock(1003.0)
    backend = RedisBackend(redis_client, prefix=redis_prefix, clock=clock)
    bucket = TokenBucket(config, clock=clock, tokens=40, backend=backend, key="old")
    first = bucket.snapshot()
    assert redis_client.hexists(key, "state")
    assert not redis_client.hexists(key, "origin")
    assert bucket.snapshot() == first


def test_the_expiry_on_server_time_is_set_with_slack(redis_client, redis_prefix):
    """On Redis TIME, an admit gives the key an eighth more than it needs, then leaves it.

    The fast path sets the expiry again only once the key needs more than it was
    given; a key living longer than its idle expiry holds what a memory bucket would.
    """
    from tokenbudget._redis_lua import EXPIRY_SLACK

    backend = RedisBackend(redis_client, prefix=redis_prefix)
    config = BucketConfig(100, Rate.per_second(1))
    bucket = TokenBucket(config, backend=backend, key="slack")
    key = redis_prefix + "slack"
    assert bucket.try_acquire(50)  # a new key (the general path): the exact expiry
    assert 50_000 < redis_client.pttl(key) <= 51_000
    assert bucket.try_acquire(10)  # the fast path: 61 s needed, given an eighth more
    given = redis_client.pttl(key)
    assert 61_000 * (1 + EXPIRY_SLACK) - 1_000 < given <= 61_000 * (1 + EXPIRY_SLACK) + 1
    deadline = unpack_state(redis_client.hget(key, "state"))["expires"]
    assert bucket.try_acquire(1)  # 62 s needed: within what it was given, not set again
    assert unpack_state(redis_client.hget(key, "state"))["expires"] == deadline
    assert given - 1_000 < redis_client.pttl(key) <= given
    assert bucket.try_acquire(8)  # 70 s needed, more than 68.6 given: set again
    assert unpack_state(redis_client.hget(key, "state"))["expires"] > deadline
    assert redis_client.pttl(key) > 70_000
