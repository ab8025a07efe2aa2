"""What the operating system lets this process use."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["available_cores", "available_memory"]

_PROC_CGROUP = Path("/proc/self/cgroup")  # this process's cgroups
_CGROUP_ROOT = Path("/sys/fs/cgroup")  # where v2 is mounted; v1's controllers below it


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS tells, and
    no more than its cgroups' CPU quota (``docker --cpus``, a Kubernetes CPU
    limit: cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), rounded up.

    Returns
    -------
    int
        At least 1.
    """
    cores, quota = _affinity_cores(), _cgroup_cpu_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def _affinity_cores() -> int:
    """Cores in this process's CPU affinity where the OS tells, else all of them; at least 1."""
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


def _cgroups(controller: str) -> Iterator[tuple[int, Path]]:
    """``(version, folder)`` of this process's cgroup of ``controller`` (v1, or
    v2's one group) and of each ancestor mounted, the process's own first."""
    try:
        membership = _PROC_CGROUP.read_text().splitlines()
    except OSError:
        return
    for line in membership:
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        version = 2 if number == "0" and not controllers else 1
        if version == 1 and controller not in controllers.split(","):
            continue
        root = _CGROUP_ROOT if version == 2 else _CGROUP_ROOT / controller
        folder = root / path.lstrip("/")
        while True:
            yield version, folder
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent


def _cgroup_headroom() -> list[int]:
    """What each memory cgroup of this process and its ancestors leaves, in bytes."""
    kinds = {  # version: (limit file, usage file, reclaimable entry of memory.stat)
        2: ("memory.max", "memory.current", "inactive_file"),
        1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    }
    out: list[int] = []
    for version, folder in _cgroups("memory"):
        limit_file, usage_file, reclaimable = kinds[version]
        try:
            limit = (folder / limit_file).read_text().strip()
            if limit != "max":
                usage = int((folder / usage_file).read_text())
                out.append(max(0, int(limit) - usage + _reclaimable(folder, reclaimable)))
        except (OSError, ValueError):
            pass
    return out


def _reclaimable(folder: Path, entry: str) -> int:
    """Bytes of page cache the kernel can take back in a memory cgroup (0 where its
    ``memory.stat`` does not tell: the limit and usage hold without it)."""
    try:
        m = re.search(rf"^{entry} (\d+)", (folder / "memory.stat").read_text(), re.M)
    except OSError:
        return 0
    return int(m[1]) if m else 0


def _cgroup_cpu_quota() -> float | None:
    """The least CPU time (in cores) the cpu cgroups of this process and its
    ancestors allow per period; None where none sets a quota."""
    quotas = []
    for version, folder in _cgroups("cpu"):
        try:
            if version == 2:  # "max 100000" or "250000 100000"
                quota, period = (folder / "cpu.max").read_text().split()[:2]
            else:  # -1: no quota
                quota = (folder / "cpu.cfs_quota_us").read_text().strip()
                period = (folder / "cpu.cfs_period_us").read_text()
            if quota not in ("max", "-1") and int(quota) > 0 and int(period) > 0:
                quotas.append(int(quota) / int(period))
        except (OSError, ValueError):  # no such file (no cpu controller), or not a number
            pass
    return min(quotas, default=None)
