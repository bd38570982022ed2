"""Where one process's pages sit in physical memory: their page frame numbers, from /proc/<pid>/pagemap.

    pfns = read_pfns(pid, address, pages, stride=2)   # [pfn or None, ...], or None where PFNs are hidden
    blocks_holding(pfns, 9), moved_pages(before, after), vacated_blocks(before, after, 9)

Each virtual page has one 64-bit entry: bit 63 "present", bits 0-54 the PFN. Since Linux 4.2 the PFN
reads as 0 without CAP_SYS_ADMIN, so a process that is not root sees where nothing is. This is the
workload's own view of fragmentation and compaction: which blocks its kept pages pin, and how many of
them compaction migrated, apart from every other program's pages (/proc/buddyinfo counts the whole
guest's free blocks). See Documentation/admin-guide/mm/pagemap.rst.
"""
from __future__ import annotations

import os
from array import array
from pathlib import Path
from typing import Sequence

ENTRY_BYTES = 8
PRESENT = 1 << 63
PFN_MASK = (1 << 55) - 1


def parse_pfns(data: bytes, stride: int = 1) -> list[int | None]:
    """The PFN of every `stride`-th entry of raw pagemap bytes (None: not present, or hidden as 0)."""
    return _pfns(_entries(data)[::stride])


def _entries(data: bytes) -> array:
    entries = array("Q")
    entries.frombytes(data[:len(data) - len(data) % ENTRY_BYTES])
    return entries


def _pfns(entries: Sequence[int]) -> list[int | None]:
    return [entry & PFN_MASK if entry & PRESENT and entry & PFN_MASK else None for entry in entries]


def read_pfns(pid: int, address: int, pages: int, stride: int = 1, page_bytes: int = 4096,
              proc: Path = Path("/proc")) -> list[int | None] | None:
    """The PFNs of pages address, address + stride pages, ... (`pages` pages in all) of process `pid`.

    None where they cannot be known: the process is gone, pagemap is unreadable, or every present
    page reads PFN 0 (not root: the kernel hides PFNs)."""
    try:
        with open(proc / str(pid) / "pagemap", "rb", buffering=0) as f:
            data = _pread_all(f.fileno(), pages * ENTRY_BYTES, (address // page_bytes) * ENTRY_BYTES)
    except OSError:
        return None
    entries = _entries(data)[::stride]
    if any(e & PRESENT for e in entries) and not any(e & PFN_MASK for e in entries):
        return None  # present pages with PFN 0: hidden from this user
    return _pfns(entries)


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 1 << 20), offset + done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def blocks_holding(pfns: Sequence[int | None], order: int) -> int:
    """How many blocks of 2**order pages hold at least one of these pages: each such block cannot be free
    as a whole (order 9 = 2 MiB, the smallest block free page reporting hands to the host here)."""
    return len({pfn >> order for pfn in pfns if pfn is not None})


def vacated_blocks(before: Sequence[int | None], after: Sequence[int | None], order: int) -> int:
    """How many blocks of 2**order pages held some of these pages before and hold none of them after: blocks
    these pages no longer keep from being free as a whole (other pages may still sit there)."""
    return len({p >> order for p in before if p is not None} - {p >> order for p in after if p is not None})


def moved_pages(before: Sequence[int | None], after: Sequence[int | None]) -> int:
    """How many pages present both times now sit in another page frame (migrated, e.g. by compaction)."""
    return sum(1 for a, b in zip(before, after) if a is not None and b is not None and a != b)


MAX_MAPPING_PAGES = 1 << 24   # a mapping above 64 GiB of address space (a reservation, not memory) is skipped


def parse_maps_ranges(text: str) -> list[tuple[int, int]]:
    """(start, end) addresses of every mapping in /proc/<pid>/maps text; unparsable lines are skipped."""
    out = []
    for line in text.splitlines():
        span = line.split(" ", 1)[0]
        lo, sep, hi = span.partition("-")
        try:
            start, end = int(lo, 16), int(hi, 16)
        except ValueError:
            continue
        if sep and end > start:
            out.append((start, end))
    return out


def pfns_from_entries(data: bytes):
    """The PFNs (a numpy int64 array) of the present pages among raw pagemap entries; PFN 0 (hidden) dropped."""
    import numpy as np

    entries = np.frombuffer(data, dtype="<u8", count=len(data) // ENTRY_BYTES)
    pfns = entries[(entries & np.uint64(PRESENT)) != 0] & np.uint64(PFN_MASK)
    return pfns[pfns != 0].astype(np.int64)


def process_pfns(pid: int, page_bytes: int = 4096, proc: Path = Path("/proc")):
    """The PFNs of every present page of process `pid` (all its mappings), as a numpy int64 array; None where
    they cannot be known (the process is gone, its maps or pagemap unreadable, or the PFNs hidden: not root)."""
    import numpy as np

    try:
        maps = (proc / str(pid) / "maps").read_text(encoding="ascii", errors="replace")
        fd = os.open(proc / str(pid) / "pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    found, present = [], False
    try:
        for start, end in parse_maps_ranges(maps):
            pages = (end - start) // page_bytes
            if pages > MAX_MAPPING_PAGES:
                continue
            try:
                data = _pread_all(fd, pages * ENTRY_BYTES, (start // page_bytes) * ENTRY_BYTES)
            except OSError:
                continue  # [vsyscall] and the like: nothing of ours
            entries = np.frombuffer(data, dtype="<u8", count=len(data) // ENTRY_BYTES)
            present = present or bool(((entries & np.uint64(PRESENT)) != 0).any())
            found.append(pfns_from_entries(data))
    finally:
        os.close(fd)
    pfns = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if present and not len(pfns):
        return None  # present pages with PFN 0: hidden from this user
    return pfns
