"""Safety sizing: how much an experiment may allocate here, decided before anything is allocated.

The request is compared with what this process may use now: MemAvailable, or the memory cgroup's
limit minus its usage where that is tighter, less a margin (probe.budget.safe_budget_bytes). In `auto`
mode a request above that is scaled down with a sentence for the learner; in `live` mode it is
refused with SizeTooLarge. Any size a user can type (up to 1 PiB, see units.py) is handled here,
before a byte is allocated, so the kernel never has to survive it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..probe import sources
from ..probe.budget import headroom, safe_budget_bytes  # headroom: re-exported for older callers
from ..units import MIB, format_size, parse_size

ALLOCATION_MODES = ("auto", "live")
MIN_USEFUL_BYTES = 64 * MIB  # below this a chart shows noise, not the story
ROUND_BYTES = 2 * MIB        # scaled sizes stay whole huge pages, so huge_pages=True works too


class SizeTooLarge(ValueError):
    """The request exceeds what is safe here; str() says what was asked, what is safe, why, what to do."""


@dataclass(frozen=True)
class Plan:
    size_bytes: int        # what to allocate
    scaled: bool           # True: smaller than asked (auto mode)
    notice: str            # the sentence to show when scaled, else ""
    requested_bytes: int = 0
    safe_bytes: int = 0    # the budget at planning time
    basis: str = ""        # what bounded the budget, e.g. "MemAvailable 23.1 GiB"


def plan_allocation(requested_bytes: int | str, mode: str, roots: sources.Roots | None = None) -> Plan:
    """The size to allocate for a request, in `auto` (scale down with a notice) or `live` (refuse) mode."""
    if mode not in ALLOCATION_MODES:
        raise ValueError(f"mode must be one of {', '.join(ALLOCATION_MODES)} for a live allocation; got {mode!r}")
    requested = parse_size(requested_bytes)
    roots = roots or sources.Roots.from_env()
    available, limit, usage, basis = headroom(roots)
    safe = safe_budget_bytes(available, limit, usage)
    why = f"{basis}, less a safety margin for the kernel, the notebook and the sampler"
    if requested <= safe:
        return Plan(requested, False, "", requested, safe, basis)
    scaled = safe // ROUND_BYTES * ROUND_BYTES
    if mode == "live" or scaled < MIN_USEFUL_BYTES:
        how = (f"choose size <= {format_size(scaled)}, close other programs, or run in mode='auto' to scale down"
               if scaled >= MIN_USEFUL_BYTES else
               "free some memory (close other programs or notebooks), or use mode='recorded' to load a recording")
        raise SizeTooLarge(f"{format_size(requested)} was asked, but only {format_size(max(scaled, 0))} is safe "
                           f"to allocate here now ({why}); {how}")
    notice = (f"You asked for {format_size(requested)}, but this machine can safely spare only "
              f"{format_size(scaled)} right now ({why}), so this run uses {format_size(scaled)}: "
              f"the curves keep their shape, only the scale is smaller.")
    return Plan(scaled, True, notice, requested, safe, basis)
