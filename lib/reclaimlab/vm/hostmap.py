"""The host's map of the kit's VM: which pages of the guest's RAM QEMU holds, block by block.

    hm = read_host_map(machine.pid, machine.mem_mib << 20, block_order=9)
    hm.resident_pages[i]     # pages of guest-physical block i the host holds in RAM now

QEMU keeps the guest's RAM in an anonymous private mapping of its own process (`-m` without a
memory backend): here, the only `rw-p` anonymous mapping of exactly the RAM's size in
/proc/<qemu>/maps (measured with QEMU 7.2, 2 GiB: one such mapping). Its pagemap entries say,
page by page, whether the host has a page there (bit 63, present; readable by the same user
without root: only the frame numbers need root) or swapped it out (bit 62).

Guest-physical address == offset in that mapping while the RAM fits below the PCI hole (x86 `pc`
machine: up to 3 GiB; above that QEMU maps the rest at 4 GiB and up), so `read_host_map` refuses
larger guests instead of drawing a shifted map.

A block is **resident** when the host holds any page of it, **non-resident** when it holds none.
"Any" because that is what the host can give back: free page reporting discards a whole reported
block (QEMU's MADV_DONTNEED on its range), so a reported block has no page left, while one touched
page keeps a block (and under THP a whole 2 MiB huge page) in the host's RAM.

`fold` is pure (pagemap bytes in, per-block counts out); `find_guest_ram` and `read_host_map` do I/O.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..probe import physmap
from ..probe.residency import HostMap  # noqa: F401  (the data type, below recording/ so recordings load it)

PM_PRESENT = np.uint64(1 << 63)
PM_SWAPPED = np.uint64(1 << 62)
PAGEMAP_ENTRY_BYTES = 8
LOW_RAM_LIMIT_BYTES = 3 << 30   # x86 pc: RAM above this would be remapped above 4 GiB


class HostMapError(Exception):
    """The host's side of the VM cannot be mapped; the message says why and what to do."""


def fold(pagemap: bytes | np.ndarray, block_order: int = 9, page_bytes: int = 4096) -> HostMap:
    """Raw /proc/<pid>/pagemap entries of the RAM mapping, from guest-physical 0 -> HostMap (pure).

    A short last block counts only the pages that exist."""
    block_order = physmap.check_block_order(block_order)
    entries = pagemap if isinstance(pagemap, np.ndarray) else \
        np.frombuffer(pagemap, dtype="<u8", count=len(pagemap) // PAGEMAP_ENTRY_BYTES)
    size = 1 << block_order
    blocks = -(-len(entries) // size)
    present = np.zeros(blocks * size, dtype=bool)
    swapped = np.zeros(blocks * size, dtype=bool)
    present[:len(entries)] = (entries & PM_PRESENT) != 0
    swapped[:len(entries)] = (entries & PM_SWAPPED) != 0
    dtype = np.uint32
    return HostMap(present.reshape(blocks, size).sum(axis=1, dtype=dtype),
                   swapped.reshape(blocks, size).sum(axis=1, dtype=dtype), block_order, page_bytes, len(entries))


def parse_ram_mapping(maps_text: str, ram_bytes: int) -> tuple[int, int]:
    """(start, end) of the one anonymous rw-p mapping of exactly ram_bytes in a /proc/<pid>/maps text."""
    found = []
    for line in maps_text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[1] != "rw-p" or len(fields) > 5 or fields[3] != "00:00":
            continue  # named (a file, [heap], [stack]) or not private read-write
        lo, _, hi = fields[0].partition("-")
        start, end = int(lo, 16), int(hi, 16)
        if end - start == ram_bytes:
            found.append((start, end))
    if len(found) != 1:
        raise HostMapError(f"QEMU's guest RAM: {len(found)} anonymous read-write mappings of exactly "
                           f"{ram_bytes >> 20} MiB in its maps, expected one (a memory backend or a QEMU that "
                           f"lays RAM out differently); the host's map needs the plain `-m` layout the kit starts")
    return found[0]


def find_guest_ram(pid: int, ram_bytes: int) -> tuple[int, int]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
    except OSError as exc:
        raise HostMapError(f"/proc/{pid}/maps: {exc.strerror} (has QEMU exited?)") from None
    return parse_ram_mapping(text, ram_bytes)


def read_host_map(pid: int, ram_bytes: int, block_order: int = 9) -> HostMap:
    """The host's residency of a QEMU guest's RAM now, per block of guest-physical memory."""
    if ram_bytes > LOW_RAM_LIMIT_BYTES:
        raise HostMapError(f"a guest of {ram_bytes >> 20} MiB: RAM above 3 GiB sits above the PCI hole at another "
                           f"guest-physical address, which this map does not align; use at most 3072 MiB")
    page_bytes = os.sysconf("SC_PAGE_SIZE")
    start, end = find_guest_ram(pid, ram_bytes)
    path = f"/proc/{pid}/pagemap"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise HostMapError(f"{path}: {exc.strerror} (QEMU must run as this user)") from None
    try:
        want = (end - start) // page_bytes * PAGEMAP_ENTRY_BYTES
        offset = start // page_bytes * PAGEMAP_ENTRY_BYTES
        data = bytearray()
        while len(data) < want:
            chunk = os.pread(fd, min(want - len(data), 4 << 20), offset + len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise HostMapError(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) != want:
        raise HostMapError(f"{path}: read {len(data)} of {want} bytes (has QEMU exited?)")
    return fold(bytes(data), block_order, page_bytes)


@dataclass(frozen=True)
class Agreement:
    """The guest's reported blocks against the host's empty blocks, block by block.

    `over_either` is the honest figure: among the blocks where the guest says "wholly free and
    reported" OR the host says "holds none of it", the share where both say so. Agreement over all
    blocks (`over_all`) also counts blocks in use that the host holds, which agree trivially and
    would hide a mismatch in a mostly used guest."""

    blocks: int
    both: int              # reported by the guest and empty on the host
    guest_only: int        # reported, yet the host still holds some page of it
    host_only: int         # the host holds nothing, the guest does not call it reported (e.g. never touched)
    host_only_free: int    # of host_only: the guest says wholly free (free, not reported yet)

    @property
    def either(self) -> int:
        return self.both + self.guest_only + self.host_only

    @property
    def over_either(self) -> float:
        return self.both / self.either if self.either else 1.0

    @property
    def over_all(self) -> float:
        return (self.blocks - self.guest_only - self.host_only) / self.blocks if self.blocks else 1.0


def agreement(guest: physmap.Snapshot, host: HostMap) -> Agreement:
    """Compare the guest's map and the host's, both per block of the same order (pure)."""
    if guest.block_order != host.block_order:
        raise ValueError(f"the guest's map has blocks of order {guest.block_order}, the host's of order "
                         f"{host.block_order}: take both with the same block_order")
    n = min(guest.blocks, host.blocks)
    counts = guest.counts[:n]
    full = np.int64(guest.block_pages)
    reported = counts[:, physmap.FrameClass.FREE_REPORTED] == full
    free = (counts[:, physmap.FrameClass.FREE] + counts[:, physmap.FrameClass.FREE_REPORTED]) == full
    empty = ~host.resident[:n]
    host_only = empty & ~reported
    return Agreement(n, int(np.count_nonzero(reported & empty)), int(np.count_nonzero(reported & ~empty)),
                     int(np.count_nonzero(host_only)), int(np.count_nonzero(host_only & free)))


def hole_sizes_kib(host: HostMap) -> np.ndarray:
    """Sizes in KiB of the host's holes: maximal runs of consecutive blocks it holds nothing of (pure).

    Fold with a block order below the reporting order to see the holes reporting makes: order-5
    reporting leaves 128 KiB holes, order-9 reporting none smaller than 2 MiB."""
    empty = np.concatenate(([False], ~host.resident, [False]))
    edges = np.flatnonzero(np.diff(empty.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    return (ends - starts).astype(np.int64) * ((host.page_bytes << host.block_order) // 1024)
