"""Benchmark tokenbudget against the rate limiters users would otherwise pick.

Run with ``nox -s bench`` (``nox -s bench -- --quick`` for a smoke run), or
directly in an environment with the peers installed::

    python benchmarks/run.py [--quick] [--json FILE] [--markdown FILE]
        [--redis-url redis://127.0.0.1:6379/14] [--only SECTION ...]
    python benchmarks/run.py --render FILE.json [--markdown FILE]

It prints a markdown report and writes the raw results as JSON. Every section
is bounded in time; a peer that is missing or fails is reported, not fatal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_transport
import ingest
import keepa_client
import keepa_ingestor
import measure
import report
from peers import PEERS


SECTIONS = (
    "memory",
    "threads",
    "asyncio",
    "redis",
    "probe",
    "ingest",
    "keepa",
    "keepa_ingest",
    "http",
)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {cpu}"


def meta(mode: str) -> dict:
    versions: dict[str, str | None] = {}
    for p in PEERS:
        versions.setdefault(p.dist, p.version())
    try:
        from importlib import metadata

        versions["redis (redis-py)"] = metadata.version("redis")
    except Exception:
        versions["redis (redis-py)"] = None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "mode": mode,
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (about 30 s)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latest.json"))
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TOKENBUDGET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        help=(
            "a Redis database for the benchmark (default: DB 14 on localhost); it deletes "
            "only the keys it created, never the others"
        ),
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument(
        "--render", type=Path, default=None, help="only print the report of an earlier JSON file"
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        results = json.loads(args.render.read_text())
        text = report.markdown(results)
        print(text)
        if args.markdown:
            args.markdown.write_text(text + "\n")
        return 0

    budget = measure.Budget.quick() if args.quick else measure.Budget()
    results: dict = {"meta": meta("quick" if args.quick else "full")}
    timings: dict[str, float] = {}
    steps = {
        "memory": lambda: results.update(
            memory_cost1=measure.single_thread(budget, 1),
            memory_cost5=measure.single_thread(budget, 5),
        ),
        "threads": lambda: results.update(threads=measure.threads(budget)),
        "asyncio": lambda: results.update(asyncio=measure.aio(budget)),
        "redis": lambda: results.update(redis=measure.redis_section(budget, args.redis_url)),
        "probe": lambda: results.update(probe=measure.probe(budget)),  # last: hung threads linger
        "ingest": lambda: results.update(ingest=ingest.ingest(budget.sim_hours)),
        "keepa": lambda: results.update(
            keepa=keepa_client.keepa_client(budget.reps, 2 * budget.rep_seconds)
        ),
        "keepa_ingest": lambda: results.update(
            keepa_ingest=keepa_ingestor.keepa_ingestor(budget.sim_hours / 24)
        ),
        "http": lambda: results.update(
            http=http_transport.http_transport(
                budget.reps,
                2 * budget.rep_seconds,
                count=not args.quick,
                in_process_runs=5 if args.quick else http_transport.IN_PROCESS_RUNS,
            )
        ),
    }
    order = [
        "memory",
        "threads",
        "asyncio",
        "redis",
        "ingest",
        "keepa",
        "keepa_ingest",
        "http",
        "probe",
    ]
    for name in order:
        if name not in args.only:
            continue
        print(f"... {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        steps[name]()
        timings[name] = time.perf_counter() - start
    results["meta"]["section_seconds"] = timings
    results["ratios"] = report.ratios(results)
    text = report.markdown(results)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    print(f"JSON written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
