"""The guest's map of physical memory in the kit's VM, from the agent's `pageflags` command.

    snap, took_s = read_guest_map(machine, block_order=9)   # a probe.physmap.Snapshot of the guest

The agent reads the guest's /proc/kpageflags and sends it as runs of identical *reduced* words
(agent.c: only the bits probe/physmap.py decodes, UPTODATE only on a free page where it means
"reported", bit 0 for "some other flag"). The reduction keeps every class `physmap.classify`
gives, so the guest map is the same Snapshot type, decoded by the same pure code, as the local one.
With `ours=True` (`pageflags ours`) the frames of the agent's alloc buffer carry OURS_BIT, which becomes
the map's "ours" class, as a local run's workload PFNs do.

`words_from_runs` and `snapshot_from` are pure; `read_guest_map` does the I/O.
"""
from __future__ import annotations

import datetime as _dt
import time
from typing import Sequence

import numpy as np

from ..probe import physmap
from .errors import VmProtocolError
from .protocol import Ack, PageFlags


OURS_BIT = np.uint64(1 << 62)   # agent.c PAGEFLAGS_OURS: a frame of the agent's alloc buffer, not a kpageflags bit


def words_from_runs(parts: Sequence[PageFlags], frames: int | None = None) -> np.ndarray:
    """P lines, in order -> one u64 word per frame from frame 0. VmProtocolError where lines are
    missing or overlap, or the total is not the `frames` the ack announced."""
    words, counts, expected = [], [], 0
    for part in parts:
        if part.pfn != expected:
            raise VmProtocolError(f"page flags: a line starts at frame {part.pfn}, expected {expected} "
                                  f"(a line was lost or repeated)")
        for word, n in part.runs:
            words.append(word)
            counts.append(n)
        expected += part.frames
    if frames is not None and expected != frames:
        raise VmProtocolError(f"page flags: the lines hold {expected} frames, the agent read {frames}")
    return np.repeat(np.array(words, dtype=np.uint64), np.array(counts, dtype=np.int64))


def _orders(text: str | None) -> tuple[int, ...] | None:
    if not text or text == "none":
        return None
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise VmProtocolError(f"page flags ack: {text[:40]!r} is not free blocks per order") from None


def snapshot_from(ack: Ack, parts: Sequence[PageFlags], block_order: int = 9, page_bytes: int = 4096,
                  kernel_release: str = "unknown", time_utc: str | None = None) -> physmap.Snapshot:
    """A pageflags ack and its P lines -> the guest's physmap.Snapshot (pure)."""
    block_order = physmap.check_block_order(block_order)
    frames = int(ack.detail.get("frames", "-1"))
    words = words_from_runs(parts, frames if frames >= 0 else None)
    marked = (words & OURS_BIT) != 0
    ours = np.flatnonzero(marked) if "ours_pages" in ack.detail else None
    words[marked] &= ~OURS_BIT
    before, after = _orders(ack.detail.get("before")), _orders(ack.detail.get("after"))
    max_order = len(before) - 1 if before else physmap.MAX_ORDER
    step = 1 << max(block_order, max_order)
    chunks = ((lo, words[lo:lo + step * 64]) for lo in range(0, len(words), step * 64))
    counts, largest, by_order, seen = physmap.summarise(chunks, block_order, max_order, ours_pfns=ours)
    memfree = int(ack.detail.get("memfree_kib", "-1"))
    return physmap.Snapshot(counts, largest, by_order, page_bytes, block_order, seen,
                            time_utc or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                            kernel_release, memfree_kib=memfree if memfree >= 0 else None,
                            buddy_before=before, buddy_after=after)


def read_guest_map(machine, block_order: int = 9, ours: bool = False) -> tuple[physmap.Snapshot, float]:
    """(the guest's map now, seconds the round trip took: command, transfer and decoding).
    ours: mark the frames of the agent's alloc buffer as ours (it must hold one)."""
    t0 = time.perf_counter()
    ack, parts = machine.page_flags(ours=ours)
    if ours and "ours_pages" not in ack.detail:
        raise VmProtocolError("page flags: the agent did not mark its buffer's frames (an agent older than this "
                              "kit? rebuild the VM)")
    hello = machine.hello.fields if machine.hello else {}
    snap = snapshot_from(ack, parts, block_order, int(hello.get("page_size", "4096")),
                         hello.get("kernel", "unknown"))
    return snap, time.perf_counter() - t0


def read_maps(machine, block_order: int = 9):
    """(the guest's map, the host's map right after it, the guest map's round trip in s): both maps of
    the same moment, to put side by side (present.physmap_chart.guest_host_chart) or compare
    (hostmap.agreement). The host's read takes ~10 ms, so they are that far apart."""
    from . import hostmap
    guest, took_s = read_guest_map(machine, block_order)
    return guest, hostmap.read_host_map(machine.pid, machine.mem_mib << 20, block_order), took_s
