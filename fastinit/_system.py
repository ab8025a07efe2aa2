"""What the operating system lets this process use."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["available_cores", "available_memory"]


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


def available_memory(*, per_process: bool = True) -> int | None:
    """Bytes this process could allocate now, or None where the system does not tell.

    The least of: the memory the kernel reports available (``MemAvailable`` of
    ``/proc/meminfo``, else the free physical pages, else all of them), what
    the process's memory cgroups (v1 or v2) leave (limit - usage + the inactive
    file cache they may reclaim), and the address-space limit (``ulimit -v``).

    Parameters
    ----------
    per_process : bool
        Count the limits each process has on its own (the address-space
        limit).  False gives the memory this process and its children share:
        what N worker processes divide among them (each has its own
        address-space limit).

    Returns
    -------
    int or None
        Bytes; None when none of these can be read.
    """
    found = [_kernel_available(), *_cgroup_headroom()]
    if per_process:
        found.append(_address_space_limit())
    found = [size for size in found if size is not None]
    return min(found) if found else None


def _kernel_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo``, else the free physical pages, else all of them."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        return int(re.search(r"^MemAvailable:\s*(\d+) kB", meminfo, re.M)[1]) * 1024
    except (OSError, TypeError, ValueError):  # no such file, or no MemAvailable line
        for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # free, else all (macOS)
            try:
                return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
            except (AttributeError, OSError, ValueError):
                pass
    return None


def _address_space_limit() -> int | None:
    """This process's address-space limit (``ulimit -v``, ``RLIMIT_AS``), None if unlimited."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


def _cgroup_headroom() -> list[int]:
    """What each memory cgroup of this process and its ancestors leaves, in bytes."""
    try:
        membership = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    kinds = {  # version: (mount, limit file, usage file, reclaimable entry of memory.stat)
        2: (Path("/sys/fs/cgroup"), "memory.max", "memory.current", "inactive_file"),
        1: (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.usage_in_bytes",
            "total_inactive_file"),
    }  # fmt: skip
    out: list[int] = []
    for line in membership:
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        version = 2 if number == "0" and not controllers else 1
        if version == 1 and "memory" not in controllers.split(","):
            continue
        root, limit_file, usage_file, reclaimable = kinds[version]
        folder = root / path.lstrip("/")
        while True:  # the process's group and every ancestor mounted here
            try:
                limit = (folder / limit_file).read_text().strip()
                if limit != "max":
                    usage = int((folder / usage_file).read_text())
                    stat = (folder / "memory.stat").read_text()
                    m = re.search(rf"^{reclaimable} (\d+)", stat, re.M)
                    out.append(max(0, int(limit) - usage + (int(m[1]) if m else 0)))
            except (OSError, ValueError):
                pass
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return out
