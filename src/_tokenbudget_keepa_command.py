"""The entry point of the ``tokenbudget-keepa`` command, apart from the package it runs.

Importing :mod:`tokenbudget_keepa` takes a few tenths of a second (httpx,
asyncio, the core). A Ctrl-C meanwhile must end the command as a Ctrl-C
does anywhere else in it (one line, exit status 130), not with a traceback.
So this module imports nothing but :mod:`sys`, and imports the command
inside the ``try``.
"""

from __future__ import annotations

import sys


#: The exit status of a command interrupted by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def main() -> int:
    """Run ``tokenbudget-keepa``: its exit status, 130 when Ctrl-C stops it at any point."""
    try:
        from tokenbudget_keepa._cli import main as run

        return run()
    except KeyboardInterrupt:
        sys.stderr.write("tokenbudget-keepa: interrupted\n")
        sys.stderr.flush()
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
