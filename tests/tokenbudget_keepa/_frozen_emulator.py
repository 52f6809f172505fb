"""An emulator in its own process whose clock never moves: a fixed, deterministic deal set.

Run as ``python _frozen_emulator.py``: prints its URL on one line, serves until
stdin closes. The account holds a million tokens (the frozen clock never
refills it), so the crash test's many runs never wait.
"""

from __future__ import annotations

import sys

from tokenbudget import ManualClock
from tokenbudget_keepa.testing import KeepaEmulator


def main() -> None:
    """Serve until stdin closes."""
    with KeepaEmulator(
        clock=ManualClock(),
        refill_per_min=60,
        capacity=1_000_000,
        tokens=1_000_000,
        deals_per_minute=14,
        history_minutes=120,
        seed=7,
    ) as emulator:
        sys.stdout.write(emulator.url + "\n")
        sys.stdout.flush()
        sys.stdin.read()


if __name__ == "__main__":
    main()
