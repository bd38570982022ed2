"""Where freed memory landed: in free blocks below the reporting order, not reported (a long-used guest).

On a guest in use a long time its free memory is scattered in small blocks held apart by pages in use (page
cache, other programs). A new buffer takes those small blocks first (the allocator hands out the smallest
free block that fits), and when it is freed its pages go back into them: below `page_reporting_order`,
where free page reporting never looks. The maps of physical memory tell reported from not reported free
memory by order, so two maps around a free say how much landed there. Pure: a Recording in, figures out.
"""
from __future__ import annotations

from typing import Any

from .. import analysis
from ...recording.recording import Recording


def unreported_kib(snap: Any, order: int) -> tuple[int, int]:
    """(free KiB not marked reported in blocks below `order`, the same at or above it) of one map."""
    by_order = snap.free_unreported_kib_by_order()
    below = sum(kib for k, kib in by_order.items() if k < order)
    return below, sum(kib for k, kib in by_order.items() if k >= order)


def below_order(rec: Recording, t_free_s: float, t_end_s: float) -> dict[str, Any] | None:
    """From the last map at or before the free to the last map by t_end: free memory not reported below the
    reporting order at each (KiB), its rise, and free memory not reported at or above the order at the end.
    None without two maps or a known order."""
    order = analysis.reporting_order(rec)
    maps = sorted(rec.physmaps, key=lambda m: m.t_s)
    before = [m for m in maps if m.t_s < t_free_s]             # strictly before: a map after the free has landed
    after = [m for m in maps if t_free_s < m.t_s <= t_end_s + 0.5]
    if order is None or not before or not after:
        return None
    a, b = before[-1], after[-1]
    small_a, _ = unreported_kib(a.snapshot, order)
    small_b, large_b = unreported_kib(b.snapshot, order)
    return {"order": order, "from": a.label, "to": b.label, "small_before_kib": small_a, "small_after_kib": small_b,
            "rise_kib": small_b - small_a, "large_unreported_after_kib": large_b}
