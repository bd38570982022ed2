"""How big the guest and its allocation may be, from what this process may safely use.

QEMU costs ~250-330 MiB of its own (measured: ~280 MiB resident at rest with 1.5 GiB of
guest RAM, ~330 MiB after a first round). Guest RAM only becomes host memory once the guest
touches it, so the guest may be sized by what it will touch, plus QEMU, plus a margin.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..probe import sources
from ..units import MIB, format_size

QEMU_OVERHEAD_BYTES = 350 * MIB       # QEMU's own resident memory, with room to spare
GUEST_KERNEL_BYTES = 320 * MIB        # what the guest's kernel, slab and agent keep out of reach
HOST_MARGIN_BYTES = 512 * MIB         # never take the host's last memory
DEFAULT_MEM_BYTES = 2048 * MIB
MIN_MEM_BYTES = 512 * MIB


@dataclass(frozen=True)
class VmPlan:
    mem_mib: int
    size_bytes: int
    notices: list[str] = field(default_factory=list)


def host_allowance_bytes(roots: sources.Roots | None = None) -> int:
    """What this process may still use: MemAvailable, capped by its memory cgroup's room (the same
    headroom the local experiments are sized by)."""
    from ..probe.budget import headroom

    available, limit, usage, _basis = headroom(roots or sources.Roots())
    allowance = available
    if limit is not None:
        allowance = min(allowance, limit - (usage or 0))
    return allowance


def plan(size_bytes: int | None, mem_bytes: int | None, allowance_bytes: int) -> VmPlan:
    """Guest RAM and allocation size that fit `allowance_bytes` (pure). Scales down with a notice."""
    notices: list[str] = []
    budget = allowance_bytes - QEMU_OVERHEAD_BYTES - HOST_MARGIN_BYTES
    if budget < MIN_MEM_BYTES:
        raise ValueError(f"not enough memory for the kit's VM: this process may use {format_size(allowance_bytes)}, "
                         f"the VM needs at least {format_size(MIN_MEM_BYTES + QEMU_OVERHEAD_BYTES + HOST_MARGIN_BYTES)}")
    mem = mem_bytes if mem_bytes is not None else min(DEFAULT_MEM_BYTES, budget)
    if mem > budget:
        notices.append(f"guest memory scaled down from {format_size(mem)} to {format_size(budget)} "
                       f"to fit what this process may use ({format_size(allowance_bytes)})")
        mem = budget
    mem = max(MIN_MEM_BYTES, mem // MIB * MIB)
    most = mem - GUEST_KERNEL_BYTES
    size = size_bytes if size_bytes is not None else most // 2
    if size > most:
        notices.append(f"allocation scaled down from {format_size(size)} to {format_size(most)} "
                       f"to fit the {format_size(mem)} guest")
        size = most
    return VmPlan(mem // MIB, int(size), notices)
