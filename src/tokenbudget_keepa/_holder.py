"""Who holds a lease, and whether that holder is a process of this host that is gone.

Shared by the PostgreSQL and Redis leases. A holder is named by the host, the
PID namespace and the process id: two containers that share a host name (host
networking) but not a PID namespace never take each other's lease over.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path


@cache
def _namespace() -> str:
    try:
        return str(Path("/proc/self/ns/pid").readlink())  # e.g. "pid:[4026531836]"
    except OSError:  # not Linux
        return ""


def this_host() -> str:
    """The name of this host and PID namespace: where a PID means one process."""
    namespace = _namespace()
    host = socket.gethostname()
    return f"{host}/{namespace}" if namespace else host


def gone(host: str, pid: int) -> bool:
    """Whether the process *pid* of *host* is certainly gone (only ever true on this host)."""
    if host != this_host() or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    except OSError:  # pragma: no cover -- e.g. Windows semantics
        return False
    return False


def describe(host: str, pid: int) -> str:
    """A holder as users read it: ``pid 123 on host``."""
    return f"pid {pid} on {host.split('/', 1)[0]}"
