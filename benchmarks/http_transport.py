"""The quota transport's overhead: requests per second through QuotaTransport vs the bare client.

Both send the same chat-completion request to the loopback OpenAI-like server
of the test suite (``tests/http_servers.py``), whose limits are large enough
never to wait, over keep-alive connections; the server runs in a process of its
own, so that it does not compete with the client for the interpreter lock.
Through the transport each request is also estimated (its JSON body walked),
booked on two buckets (requests and tokens), its answer read, parsed (headers
and ``usage``), settled and synced. The ratio (transport / bare) says what that
costs; the server's own time per request is in both numbers, so against a remote
server, where the network dominates, the ratio would be closer still to 1.
Measured for httpx and httpx2, sync and with asyncio tasks.

Time on a shared machine moves by more than the transport adds (the bare
client's own CPU a request has moved by 30 % between runs here), so where
``valgrind`` is installed the section also counts the client's instructions a
request under callgrind, bare and through the transport, over the same
loopback: a figure that does not depend on the machine's load (the method of
CodSpeed and iai). It tracks the transport's own work from change to change,
but it is not the measure of the target: the transport's instructions take
longer each than the client's (in process, 1.25x by count is 1.62x by time), so
the count met 1.1x where time did not (docs/performance.md, "Instructions are
not time").

Time that the load moves little is measured in process (``in_process``): both
clients send through an inner transport that answers at once with the loopback
server's answer, and the fastest of many short runs, taken in turns, counts. The
transport's own time a request there moved by 1 µs (sync) to 4 µs (10 tasks) in
about 45 between runs, with two busy processes on the machine's two CPUs or
without (not under a load beyond the CPUs: during a test run it doubled). Added
to the bare client's CPU a request over loopback, it gives an estimate of the
CPU ratio (not the target's measure).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from peers import describe_error


CONCURRENCY = 10
ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.http_servers import OpenAIServer
with OpenAIServer(rpm=10**9, tpm=10**12) as server:
    print(server.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(sum(server.refused.values()), flush=True)
"""
BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Which is the largest planet of the solar system?"},
    ],
    "max_tokens": 16,
}


@contextlib.contextmanager
def _server() -> Iterator[tuple[str, list[int]]]:
    """(url, [429s after the run]) of a loopback OpenAI-like server in a process of its own."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    refused: list[int] = []
    try:
        yield proc.stdout.readline().strip(), refused
    finally:
        proc.stdin.close()
        line = proc.stdout.readline().strip()
        refused.append(int(line) if line.isdigit() else -1)
        proc.wait(timeout=10)


def _rate(fn, seconds: float) -> tuple[float, float]:
    """Calls of *fn* per second over about *seconds*, and this process's CPU seconds per call."""
    n = 0
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        fn()
        n += 1
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n


async def _arate(fn, seconds: float) -> tuple[float, float]:
    """Requests per second of CONCURRENCY tasks calling *fn* for about *seconds*, CPU per call."""
    n = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal n
        while time.perf_counter() < deadline:
            await fn()
            n += 1

    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n


PATH = "/v1/chat/completions"


def _call(client) -> None:
    """The benchmark's request, as an SDK makes it: sent, checked, its JSON read."""
    response = client.post(PATH, json=BODY)
    response.raise_for_status()
    response.json()


async def _acall(client) -> None:
    """:func:`_call` with an ``AsyncClient``."""
    response = await client.post(PATH, json=BODY)
    response.raise_for_status()
    response.json()


def _in_turn(turn: int, plain, quota) -> tuple:
    """The two clients in the order of *turn*: the bare one first on even turns.

    Each goes first in turn, so that drift on the machine hits both alike; and
    :func:`_unturned` puts the turn's two results back as (bare, transport).
    """
    return (plain, quota) if turn % 2 == 0 else (quota, plain)


def _unturned(turn: int, first, second) -> tuple:
    """The results of a turn's first and second run as (bare, transport) (see :func:`_in_turn`)."""
    return (first, second) if turn % 2 == 0 else (second, first)


def _measure(lib, adapter, url: str, reps: int, seconds: float) -> dict:
    bare, ours, abare, aours = [], [], [], []
    with (
        lib.Client(base_url=url) as plain,
        lib.Client(base_url=url, transport=adapter.QuotaTransport("openai")) as quota,
    ):
        _call(plain)
        _call(quota)  # warm up: the buckets, the connections
        for rep in range(reps):
            first, second = _in_turn(rep, plain, quota)
            one = _rate(lambda client=first: _call(client), seconds)
            other = _rate(lambda client=second: _call(client), seconds)
            plain_run, our_run = _unturned(rep, one, other)
            bare.append(plain_run)
            ours.append(our_run)

    async def aio() -> None:
        transport = adapter.AsyncQuotaTransport("openai")
        async with (
            lib.AsyncClient(base_url=url) as aplain,
            lib.AsyncClient(base_url=url, transport=transport) as aquota,
        ):
            await _acall(aplain)
            await _acall(aquota)
            for rep in range(reps):
                first, second = _in_turn(rep, aplain, aquota)
                one = await _arate(lambda client=first: _acall(client), seconds)
                other = await _arate(lambda client=second: _acall(client), seconds)
                plain_run, our_run = _unturned(rep, one, other)
                abare.append(plain_run)
                aours.append(our_run)

    asyncio.run(aio())
    out = {}
    for mode, plain_runs, our_runs in (("sync", bare, ours), ("async", abare, aours)):
        p = statistics.median(rate for rate, _ in plain_runs)
        o = statistics.median(rate for rate, _ in our_runs)
        # The overhead factor: time per request through the transport over the bare client's;
        # beside the ratio of the medians, the median of the back-to-back pairs' ratios (which
        # load coming and going on the machine disturbs less), and the client's CPU a request.
        pairs = [pr / orate for (pr, _), (orate, _) in zip(plain_runs, our_runs, strict=True)]
        out[mode] = {
            "bare": p,
            "transport": o,
            "ratio": p / o,
            "pair_ratio": statistics.median(pairs),
            "bare_cpu_us": statistics.median(c for _, c in plain_runs) * 1e6,
            "transport_cpu_us": statistics.median(c for _, c in our_runs) * 1e6,
        }
    return out


#: What one callgrind run does: N requests after a warm-up, through the bare client or the transport.
COUNTED = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from http_transport import CONCURRENCY, _acall, _call
name, url, mode, kind, n = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
lib = __import__(name)
adapter = __import__(f"tokenbudget.http.{name}", fromlist=["QuotaTransport"])
if mode == "sync":
    extra = {"transport": adapter.QuotaTransport("openai")} if kind == "transport" else {}
    with lib.Client(base_url=url, **extra) as client:
        for _ in range(20 + n):
            _call(client)
else:
    async def main():
        extra = {"transport": adapter.AsyncQuotaTransport("openai")} if kind == "transport" else {}
        async with lib.AsyncClient(base_url=url, **extra) as client:
            async def worker(k):
                for _ in range(k):
                    await _acall(client)
            await asyncio.gather(*(worker(2) for _ in range(CONCURRENCY)))  # warm-up
            await asyncio.gather(*(worker(n // CONCURRENCY) for _ in range(CONCURRENCY)))
    asyncio.run(main())
"""
#: The requests of the two callgrind runs whose difference is counted (start-up cancels out).
COUNTED_RUNS = (100, 400)


def _instructions(name: str, url: str, mode: str, kind: str, n: int) -> int | None:
    """The instructions callgrind counts in a process that makes *n* requests (see COUNTED)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={Path(tmp) / 'out'}",
                sys.executable,
                "-c",
                COUNTED,
                str(Path(__file__).resolve().parent),
                name,
                url,
                mode,
                kind,
                str(n),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    return int(found.group(1)) if done.returncode == 0 and found else None


def instructions(names: list[str], url: str) -> dict:
    """Client instructions a request, bare and through the transport, per library and mode.

    The difference between runs of COUNTED_RUNS requests, over their difference in
    requests; the four runs of a row go two at a time.
    """
    if shutil.which("valgrind") is None:
        return {"error": "valgrind is not installed"}
    low, high = COUNTED_RUNS
    out: dict = {"runs": list(COUNTED_RUNS)}
    for name in names:
        row: dict = {}
        for mode in ("sync", "async"):
            jobs = [(kind, n) for kind in ("bare", "transport") for n in (low, high)]
            with ThreadPoolExecutor(2) as pool:
                counts = dict(
                    zip(
                        jobs,
                        pool.map(
                            lambda job, name=name, mode=mode: _instructions(name, url, mode, *job),
                            jobs,
                        ),
                        strict=True,
                    )
                )
            if None in counts.values():
                row[mode] = {"error": "a callgrind run failed"}
                continue
            per = {
                kind: (counts[kind, high] - counts[kind, low]) / (high - low)  # type: ignore[operator]
                for kind in ("bare", "transport")
            }
            row[mode] = {**per, "ratio": per["transport"] / per["bare"]}
        out[name] = row
    return out


#: In process: requests a run, and runs of each client (the fastest run of each counts).
IN_PROCESS_REQUESTS = 300
IN_PROCESS_RUNS = 15


def _answer(lib, url: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The loopback server's answer to the benchmark's request: its raw header fields and body.

    Replayed as is, its ``Date`` included: every answer then has the same ``as_of``,
    which the transport adopts (only an older one is stale).
    """
    with lib.Client(base_url=url) as client:
        response = client.post(PATH, json=BODY)
        response.raise_for_status()
        return list(response.headers.raw), response.content


def _figures(bare: list[float], ours: list[float]) -> dict:
    """The in-process figures of runs taken in turns (seconds a request each), in µs.

    ``own_us``: the fastest run through the transport less the fastest bare run
    (each the least disturbed of its kind, seldom of the same pair, so it may
    come out below 0 on a busy machine); ``own_pairs_us``: the median of the
    pairs' differences, a check on it.
    """
    return {
        "bare_us": min(bare) * 1e6,
        "own_us": (min(ours) - min(bare)) * 1e6,
        "own_pairs_us": statistics.median(o - b for b, o in zip(bare, ours, strict=True)) * 1e6,
    }


def in_process(lib, adapter, answer: tuple[list[tuple[bytes, bytes]], bytes], runs: int) -> dict:
    """The transport's own time a request in process, sync and with CONCURRENCY asyncio tasks.

    Both clients send through an inner transport that answers at once with the
    loopback server's header fields and body, so no socket, no server and no
    kernel share the time: the bare client's time a request, and the transport's
    own (through it, less bare), each from the fastest of *runs* runs of
    IN_PROCESS_REQUESTS requests, taken in turns (see :func:`_figures`). The
    fastest run is the one the machine's other load disturbed least: with two
    busy processes on two CPUs the transport's own time moved by 1 to 4 µs in
    45, where the ratios of the fastest loopback runs moved by up to a third;
    a machine loaded beyond its CPUs (a test run) moves it too. The loopback
    ratios are the target's measure; the own time shows what a change does to
    the transport's time.
    """
    headers, body = answer

    class Inner(lib.BaseTransport):
        def handle_request(self, request):
            request.read()
            return lib.Response(200, headers=headers, stream=lib.ByteStream(body))

    class AsyncInner(lib.AsyncBaseTransport):
        async def handle_async_request(self, request):
            await request.aread()
            return lib.Response(200, headers=headers, stream=lib.ByteStream(body))

    def timed(client) -> float:
        start = time.perf_counter()
        for _ in range(IN_PROCESS_REQUESTS):
            _call(client)
        return (time.perf_counter() - start) / IN_PROCESS_REQUESTS

    out: dict = {}
    with (
        lib.Client(base_url="http://bench", transport=Inner()) as plain,
        lib.Client(
            base_url="http://bench", transport=adapter.QuotaTransport("openai", transport=Inner())
        ) as quota,
    ):
        bare, ours = [], []
        for run in range(runs + 1):  # the first pair warms up
            first, second = _in_turn(run, plain, quota)
            one, other = timed(first), timed(second)
            if run:
                plain_time, our_time = _unturned(run, one, other)
                bare.append(plain_time)
                ours.append(our_time)
        out["sync"] = _figures(bare, ours)

    async def aio() -> dict:
        async def atimed(client) -> float:
            each = IN_PROCESS_REQUESTS // CONCURRENCY

            async def worker() -> None:
                for _ in range(each):
                    await _acall(client)

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return (time.perf_counter() - start) / (each * CONCURRENCY)

        transport = adapter.AsyncQuotaTransport("openai", transport=AsyncInner())
        async with (
            lib.AsyncClient(base_url="http://bench", transport=AsyncInner()) as aplain,
            lib.AsyncClient(base_url="http://bench", transport=transport) as aquota,
        ):
            bare, ours = [], []
            for run in range(runs + 1):
                first, second = _in_turn(run, aplain, aquota)
                one, other = await atimed(first), await atimed(second)
                if run:
                    plain_time, our_time = _unturned(run, one, other)
                    bare.append(plain_time)
                    ours.append(our_time)
        return _figures(bare, ours)

    out["async"] = asyncio.run(aio())
    return out


def http_transport(
    reps: int, seconds: float, *, count: bool = True, in_process_runs: int = IN_PROCESS_RUNS
) -> dict:
    results: dict = {
        "reps": reps,
        "seconds": seconds,
        "concurrency": CONCURRENCY,
        "in_process_runs": in_process_runs,
    }
    libs = []
    for name in ("httpx", "httpx2"):
        try:
            lib = __import__(name)
            adapter = __import__(f"tokenbudget.http.{name}", fromlist=["QuotaTransport"])
        except ImportError as exc:
            results[name] = {"error": f"{name} not available: {describe_error(exc)}"}
            continue
        libs.append((name, lib, adapter))
    if not libs:
        return results
    with _server() as (url, refused):
        for name, lib, adapter in libs:
            results[name] = _measure(lib, adapter, url, reps, seconds)
            own = in_process(lib, adapter, _answer(lib, url), in_process_runs)
            for mode, figures in own.items():
                results[name][mode]["in_process"] = figures
        if count:
            results["instructions"] = instructions([name for name, _, _ in libs], url)
    results["throttled"] = refused[0]
    return results


def implied(row: dict) -> float | None:
    """1 + the in-process own time / the bare client's CPU a request over loopback, or None.

    An estimate, not the target's measure: its denominator moves with the load,
    and over loopback the transport has cost more than in process (its CPU ratio
    is mostly above this).
    """
    own = (row.get("in_process") or {}).get("own_us")
    bare = row.get("bare_cpu_us")
    return None if own is None or not bare else 1 + own / bare


def _in_process_table(result: dict) -> list[str]:
    out = [
        "",
        (
            "| client | in process: the bare client (µs a request) | the transport's own (µs) "
            "| its own, median of pairs (µs) | 1 + own / the bare client's CPU over loopback |"
        ),
        "|---|---|---|---|---|",
    ]
    rows = 0
    for name in ("httpx", "httpx2"):
        for mode, label in (("sync", name), ("async", f"{name}, {result['concurrency']} tasks")):
            row = (result.get(name) or {}).get(mode) or {}
            figures = row.get("in_process")
            if not figures:
                continue
            ratio = implied(row)
            shown = f"{ratio:.3f}x" if ratio is not None else ""
            pairs = figures.get("own_pairs_us")
            paired = f"{pairs:.1f}" if pairs is not None else ""
            out.append(
                f"| {label} | {figures['bare_us']:.1f} | {figures['own_us']:.1f} | {paired} "
                f"| {shown} |"
            )
            rows += 1
    if not rows:
        return []
    runs = result.get("in_process_runs", IN_PROCESS_RUNS)
    return [
        *out,
        "",
        (
            "In process: both clients send through an inner transport that answers at once with "
            "the loopback server's header fields and body; the fastest of "
            f"{runs} runs of {IN_PROCESS_REQUESTS} requests each, in turns. "
            + (
                "With two busy processes on the machine's two CPUs the transport's own time moved "
                "by 1 to 4 µs in 45 (a heavier load moves it too): it shows what a change does to "
                "the transport's time. The last column is an estimate, not the target's measure."
                if runs >= IN_PROCESS_RUNS
                else f"Fewer runs than the full {IN_PROCESS_RUNS}: a smoke run, not a measure."
            )
        ),
    ]


def markdown(result: dict) -> list[str]:
    out = [
        "### HTTP quota transport: time per request vs the bare client",
        "",
        (
            "| client | bare (req/s) | with QuotaTransport (req/s) "
            "| time per request, transport / bare | median of paired ratios "
            "| client CPU per request, bare / with the transport (µs) |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for name in ("httpx", "httpx2"):
        row = result.get(name)
        if row is None:
            continue
        if "error" in row:
            out.append(f"| {name} | {row['error']} | | |")
            continue
        for mode, label in (("sync", name), ("async", f"{name}, {result['concurrency']} tasks")):
            r = row[mode]
            cpu = (
                f"{r['bare_cpu_us']:,.0f} / {r['transport_cpu_us']:,.0f}"
                if "bare_cpu_us" in r
                else ""
            )
            paired = f"{r['pair_ratio']:.2f}x" if "pair_ratio" in r else ""
            out.append(
                f"| {label} | {r['bare']:,.0f} | {r['transport']:,.0f} | {r['ratio']:.2f}x "
                f"| {paired} | {cpu} |"
            )
    out += _in_process_table(result)
    counted = result.get("instructions") or {}
    if "error" in counted:
        out += ["", f"Instructions a request: not counted ({counted['error']})."]
    elif counted:
        out += [
            "",
            ("| client | instructions a request, bare | with QuotaTransport | transport / bare |"),
            "|---|---|---|---|",
        ]
        for name in ("httpx", "httpx2"):
            for mode, label in (
                ("sync", name),
                ("async", f"{name}, {result['concurrency']} tasks"),
            ):
                r = (counted.get(name) or {}).get(mode)
                if r is None:
                    continue
                if "error" in r:
                    out.append(f"| {label} | {r['error']} | | |")
                    continue
                out.append(
                    f"| {label} | {r['bare']:,.0f} | {r['transport']:,.0f} | {r['ratio']:.3f}x |"
                )
        low, high = counted["runs"]
        out += [
            "",
            (
                f"Counted by callgrind in the client's process (runs of {low} and {high} "
                "requests, their difference): the same on a loaded machine as on a quiet one, "
                "so it shows what a change does to the transport's work; the kernel's work on "
                "the sockets is not in it. It is not the target's measure: the transport's "
                "instructions take longer each than the client's, so the count can meet a ratio "
                "that time does not."
            ),
        ]
    out += [
        "",
        (
            "The same chat-completion request to the loopback OpenAI-like server of the tests, in "
            "another process, with limits that never wait; through the transport each request is "
            "also estimated, booked on two buckets, its answer parsed, settled and synced "
            f"(target: at most 1.10x). HTTP 429 during the run: {result.get('throttled')}."
        ),
        "",
    ]
    return out


if __name__ == "__main__":
    res = http_transport(3, 0.5)
    print("\n".join(markdown(res)))
