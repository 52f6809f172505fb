from tokenbudget import BucketConfig, ManualClock, Rate, TokenBucket


def test_incident_worked_numbers():
    """The strict rule waits (101 - 40) / (5/60) s for 100 tokens from a balance of 40."""
    config = BucketConfig(300, Rate.per_minute(5), burst_threshold=40, min_threshold=1)
    bucket = TokenBucket(config, clock=ManualClock(), tokens=40)
    assert bucket.try_acquire(100) is False
    assert abs(bucket.acquire(100) - 732.0) < 1e-9
