"""RedisAccountBucket: one Keepa account's bucket shared by processes, never ahead of the server."""

from __future__ import annotations

import math

import pytest

from tokenbudget import BucketConfig, DeficitRule, ManualClock, Rate


pytest.importorskip("redis", reason="redis-py is not installed (tokenbudget[redis])")

from tokenbudget_keepa.redis import RedisAccountBucket


pytestmark = pytest.mark.redis

CONFIG = BucketConfig(
    600,
    Rate.per_minute(60),
    burst_threshold=1,
    min_threshold=1,
    deficit=DeficitRule.while_positive(math.inf),
    refill_step=1.0,
)


@pytest.fixture
def clock():
    return ManualClock(1000.0)


@pytest.fixture
def make(redis_client, redis_prefix, clock):
    """Buckets of one account as separate processes would build them."""

    def make():
        return RedisAccountBucket(
            CONFIG, redis_client, key="acct", prefix=redis_prefix, clock=clock
        )

    return make


def test_a_new_bucket_adopts_the_servers_count(make):
    """Nothing booked yet: the first reported count is the balance."""
    bucket = make()
    assert bucket.snapshot().tokens == 0
    assert bucket.sync(300, refill_in=0.5).tokens == 300


def test_an_exact_count_is_adopted_even_when_higher(make):
    """A count answered while nothing else was on the wire replaces the model, up or down."""
    bucket = make()
    bucket.sync(100, refill_in=0.5)
    booking = bucket.reserve(10)
    booking.settle(10)
    assert bucket.sync(150, refill_in=0.5).tokens == 150


def test_a_count_missing_another_process_request_is_not_adopted(make):
    """While another process's request is on the wire, a higher count is not adopted."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5)
    on_the_wire = two.reserve(30)  # process two sent a request the server has not charged yet
    booking = one.reserve(10)
    booking.settle(10)
    snap = one.sync(90, refill_in=0.5)  # the server's count, without two's 30
    assert snap.tokens == 60
    on_the_wire.settle(30)
    assert two.sync(60, refill_in=0.5).tokens == 60


def test_a_late_answer_is_not_adopted(make):
    """An answer older than another process's settled request cannot raise the balance."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5)
    first = one.reserve(10)
    second = two.reserve(10)
    second.settle(10)
    assert two.sync(80, refill_in=0.5).tokens == 80  # two's answer came first, charged both
    first.settle(10)
    assert one.sync(90, refill_in=0.5).tokens == 80  # one's answer predates two's charge


def test_a_refusal_lowers_the_bucket_by_what_is_on_the_wire(make):
    """A count of zero or below is adopted, less the requests still on the wire."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5)
    two.reserve(20)
    booking = one.reserve(10)
    booking.settle(0)  # refused: a 429 costs nothing
    assert one.sync(0, refill_in=0.5).tokens == -20


def test_a_cancelled_booking_is_off_the_wire(make):
    """Cancelling a booking forgets it: the next exact count is adopted."""
    bucket = make()
    bucket.sync(0, refill_in=0.5)
    waiting = bucket.reserve(10)
    assert waiting.delay > 0
    assert waiting.cancel()
    booking = bucket.reserve(1, timeout=math.inf)
    booking.cancel()
    assert bucket.snapshot().pending == 0


def test_a_dead_process_booking_is_forgotten_after_the_horizon(make, clock):
    """A booking never settled (its process died) stops counting after five minutes."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5)
    two.reserve(30)  # then process two is killed
    clock.advance(301)
    booking = one.reserve(10)
    booking.settle(10)
    assert one.sync(500, refill_in=0.5).tokens == 500


def test_bucket_from_url_models_the_account_under_a_digest_of_its_key(redis_server, redis_prefix):
    """--bucket: the client's model of the account, named by a digest of the key, never the key."""
    from tokenbudget_keepa.redis import account_name, bucket_from_url
    from tokenbudget_keepa.testing import KeepaEmulator

    with KeepaEmulator(refill_per_min=20, api_key="s3cret-key") as emulator:
        bucket = bucket_from_url(
            redis_server, api_key="s3cret-key", base_url=emulator.url, prefix=redis_prefix
        )
        try:
            assert bucket.config.refill == Rate.per_minute(20)
            assert bucket.key == f"keepa:{account_name('s3cret-key')}"
            assert "s3cret" not in bucket.key
            assert bucket.sync(300, refill_in=1).tokens == 300
        finally:
            bucket.close()


def test_bucket_from_url_refuses_other_urls():
    """A URL that is not Redis's is a ValueError naming it."""
    from tokenbudget_keepa.redis import bucket_from_url

    with pytest.raises(ValueError, match="postgresql://x"):
        bucket_from_url("postgresql://x", api_key="k")


def test_a_request_into_debt_waits_for_the_earlier_ones_on_the_wire(make):
    """A booking that takes the balance below the threshold is not sent before earlier ones."""
    import threading

    one, two = make(), make()
    one.sync(15, refill_in=0.5)
    earlier = one.reserve(10)  # process one's request is on the wire
    returned = threading.Event()

    def book_into_debt():
        two.reserve(100)  # 5 left: the account runs it into debt
        returned.set()

    thread = threading.Thread(target=book_into_debt)
    thread.start()
    assert not returned.wait(0.2)  # sent first, it would leave one's request a 429
    earlier.settle(10)
    assert returned.wait(5)
    thread.join()


def test_a_request_that_stays_in_credit_is_not_held(make):
    """Bookings that leave the balance above the threshold go at once, whatever is on the wire."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5)
    one.reserve(10)
    booking = two.reserve(10)
    assert booking.delay == 0
    assert not booking.into_debt


def test_a_dead_process_booking_does_not_hold_a_request_into_debt(make, redis_client, redis_prefix):
    """An earlier booking whose process died never answers: the request into debt goes on."""
    import json
    import subprocess
    import sys

    from tokenbudget_keepa._lease import HolderProcess

    one, two = make(), make()
    one.sync(15, refill_in=0.5)
    earlier = one.reserve(10)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    me = HolderProcess.current()
    record = json.dumps([int(dead.stdout), me.host, me.boot_id, None])
    redis_client.hset(f"{redis_prefix}acct:holders", earlier.member, record)  # then it died
    two.reserve(100)  # returns at once instead of after the gate's minute
    assert redis_client.zscore(f"{redis_prefix}acct:inflight", earlier.member) is None
