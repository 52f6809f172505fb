"""The Keepa client's overhead: requests per second through KeepaClient vs plain httpx.

Both send the same requests (``/product`` for one known ASIN, no history) to a
KeepaEmulator whose account is large enough never to wait, over keep-alive
connections. The emulator runs in a process of its own, so that it does not
compete with the client for the interpreter lock. The client also estimates, books, settles and syncs a
bucket per request; the ratio says what that costs. The emulator's own time
per request is in both numbers, so the ratio understates the client's
overhead against a remote server (where the network dominates both).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

from peers import describe_error


KEY = "bench-key"
CONCURRENCY = 10
SERVER = """
import sys
from tokenbudget_keepa.testing import KeepaEmulator
big = 10**9
with KeepaEmulator(api_key=sys.argv[1], refill_per_min=big // 60, capacity=big) as keepa:
    print(keepa.url, keepa.catalog_asins(1)[0], flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(keepa.stats().throttled, flush=True)
"""


@contextlib.contextmanager
def _emulator() -> Iterator[tuple[str, str, list[int]]]:
    """(url, asin, [429s after the run]) of an emulator in a process of its own."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    throttled: list[int] = []
    try:
        url, asin = proc.stdout.readline().split()
        yield url, asin, throttled
    finally:
        proc.stdin.close()
        line = proc.stdout.readline().strip()
        throttled.append(int(line) if line.isdigit() else -1)
        proc.wait(timeout=10)


def _rate(fn, seconds: float) -> tuple[float, float]:
    """Calls of *fn* per second over about *seconds*, and this process's CPU µs a call."""
    n = 0
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        fn()
        n += 1
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e6


async def _arate(fn, seconds: float) -> tuple[float, float]:
    """Requests per second of CONCURRENCY tasks calling *fn* for about *seconds*, CPU µs each."""
    n = 0
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal n
        while time.perf_counter() < deadline:
            await fn()
            n += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e6


def keepa_client(reps: int, seconds: float) -> dict:
    try:
        import httpx

        from tokenbudget_keepa import AsyncKeepaClient, KeepaClient
    except ImportError as exc:
        return {"error": f"tokenbudget_keepa or httpx not available: {describe_error(exc)}"}
    with _emulator() as (url, asin, throttled):
        params = {"key": KEY, "domain": "1", "asin": asin, "history": "0"}
        plain, ours, aplain, aours = [], [], [], []
        with (
            httpx.Client(base_url=url) as http,
            KeepaClient(KEY, base_url=url) as client,
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
                httpx.AsyncClient(base_url=url) as ahttp,
                AsyncKeepaClient(KEY, base_url=url) as aclient,
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
    return {
        "reps": reps,
        "seconds": seconds,
        "concurrency": CONCURRENCY,
        "sync": _row(plain, ours),
        "async": _row(aplain, aours),
        "throttled": throttled[0],
    }


def _row(plain: list[tuple[float, float]], ours: list[tuple[float, float]]) -> dict:
    """Medians of the rates and of the CPU a request, and the ratio of each rep's pair."""
    rate = statistics.median(r for r, _ in plain)
    our_rate = statistics.median(r for r, _ in ours)
    cpu = statistics.median(c for _, c in plain)
    our_cpu = statistics.median(c for _, c in ours)
    # Each rep's two rates were measured one after the other: their ratio sees the same load.
    ratios = sorted(o[0] / p[0] for p, o in zip(plain, ours, strict=True))
    return {
        "httpx": rate,
        "client": our_rate,
        "ratio": our_rate / rate,
        "ratio_of_pairs": statistics.median(ratios),
        "httpx_cpu_us": cpu,
        "client_cpu_us": our_cpu,
        "extra_cpu_us": our_cpu - cpu,
    }


def markdown(result: dict) -> list[str]:
    out = ["### Keepa client: requests per second vs plain httpx", ""]
    if "error" in result:
        return [*out, result["error"], ""]
    out += [
        (
            "| | plain httpx (req/s) | KeepaClient (req/s) | client / httpx | "
            "httpx CPU (µs/req) | client's extra CPU (µs/req) |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for label, key in (("sync", "sync"), (f"asyncio, {result['concurrency']} tasks", "async")):
        row = result[key]
        cpu = (
            f"{row['httpx_cpu_us']:,.0f} | {row['extra_cpu_us']:,.0f}"
            if "extra_cpu_us" in row
            else "- | -"
        )
        out.append(
            f"| {label} | {row['httpx']:,.0f} | {row['client']:,.0f} | {row['ratio']:.2f} | {cpu} |"
        )
    out += [
        "",
        (
            "The same `/product` request for one ASIN against a KeepaEmulator in another process, "
            "with an account that never waits; the client also checks the parameters, estimates, "
            "books, settles and syncs its bucket, and parses the products. The CPU columns are "
            "the benchmark process's CPU time a request (medians), which the machine's load "
            "disturbs less than the rates. "
            f"HTTP 429 during the run: {result['throttled']}."
        ),
        "",
    ]
    return out


if __name__ == "__main__":
    res = keepa_client(3, 0.5)
    print("\n".join(markdown(res)))
