"""RedisAccountBucket: a plain Redis bucket with bookings in flight, shared by processes.

Every process's requests on the wire live in the bucket's state; a sync stamped older than
the last one adopted (an answer overtaken by a newer one) changes nothing.
"""

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
    assert bucket.sync(300, refill_in=0.5, as_of=1.0).tokens == 300


def test_it_is_a_plain_redis_bucket_with_a_window(make):
    """No records of its own: one hash, bookings in flight for five minutes by default."""
    from tokenbudget.redis import RedisBackend

    bucket = make()
    assert type(bucket._backend) is RedisBackend
    assert bucket.config.in_flight == 300
    assert bucket.client_clock() is not None


def test_a_count_missing_another_process_request_is_lowered_by_it(make):
    """While another process's request is on the wire, the count is adopted less its cost."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5, as_of=1.0)
    on_the_wire = two.reserve(30)  # process two sent a request the server has not charged yet
    assert one.snapshot().first_in_flight == on_the_wire.booking_id
    booking = one.reserve(10)
    booking.settle(10)
    snap = one.sync(90, refill_in=0.5, as_of=2.0)  # the server's count, without two's 30
    assert snap.tokens == 60
    on_the_wire.settle(30)
    assert one.snapshot().first_in_flight == 0
    assert two.sync(60, refill_in=0.5, as_of=3.0).tokens == 60


def test_a_late_answer_is_not_adopted(make):
    """An answer stamped before one another process synced changes nothing."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5, as_of=1.0)
    first = one.reserve(10)
    second = two.reserve(10)
    second.settle(10)
    # Two's answer charged both; one's request still counts as on the wire (conservative).
    assert two.sync(80, refill_in=0.5, as_of=3.0).tokens == 70
    first.settle(10)
    late = one.sync(90, refill_in=0.5, as_of=2.0)  # one's answer predates two's
    assert not late.adopted
    assert late.tokens == 70


def test_a_refusal_lowers_the_bucket_by_what_is_on_the_wire(make):
    """A count of zero is adopted, less the requests still on the wire."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5, as_of=1.0)
    two.reserve(20)
    booking = one.reserve(10)
    booking.settle(0)  # refused: a 429 costs nothing
    assert one.sync(0, refill_in=0.5, as_of=2.0).tokens == -20


def test_a_dead_process_booking_is_forgotten_after_the_window(make, clock):
    """A booking never settled (its process died) stops counting after five minutes."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5, as_of=1.0)
    two.reserve(30)  # then process two is killed
    clock.advance(301)
    assert one.snapshot().first_in_flight == 0
    booking = one.reserve(10)
    booking.settle(10)
    assert one.sync(500, refill_in=0.5, as_of=400.0).tokens == 500


def test_a_changed_rate_holds_for_every_process(make):
    """The rate one process adopts from an answer is the rate of the others' buckets too."""
    one, two = make(), make()
    one.sync(100, refill_in=0.5, rate=Rate.per_minute(5), as_of=1.0)
    assert two.snapshot().rate == Rate.per_minute(5).tokens_per_second


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
            assert bucket.config.in_flight > 0
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
