"""How much memory this guest can give one experiment now: the headroom and the safe budget within it."""
from __future__ import annotations

from . import sources
from ..units import MIB, format_size

SAFETY_FRACTION = 0.10
SAFETY_FLOOR_BYTES = 256 * MIB


def safe_budget_bytes(mem_available_bytes: int, cgroup_limit_bytes: int | None = None,
                      cgroup_usage_bytes: int | None = None) -> int:
    """How many bytes one experiment may allocate here without inviting the OOM killer.

    headroom = MemAvailable, or the cgroup's limit minus its usage where that is smaller (in a
    container /proc/meminfo is the host's, so the cgroup is what binds). We keep back 10 % of
    the headroom plus 256 MiB for the kernel, the notebook and the sampler. Never negative.

    >>> safe_budget_bytes(4 * GIB) // MIB
    3430
    >>> safe_budget_bytes(24 * GIB, cgroup_limit_bytes=2 * GIB, cgroup_usage_bytes=512 * MIB) // MIB
    1126
    """
    headroom = mem_available_bytes
    if cgroup_limit_bytes is not None:
        headroom = min(headroom, max(0, cgroup_limit_bytes - (cgroup_usage_bytes or 0)))
    margin = int(headroom * SAFETY_FRACTION) + SAFETY_FLOOR_BYTES
    return max(0, headroom - margin)


def headroom(roots: sources.Roots) -> tuple[int, int | None, int | None, str]:
    """(MemAvailable bytes, cgroup limit bytes or None, cgroup usage bytes or None, a phrase saying which binds)."""
    info = sources.meminfo(roots)
    # MemAvailable exists since Linux 3.14; before, free + cache is the usual stand-in.
    available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0)) * 1024
    limit = usage = None
    cgroup = sources.memory_cgroup(roots)
    if cgroup is not None:
        try:
            limit = cgroup.limit_bytes()
            usage = cgroup.usage_bytes() if limit is not None else None
        except (sources.SourceError, ValueError):
            limit = usage = None  # unreadable cgroup files: MemAvailable alone decides
    if limit is not None and limit - (usage or 0) < available:
        basis = f"the memory cgroup's limit {format_size(limit)} minus its usage {format_size(usage or 0)}"
    else:
        basis = f"MemAvailable {format_size(available)}"
    return available, limit, usage, basis
