"""The ``tokenbudget`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _version() -> str:
    from importlib.metadata import version

    return version("tokenbudget")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tokenbudget`` command."""
    parser = argparse.ArgumentParser(
        prog="tokenbudget",
        description="Livelock-free, cost-weighted token buckets: see a budget before spending it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tokenbudget`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0  # pragma: no cover
