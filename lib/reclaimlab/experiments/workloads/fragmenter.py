"""Fragmenter: leave free memory scattered in small blocks, for the compaction experiment.

    with Fragmenter(parse_size("1GiB")) as f:
        f.fragment()                 # /proc/buddyinfo loses blocks of order >= 9
        knobs.compact_memory(...)    # ...which compaction gives back (the kept pages move)

A child maps `size_bytes` of private anonymous memory in 4 KiB pages (MADV_NOHUGEPAGE), writes
it, then keeps one page of every `stride_pages` and frees the rest with MADV_DONTNEED. Kept pages
pin their neighbours: the freed pages cannot merge into the 2 MiB (order 9) blocks that free page
reporting needs. Compaction migrates kept pages out of the blocks it compacts, which frees those
blocks; the pages land wherever the kernel found free pages, not necessarily together. `held_pfns()`
shows both from the workload's own pages (measured here 2026-11-26, 1 GiB, one compact_memory pass:
73-95 % of the kept pages moved on a quiet guest, 10-32 % beside a 1 GiB allocator and two CPU
burners, and sometimes none; the blocks they pinned went 530-955 -> 689-933, rising as often as falling).

Before that, `fill` plugs the holes the guest already has: the buddy allocator serves 4 KiB
requests from its smallest free blocks first, so on a guest that has run a while (hundreds of
MiB free in small blocks) the fragmenter would otherwise only fill old holes.
Measured here (1 GiB, stride 2, 2 vCPU, kernel 6.18): order >= 9 free blocks fell by 280-340
with the fill and 100-150 without; one compact_memory pass (0.1-0.25 s) gave back 160-250.
See managed_pages(): this guest's kernel may add memory to the buddy allocator mid-step.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...probe import pagemap, procfs, sources
from ...units import MIB, parse_size
from ._child import PAGE_BYTES, ChildProcess, Workload

REPORTING_ORDER_DEFAULT = 9  # pageblock order on x86-64; page_reporting_order here
FILL_SLACK_BYTES = 64 * MIB  # per-CPU page lists hold some free pages that buddyinfo does not show
FILL_CAP_BYTES = 4096 * MIB


def free_bytes_below_order(zones: list[procfs.BuddyZone], order: int) -> int:
    """Free memory in blocks smaller than 2**order pages, from /proc/buddyinfo zones."""
    totals = procfs.buddy_totals(zones)
    return sum(count << k for k, count in enumerate(totals) if k < order) * PAGE_BYTES


def managed_pages(roots: sources.Roots) -> dict[str, int]:
    """Pages each zone's buddy allocator manages ({zone: pages}, from /proc/zoneinfo).

    On this project's guests the kernel hands memory to the buddy allocator lazily (the Normal
    zone grew 2 -> 3 -> 4 GiB managed while we watched): a step that allocates can add fresh
    high-order free blocks. A buddyinfo comparison across a change here compares two different
    pools; check it before reading the difference as fragmentation or compaction.
    """
    text = sources.read_optional(roots.proc / "zoneinfo") or ""
    out: dict[str, int] = {}
    zone = None
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("Node") and len(parts) >= 4:
            zone = parts[3]
        elif zone and len(parts) == 2 and parts[0] == "managed":
            out[zone] = out.get(zone, 0) + int(parts[1])
    return out


@dataclass(frozen=True)
class FragmentResult:
    duration_s: float
    size_bytes: int
    fill_bytes: int       # touched first and unmapped afterwards (transient)
    freed_pages: int      # given back in small blocks
    held_pages: int       # kept, each pinning its neighbours
    rss_anon_kib: int | None
    address: int | None = None  # where the fragmented mapping starts in the child (for its pagemap)


class Fragmenter(Workload):
    """A child process holding memory arranged to fragment the free lists (see the module doc)."""

    def __init__(self, size_bytes: int | str, stride_pages: int = 2, fill: str | int = "auto",
                 roots: sources.Roots | None = None, python: str | None = None):
        if stride_pages < 2:
            raise ValueError(f"stride_pages must be >= 2 (keep 1 page of every stride), got {stride_pages}")
        self.size_bytes = parse_size(size_bytes)
        self.stride_pages = stride_pages
        self.fill = fill
        self.roots = roots or sources.Roots.from_env()
        self._python = python
        self._child: ChildProcess | None = None
        self._address: int | None = None

    def fill_bytes(self) -> int:
        """How much to touch first: the free memory now in blocks below order 9, plus slack, capped."""
        if self.fill == "auto":
            holes = free_bytes_below_order(sources.buddyinfo(self.roots), REPORTING_ORDER_DEFAULT)
            return min(holes + FILL_SLACK_BYTES, FILL_CAP_BYTES)
        if self.fill in (0, None, "none"):
            return 0
        return parse_size(self.fill)

    def start(self) -> "Fragmenter":
        if self._child is None:
            self._child = ChildProcess("reclaimlab.experiments.workloads.fragmenter_child", python=self._python,
                                       what="fragmenter")
        return self

    @property
    def pid(self) -> int:
        if self._child is None:
            raise RuntimeError("the fragmenter is not running; use `with Fragmenter(...) as f:`")
        return self._child.pid

    def fragment(self) -> FragmentResult:
        self.start()
        assert self._child is not None
        fill_bytes = self.fill_bytes()
        r = self._child.request("fragment", size_bytes=self.size_bytes, stride_pages=self.stride_pages,
                                fill_bytes=fill_bytes)
        self._address = r.get("address")
        return FragmentResult(r["duration_s"], self.size_bytes, fill_bytes, r["freed_pages"],
                              r["held_pages"], r.get("rss_anon_kib"), self._address)

    def held_pfns(self) -> list[int | None] | None:
        """Where the kept pages sit in physical memory now (their PFNs, in mapping order): the workload's own
        view of what compaction moved. None before fragment(), after release(), or where PFNs are hidden
        (not root)."""
        if self._child is None or self._address is None:
            return None
        return pagemap.read_pfns(self._child.pid, self._address, self.size_bytes // PAGE_BYTES,
                                 stride=self.stride_pages, page_bytes=PAGE_BYTES)

    def release(self) -> float:
        """Unmap everything; returns the seconds it took."""
        if self._child is None:
            return 0.0
        self._address = None
        return self._child.request("release")["duration_s"]

