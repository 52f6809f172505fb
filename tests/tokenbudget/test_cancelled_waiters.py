"""When a waiting booking is cancelled, the ``acquire`` calls behind it may go earlier.

aiolimiter's ``test_task_cancelled``: a task waiting for its tokens gives up
(``asyncio.wait_for``); the next waiter goes when the tokens are there for it, not at
its old time. On a memory bucket with a real clock the waiting ``acquire`` calls of this
process are booked again, in their order, and woken; never when a booking is pending
whose holder sleeps its own delay (a reservation), which would not learn a new time.

The waits are real (a second or so); the assertions read the booked waits that
``acquire`` returns, never a measured time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tokenbudget import AsyncTokenBucket, BucketConfig, Rate, TokenBucket


CONFIG = BucketConfig(40, Rate.per_second(10))  # 30 tokens take 3 s, 10 take 1 s


def test_a_cancelled_task_lets_the_next_waiter_go_earlier():
    bucket = AsyncTokenBucket(CONFIG, tokens=0)

    async def main() -> float:
        first = asyncio.ensure_future(asyncio.wait_for(bucket.acquire(30), 0.05))  # due at 3 s
        while (await bucket.snapshot()).pending < 1:  # noqa: ASYNC110 -- until booked first
            await asyncio.sleep(0)
        waiter = asyncio.ensure_future(bucket.acquire(10))  # due at 4 s behind it
        with contextlib.suppress(TimeoutError):
            await first  # gives up
        return await waiter

    waited = asyncio.run(main())
    assert waited < 2.5  # booked again at about 1 s, not 4
    assert bucket._backend.observe("default", CONFIG, bucket.clock, 0.0).pending == 0


def _acquire_in_thread(bucket: TokenBucket, cost: float) -> tuple[threading.Thread, list[float]]:
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(bucket.acquire(cost)))
    thread.start()
    return thread, result


def _wait_until_pending(bucket: TokenBucket, n: int) -> None:
    while bucket.snapshot().pending < n:
        threading.Event().wait(0.001)


def test_a_cancelled_reservation_lets_a_waiting_thread_go_earlier():
    bucket = TokenBucket(CONFIG, tokens=0)
    ahead = bucket.reserve(30)
    thread, result = _acquire_in_thread(bucket, 10)  # due at 4 s
    _wait_until_pending(bucket, 2)
    assert ahead.cancel()
    thread.join(10)
    assert result
    assert result[0] < 2.5


def test_nothing_moves_while_a_reservation_holder_waits_behind():
    """A reservation's holder sleeps its own delay: moving the line would leave it behind."""
    bucket = TokenBucket(CONFIG, tokens=0)
    first = bucket.reserve(30)
    holder = bucket.reserve(5)  # due at 3.5 s
    thread, result = _acquire_in_thread(bucket, 10)  # due at 4.5 s
    _wait_until_pending(bucket, 3)
    before = bucket.snapshot()
    assert first.cancel()
    after = bucket.snapshot()
    # Every later booking kept its time: the tail is where it was.
    assert abs((after.time + after.backlog) - (before.time + before.backlog)) < 1e-6
    assert holder.cancel()  # now only waiting acquire calls are pending: they move up
    thread.join(10)
    assert result
    assert result[0] < 3.0
