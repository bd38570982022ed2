"""A map of physical memory, block by block, from the guest's own page flags (/proc/kpageflags).

    snap = read_snapshot(block_order=9, ours_pfns=pagemap.read_pfns(pid, address, pages))
    snap.counts[i]         # pages of each FrameClass in block i (2**block_order pages)
    snap.dominant          # the class holding most pages of each block, for drawing
    snap.free_reported_kib, snap.free_unreported_kib_by_order(), snap.outside_buddy_kib

/proc/kpageflags holds one little-endian u64 of flags per page frame (root only;
Documentation/admin-guide/mm/pagemap.rst, bits in include/uapi/linux/kernel-page-flags.h). Two facts
this map rests on:

- Every page of a free buddy block reads BUDDY (the head by its page type, the others because
  fs/proc/page.c asks `is_free_buddy_page` of any page with no references), so the free pages are
  exact; the block's order is not exported and is derived (`free_blocks`).
- Free page reporting marks a reported block's head with PG_reported, which is PG_uptodate on a
  buddy page, so a reported head reads BUDDY|UPTODATE (include/linux/page-flags.h).

The decoder (`classify`, `free_blocks`, `summarise`) is pure: numpy arrays in, arrays out. The
reader (`read_snapshot`) streams the file in chunks so a 24 GiB guest (6.3 M frames, 50 MB of flags)
costs a few chunk-sized arrays, not the whole file.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterable, Iterator, Sequence

import numpy as np

from . import procfs, sources

# Bits of a kpageflags word (include/uapi/linux/kernel-page-flags.h); RESERVED is one of the
# "kernel hacking" bits the file exports too (PG_reserved: memblock's, never given to the allocator).
KPF_UPTODATE = 3
KPF_LRU = 5
KPF_SLAB = 7
KPF_BUDDY = 10
KPF_ANON = 12
KPF_NOPAGE = 20
KPF_OFFLINE = 23
KPF_PGTABLE = 26
WORD_BYTES = 8
MAX_ORDER = 10          # the largest buddy order (MAX_PAGE_ORDER) of x86-64 and arm64 defaults: buddyinfo's last column
MAX_BLOCK_ORDER = 20    # a map block of 2**20 pages (4 GiB) is already one cell for a whole small guest
CHUNK_PAGES = 1 << 19   # 4 MiB of flags per read: the working arrays of a chunk stay near 20 MiB


class FrameClass(IntEnum):
    """What one page frame holds. Lower values win nothing: `classify` applies them in a fixed order."""

    HOLE = 0           # not RAM here: no page (NOPAGE), offline (e.g. inflated balloon), or outside System RAM
    FREE_REPORTED = 1  # free in the buddy allocator, in a block reported to the host
    FREE = 2           # free in the buddy allocator, not (yet) reported
    OURS = 3           # a frame of the PFNs given as ours (the workload's), whatever else it is
    ANON = 4           # anonymous memory (process heaps, stacks)
    FILE = 5           # page cache (on the LRU, not anonymous; shmem too, as meminfo's Cached counts it)
    SLAB = 6           # kernel slab caches
    PGTABLE = 7        # page tables
    KERNEL = 8         # other kernel memory: allocated, with flags, none of LRU / slab / page table
    NO_FLAGS = 9       # no flag at all: see CLASS_LABELS


CLASSES = tuple(FrameClass)
CLASS_LABELS = {
    FrameClass.HOLE: "not RAM here (hole, offline, ballooned)",
    FrameClass.FREE_REPORTED: "free, reported to the host",
    FrameClass.FREE: "free, not reported",
    FrameClass.OURS: "ours (the workload's pages)",
    FrameClass.ANON: "anonymous",
    FrameClass.FILE: "page cache",
    FrameClass.SLAB: "slab",
    FrameClass.PGTABLE: "page tables",
    FrameClass.KERNEL: "other kernel memory",
    # The flags cannot tell these apart; the snapshot's outside_buddy_kib says how much of it is free.
    FrameClass.NO_FLAGS: "no flags (kernel pages, per-CPU free lists, or memory not yet in the buddy allocator)",
}


class MapUnavailable(sources.SourceError):
    """This machine's page flags cannot be read here; the message says why and what to do instead."""


class MapPermissionError(MapUnavailable, PermissionError):
    """/proc/kpageflags exists but this user may not read it (not root, or root of a container)."""


def words_from_bytes(data: bytes) -> np.ndarray:
    """Raw kpageflags bytes -> one u64 per frame; a torn last word (a short read) is dropped."""
    return np.frombuffer(data, dtype="<u8", count=len(data) // WORD_BYTES)


def _bit(words: np.ndarray, bit: int) -> np.ndarray:
    return (words & np.uint64(1 << bit)) != 0


def classify(words: np.ndarray, ram: np.ndarray | None = None) -> np.ndarray:
    """One FrameClass code (uint8) per frame; FREE for every free frame (reported or not: `free_blocks`).

    ram: True where the frame is System RAM (/proc/iomem), None where that is unknown. The order
    matters where flags overlap: a slab page may carry ANON (slab reuses the mapping word), a free
    page carries nothing else."""
    cls = np.full(len(words), FrameClass.NO_FLAGS, dtype=np.uint8)
    cls[words != 0] = FrameClass.KERNEL
    lru = _bit(words, KPF_LRU)
    anon = _bit(words, KPF_ANON)
    cls[lru] = FrameClass.FILE
    cls[anon] = FrameClass.ANON
    cls[_bit(words, KPF_PGTABLE)] = FrameClass.PGTABLE
    cls[_bit(words, KPF_SLAB)] = FrameClass.SLAB
    cls[_bit(words, KPF_BUDDY)] = FrameClass.FREE
    cls[_bit(words, KPF_NOPAGE) | _bit(words, KPF_OFFLINE)] = FrameClass.HOLE
    if ram is not None:
        cls[~ram] = FrameClass.HOLE
    return cls


def free_blocks(free: np.ndarray, reported_heads: np.ndarray, max_order: int = MAX_ORDER
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The buddy blocks these free frames form: (order per frame, -1 where not free; reported per frame;
    blocks by order, shape (2, max_order + 1): row 0 not reported, row 1 reported).

    free: BUDDY per frame; reported_heads: BUDDY|UPTODATE per frame. len(free) must be a multiple of
    2**max_order and its first frame aligned to it (a buddy block never crosses such a boundary).

    kpageflags does not export a block's order, so it is derived as the buddy allocator builds
    blocks: from the largest order down, an aligned run of 2**k free frames with no reported head
    after its first frame is one block of order k. The allocator merges free buddies, so this is its
    own answer wherever they merged. It overestimates (one block where the allocator holds two or
    more) where free buddies did not merge: pageblocks isolated for compaction, CMA or offlining, a
    zone boundary not aligned to 2**max_order, and frames freed while the file was being read
    (the read is not atomic: buddyinfo taken around it bounds the error)."""
    n = len(free)
    top = 1 << max_order
    if n % top:
        raise ValueError(f"free_blocks: {n} frames is not a multiple of 2**{max_order}; pad the chunk")
    order = np.full(n, -1, dtype=np.int8)
    reported = np.zeros(n, dtype=bool)
    counts = np.zeros((2, max_order + 1), dtype=np.int64)
    left = free.copy()
    for k in range(max_order, -1, -1):
        if not left.any():
            break
        size = 1 << k
        whole = left.reshape(-1, size).all(axis=1)
        if size > 1:
            whole &= ~reported_heads.reshape(-1, size)[:, 1:].any(axis=1)
        if not whole.any():
            continue
        head_reported = whole & reported_heads[::size]
        counts[1, k] = int(np.count_nonzero(head_reported))
        counts[0, k] = int(np.count_nonzero(whole)) - counts[1, k]
        frames = np.repeat(whole, size)
        order[frames] = k
        reported |= np.repeat(head_reported, size)
        left &= ~frames
    return order, reported, counts


def _pad(a: np.ndarray, length: int, value) -> np.ndarray:
    if len(a) == length:
        return a
    out = np.full(length, value, dtype=a.dtype)
    out[:len(a)] = a
    return out


def _ram_mask(pfn_lo: int, n: int, ram_pfns: Sequence[tuple[int, int]] | None) -> np.ndarray | None:
    """True for frames pfn_lo .. pfn_lo + n - 1 inside a System RAM range [first, end) of PFNs."""
    if not ram_pfns:
        return None
    mask = np.zeros(n, dtype=bool)
    for first, end in ram_pfns:
        lo, hi = max(first, pfn_lo) - pfn_lo, min(end, pfn_lo + n) - pfn_lo
        if hi > lo:
            mask[lo:hi] = True
    return mask


@dataclass
class _Tally:
    """What `summarise` accumulates over the chunks: per-block rows and whole-guest free blocks."""

    counts: list[np.ndarray] = field(default_factory=list)
    free_order: list[np.ndarray] = field(default_factory=list)
    free_blocks: np.ndarray | None = None
    frames: int = 0


def summarise_chunk(words: np.ndarray, pfn_lo: int, block_order: int, max_order: int = MAX_ORDER,
                    ours: np.ndarray | None = None, ram_pfns: Sequence[tuple[int, int]] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of frames starting at pfn_lo (aligned to 2**max(block_order, max_order)) ->
    (pages per class per block, largest free order per block (-1: none), free blocks by order).

    A short final chunk is padded: its last block counts only the frames that exist."""
    step = 1 << max(block_order, max_order)
    if pfn_lo % step:
        raise ValueError(f"summarise_chunk: pfn {pfn_lo} is not aligned to {step} frames")
    n = len(words)
    padded = -(-n // step) * step
    cls = classify(words, _ram_mask(pfn_lo, n, ram_pfns))
    free = _pad(cls == FrameClass.FREE, padded, False)
    heads = _pad(_bit(words, KPF_BUDDY) & _bit(words, KPF_UPTODATE) & (cls == FrameClass.FREE), padded, False)
    order, reported, by_order = free_blocks(free, heads, max_order)
    cls[reported[:n]] = FrameClass.FREE_REPORTED
    if ours is not None and len(ours):
        mine = ours[(ours >= pfn_lo) & (ours < pfn_lo + n)] - pfn_lo
        # A frame of ours that is free now was freed after its PFN was read: not ours any more.
        mine = mine[cls[mine] > FrameClass.OURS]
        cls[mine] = FrameClass.OURS
    size = 1 << block_order
    blocks = -(-n // size)
    pad_class = len(CLASSES)  # an extra column for the padding, dropped below
    cls = _pad(cls, blocks * size, pad_class).reshape(blocks, size)
    index = cls + (np.arange(blocks, dtype=np.int64) * (pad_class + 1))[:, None]
    counts = np.bincount(index.ravel(), minlength=blocks * (pad_class + 1)).reshape(blocks, pad_class + 1)
    largest = order[:blocks * size].reshape(blocks, size).max(axis=1)
    return counts[:, :pad_class], largest, by_order


def summarise(chunks: Iterable[tuple[int, np.ndarray]], block_order: int = 9, max_order: int = MAX_ORDER,
              ours_pfns: Iterable[int | None] | None = None,
              ram_pfns: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(pfn_lo, words) chunks, in order, contiguous from 0 -> (counts per block and class, largest free order
    per block, free blocks by order (2, max_order + 1), frames seen). Pure; `read_snapshot` feeds it."""
    check_block_order(block_order)
    ours = _ours(ours_pfns)
    tally = _Tally(free_blocks=np.zeros((2, max_order + 1), dtype=np.int64))
    for pfn_lo, words in chunks:
        if pfn_lo != tally.frames:
            raise ValueError(f"summarise: chunk at pfn {pfn_lo}, expected {tally.frames} (chunks must be contiguous)")
        counts, largest, by_order = summarise_chunk(words, pfn_lo, block_order, max_order, ours, ram_pfns)
        tally.counts.append(counts.astype(_count_dtype(block_order)))
        tally.free_order.append(largest)
        tally.free_blocks += by_order
        tally.frames += len(words)
    if not tally.counts:
        return (np.zeros((0, len(CLASSES)), _count_dtype(block_order)), np.zeros(0, np.int8), tally.free_blocks, 0)
    return np.concatenate(tally.counts), np.concatenate(tally.free_order), tally.free_blocks, tally.frames


def check_block_order(block_order: int) -> int:
    if isinstance(block_order, bool) or not isinstance(block_order, (int, np.integer)) \
            or not 0 <= block_order <= MAX_BLOCK_ORDER:
        raise ValueError(f"block order {block_order!r}: must be a whole number from 0 to {MAX_BLOCK_ORDER} "
                         "(9 = 2 MiB blocks of 4 KiB pages, the size free page reporting hands over here)")
    return int(block_order)


def _count_dtype(block_order: int) -> np.dtype:
    # The smallest that holds 2**block_order: a map of 4 KiB blocks of 24 GiB is then 63 MB, not 126.
    return np.dtype("|u1") if block_order < 8 else np.dtype("<u2") if block_order < 16 else np.dtype("<u4")


def _ours(pfns: Iterable[int | None] | None) -> np.ndarray | None:
    if pfns is None:
        return None
    if isinstance(pfns, np.ndarray):  # already PFNs only (pagemap.process_pfns): no per-item loop over millions
        return np.unique(pfns.astype(np.int64, copy=False))
    return np.unique(np.fromiter((p for p in pfns if p is not None), dtype=np.int64))


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A map of physical memory at one moment: per block, pages of each class; and the facts around it."""

    counts: np.ndarray            # (blocks, len(CLASSES)) pages per FrameClass
    free_order: np.ndarray        # (blocks,) the largest free buddy block overlapping it, -1: none
    free_blocks: np.ndarray       # (2, max_order + 1) whole-guest free blocks by order: [not reported, reported]
    page_bytes: int
    block_order: int
    pfn_end: int                  # frames 0 .. pfn_end - 1 are mapped
    time_utc: str
    kernel_release: str
    memfree_kib: int | None = None          # /proc/meminfo MemFree, read just before the map
    buddy_before: tuple[int, ...] | None = None   # free blocks by order (/proc/buddyinfo), before and after
    buddy_after: tuple[int, ...] | None = None
    per_cpu_pages: int | None = None        # free pages on per-CPU lists (/proc/zoneinfo)
    ram_known: bool = False                 # whether /proc/iomem told holes apart from RAM

    @property
    def blocks(self) -> int:
        return len(self.counts)

    @property
    def block_pages(self) -> int:
        return 1 << self.block_order

    @property
    def max_order(self) -> int:
        return self.free_blocks.shape[1] - 1

    @property
    def dominant(self) -> np.ndarray:
        """The class holding most pages of each block (ties: the lower code), uint8."""
        return self.counts.argmax(axis=1).astype(np.uint8)

    @property
    def has_ours(self) -> np.ndarray:
        return self.counts[:, FrameClass.OURS] > 0

    def pages(self, cls: FrameClass) -> int:
        return int(self.counts[:, cls].sum(dtype=np.int64))

    def kib(self, pages: int) -> int:
        return pages * self.page_bytes // 1024

    def class_kib(self) -> dict[FrameClass, int]:
        return {c: self.kib(self.pages(c)) for c in CLASSES}

    @property
    def free_reported_kib(self) -> int:
        return self.kib(self.pages(FrameClass.FREE_REPORTED))

    def free_pages_by_order(self, reported: bool | None = None) -> tuple[int, ...]:
        """Free pages in blocks of each order: reported only, not reported only, or all (None)."""
        rows = self.free_blocks if reported is None else self.free_blocks[[int(reported)]]
        return tuple(int(n) << k for k, n in enumerate(rows.sum(axis=0)))

    def free_unreported_kib_by_order(self) -> dict[int, int]:
        return {k: self.kib(p) for k, p in enumerate(self.free_pages_by_order(reported=False)) if p}

    @property
    def buddy_free_pages(self) -> int | None:
        """Free pages in /proc/buddyinfo after the map (None: not read)."""
        if self.buddy_after is None:
            return None
        return sum(n << k for k, n in enumerate(self.buddy_after))

    @property
    def outside_buddy_kib(self) -> int | None:
        """MemFree not in the buddy lists nor on the per-CPU lists (None: a figure was not readable).

        Upstream this is about 0; a kernel that hands memory to the buddy allocator late (deferred or
        lazy struct page init) counts the rest as free in MemFree while it is in no free list, so the
        map shows it as NO_FLAGS frames."""
        if self.memfree_kib is None or self.buddy_free_pages is None or self.per_cpu_pages is None:
            return None
        return self.memfree_kib - self.kib(self.buddy_free_pages + self.per_cpu_pages)

    def why_no_outside_buddy(self) -> str | None:
        """Why outside_buddy_kib is None, in words; None where it is known."""
        missing = [name for name, v in (("MemFree (/proc/meminfo)", self.memfree_kib),
                                        ("/proc/buddyinfo", self.buddy_after),
                                        ("the per-CPU lists (/proc/zoneinfo)", self.per_cpu_pages)) if v is None]
        return f"cannot tell free memory outside the buddy allocator: {', '.join(missing)} not readable" if missing else None


def open_kpageflags(roots: sources.Roots) -> int:
    """A descriptor on <proc>/kpageflags; MapUnavailable saying why not and what to use instead."""
    path = roots.proc / "kpageflags"
    instead = "the labs show recorded maps instead"
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise MapUnavailable(f"{path}: not found: this kernel does not export page flags (not Linux, or a "
                             f"sandbox such as gVisor, or built without CONFIG_PROC_PAGE_MONITOR); {instead}") from None
    except PermissionError:
        raise MapPermissionError(f"{path}: permission denied: mapping physical memory needs root on a machine "
                                 f"that is yours (not a container, Binder or JupyterHub); run it there as "
                                 f"root, or {instead}") from None
    except OSError as exc:
        raise MapUnavailable(f"{path}: cannot open ({exc.strerror}); {instead}") from None


def read_chunks(fd: int, chunk_pages: int = CHUNK_PAGES, path: str = "/proc/kpageflags"
                ) -> Iterator[tuple[int, np.ndarray]]:
    """(pfn_lo, words) for the whole file, one pread of chunk_pages frames at a time, until end of file."""
    pfn = 0
    while True:
        try:
            data = os.pread(fd, chunk_pages * WORD_BYTES, pfn * WORD_BYTES)
        except OSError as exc:
            raise MapUnavailable(f"{path}: cannot read at frame {pfn} ({exc.strerror})") from None
        words = words_from_bytes(data)
        if not len(words):
            return
        yield pfn, words
        pfn += len(words)
        if len(words) < chunk_pages:
            return


def _optional(read, *args):
    try:
        return read(*args)
    except (OSError, procfs.ProcParseError):
        return None


def _buddy(roots: sources.Roots) -> tuple[int, ...] | None:
    zones = _optional(sources.buddyinfo, roots)
    return procfs.buddy_totals(zones) if zones else None


def _ram_pfns(roots: sources.Roots, page_bytes: int) -> list[tuple[int, int]] | None:
    text = sources.read_optional(roots.proc / "iomem")
    ranges = _optional(procfs.parse_iomem_ram, text) if text else None
    if not ranges:
        return None  # unreadable, or hidden as zeros (not root): holes then read as NO_FLAGS
    return [(lo // page_bytes, (hi + 1) // page_bytes) for lo, hi in ranges]


def read_snapshot(roots: sources.Roots | None = None, block_order: int = 9,
                  ours_pfns: Iterable[int | None] | None = None, chunk_pages: int = CHUNK_PAGES) -> Snapshot:
    """Map this guest's physical memory now. MapUnavailable where its page flags cannot be read."""
    roots = roots or sources.Roots.from_env()
    block_order = check_block_order(block_order)
    page_bytes = os.sysconf("SC_PAGE_SIZE")
    fd = open_kpageflags(roots)
    try:
        meminfo = _optional(sources.meminfo, roots)
        per_cpu_kib = sources.per_cpu_free_kib(roots)
        before = _buddy(roots)
        max_order = len(before) - 1 if before else MAX_ORDER
        step = 1 << max(block_order, max_order)
        chunk = -(-chunk_pages // step) * step  # chunks aligned so no buddy block or map block straddles two
        ram = _ram_pfns(roots, page_bytes)
        time_utc = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        counts, largest, by_order, frames = summarise(
            read_chunks(fd, chunk, str(roots.proc / "kpageflags")), block_order, max_order, ours_pfns, ram)
        after = _buddy(roots)
    finally:
        os.close(fd)
    release = sources.kernel_release(roots) or "unknown"
    return Snapshot(counts, largest, by_order, page_bytes, block_order, frames, time_utc, release,
                    memfree_kib=(meminfo or {}).get("MemFree"), buddy_before=before, buddy_after=after,
                    per_cpu_pages=None if per_cpu_kib is None else per_cpu_kib * 1024 // page_bytes,
                    ram_known=ram is not None)
