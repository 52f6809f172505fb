"""The Keepa client's overhead: requests per second through KeepaClient vs plain httpx.

Both send the same requests (``/product`` for one known ASIN, no history) to a
local KeepaEmulator whose account is large enough never to wait, over one
keep-alive connection. The client also estimates, books, settles and syncs a
bucket per request; the ratio says what that costs. The emulator's own time
per request is in both numbers, so the ratio understates the client's
overhead against a remote server (where the network dominates both).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from peers import describe_error


KEY = "bench-key"
CONCURRENCY = 10


def _rate(fn, seconds: float) -> float:
    """Calls of *fn* per second over about *seconds*."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


async def _arate(fn, seconds: float) -> float:
    """Requests per second of CONCURRENCY tasks calling *fn* for about *seconds*."""
    n = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal n
        while time.perf_counter() < deadline:
            await fn()
            n += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - start)


def keepa_client(reps: int, seconds: float) -> dict:
    try:
        import httpx

        from tokenbudget_keepa import AsyncKeepaClient, KeepaClient
        from tokenbudget_keepa.testing import KeepaEmulator
    except ImportError as exc:
        return {"error": f"tokenbudget_keepa or httpx not available: {describe_error(exc)}"}
    big = 10**9
    with KeepaEmulator(api_key=KEY, refill_per_min=big // 60, capacity=big) as keepa:
        asin = keepa.catalog_asins(1)[0]
        params = {"key": KEY, "domain": "1", "asin": asin, "history": "0"}
        plain, ours, aplain, aours = [], [], [], []
        with (
            httpx.Client(base_url=keepa.url) as http,
            KeepaClient(KEY, base_url=keepa.url) as client,
        ):
            client.products([asin], history=False)  # warm up: the bucket, the connection

            def plain_call() -> None:
                response = http.get("/product", params=params)
                response.raise_for_status()
                response.json()

            def client_call() -> None:
                client.products([asin], history=False)

            for _ in range(reps):  # interleaved, so that drift hits both alike
                plain.append(_rate(plain_call, seconds))
                ours.append(_rate(client_call, seconds))

        async def aio() -> None:
            async with (
                httpx.AsyncClient(base_url=keepa.url) as ahttp,
                AsyncKeepaClient(KEY, base_url=keepa.url) as aclient,
            ):
                await aclient.products([asin], history=False)

                async def aplain_call() -> None:
                    response = await ahttp.get("/product", params=params)
                    response.raise_for_status()
                    response.json()

                async def aclient_call() -> None:
                    await aclient.products([asin], history=False)

                for _ in range(reps):
                    aplain.append(await _arate(aplain_call, seconds))
                    aours.append(await _arate(aclient_call, seconds))

        asyncio.run(aio())
        throttled = keepa.stats().throttled
    sync_plain, sync_ours = statistics.median(plain), statistics.median(ours)
    async_plain, async_ours = statistics.median(aplain), statistics.median(aours)
    return {
        "reps": reps,
        "seconds": seconds,
        "concurrency": CONCURRENCY,
        "sync": {"httpx": sync_plain, "client": sync_ours, "ratio": sync_ours / sync_plain},
        "async": {"httpx": async_plain, "client": async_ours, "ratio": async_ours / async_plain},
        "throttled": throttled,
    }


def markdown(result: dict) -> list[str]:
    out = ["### Keepa client: requests per second vs plain httpx", ""]
    if "error" in result:
        return [*out, result["error"], ""]
    out += [
        "| | plain httpx (req/s) | KeepaClient (req/s) | client / httpx |",
        "|---|---|---|---|",
    ]
    for label, key in (("sync", "sync"), (f"asyncio, {result['concurrency']} tasks", "async")):
        row = result[key]
        out.append(f"| {label} | {row['httpx']:,.0f} | {row['client']:,.0f} | {row['ratio']:.2f} |")
    out += [
        "",
        (
            "The same `/product` request for one ASIN against a local KeepaEmulator with an account "
            "that never waits; the client also estimates, books, settles and syncs its bucket. "
            f"HTTP 429 during the run: {result['throttled']}."
        ),
        "",
    ]
    return out


if __name__ == "__main__":
    res = keepa_client(3, 0.5)
    print("\n".join(markdown(res)))
