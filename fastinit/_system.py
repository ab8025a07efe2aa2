"""What the operating system lets this process use."""

from __future__ import annotations

import os

__all__ = ["available_cores"]


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells).

    Returns
    -------
    int
        At least 1.
    """
    if hasattr(os, "process_cpu_count"):  # Python 3.13
        return max(1, os.process_cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
