"""Turn the results into markdown tables (the JSON is the results themselves)."""

from __future__ import annotations

import statistics

import http_transport
import keepa_client
import keepa_ingestor
from peers import PEERS


def _n(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _ratio(x: float | None, best: float | None) -> str:
    if x is None or not best:
        return "-"
    return f"{x / best:.2f}x"


def best_peer(rows: list[dict], value, *, weighted_only: bool = False) -> tuple[str, float] | None:
    """The best row that is not ours: (name, value)."""
    candidates = [
        (r["peer"], value(r))
        for r in rows
        if not r.get("ours") and value(r) is not None and (r.get("weighted") or not weighted_only)
    ]
    return max(candidates, key=lambda c: c[1]) if candidates else None


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def _name(row: dict) -> str:
    return f"**{row['peer']}**" if row.get("ours") else row["peer"]


def _ops(row: dict | None) -> float | None:
    return None if row is None else row.get("ops_per_s")


def paired_ratio(
    rows: list[dict], ours: dict | None, peer: str, field: str = "samples"
) -> float | None:
    """Median over repetitions of ours / peer, each pair measured back to back.

    Less sensitive than the ratio of medians to load that comes and goes on a
    shared machine. *field*: ``samples`` (wall clock) or ``cpu_samples``.
    """
    other = next((r for r in rows if r["peer"] == peer), None)
    if not ours or not other or not ours.get(field) or not other.get(field):
        return None
    return statistics.median(a / b for a, b in zip(ours[field], other[field], strict=False))


def ratios(results: dict) -> dict:
    """tokenbudget / best peer for each headline number (None when not measured)."""
    out: dict = {}
    for key, rows in (
        ("cost1", results.get("memory_cost1")),
        ("cost5", results.get("memory_cost5")),
    ):
        if rows:
            ours = next((r for r in rows if r.get("ours")), None)
            best = best_peer(rows, _ops, weighted_only=True)
            out[f"memory_{key}"] = (
                {
                    "ours": _ops(ours),
                    "best_peer": best[0],
                    "best": best[1],
                    "ratio": _ops(ours) / best[1],
                    "paired_ratio": paired_ratio(rows, ours, best[0]),
                    "cpu_paired_ratio": paired_ratio(rows, ours, best[0], "cpu_samples"),
                }
                if best and _ops(ours)
                else None
            )
    rows = results.get("threads") or []
    ours = next((r for r in rows if r.get("ours")), None)
    exact = best_peer(
        [r for r in rows if r.get("over_admitted") == 0], lambda r: r.get("attempts_per_s")
    )
    if ours and exact and ours.get("attempts_per_s"):
        out["threads_vs_best_exact_peer"] = {
            "ours": ours["attempts_per_s"],
            "best_peer": exact[0],
            "best": exact[1],
            "ratio": ours["attempts_per_s"] / exact[1],
        }
    rows = results.get("asyncio") or []
    ours = next((r for r in rows if r.get("ours")), None)
    best = best_peer(rows, _ops)
    if ours and best and _ops(ours):
        out["asyncio"] = {
            "ours": _ops(ours),
            "best_peer": best[0],
            "best": best[1],
            "ratio": _ops(ours) / best[1],
        }
    kc = results.get("keepa") or {}
    for mode in ("sync", "async"):
        if mode in kc:
            out[f"keepa_client_{mode}"] = {
                "ours": kc[mode]["client"],
                "best_peer": "plain httpx",
                "best": kc[mode]["httpx"],
                "ratio": kc[mode]["ratio"],
            }
    ht = results.get("http") or {}
    for lib in ("httpx", "httpx2"):
        for mode in ("sync", "async"):
            row = (ht.get(lib) or {}).get(mode)
            if row:
                out[f"http_transport_{lib}_{mode}"] = {
                    "ours": row["transport"],
                    "best_peer": f"bare {lib}",
                    "best": row["bare"],
                    "ratio": row["transport"] / row["bare"],
                }
            ratio = http_transport.implied(row) if row else None
            if row and ratio is not None:
                # The in-process time a request, against the bare client's CPU over loopback:
                # fewer is better, so the ratio is bare / transport (as for instructions).
                out[f"http_transport_{lib}_{mode}_in_process"] = {
                    "ours": row["bare_cpu_us"] * ratio,
                    "best_peer": f"bare {lib}",
                    "best": row["bare_cpu_us"],
                    "ratio": 1 / ratio,
                }
            counted = ((ht.get("instructions") or {}).get(lib) or {}).get(mode)
            if counted and "ratio" in counted:
                # Instructions a request: fewer is better, so the ratio is bare / transport.
                out[f"http_transport_{lib}_{mode}_instructions"] = {
                    "ours": counted["transport"],
                    "best_peer": f"bare {lib}",
                    "best": counted["bare"],
                    "ratio": counted["bare"] / counted["transport"],
                }
    red = results.get("redis") or {}
    for procs in ("p1", "p4"):
        rows = [{**r, **(r.get(procs) or {})} for r in red.get("rows", [])]
        ours = next((r for r in rows if r.get("ours")), None)
        best = best_peer(rows, _ops)
        out[f"redis_{procs}"] = (
            {
                "ours": _ops(ours),
                "best_peer": best[0],
                "best": best[1],
                "ratio": _ops(ours) / best[1],
            }
            if best and _ops(ours)
            else None
        )
        floor = _ops((red.get("floor") or {}).get(procs))
        paired = (red.get("vs_floor") or {}).get(procs, {}).get("paired_ratio")
        out[f"redis_{procs}_vs_ping"] = (
            {
                "ours": _ops(ours),
                "best_peer": "PING (the floor)",
                "best": floor,
                "ratio": _ops(ours) / floor,
                "paired_ratio": paired,
                "round_trips_per_op": (ours or {}).get("round_trips_per_op"),
            }
            if floor and _ops(ours)
            else None
        )
    return out


def _floor_lines(red: dict) -> list[str]:
    """The PING floor and tokenbudget's ratio to it."""
    floor = red.get("floor") or {}
    ours = next((r for r in red.get("rows", []) if r.get("ours")), None)
    parts = []
    for procs, label in (("p1", "One process"), ("p4", "four processes")):
        base = floor.get(procs) or {}
        mine = (ours or {}).get(procs) or {}
        if "ops_per_s" not in base or "ops_per_s" not in mine:
            continue
        paired = (red.get("vs_floor") or {}).get(procs, {}).get("paired_ratio")
        parts.append(
            f"{label}, PING {_n(base['ops_per_s'])} ops/s, tokenbudget "
            f"{mine['ops_per_s'] / base['ops_per_s']:.2f}x of it"
            + (f" (each repetition's pair, median: {paired:.2f}x)" if paired is not None else "")
            + f", {mine['round_trips_per_op']:.2f} round trips per operation"
        )
    if not parts:
        return []
    return [
        "The floor: `PING` through the same client and harness, one round trip that does "
        "no work. " + "; ".join(parts) + ".",
        "",
    ]


def markdown(results: dict) -> str:
    meta = results["meta"]
    out = [
        (
            f"Run {meta['date']} on {meta['machine']} ({meta['cpus']} CPUs), "
            f"{meta['python']}, mode {meta['mode']}."
        ),
        "",
        "Versions: "
        + ", ".join(f"{k} {v or 'not installed'}" for k, v in meta["versions"].items())
        + ".",
        "",
    ]
    for cost in (1, 5):
        rows = results.get(f"memory_cost{cost}")
        if rows is None:
            continue
        best = best_peer(rows, _ops, weighted_only=True)
        out += [f"### In memory, one thread, non-blocking acquire of cost {cost}", ""]
        body = [
            [
                _name(r),
                _n(_ops(r)) if "error" not in r else r["error"],
                _ratio(_ops(r), best[1] if best else None),
            ]
            for r in rows
        ]
        out += _table(["library", "ops/s (median)", "x best peer"], body)
        if best:
            ours = next((r for r in rows if r.get("ours")), None)
            paired = paired_ratio(rows, ours, best[0])
            cpu = paired_ratio(rows, ours, best[0], "cpu_samples")
            out += [
                "",
                f"Best peer with weighted costs: {best[0]} ({_n(best[1])} ops/s)."
                + (
                    f" Ratio of each repetition's pair, median: {paired:.2f}x."
                    if paired is not None
                    else ""
                )
                + (
                    f" The same in operations per second of this process's CPU time "
                    f"(leaving out the time other work held the core): {cpu:.2f}x."
                    if cpu is not None
                    else ""
                ),
            ]
        out.append("")
    rows = results.get("threads")
    if rows is not None:
        best = best_peer(rows, lambda r: r.get("attempts_per_s"))
        exact = best_peer(
            [r for r in rows if r.get("over_admitted") == 0], lambda r: r.get("attempts_per_s")
        )
        out += ["### In memory, 4 threads on one bucket (C = 1000, r = 1000/s)", ""]
        body = []
        for r in rows:
            if "error" in r:
                body.append([_name(r), r["error"], "", "", "", "", ""])
                continue
            body.append(
                [
                    _name(r),
                    _n(r["attempts_per_s"]),
                    _ratio(r["attempts_per_s"], best[1] if best else None),
                    _ratio(r["attempts_per_s"], exact[1] if exact else None),
                    str(r["admitted"]),
                    _n(r["bound"]),
                    str(r["over_admitted"]),
                ]
            )
        out += _table(
            [
                "library",
                "attempts/s",
                "x best peer",
                "x best exact peer",
                "admitted",
                "C + r x elapsed",
                "over-admitted",
            ],
            body,
        )
        out += [
            "",
            (
                "Exact: no over-admission. Most attempts are refused here: the bucket admits "
                "about r per second."
            ),
            "",
        ]
    rows = results.get("asyncio")
    if rows is not None:
        best = best_peer(rows, _ops)
        out += [
            "### asyncio acquire (always admitted), and 8 tasks on C = 10, r = 200/s",
            "",
        ]
        body = []
        for r in rows:
            if "error" in r:
                body.append([_name(r), r["error"], "", "", ""])
                continue
            c = r.get("contention", {})
            body.append(
                [
                    _name(r),
                    _n(r["ops_per_s"]) + ("" if r["blocks"] else " (non-blocking API)"),
                    _ratio(r["ops_per_s"], best[1] if best else None),
                    c.get("error") or f"{c.get('admitted')} / {_n(c.get('bound'))}",
                    str(c.get("over_admitted", "-")),
                ]
            )
        out += _table(
            ["library", "ops/s (median)", "x best peer", "admitted / bound", "over-admitted"], body
        )
        out.append("")
    red = results.get("redis")
    if red is not None:
        out += ["### Redis, C = 1000, r = 1000/s, one key, 1 and 4 processes", ""]
        if "error" in red:
            out += [red["error"], ""]
        else:
            out += [
                (
                    f"Redis {red['server']}; median of {red.get('reps', 1)} interleaved runs of each "
                    "library, over-admission from its worst run."
                ),
                "",
            ]
            body = []
            bests = {}
            for procs in ("p1", "p4"):
                b = best_peer([{**r, **(r.get(procs) or {})} for r in red["rows"]], _ops)
                bests[procs] = b[1] if b else None
            for r in red["rows"]:
                if "error" in r:
                    body.append([_name(r), r["error"]] + [""] * 7)
                    continue
                cells = [_name(r)]
                for procs in ("p1", "p4"):
                    m = r.get(procs, {})
                    if "error" in m:
                        cells += [m["error"], "", "", ""]
                        continue
                    cells += [
                        _n(m["ops_per_s"]),
                        _ratio(m["ops_per_s"], bests[procs]),
                        (
                            f"{m['round_trips_per_op']:.2f} / {m.get('scripts_per_op', 0):.2f}"
                            f" / {m['commands_per_op']:.2f}"
                        ),
                        str(m["over_admitted"]),
                    ]
                body.append(cells)
            out += _table(
                [
                    "library",
                    "1 proc ops/s",
                    "x best peer",
                    "round trips / scripts / commands per op",
                    "over-admitted",
                    "4 procs ops/s",
                    "x best peer",
                    "round trips / scripts / commands per op",
                    "over-admitted",
                ],
                body,
            )
            out += [
                "",
                (
                    "Round trips: requests redis-py sent (a script call or a pipeline is one). "
                    "Scripts and commands: `INFO commandstats` on the server, per operation: "
                    "EVAL/EVALSHA calls, and all calls including those a Lua script makes "
                    "(the server's counts over the run, so other clients of a shared server "
                    "add to them)."
                ),
                "",
                *_floor_lines(red),
            ]
    rows = results.get("probe")
    if rows is not None:
        out += ["### A cost above capacity (C = 10, cost 11)", ""]
        body = [
            [
                _name(r),
                r.get("error") or r.get("non_blocking", ""),
                r.get("blocking", ""),
                r.get("asyncio", ""),
            ]
            for r in rows
        ]
        out += _table(["library", "non-blocking", "blocking", "asyncio"], body)
        out.append("")
    ing = results.get("ingest")
    if ing is not None:
        out += [
            f"### Ingest simulation: items per hour / physical limit ({ing.get('hours', '?'):g} simulated hours)",
            "",
        ]
        if "error" in ing:
            out += [ing["error"], ""]
        else:
            labels = [
                k for k in ing["rows"][0] if k not in ("rate_per_min", "limit_items_per_hour")
            ]
            body = []
            for r in ing["rows"]:
                body.append(
                    [f"{r['rate_per_min']}/min", _n(r["limit_items_per_hour"])]
                    + [f"{r[k]['share']:.1%}" if "share" in r[k] else r[k]["error"] for k in labels]
                )
            out += _table(["refill", "limit (items/h)", *[f"batch {k}" for k in labels]], body)
            inc = ing["incident"]
            out += [
                "",
                (
                    "The incident (5/min, burst 40, a batch ingestor and a one-item consumer sharing "
                    f"the account, {ing['hours']:g} h): fixed 20 (poll) processed "
                    f"{inc['20 (poll)']['ingestor_items']} ingestor items; auto (book) "
                    f"{inc['auto (book)']['ingestor_items']} ({inc['auto (book)']['share']:.1%} of the "
                    "limit with the small consumer)."
                ),
                f"Simulator speed: at most {ing['slowest_24h_seconds']:.3f} s per simulated day.",
                "",
            ]
    kc = results.get("keepa")
    if kc is not None:
        out += keepa_client.markdown(kc)
    ki = results.get("keepa_ingest")
    if ki is not None:
        out += keepa_ingestor.markdown(ki)
    ht = results.get("http")
    if ht is not None:
        out += http_transport.markdown(ht)
    notes = [f"- {p.name}: {note}" for p in PEERS for note in p.notes]
    if notes:
        out += ["Notes:", "", *notes, ""]
    return "\n".join(out)
