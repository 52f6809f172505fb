"""Redis watermark store and lease, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from tokenbudget_keepa._ingestor.lease import HolderProcess
from tokenbudget_keepa._ingestor.watermark import Watermark


redis = pytest.importorskip("redis", reason="redis-py is not installed (tokenbudget[redis])")

from tokenbudget_keepa.redis import (  # noqa: E402 -- after the importorskip
    RedisLease,
    RedisStoreError,
    RedisWatermarkStore,
)


pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_client, redis_prefix):
    return RedisWatermarkStore(redis_client, prefix=redis_prefix)


@pytest.fixture
def lease(redis_client, redis_prefix):
    return RedisLease(redis_client, prefix=redis_prefix)


def test_watermark_never_moves_backwards(store):
    """advance is a compare-and-set (one script): only a greater watermark is stored."""
    assert store.load("k") is None
    assert store.advance("k", Watermark(100, "B000000005"))
    assert not store.advance("k", Watermark(100, "B000000005"))
    assert not store.advance("k", Watermark(99, "B00000000Z"))
    assert not store.advance("k", Watermark(100, "B000000004"))
    assert store.advance("k", Watermark(101, "B000000001"))
    assert store.load("k") == Watermark(101, "B000000001")


def test_watermark_minutes_compare_as_numbers(store):
    """Minute 10 is past minute 9 (numbers, not text); ASIN ties compare as Watermark does."""
    assert store.advance("k", Watermark(9, "B9"))
    assert store.advance("k", Watermark(10, "B1"))
    low, high = sorted([Watermark(11, "B0zzzzzzzz"), Watermark(11, "B0ZZZZZZZZ")])
    assert store.advance("k", high)
    assert not store.advance("k", low)
    assert store.load("k") == high


def test_concurrent_advances_keep_the_maximum(store):
    """Threads advancing one key at once leave the greatest watermark."""
    marks = [Watermark(m, f"B{m:09d}") for m in range(200)]

    def work(part):
        for w in part:
            store.advance("k", w)

    threads = [threading.Thread(target=work, args=(marks[i::4][::-1],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load("k") == max(marks)


def test_reset_and_keys(store):
    """keys lists every stored key; reset forgets one."""
    store.advance("b", Watermark(1, "B1"))
    store.advance("a", Watermark(1, "B1"))
    assert store.keys() == ["a", "b"]
    store.reset("a")
    assert store.keys() == ["b"]
    assert store.load("a") is None


def test_watermarks_never_expire(store, redis_client, redis_prefix):
    """A watermark key has no TTL: it is kept until reset."""
    store.advance("k", Watermark(1, "B1"))
    assert redis_client.ttl(f"{redis_prefix}watermark:k") == -1


def test_lease_has_one_holder(lease):
    """SET NX: a held lease is refused to others; renew and release act only for the holder."""
    token = lease.acquire("job", ttl=30)
    assert token is not None
    assert lease.acquire("job", ttl=30) is None
    assert lease.acquire("other", ttl=30) is not None
    holder = lease.holder("job")
    assert holder is not None
    assert holder.startswith(f"pid {os.getpid()} on ")
    assert not lease.renew("job", "not-the-token", ttl=30)
    assert not lease.release("job", "not-the-token")
    assert not lease.release("job", token[:-1])  # a prefix of the token is not the token
    assert lease.renew("job", token, ttl=30)
    assert lease.release("job", token)
    assert lease.holder("job") is None


def test_lease_renewal_extends_it(lease, redis_client, redis_prefix):
    """Renewing sets the expiry to ttl from now."""
    token = lease.acquire("job", ttl=1)
    assert token is not None
    assert lease.renew("job", token, ttl=100)
    assert redis_client.pttl(f"{redis_prefix}lease:job") > 50_000


def test_lease_expires_for_a_crashed_holder(lease):
    """A lease not renewed expires; the next acquire takes it and the old token is void."""
    old = lease.acquire("job", ttl=0.15)
    assert old is not None
    time.sleep(0.25)
    assert lease.holder("job") is None
    assert lease.acquire("job", ttl=30) is not None
    assert not lease.renew("job", old, ttl=30)
    assert not lease.release("job", old)


def test_lease_renewed_late_is_kept_if_nobody_took_it(lease):
    """A holder renewing after its ttl ran out keeps the lease when nobody else took it."""
    token = lease.acquire("job", ttl=0.1)
    time.sleep(0.2)
    assert lease.renew("job", token, ttl=30)
    assert lease.acquire("job", ttl=30) is None


def test_lease_of_a_dead_local_process_is_taken_over_at_once(lease, redis_server, redis_prefix):
    """A lease held by a process of this host that is gone is taken without waiting."""
    code = (
        "import sys, redis; from tokenbudget_keepa.redis import RedisLease; "
        "c = redis.Redis.from_url(sys.argv[1]); "
        "print(RedisLease(c, prefix=sys.argv[2]).acquire('job', ttl=3600)); c.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, redis_server, redis_prefix],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() != "None"
    assert lease.holder("job") is not None
    assert lease.acquire("job", ttl=30) is not None


def test_lease_of_another_host_is_not_taken_over(lease, redis_client, redis_prefix):
    """A holder on another host is never judged dead."""
    value = 'tok [999999999, "elsewhere", null, null]'
    redis_client.set(f"{redis_prefix}lease:job", value, px=60_000)
    assert lease.acquire("job", ttl=30) is None
    assert lease.holder("job") == "pid 999999999 on elsewhere, 60 s left"
    assert not HolderProcess(999_999_999, "elsewhere").is_gone()


def test_unreachable_redis_is_a_typed_error():
    """No server: RedisStoreError (a ConnectionError) naming the failure, never the password."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(
        host="127.0.0.1",
        port=1,
        password="s3cret",  # noqa: S106 -- a password that must not show in messages
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        for call in (
            lambda: RedisWatermarkStore(client).advance("k", Watermark(1, "B1")),
            lambda: RedisWatermarkStore(client).load("k"),
            lambda: RedisLease(client).acquire("k", ttl=1),
        ):
            with pytest.raises(RedisStoreError) as info:
                call()
            assert isinstance(info.value, ConnectionError)
            assert "s3cret" not in str(info.value)
    finally:
        client.close()


def test_bad_arguments_are_refused(redis_client):
    """An async client, a bad ttl: TypeError / ValueError naming the value."""
    with pytest.raises(TypeError, match=r"redis\.Redis"):
        RedisLease(object())
    with pytest.raises(ValueError, match="-1"):
        RedisLease(redis_client).acquire("k", ttl=-1)
