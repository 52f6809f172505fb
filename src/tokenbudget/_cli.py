"""The ``tokenbudget`` command line (stdlib :mod:`argparse` only)."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import attrs


if TYPE_CHECKING:
    from ._config import BucketConfig
    from ._sim import Consumer, ItemCost, SimulationReport


def _version() -> str:
    from ._version import version

    return version()


# -- option values -------------------------------------------------------------------------


def _number(text: str, *, minimum: float | None = None, strict: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise argparse.ArgumentTypeError(f"must be {relation} {minimum:g}, got {text}")
    return value


def _positive(text: str) -> float:
    return _number(text, minimum=0.0, strict=True)


def _non_negative(text: str) -> float:
    return _number(text, minimum=0.0)


def _finite(text: str) -> float:
    return _number(text)


def _batch(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 1 or 'auto', got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'auto', got {text!r}")
    return value


def _item_cost(text: str) -> str:
    from .sim import ItemCost

    try:
        ItemCost.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected N or LOW..HIGH with 0 < LOW <= HIGH, got {text!r}"
        ) from None
    return text


@attrs.frozen
class _Deficit:
    kind: str
    max_deficit: float | None

    def __str__(self) -> str:
        label = self.kind.replace("_", "-")
        return label if self.max_deficit is None else f"{label}:{self.max_deficit:g}"


def _deficit(text: str) -> _Deficit:
    kind, sep, amount = text.partition(":")
    kind = kind.replace("_", "-")
    usage = f"expected none, while-positive[:N] or bounded:N, got {text!r}"
    if kind not in {"none", "while-positive", "bounded"} or (kind == "none" and sep):
        raise argparse.ArgumentTypeError(usage)
    if kind == "bounded" and not sep:
        raise argparse.ArgumentTypeError(f"bounded needs a maximum debt, bounded:N; got {text!r}")
    max_deficit = None
    if sep:
        try:
            max_deficit = _non_negative(amount)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(usage) from None
    return _Deficit(kind.replace("-", "_"), max_deficit)


def _strategy(text: str) -> str:
    if text not in {"book", "poll"}:
        raise argparse.ArgumentTypeError(f"expected book or poll, got {text!r}")
    return text


_CONSUMER_KEYS: Final = ("name", "batch", "strategy", "item-cost", "tick")


@attrs.frozen
class _ConsumerOption:
    """A ``--consumer`` value; unset fields follow the row (strategy) or the options."""

    name: str | None = None
    batch: int | str = 1
    strategy: str | None = None
    item_cost: str | None = None
    tick: float | None = None  # 0: no tick


def _consumer(text: str) -> _ConsumerOption:
    fields: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().replace("_", "-")
        value = value.strip()
        if not sep or key not in _CONSUMER_KEYS:
            raise argparse.ArgumentTypeError(
                f"expected KEY=VALUE pairs with keys {', '.join(_CONSUMER_KEYS)}; got {part!r}"
            )
        try:
            if key == "batch":
                fields["batch"] = _batch(value)
            elif key == "strategy":
                fields["strategy"] = _strategy(value)
            elif key == "item-cost":
                fields["item_cost"] = _item_cost(value)
            elif key == "tick":
                fields["tick"] = _non_negative(value)
            else:
                fields["name"] = value
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{key}: {e}") from None
    return _ConsumerOption(**fields)  # type: ignore[arg-type]


# -- presets ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Settings:
    """The scenario options, resolved from the defaults or the incident preset."""

    rate_per_min: float = 5.0
    capacity: float = 300.0
    burst: float = 40.0
    min: float = 1.0
    deficit: _Deficit = _Deficit("none", None)
    tokens: float = 0.0
    item_cost: str = "5"
    batch: tuple[int | str, ...] = ("auto",)
    strategy: tuple[str, ...] = ("book",)
    hours: float = 24.0
    tick: float = 60.0
    consumer: tuple[_ConsumerOption, ...] = ()
    seed: int = 0
    incident: bool = False


_SCENARIO_OPTIONS: Final = tuple(a.name for a in attrs.fields(_Settings) if a.name != "incident")
#: ``tokenbudget simulate`` with no scenario options: the seed incident.
_INCIDENT: Final = _Settings(
    batch=(20, "auto"),
    strategy=("poll", "book"),
    consumer=(_ConsumerOption(name="small", batch=1),),
    incident=True,
)
INCIDENT_COMMAND: Final = (
    "tokenbudget simulate --rate-per-min 5 --capacity 300 --burst 40 --min 1 --deficit none "
    "--tokens 0 --item-cost 5 --batch 20 --batch auto --strategy poll --strategy book "
    "--tick 60 --hours 24 --consumer name=small,batch=1"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tokenbudget`` command."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``tokenbudget`` parser and its ``simulate`` subparser."""
    parser = argparse.ArgumentParser(
        prog="tokenbudget",
        description="Livelock-free, cost-weighted token buckets: see a budget before spending it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = commands.add_parser(
        "simulate",
        help="simulate consumers sharing one token bucket (no options: replay the incident)",
        description=(
            "Simulate consumers sharing one token bucket for simulated hours, in milliseconds, "
            "and report items per hour, utilization of the refill budget, the longest stall and "
            "idle wake-ups. One row per --batch and --strategy combination. With no scenario "
            "options it replays the seed incident (the same as --incident): "
            f"{INCIDENT_COMMAND}"
        ),
        argument_default=argparse.SUPPRESS,
    )
    sim.add_argument("--version", action="version", version=f"tokenbudget {_version()}")
    account = sim.add_argument_group("the account (one shared bucket)")
    account.add_argument(
        "--rate-per-min", type=_positive, metavar="R", help="refill, tokens per minute (default 5)"
    )
    account.add_argument(
        "--capacity", type=_positive, metavar="C", help="most tokens held (default 300)"
    )
    account.add_argument(
        "--burst",
        type=_positive,
        metavar="B",
        help="burst threshold: the balance that ends recharge mode (default 40)",
    )
    account.add_argument(
        "--min",
        type=_non_negative,
        metavar="M",
        help="min threshold: a debit leaving less enters recharge mode (default 1)",
    )
    account.add_argument(
        "--deficit",
        type=_deficit,
        metavar="RULE",
        help="none (strict), while-positive[:N] (Keepa) or bounded:N (default none)",
    )
    account.add_argument(
        "--tokens", type=_finite, metavar="T", help="starting balance (default 0: drained)"
    )
    work = sim.add_argument_group("the workload")
    work.add_argument(
        "--item-cost",
        type=_item_cost,
        metavar="COST",
        help="tokens per item: N, or LOW..HIGH drawn uniformly per item (default 5)",
    )
    work.add_argument(
        "--batch",
        type=_batch,
        action="append",
        metavar="N|auto",
        help="items per batch, or auto (AdaptiveBatchSizer); repeat to compare (default auto)",
    )
    work.add_argument(
        "--strategy",
        choices=["book", "poll"],
        action="append",
        help="book: reserve/acquire; poll: the pre-fix loop (wait for the burst threshold, "
        "try once, recharge on refusal); repeat to compare (default book)",
    )
    work.add_argument(
        "--consumer",
        type=_consumer,
        action="append",
        metavar="SPEC",
        help="a competing consumer on the same account, e.g. batch=5,strategy=poll,item-cost=5 "
        "(keys: name, batch, strategy, item-cost, tick; strategy follows the row's by default); "
        "repeatable",
    )
    work.add_argument(
        "--tick",
        type=_non_negative,
        metavar="SECONDS",
        help="the scheduler period of poll consumers (a Celery beat; 0: none, they sleep until "
        "the balance should reach the burst threshold) (default 60)",
    )
    run = sim.add_argument_group("the run")
    run.add_argument("--hours", type=_positive, metavar="H", help="simulated hours (default 24)")
    run.add_argument("--seed", type=int, metavar="N", help="seed of the cost draws (default 0)")
    run.add_argument(
        "--incident",
        action="store_true",
        help="start from the incident's scenario; other options override it",
    )
    run.add_argument("--json", action="store_true", help="print JSON: an object with a rows list")
    run.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the balance over time of every row into FILE.png (needs matplotlib)",
    )
    return parser, sim


# -- simulate --------------------------------------------------------------------------------


class _UsageError(Exception):
    """A bad combination of options: exit 2 with a message naming the option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"argument {option}: {message}")


@attrs.frozen
class _Row:
    """One simulated batch setting: the ingestor's batch and strategy, and every consumer."""

    batch: int | str
    strategy: str
    consumers: tuple[Consumer, ...]


def _settings(args: argparse.Namespace) -> _Settings:
    given = {k: v for k, v in vars(args).items() if k in _SCENARIO_OPTIONS}
    for key in ("batch", "strategy", "consumer"):
        if key in given:
            given[key] = tuple(given[key])
    incident = bool(getattr(args, "incident", False)) or not given
    return attrs.evolve(_INCIDENT if incident else _Settings(), **given)


def _config(s: _Settings) -> BucketConfig:
    from . import BucketConfig, DeficitRule, Rate

    if s.burst > s.capacity:
        raise _UsageError("--burst", f"{s.burst:g} exceeds --capacity {s.capacity:g}")
    if s.min > s.burst:
        raise _UsageError("--min", f"{s.min:g} exceeds --burst {s.burst:g}")
    kind, max_deficit = s.deficit.kind, s.deficit.max_deficit
    if kind == "while_positive" and s.min <= 0:
        raise _UsageError(
            "--deficit", "while-positive admits only while the balance is positive: needs --min > 0"
        )
    if kind == "none":
        rule = DeficitRule.none()
    elif kind == "while_positive":
        rule = DeficitRule.while_positive(max_deficit)
    else:
        rule = DeficitRule.bounded(max_deficit or 0.0)
    try:
        config = BucketConfig(
            s.capacity,
            Rate.per_minute(s.rate_per_min),
            burst_threshold=s.burst,
            min_threshold=s.min,
            deficit=rule,
        )
    except ValueError as e:  # pragma: no cover -- every case is checked above
        raise _UsageError("--capacity", str(e)) from None
    if not -config.max_deficit <= s.tokens <= config.capacity:
        raise _UsageError(
            "--tokens",
            f"{s.tokens:g} is outside [-max deficit, capacity] = "
            f"[{0.0 - config.max_deficit:g}, {config.capacity:g}]",
        )
    return config


def _check_admissible(
    config: BucketConfig, s: _Settings, option: str, cost: ItemCost, batch: int | str
) -> None:
    """Refuse a workload the account can never admit (it would raise CostExceedsCapacity)."""
    if s.deficit.kind == "none":
        why = "--capacity minus --min under --deficit none"
    else:
        why = f"--capacity plus the debt --deficit {s.deficit} allows"
    limit = config.max_cost
    if cost.high > limit:
        raise _UsageError(
            option,
            f"an item costs up to {cost.high:g} tokens, but this account never admits more than "
            f"{limit:g} at once ({why})",
        )
    if isinstance(batch, int) and batch * cost.high > limit:
        raise _UsageError(
            "--batch" if option == "--item-cost" else option,
            f"{batch} items x {cost.high:g} tokens = {batch * cost.high:g} tokens, but this "
            f"account never admits more than {limit:g} at once ({why})",
        )


def _rows(config: BucketConfig, s: _Settings) -> list[_Row]:
    from .sim import Consumer, ItemCost

    item_cost = ItemCost.parse(s.item_cost)

    def tick_for(strategy: str, own: float | None) -> float | None:
        value = own if own is not None else (s.tick if strategy == "poll" else 0.0)
        return value or None

    names = {"ingestor"}
    others: list[tuple[_ConsumerOption, str, ItemCost]] = []
    for i, option in enumerate(s.consumer):
        name = option.name or f"c{i + 2}"
        if name in names:
            raise _UsageError("--consumer", f"the name {name!r} is used twice")
        names.add(name)
        cost = ItemCost.parse(option.item_cost) if option.item_cost else item_cost
        _check_admissible(config, s, "--consumer", cost, option.batch)
        others.append((option, name, cost))
    rows = []
    for strategy in s.strategy:
        for batch in s.batch:
            _check_admissible(config, s, "--item-cost", item_cost, batch)
            consumers = [
                Consumer(
                    item_cost=item_cost,
                    batch=batch,  # type: ignore[arg-type]
                    strategy=strategy,  # type: ignore[arg-type]
                    tick=tick_for(strategy, None),
                    name="ingestor",
                )
            ]
            for option, name, cost in others:
                own = option.strategy or strategy
                consumers.append(
                    Consumer(
                        item_cost=cost,
                        batch=option.batch,  # type: ignore[arg-type]
                        strategy=own,  # type: ignore[arg-type]
                        tick=tick_for(own, option.tick),
                        name=name,
                    )
                )
            rows.append(_Row(batch, strategy, tuple(consumers)))
    return rows


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class _Progress:
    """A one-line progress bar on a terminal's stderr, shown only on runs longer than 0.5 s."""

    def __init__(self, stream: IO[str], rows: int) -> None:
        self._stream = stream
        self._rows = rows
        self._row = 0
        self._start = time.monotonic()
        self._shown = False
        self._enabled = stream.isatty()

    def row(self, index: int) -> Callable[[float], None]:
        self._row = index
        return self.update

    def update(self, share: float) -> None:
        if not self._enabled or time.monotonic() - self._start < 0.5:
            return
        done = (self._row + share) / self._rows
        bar = "#" * round(done * 30)
        self._stream.write(f"\rsimulating [{bar:<30}] {done:4.0%}")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\r" + " " * 50 + "\r")
            self._stream.flush()


def _row_dict(row: _Row, report: SimulationReport) -> dict[str, object]:
    main = report.consumers[0]
    return {
        "batch": row.batch,
        "strategy": row.strategy,
        "items": main.items,
        "items_per_hour": main.items_per_hour,
        "utilization": main.utilization,
        "longest_stall_s": main.longest_stall_s,
        "idle_wakeups": main.idle_wakeups,
        "wakeups": main.wakeups,
        "batches": main.batches,
        "mean_batch": main.mean_batch,
        "tokens_spent": main.tokens_spent,
        "first_progress_s": main.first_progress_s,
        "total": {
            "items": report.items,
            "items_per_hour": report.items_per_hour,
            "utilization": report.utilization,
            "longest_stall_s": report.longest_stall_s,
            "idle_wakeups": report.idle_wakeups,
            "tokens_available": report.tokens_available,
            "tokens_spent": report.tokens_spent,
            "tokens_wasted": report.tokens_wasted,
        },
        "consumers": [c.to_dict() for c in report.consumers],
    }


def _table(s: _Settings, config: BucketConfig, results: list[tuple[_Row, SimulationReport]]) -> str:
    intro = "The seed incident, replayed" if s.incident else "Simulated"
    lines = [
        (
            f"{intro}: {s.hours:g} hours on one account of {s.rate_per_min:g} tokens/min, "
            f"capacity {config.capacity:g},"
        ),
        (
            f"burst {config.burst_threshold:g}, min {config.min_threshold:g}, "
            f"deficit {s.deficit}, starting at {s.tokens:g} tokens."
        ),
    ]
    first = results[0][1].consumers
    work = f"ingestor: {s.item_cost} tokens an item, batch and strategy per row"
    if "poll" in s.strategy or any(c.strategy == "poll" for c in first[1:]):
        work += f"; poll runs every {s.tick:g} s" if s.tick else "; poll has no scheduler tick"
    lines.append(work + ".")
    if len(first) > 1:
        lines.append(
            "sharing the account: "
            + ", ".join(f"{c.name} (batch {c.batch}, item cost {c.item_cost})" for c in first[1:])
            + "."
        )
    lines.append("")
    head = (
        f"{'strategy':<8} {'batch':>5} {'items':>6} {'items/h':>7} {'util':>6} "
        f"{'longest stall':>13} {'idle wake-ups':>13}"
    )
    lines.append(head + "".join(f" {c.name + ' items':>11}" for c in first[1:]))
    for row, report in results:
        main = report.consumers[0]
        line = (
            f"{row.strategy:<8} {row.batch!s:>5} {main.items:>6} {main.items_per_hour:>7.1f} "
            f"{main.utilization:>6.1%} {_duration(main.longest_stall_s):>13} "
            f"{main.idle_wakeups:>13}"
        )
        lines.append(line + "".join(f" {c.items:>11}" for c in report.consumers[1:]))
    lines.append("")
    lines += _verdicts(s, config, results)
    return "\n".join(lines)


def _verdicts(
    s: _Settings, config: BucketConfig, results: list[tuple[_Row, SimulationReport]]
) -> list[str]:
    from .sim import ItemCost

    item = ItemCost.parse(s.item_cost)
    out = []
    for row, report in results:
        label = f"{row.strategy} / batch {row.batch}"
        main = report.consumers[0]
        starved = [c.name for c in report.consumers[1:] if c.items == 0]
        if main.items == 0:
            why = ""
            if isinstance(row.batch, int):
                need = config.required_balance(row.batch * item.mean)
                if row.strategy == "poll" and need > config.burst_threshold:
                    why = (
                        f"; each try waits for the burst threshold ({config.burst_threshold:g}), "
                        f"needs {need:g} tokens, is refused: a livelock"
                    )
            out.append(f"{label}: the ingestor got nothing in {s.hours:g} h{why}.")
        elif starved:
            out.append(
                f"{label}: the ingestor progresses every cycle; {', '.join(starved)} "
                "got nothing (a poll loop never queues)."
            )
        else:
            stall = _duration(main.longest_stall_s)
            if len(report.consumers) > 1:
                out.append(
                    f"{label}: every consumer progresses every cycle "
                    f"(ingestor's longest stall {stall})."
                )
            else:
                out.append(f"{label}: progresses every cycle (longest stall {stall}).")
    out.append(
        f"The refill sets the throughput: {s.rate_per_min:g} tokens/min / {item.mean:g} tokens "
        f"an item = {s.rate_per_min * 60 / item.mean:.3g} items/h for the whole account;"
    )
    out.append("smaller batches only shorten the stalls.")
    return out


def _pyplot() -> Any:
    """Return matplotlib's pyplot on the non-interactive Agg backend, or a usage error."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        from ._install import install_hint

        raise _UsageError("--plot", f"drawing needs matplotlib: {install_hint('plot')}") from None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def _check_plot_path(path: str) -> None:
    """Refuse, before simulating, a --plot file that could not be written or has no format."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    target = Path(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in formats:
        preferred = [f".{f}" for f in ("png", "svg", "pdf") if f in formats]
        raise _UsageError(
            "--plot",
            f"{path!r} has no image format matplotlib writes: end the name with "
            f"{', '.join(preferred)} or another of {', '.join(sorted(formats))}",
        )
    folder = target.parent
    if not folder.is_dir():
        raise _UsageError(
            "--plot", f"cannot write {path!r}: the directory {str(folder)!r} does not exist"
        )
    if target.is_dir():
        raise _UsageError("--plot", f"cannot write {path!r}: it is a directory")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise _UsageError("--plot", f"cannot write {path!r}: permission denied")


#: The most consumer wake-ups one ``simulate`` run takes (its rows together): under a minute.
MAX_WAKEUPS: Final = 5_000_000


def _wakeups_per_hour(config: BucketConfig, row: _Row) -> float:
    """An upper estimate of the wake-ups of *row*'s consumers per simulated hour.

    Every admission spends at least the cheapest batch of any consumer (one
    item for ``auto``), so the refill pays for at most ``refill / cheapest``
    of them an hour; poll consumers also wake on every tick (or, with none,
    at most once a :data:`~tokenbudget.sim.MIN_POLL_INTERVAL`).
    """
    from ._sim import MIN_POLL_INTERVAL

    cheapest = min(
        (c.batch if isinstance(c.batch, int) else 1) * c.item_cost.low for c in row.consumers
    )
    per_hour = config.refill.tokens_per_second * 3600 / cheapest
    for c in row.consumers:
        if c.strategy == "poll":
            per_hour += 3600 / (c.tick or MIN_POLL_INTERVAL)
    return per_hour


def _check_run_length(config: BucketConfig, s: _Settings, rows: list[_Row]) -> None:
    """Refuse, before simulating, a run that would take more than :data:`MAX_WAKEUPS`."""
    per_hour = sum(_wakeups_per_hour(config, row) for row in rows)
    wakeups = per_hour * s.hours + sum(
        (config.capacity + config.max_deficit) / min(c.item_cost.low for c in row.consumers)
        for row in rows
    )
    if wakeups > MAX_WAKEUPS:
        most = max(1.0, math.floor((MAX_WAKEUPS / per_hour) * 100) / 100)
        raise _UsageError(
            "--hours",
            f"{s.hours:g} simulated hours of this workload take up to {wakeups:.3g} wake-ups "
            f"of its consumers ({per_hour:.3g} an hour over {len(rows)} row(s)), more than the "
            f"{MAX_WAKEUPS:,} one run simulates; use --hours {most:g} or less",
        )


def _plot(
    pyplot: Any, path: str, config: BucketConfig, results: list[tuple[_Row, SimulationReport]]
) -> None:
    """One panel per row: the account's balance over simulated hours."""
    fig, axes = pyplot.subplots(
        len(results), 1, sharex=True, squeeze=False, figsize=(10, 0.8 + 2.2 * len(results))
    )
    for ax, (row, report) in zip(axes[:, 0], results, strict=True):
        hours = [t / 3600 for t, _ in report.timeline]
        tokens = [b for _, b in report.timeline]
        ax.plot(hours, tokens, linewidth=0.8, label="balance")
        ax.axhline(
            config.burst_threshold,
            color="tab:orange",
            linestyle="--",
            linewidth=0.8,
            label="burst threshold",
        )
        ax.axhline(
            config.min_threshold,
            color="tab:red",
            linestyle=":",
            linewidth=0.8,
            label="min threshold",
        )
        items = ", ".join(f"{c.name} {c.items} items" for c in report.consumers)
        ax.set_title(f"{row.strategy} / batch {row.batch}: {items}", fontsize=9)
        ax.set_ylabel("tokens")
    axes[-1, 0].set_xlabel("simulated hours")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot.close(fig)


def _simulate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .sim import simulate

    s = _settings(args)
    plot = getattr(args, "plot", None)
    try:
        config = _config(s)
        rows = _rows(config, s)
        _check_run_length(config, s, rows)
        pyplot = _pyplot() if plot else None
        if plot:
            _check_plot_path(plot)
    except _UsageError as e:
        parser.error(str(e))
    progress = _Progress(sys.stderr, len(rows))
    results: list[tuple[_Row, SimulationReport]] = []
    try:
        for index, row in enumerate(rows):
            report = simulate(
                config,
                row.consumers,
                hours=s.hours,
                tokens=s.tokens,
                seed=s.seed,
                progress=progress.row(index),
                timeline=pyplot is not None,
            )
            results.append((row, report))
    finally:
        progress.close()
    if getattr(args, "json", False):
        document = {
            "incident": s.incident,
            "hours": s.hours,
            "tokens": s.tokens,
            "seed": s.seed,
            "config": {
                "rate_per_min": s.rate_per_min,
                "capacity": s.capacity,
                "burst": s.burst,
                "min": s.min,
                "deficit": str(s.deficit),
                "max_cost": config.max_cost,
            },
            "rows": [_row_dict(row, report) for row, report in results],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(_table(s, config, results) + "\n")
    if plot and pyplot is not None:
        try:
            _plot(pyplot, plot, config, results)
        except OSError as e:  # checked before simulating; the disk may still refuse it
            parser.error(f"argument --plot: cannot write {plot!r}: {e.strerror or e}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tokenbudget`` command; return its exit status."""
    parser, simulate_parser = _parsers()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return _simulate(args, simulate_parser)
