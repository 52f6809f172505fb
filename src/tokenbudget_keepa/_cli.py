"""The ``tokenbudget-keepa`` command: ``demo``, ``ingest``, ``status``, ``watermark``.

Exit statuses: 0 after a normal stop, 1 on a fatal error (the key was
refused, Keepa failed past the retries, a store failed), 2 on bad input (one
line naming it). Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

import attrs


if TYPE_CHECKING:
    from ._ingestor.report import IngestReport
    from ._ingestor.storage import Storage


PROG: Final = "tokenbudget-keepa"
#: The ``products()`` arguments an ``ingest`` query file may give in ``"enrich"``.
ENRICH_KEYS: Final = (
    "offers",
    "stats",
    "buybox",
    "history",
    "update",
    "rating",
    "days",
    "stock",
    "only_live_offers",
)
#: The keys of an ``ingest`` query file.
QUERY_KEYS: Final = ("selection", "filters", "enrich", "key")

#: How deeply a query file may nest (Keepa's selections nest three levels; deeper is a mistake).
MAX_QUERY_DEPTH: Final = 32

EXIT_OK: Final = 0
EXIT_FATAL: Final = 1
EXIT_USAGE: Final = 2


def _version() -> str:
    from tokenbudget._version import version

    return version()


class _BadInputError(Exception):
    """Bad input: exit 2 with one line naming it."""


# -- option values -------------------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _domain(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a Keepa domain id (1..12), got {text!r}"
        ) from None
    if not 1 <= value <= 12:
        raise argparse.ArgumentTypeError(f"expected a Keepa domain id (1..12), got {text}")
    return value


def _hours(text: str) -> float:
    value = _positive(text)
    if value > 24 * 7:
        raise argparse.ArgumentTypeError(f"at most a simulated week (168 hours), got {text}")
    return value


def _rate(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected tokens per minute (an int), got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 token per minute, got {text}")
    return value


# -- the parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tokenbudget-keepa`` command."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command's parser and its ``watermark`` subparser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Keepa deals in, filtered, enriched and stored at the account's refill rate, "
            "resuming exactly where the last run stopped."
        ),
        epilog="Exit status: 0 normal stop, 1 fatal error (one line), 2 bad input (one line).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _log_options(parser, default=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the ingestor against a local Keepa emulator (nothing to configure)",
        description=(
            "Start the Keepa emulator on a low-refill account with a simulated clock, run the "
            "ingestor once a simulated minute (as a scheduler would), store the accepted deals "
            "in a local SQLite file and print the report. Takes a few seconds."
        ),
    )
    demo.add_argument(
        "--store",
        default="tokenbudget-keepa-demo.sqlite",
        metavar="PATH",
        help="the SQLite file to write (default: tokenbudget-keepa-demo.sqlite)",
    )
    demo.add_argument(
        "--hours", type=_hours, default=6.0, metavar="H", help="simulated hours (default 6)"
    )
    demo.add_argument(
        "--rate-per-min",
        type=_rate,
        default=5,
        metavar="R",
        help="the account's refill, tokens per minute (default 5, the incident's account)",
    )
    demo.add_argument("--seed", type=int, default=0, metavar="N", help="the emulator's data seed")
    demo.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _log_options(demo)

    ingest = commands.add_parser(
        "ingest",
        help="ingest a deal selection into a store (the key from KEEPA_API_KEY)",
        description=(
            "Run the ingestor once: fetch the selection's deals past the stored watermark, "
            "filter, enrich and store them, and advance the watermark. The API key is read "
            'from KEEPA_API_KEY. FILE is JSON: {"selection": {...}, "filters": {...}, '
            '"enrich": {...}} (only "selection" required; no "filters": the built-in '
            'defaults; "filters": {}: none, every deal is accepted).'
        ),
    )
    ingest.add_argument("--query", required=True, metavar="FILE", help="the query file (JSON)")
    ingest.add_argument(
        "--store",
        required=True,
        metavar="PATH",
        help="one SQLite file for the watermark, the lease and the deals table (or a URL)",
    )
    _client_options(ingest)
    ingest.add_argument(
        "--time-budget",
        type=_positive,
        metavar="S",
        help="stop before a wait for tokens would pass S seconds (the next run goes on)",
    )
    ingest.add_argument("--key", metavar="K", help="the job's key in the store (default: derived)")
    ingest.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _log_options(ingest)

    status = commands.add_parser(
        "status", help="the account's token status (free: no tokens spent)"
    )
    _client_options(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    _log_options(status)

    watermark = commands.add_parser("watermark", help="show or reset stored watermarks")
    actions = watermark.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (
        ("show", "print the stored watermarks (one key with --key)"),
        ("reset", "forget a watermark: the next run looks back as a first run does"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--store", required=True, metavar="PATH", help="the store")
        action.add_argument("--key", metavar="K", help="the job's key")
        action.add_argument("--json", action="store_true", help="print one JSON object")
        _log_options(action)
    return parser, watermark


#: ``--log-level`` values, and the level of each ``-v`` count.
LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_VERBOSITY: Final = (logging.ERROR, logging.INFO, logging.DEBUG)


def _log_options(parser: argparse.ArgumentParser, *, default: bool = False) -> None:
    """``-v`` and ``--log-level`` on *parser* (a subcommand's only overrides when given)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if default else argparse.SUPPRESS,
        help="log more on stderr: -v the run's steps and retries, -vv everything (DEBUG)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=list(LOG_LEVELS),
        default=None if default else argparse.SUPPRESS,
        metavar="LEVEL",
        help=f"log records of LEVEL and above on stderr ({', '.join(LOG_LEVELS)}; default "
        "error: only the one line of a fatal error)",
    )


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default="https://api.keepa.com",
        metavar="URL",
        help="the API's address (default https://api.keepa.com; an emulator's for tests)",
    )
    parser.add_argument(
        "--domain", type=_domain, default=1, metavar="N", help="the Keepa domain id (default 1)"
    )
    parser.add_argument(
        "--bucket",
        metavar="URL",
        help="share the account's bucket with every process naming the same URL "
        "(redis://HOST:PORT/DB; needs tokenbudget[redis])",
    )


# -- shared pieces -------------------------------------------------------------------------


def _emit(stream: IO[str], text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _report_out(report: IngestReport, *, as_json: bool) -> None:
    if as_json:
        _emit(sys.stdout, json.dumps(report.to_dict(), sort_keys=True))
    else:
        _emit(sys.stdout, report.summary())


def _open_storage(target: str) -> Storage:
    from ._ingestor.storage import UnknownStorage, open_storage
    from ._ingestor.watermark import SchemaMismatch, StoreError

    try:
        return open_storage(target)
    except UnknownStorage as e:
        raise _BadInputError(f"--store {target}: {e}") from None
    except SchemaMismatch as e:
        raise _BadInputError(f"--store {target}: {e}") from None
    except StoreError as e:
        raise _BadInputError(f"--store {target}: {e}") from None


def _open_bucket(url: str | None, *, base_url: str, domain: int, clock: Any = None) -> Any:
    """The shared bucket a ``--bucket`` URL names, or ``None`` (the client builds its own)."""
    if url is None:
        return None
    import importlib

    scheme = url.partition("://")[0].lower()
    if scheme not in {"redis", "rediss", "unix"}:
        raise _BadInputError(f"--bucket {url}: expected redis://HOST:PORT/DB")
    try:
        module = importlib.import_module("tokenbudget_keepa.redis")
    except ImportError as e:
        # The module's ImportError says what to install (tokenbudget._install).
        raise _BadInputError(f"--bucket {url}: {e}") from None
    opener = getattr(module, "bucket_from_url", None)
    if opener is None:
        raise _BadInputError(
            f"--bucket {url}: this version cannot share a bucket through Redis yet"
        )
    try:
        return opener(url, clock=clock, base_url=base_url, domain=domain)
    except ValueError as e:
        raise _BadInputError(f"--bucket {url}: {e}") from None


def _client(args: argparse.Namespace, *, clock: Any = None) -> Any:
    from ._client.clients import KeepaClient

    if not os.environ.get("KEEPA_API_KEY"):
        raise _BadInputError("KEEPA_API_KEY is not set: export your Keepa API key in it")
    bucket = _open_bucket(
        getattr(args, "bucket", None), base_url=args.base_url, domain=args.domain, clock=clock
    )
    gate = getattr(bucket, "client_clock", None)
    if gate is not None:
        # A bucket shared by processes holds a request into debt until the requests booked
        # before it have left the wire: the client's waits go through its clock.
        clock = gate(clock)
    try:
        return KeepaClient(base_url=args.base_url, domain=args.domain, bucket=bucket, clock=clock)
    except ValueError as e:
        raise _BadInputError(str(e)) from None


@attrs.frozen
class Query:
    """An ``ingest`` query file, validated."""

    selection: Any
    filters: Any  # None: defaults; (): none; else a sequence of filters
    enrich: Mapping[str, Any] | None
    key: str | None


def _too_deep(document: object) -> bool:
    """Whether *document* (parsed JSON) nests more than :data:`MAX_QUERY_DEPTH` levels."""
    stack: list[tuple[object, int]] = [(document, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Sequence[object] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if level >= MAX_QUERY_DEPTH:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def _parse_json(where: str, text: str) -> object:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise _BadInputError(
            f"{where}: not JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from None
    except RecursionError:
        document = None
        too_deep = True
    else:
        too_deep = _too_deep(document)
    if too_deep:
        raise _BadInputError(
            f"{where}: nested more than {MAX_QUERY_DEPTH} levels deep (Keepa's selection "
            "fields nest three)"
        )
    return document


def _read_document(path: str) -> dict[str, Any]:
    where = f"--query {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise _BadInputError(f"{where}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise _BadInputError(
            f"{where}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})"
        ) from None
    document = _parse_json(where, text)
    if not isinstance(document, dict):
        raise _BadInputError(
            f"{where}: expected a JSON object with a 'selection', got {document!r:.60}"
        )
    unknown = ", ".join(repr(k) for k in sorted(set(document) - set(QUERY_KEYS)))
    if unknown:
        raise _BadInputError(f"{where}: unknown key(s) {unknown} (known: {', '.join(QUERY_KEYS)})")
    for name in ("selection", "filters", "enrich"):
        if name in document and not isinstance(document[name], dict):
            raise _BadInputError(f"{where}: {name!r} must be an object, got {document[name]!r:.60}")
    if "selection" not in document:
        raise _BadInputError(f"{where}: needs a 'selection' object (Keepa's deal selection fields)")
    return document


def _filters_of(where: str, spec: dict[str, Any]) -> Any:
    if not spec:
        return ()
    import importlib

    module = importlib.import_module("tokenbudget_keepa._ingestor.filters")
    try:
        return tuple(module.filters_from_mapping(spec))
    except (TypeError, ValueError) as e:
        raise _BadInputError(f"{where}: filters: {e}") from None


def _enrich_of(where: str, spec: dict[str, Any]) -> dict[str, Any]:
    from ._ingestor.ingestor import check_enrich

    bad = ", ".join(repr(k) for k in sorted(set(spec) - set(ENRICH_KEYS)))
    if bad:
        raise _BadInputError(
            f"{where}: enrich: unknown argument(s) {bad} (known: {', '.join(ENRICH_KEYS)})"
        )
    try:
        check_enrich(spec)  # every value as products() checks it, before anything is spent
    except (TypeError, ValueError) as e:
        raise _BadInputError(f"{where}: {e}") from None
    return dict(spec)


def load_query(path: str) -> Query:
    """Read and validate an ``ingest --query`` file; the error names what is wrong."""
    from ._client.models.query import DealQuery

    where = f"--query {path}"
    document = _read_document(path)
    try:
        selection = DealQuery.from_mapping(document["selection"])
    except (TypeError, ValueError) as e:
        raise _BadInputError(f"{where}: selection: {e}") from None
    filters = _filters_of(where, document["filters"]) if "filters" in document else None
    enrich = _enrich_of(where, document["enrich"]) if "enrich" in document else None
    key = document.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        raise _BadInputError(f"{where}: 'key' must be a non-empty string, got {key!r}")
    return Query(selection, filters, enrich, key)


# -- ingest --------------------------------------------------------------------------------


def _ingest(args: argparse.Namespace) -> int:
    from ._ingestor.ingestor import SmartIngestor, stop_on_signals

    query = load_query(args.query)
    key = args.key or query.key
    client = _client(args)  # every input checked (the key included) before a file is created
    try:
        storage = _open_storage(args.store)
    except BaseException:
        client.close()
        raise
    try:
        with client:
            try:
                ingestor = SmartIngestor(
                    client,
                    query.selection,
                    store=storage.store,
                    sink=storage.sink,
                    filters=query.filters,
                    enrich=query.enrich,
                    key=key,
                    lease=storage.lease,
                    backlog=storage.backlog,
                )
            except (TypeError, ValueError) as e:
                raise _BadInputError(f"--query {args.query}: {e}") from None
            with stop_on_signals(ingestor):
                report = ingestor.run_once(time_budget=args.time_budget)
    finally:
        storage.close()
    _report_out(report, as_json=args.json)
    return _finish(report)


def _finish(report: IngestReport) -> int:
    if report.ok:
        if report.stopped == "lease_held":
            _emit(sys.stderr, f"{PROG}: the lease of {report.key!r} is held by "
                  f"{report.lease_holder or 'another ingestor'}: nothing done")  # fmt: skip
        return EXIT_OK
    message = report.errors[-1] if report.errors else report.stopped
    _emit(sys.stderr, f"{PROG}: {report.stopped.replace('_', ' ')}: {message}")
    return EXIT_FATAL


# -- status --------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from ._client.errors import KeepaError

    client = _client(args)
    with client:
        try:
            status = client.token_status()
        except KeepaError as e:
            _emit(sys.stderr, f"{PROG}: {type(e).__name__}: {e}")
            return EXIT_FATAL
    document = {
        "tokens_left": status.tokens_left,
        "refill_in": status.refill_in,
        "refill_rate": status.refill_rate,
        "token_flow_reduction": status.token_flow_reduction,
        "timestamp": status.timestamp.isoformat(),
    }
    if args.json:
        _emit(sys.stdout, json.dumps(document, sort_keys=True))
    else:
        _emit(
            sys.stdout,
            f"{status.tokens_left:g} tokens left, refill {status.refill_rate:g} a minute "
            f"(next in {status.refill_in:.1f} s), token flow reduction "
            f"{status.token_flow_reduction:g}, "
            f"server time {status.timestamp:%Y-%m-%d %H:%M:%S} UTC",
        )
    return EXIT_OK


# -- watermark -----------------------------------------------------------------------------


def _minute_text(minute: int) -> str:
    when = dt.datetime(2011, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)
    return f"{when:%Y-%m-%d %H:%M} UTC"


def _watermark(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ._ingestor.storage import redact_url

    if args.action is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if not Path(args.store).exists() and "://" not in args.store:
        # Nothing to show or reset: a new file would only hide a mistyped path.
        raise _BadInputError(f"--store {args.store}: no such file")
    storage = _open_storage(args.store)
    with storage:
        store = storage.store
        if args.action == "show":
            keys = [args.key] if args.key else store.keys()
            marks = {k: store.load(k) for k in keys}
            if args.json:
                _emit(
                    sys.stdout,
                    json.dumps(
                        {k: (None if w is None else w.as_dict()) for k, w in marks.items()},
                        sort_keys=True,
                    ),
                )
            elif not marks:
                _emit(sys.stdout, f"no watermarks in {redact_url(args.store)}")
            else:
                for k, w in marks.items():
                    text = "none" if w is None else (
                        f"minute {w.minute} ({_minute_text(w.minute)}), asin {w.asin or '-'}"
                    )  # fmt: skip
                    _emit(sys.stdout, f"{k}: {text}")
            return EXIT_OK
        key = args.key
        if key is None:
            keys = store.keys()
            if len(keys) != 1:
                listed = ", ".join(keys) if keys else "none"
                raise _BadInputError(
                    f"--key: name the watermark to reset (keys in {redact_url(args.store)}: "
                    f"{listed})"
                )
            key = keys[0]
        before = store.load(key)
        store.reset(key)
        storage.backlog.clear(key)
        if args.json:
            _emit(
                sys.stdout,
                json.dumps({key: None, "was": None if before is None else before.as_dict()}),
            )
        else:
            was = "none" if before is None else f"minute {before.minute}, asin {before.asin or '-'}"
            _emit(sys.stdout, f"{key}: reset (was {was}); the next run looks back as a first run")
        return EXIT_OK


# -- demo ----------------------------------------------------------------------------------


class Progress:
    """A progress line on stderr: a bar redrawn in place on a terminal, a line an hour if not."""

    def __init__(self, stream: IO[str], total: float, *, label: str = "simulated") -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._tty = stream.isatty()
        self._last_hour = -1
        self._shown = False

    def update(self, done: float, note: str) -> None:
        share = min(1.0, done / self._total) if self._total else 1.0
        hours = done / 3600
        if self._tty:
            bar = "#" * round(share * 30)
            self._stream.write(
                f"\r{self._label} [{bar:<30}] {share:4.0%} {hours:5.1f} h  {note}   "
            )
            self._stream.flush()
            self._shown = True
        elif int(hours) > self._last_hour:
            self._last_hour = int(hours)
            _emit(self._stream, f"{self._label} {hours:4.1f} h: {note}")

    def close(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    storage = _open_storage(args.store)
    progress = Progress(sys.stderr, args.hours * 3600)
    totals = {"seen": 0, "accepted": 0}

    def show(report: IngestReport, now: float) -> None:
        totals["seen"] += report.deals_seen
        totals["accepted"] += report.accepted
        progress.update(now, f"{totals['seen']} deals done, {totals['accepted']} stored")

    try:
        result = run_demo(
            storage,
            hours=args.hours,
            rate_per_min=args.rate_per_min,
            seed=args.seed,
            on_report=show,
        )
    finally:
        progress.close()
        storage.close()
    report = result.report
    refill = args.rate_per_min * 60 * args.hours
    if args.json:
        document = report.to_dict()
        document["demo"] = {
            "hours": args.hours,
            "rate_per_min": args.rate_per_min,
            "store": args.store,
            "tokens_refilled": refill,
            "tokens_at_start": result.start_tokens,
            "requests": result.requests,
            "throttled": result.throttled,
        }
        _emit(sys.stdout, json.dumps(document, sort_keys=True))
        return _finish(report)
    query = "SELECT asin, title, price, sales_rank FROM deals LIMIT 5"
    lines = [
        (
            f"Demo: {args.hours:g} simulated hours on an emulated Keepa account refilling "
            f"{args.rate_per_min} tokens a minute; the ingestor ran once a simulated minute."
        ),
        report.summary(),
        (
            f"  the account held {result.start_tokens} tokens and refilled {refill:g}: "
            f"{report.tokens_spent / (result.start_tokens + refill):.0%} of them were spent, "
            f"in {result.requests} requests; HTTP 429 answers: {result.throttled}"
        ),
        f"  the accepted deals are in {args.store}, table deals: sqlite3 {args.store} '{query}'",
    ]
    _emit(sys.stdout, "\n".join(lines))
    return _finish(report)


# -- main ----------------------------------------------------------------------------------


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


class _OneLine(logging.Formatter):
    """Each record as one line on stderr, with the API key and the URLs' passwords hidden."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self._args = args

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message += f" ({type(error).__name__}: {error})"  # never a traceback
        text = _redacted(f"{PROG}: {record.levelname} {record.name}: {message}", self._args)
        key = os.environ.get("KEEPA_API_KEY")
        if key:
            text = text.replace(key, "***")
        return " | ".join(text.splitlines())


@contextlib.contextmanager
def _logging_to_stderr(args: argparse.Namespace) -> Iterator[None]:
    """Within the block, log records of the chosen level and above go to stderr, one line each.

    By default only errors (the command's own fatal line is printed apart): the
    retries of a run are in its report, not on stderr unless ``-v`` asks.
    """
    if args.log_level is not None:
        level = LOG_LEVELS[args.log_level]
    else:
        level = _VERBOSITY[min(args.verbose, len(_VERBOSITY) - 1)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(_OneLine(args))
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(min(level, before))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tokenbudget-keepa`` command; return its exit status."""
    try:
        parser, watermark_parser = _parsers()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        _emit(sys.stderr, f"{PROG}: interrupted")
        return 130
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "demo": _demo,
        "ingest": _ingest,
        "status": _status,
    }
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with _logging_to_stderr(args):
            if args.command == "watermark":
                return _watermark(args, watermark_parser)
            return handlers[args.command](args)
    except _BadInputError as e:
        _usage_error(parser, _redacted(str(e), args))
    except KeyboardInterrupt:
        _emit(sys.stderr, f"{PROG}: interrupted")
        return 130
    except Exception as e:  # noqa: BLE001 -- never a traceback: one line, exit 1
        _emit(sys.stderr, _redacted(f"{PROG}: {type(e).__name__}: {e}", args))
        return EXIT_FATAL


def _redacted(text: str, args: argparse.Namespace) -> str:
    """*text* with the passwords of the ``--store`` and ``--bucket`` URLs replaced by ``***``."""
    from ._ingestor.storage import redact_url, url_secrets

    for url in (getattr(args, "store", None), getattr(args, "bucket", None)):
        if not isinstance(url, str):
            continue
        text = text.replace(url, redact_url(url))
        for secret in url_secrets(url):
            text = text.replace(secret, "***")
    return text
