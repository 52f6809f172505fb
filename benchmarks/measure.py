"""The measurements: each returns plain rows (dicts) for the report.

Every loop is bounded by a deadline, every wait by a timeout: a peer that
hangs or fails is recorded as such and the run goes on.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import threading
import time
import uuid
from dataclasses import dataclass

from peers import PEERS, PING_FLOOR, Handle, Peer, close_quietly, describe_error


@dataclass(frozen=True)
class Budget:
    """How long each measurement may take."""

    reps: int = 9
    rep_seconds: float = 0.15
    redis_reps: int = 3
    contention_seconds: float = 1.0
    probe_timeout: float = 2.0
    sim_hours: float = 24.0

    @classmethod
    def quick(cls) -> Budget:
        return cls(
            reps=3,
            rep_seconds=0.05,
            redis_reps=1,
            contention_seconds=0.3,
            probe_timeout=0.5,
            sim_hours=6.0,
        )


#: "Always admitted" bucket for raw speed: nothing is ever refused.
HUGE = (10**9, 1e9)
#: The contention bucket: C = 1000 tokens, r = 1000 tokens/s (a 1 s window for window libraries).
CONTENDED = (1000, 1000.0)
CHUNK = 200


def _peers(names: list[str] | None) -> list[Peer]:
    return [p for p in PEERS if names is None or p.name in names or p.dist in names]


def _missing(peer: Peer) -> str | None:
    return None if peer.version() is not None else "not installed"


# -- in memory, one thread ------------------------------------------------------------------


def _rate(handle: Handle, cost: int, seconds: float) -> tuple[float, float, int, int]:
    """Calls per second of wall time and per second of this process's CPU time."""
    attempt = handle.attempt
    calls = admitted = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(CHUNK):
            if attempt(cost):
                admitted += 1
        calls += CHUNK
        now = time.perf_counter()
    cpu = time.process_time() - cpu_start
    return calls / (now - start), calls / cpu if cpu > 0 else float("nan"), calls, admitted


def single_thread(budget: Budget, cost: int, names: list[str] | None = None) -> list[dict]:
    """Non-blocking acquire on an always-admitting bucket: ops/s, median of repetitions.

    Also ops per second of the process's CPU time: on a shared machine the
    wall-clock rate counts the time other work had the core, the CPU-time rate
    does not.
    """
    peers = _peers(names)
    samples: dict[str, list[float]] = {p.name: [] for p in peers}
    cpu_samples: dict[str, list[float]] = {p.name: [] for p in peers}
    refused: dict[str, int] = dict.fromkeys(samples, 0)
    errors: dict[str, str] = {}
    for p in peers:
        if p.memory is None:
            errors[p.name] = "no synchronous non-blocking acquire"
        elif (why := _missing(p)) is not None:
            errors[p.name] = why
    for _ in range(budget.reps):  # interleaved, so drift on a shared machine hits all alike
        for p in peers:
            if p.name in errors:
                continue
            assert p.memory is not None
            try:
                handle = p.memory(*HUGE)
                try:
                    _rate(handle, cost, budget.rep_seconds / 10)  # warm up
                    ops, cpu_ops, calls, admitted = _rate(handle, cost, budget.rep_seconds)
                finally:
                    close_quietly(handle)
            except Exception as exc:
                errors[p.name] = describe_error(exc)
                continue
            samples[p.name].append(ops)
            cpu_samples[p.name].append(cpu_ops)
            refused[p.name] += calls - admitted
    rows = []
    for p in peers:
        row: dict = {"peer": p.name, "dist": p.dist, "ours": p.ours, "weighted": p.weighted}
        if p.name in errors:
            row["error"] = errors[p.name]
        else:
            row["ops_per_s"] = statistics.median(samples[p.name])
            row["samples"] = samples[p.name]
            row["cpu_ops_per_s"] = statistics.median(cpu_samples[p.name])
            row["cpu_samples"] = cpu_samples[p.name]
            row["refused"] = refused[p.name]
        rows.append(row)
    return rows


# -- in memory, 4 threads on one bucket -----------------------------------------------------


def _threads_once(p: Peer, budget: Budget, n_threads: int) -> dict:
    capacity, rate = CONTENDED
    counts = [[0, 0] for _ in range(n_threads)]
    failures: list[str] = []
    start = time.perf_counter()
    handle = p.memory(capacity, rate)  # type: ignore[misc]
    deadline = start + budget.contention_seconds
    gate = threading.Barrier(n_threads)

    def work(slot: list[int], attempt=handle.attempt) -> None:
        try:
            gate.wait()
            while time.perf_counter() < deadline:
                for _ in range(64):
                    if attempt(1):
                        slot[1] += 1
                slot[0] += 64
        except Exception as exc:
            failures.append(describe_error(exc))

    workers = [threading.Thread(target=work, args=(c,), daemon=True) for c in counts]
    for w in workers:
        w.start()
    for w in workers:
        w.join(budget.contention_seconds + 10)
    end = time.perf_counter()
    close_quietly(handle)
    if failures:
        return {"error": failures[0]}
    admitted = sum(c[1] for c in counts)
    bound = capacity + rate * (end - start)
    return {
        "attempts_per_s": sum(c[0] for c in counts) / (end - start),
        "admitted": admitted,
        "bound": bound,
        "over_admitted": max(0, admitted - int(bound)),
    }


def threads(budget: Budget, n_threads: int = 4, names: list[str] | None = None) -> list[dict]:
    """4 threads on one bucket (C=1000, r=1000/s): attempts/s and admitted vs C + r x elapsed.

    Three runs per library (interleaved): the median attempts/s, and the run
    that admitted the most beyond its bound.
    """
    peers = [p for p in _peers(names) if p.contention]  # one algorithm per library
    runs: dict[str, list[dict]] = {p.name: [] for p in peers}
    errors: dict[str, str] = {}
    for p in peers:
        if p.memory is None:
            errors[p.name] = "no synchronous non-blocking acquire"
        elif (why := _missing(p)) is not None:
            errors[p.name] = why
    for _ in range(3):
        for p in peers:
            if p.name in errors:
                continue
            try:
                run = _threads_once(p, budget, n_threads)
            except Exception as exc:
                run = {"error": describe_error(exc)}
            if "error" in run:
                errors[p.name] = run["error"]
            else:
                runs[p.name].append(run)
    rows = []
    for p in peers:
        row: dict = {"peer": p.name, "ours": p.ours}
        if p.name in errors:
            row["error"] = errors[p.name]
        else:
            worst = max(runs[p.name], key=lambda r: r["admitted"] - r["bound"])
            row.update(worst)
            row["attempts_per_s"] = statistics.median(r["attempts_per_s"] for r in runs[p.name])
            row["runs"] = runs[p.name]
        rows.append(row)
    return rows


# -- asyncio --------------------------------------------------------------------------------


async def _aio_rate(attempt, cost: int, seconds: float) -> float:
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(CHUNK):
            await attempt(cost)
        calls += CHUNK
        now = time.perf_counter()
    return calls / (now - start)


async def _aio_contention(p: Peer, seconds: float, tasks: int = 8) -> dict:
    capacity, rate = 10, 200.0
    start = time.perf_counter()
    handle = p.aio(capacity, rate)  # type: ignore[misc]
    deadline = start + seconds
    admitted = 0

    async def task() -> None:
        nonlocal admitted
        while time.perf_counter() < deadline:
            if (await handle.attempt(1)) is not False:
                admitted += 1
            elif not p.aio_blocks:
                await asyncio.sleep(0.001)  # a non-blocking API: poll politely

    try:
        await asyncio.wait_for(asyncio.gather(*(task() for _ in range(tasks))), seconds + 5)
    except TimeoutError:
        return {"error": f"still waiting {seconds + 5:g} s after the deadline"}
    finally:
        close_quietly(handle)
    end = time.perf_counter()
    bound = capacity + rate * (end - start)
    return {"admitted": admitted, "bound": bound, "over_admitted": max(0, admitted - int(bound))}


def aio(budget: Budget, names: list[str] | None = None) -> list[dict]:
    """asyncio acquire: ops/s on an always-admitting bucket; 8 tasks on C=10, r=200/s."""

    async def main() -> list[dict]:
        peers = [p for p in _peers(names) if p.contention]
        samples: dict[str, list[float]] = {p.name: [] for p in peers}
        errors: dict[str, str] = {}
        for p in peers:
            if p.aio is None:
                errors[p.name] = "no asyncio API"
            elif (why := _missing(p)) is not None:
                errors[p.name] = why
        for _ in range(budget.reps):
            for p in peers:
                if p.name in errors:
                    continue
                try:
                    handle = p.aio(*HUGE)  # type: ignore[misc]
                    try:
                        await _aio_rate(handle.attempt, 1, budget.rep_seconds / 10)
                        samples[p.name].append(
                            await _aio_rate(handle.attempt, 1, budget.rep_seconds)
                        )
                    finally:
                        close_quietly(handle)
                except Exception as exc:
                    errors[p.name] = describe_error(exc)
        rows = []
        for p in peers:
            row: dict = {"peer": p.name, "ours": p.ours, "blocks": p.aio_blocks}
            if p.name in errors:
                row["error"] = errors[p.name]
            else:
                row["ops_per_s"] = statistics.median(samples[p.name])
                if p.contention:
                    try:
                        row["contention"] = await _aio_contention(p, budget.contention_seconds)
                    except Exception as exc:
                        row["contention"] = {"error": describe_error(exc)}
            rows.append(row)
        return rows

    return asyncio.run(main())


# -- Redis ----------------------------------------------------------------------------------


def _count_round_trips() -> list[int]:
    """Count what redis-py sends: one send is one round trip (a pipeline sends once)."""
    from redis.connection import AbstractConnection

    counter = [0]
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        counter[0] += 1
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    return counter


def redis_worker(
    peer_name: str, url: str, key: str, start_at: float, seconds: float, queue
) -> None:
    """One process of the Redis run: waits for *start_at*, then attempts until the deadline."""
    try:
        counter = _count_round_trips()
        peer = next(p for p in [*PEERS, PING_FLOOR] if p.name == peer_name)
        handle = peer.redis(url, key, *CONTENDED)  # type: ignore[misc]
        sent_before = counter[0]
        attempts = admitted = 0
        while time.time() < start_at:
            time.sleep(0.001)
        first = time.time()
        deadline = first + seconds
        last = first
        while last < deadline:
            for _ in range(16):
                if handle.attempt(1):
                    admitted += 1
            attempts += 16
            last = time.time()
        close_quietly(handle)
        queue.put(
            {
                "attempts": attempts,
                "admitted": admitted,
                "first": first,
                "last": last,
                "sent": counter[0] - sent_before,
            }
        )
    except Exception as exc:
        queue.put({"error": describe_error(exc)})


def _commandstats(client) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): value["calls"]
        for name, value in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_scan", "cmdstat_del"))
    }


def _delete_keys(client, tag: str) -> int:
    """Delete the keys whose names contain *tag* (this run's own), and nothing else.

    The database may be shared with other work: the benchmark never flushes it.
    Every library under test puts the key it is given into its own key names.
    """
    deleted = 0
    batch: list[bytes] = []
    for name in client.scan_iter(match=f"*{tag}*", count=500):
        batch.append(name)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    return deleted


def _redis_run(p: Peer, url: str, processes: int, seconds: float, client, tag: str) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    key = f"{tag}-{uuid.uuid4().hex[:12]}"
    # Deltas, not CONFIG RESETSTAT: the server's statistics belong to everyone using it
    # (and whatever they run meanwhile is counted too: see the report's note).
    before = _commandstats(client)
    start_at = time.time() + 1.5  # the spawned interpreters import in the meantime
    procs = [
        ctx.Process(target=redis_worker, args=(p.name, url, key, start_at, seconds, queue))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = []
    for _ in procs:
        try:
            results.append(queue.get(timeout=seconds + 30))
        except Exception:
            results.append({"error": "a worker did not report in time"})
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
    after = _commandstats(client)
    stats = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    _delete_keys(client, key)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"error": errors[0]}
    attempts = sum(r["attempts"] for r in results)
    admitted = sum(r["admitted"] for r in results)
    elapsed = max(r["last"] for r in results) - min(r["first"] for r in results)
    capacity, rate = CONTENDED
    bound = capacity + rate * elapsed
    scripts = sum(v for k, v in stats.items() if k.startswith(("eval", "fcall")))
    return {
        "ops_per_s": attempts / elapsed,
        "round_trips_per_op": sum(r["sent"] for r in results) / attempts,
        "commands_per_op": sum(stats.values()) / attempts,
        "scripts_per_op": scripts / attempts,
        "commands": dict(sorted(stats.items(), key=lambda kv: -kv[1])),
        "admitted": admitted,
        "bound": bound,
        "over_admitted": max(0, admitted - int(bound)),
    }


def redis_section(budget: Budget, url: str, names: list[str] | None = None) -> dict:
    """Each peer's Redis backend, 1 and 4 processes, on C=1000, r=1000/s; and the PING floor.

    The floor is ``PING`` through the same client in the same harness: one round
    trip with no work on either side, the most a limiter sending its commands
    through redis-py's general command path could reach (tokenbudget's hot path
    packs its own command on a connection it holds, and can pass it).
    Each repetition runs the floor right before the libraries, so that
    tokenbudget's ratio to it can be taken repetition by repetition.
    Every key is named after this run's tag and deleted after its run (and once
    more at the end): the database may be shared, it is never flushed.
    """
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        server = client.info("server")["redis_version"]
    except Exception as exc:
        return {"error": f"Redis not available at {url}: {describe_error(exc)}", "rows": []}
    tag = f"tbbench-{uuid.uuid4().hex[:8]}"
    try:
        return _redis_rows(budget, url, names, client, server, tag)
    finally:
        try:
            _delete_keys(client, tag)
        finally:
            client.close()


def _redis_rows(
    budget: Budget, url: str, names: list[str] | None, client, server: str, tag: str
) -> dict:
    rows = []
    for p in _peers(names):
        if not p.contention:
            continue
        row: dict = {"peer": p.name, "ours": p.ours}
        rows.append(row)
        if p.redis is None:
            row["error"] = "no Redis backend"
            continue
        if (why := _missing(p)) is not None:
            row["error"] = why
            continue
        try:
            p.redis(url, f"{tag}-probe", *CONTENDED).close()  # importable, constructible?
        except Exception as exc:
            row["error"] = describe_error(exc)
            continue
    floor: dict = {"peer": PING_FLOOR.name}
    # Interleaved repetitions: the server is shared, its load comes and goes.
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(budget.redis_reps):
        for peer in [
            PING_FLOOR,
            *(p for p in PEERS if any(r["peer"] == p.name and "error" not in r for r in rows)),
        ]:
            for processes in (1, 4):
                run = _redis_run(peer, url, processes, budget.contention_seconds, client, tag)
                runs.setdefault((peer.name, processes), []).append(run)
    for row in [*rows, floor]:
        for processes in (1, 4):
            done = runs.get((row["peer"], processes))
            if done:
                row[f"p{processes}"] = _redis_summary(done)
    ours = next((r for r in rows if r.get("ours")), None)
    vs_floor: dict = {}
    for processes in (1, 4):
        mine = runs.get((ours["peer"], processes), []) if ours else []
        base = runs.get((PING_FLOOR.name, processes), [])
        pairs = [
            a["ops_per_s"] / b["ops_per_s"]
            for a, b in zip(mine, base, strict=False)
            if "error" not in a and "error" not in b
        ]
        if pairs:
            vs_floor[f"p{processes}"] = {
                "paired_ratio": statistics.median(pairs),
                "pairs": pairs,
            }
    return {
        "server": server,
        "url": url,
        "reps": budget.redis_reps,
        "rows": rows,
        "floor": floor,
        "vs_floor": vs_floor,
    }


def _redis_summary(runs: list[dict]) -> dict:
    """Median speed and costs of the runs, and the worst over-admission."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    worst = max(good, key=lambda r: r["admitted"] - r["bound"])
    summary = dict(worst)
    for field in ("ops_per_s", "round_trips_per_op", "commands_per_op", "scripts_per_op"):
        summary[field] = statistics.median(r[field] for r in good)
    summary["runs"] = runs
    return summary


# -- behaviour probe ------------------------------------------------------------------------


def _classify(call, timeout: float) -> str:
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return f"hangs (no answer in {timeout:g} s)"
    if "error" in box:
        return f"raises {type(box['error']).__name__}"
    result = box["result"]
    if result is False or getattr(result, "limited", False):
        return "returns False"
    return f"returns {result!r}"


def probe(budget: Budget, names: list[str] | None = None) -> list[dict]:
    """A cost above capacity (C=10, cost 11): raises, returns False, or hangs?"""
    rows = []
    capacity, rate, cost = 10, 1.0, 11
    for p in _peers(names):
        if not p.contention:
            continue
        row: dict = {"peer": p.name, "ours": p.ours}
        rows.append(row)
        if (why := _missing(p)) is not None:
            row["error"] = why
            continue
        for kind, factory in (("non_blocking", p.memory or p.check), ("blocking", p.blocking)):
            if factory is None:
                row[kind] = "no such API"
                continue
            try:
                handle = factory(capacity, rate)
            except Exception as exc:
                row[kind] = f"setup failed: {describe_error(exc)}"
                continue
            row[kind] = _classify(lambda h=handle: h.attempt(cost), budget.probe_timeout)
        if p.aio is not None:

            async def attempt(p: Peer = p) -> object:
                return await p.aio(capacity, rate).attempt(cost)  # type: ignore[misc]

            row["asyncio"] = _classify(
                lambda attempt=attempt: asyncio.run(
                    asyncio.wait_for(attempt(), budget.probe_timeout)
                ),
                budget.probe_timeout + 1,
            ).replace("raises TimeoutError", f"hangs (no answer in {budget.probe_timeout:g} s)")
        else:
            row["asyncio"] = "no such API"
    return rows
