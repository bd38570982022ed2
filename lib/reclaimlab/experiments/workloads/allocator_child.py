"""The allocator child: holds anonymous memory for the parent's `Allocator` (see allocator.py).

Run as ``python -m reclaimlab.experiments.workloads.allocator_child``; commands arrive on stdin (see _child.py).
It does what the seed's C program does, through libc via ctypes (no compiler needed):
``calloc(n, 1)``, then what the seed leaves implicit: write every page, hold, ``free``.
"""
from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from ._child import PAGE_BYTES, libc, os_error, serve, status_kib

PROT_READ, PROT_WRITE = 0x1, 0x2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
MAP_FAILED = ctypes.c_void_p(-1).value
MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE = 4, 14, 15
HUGE_PAGE_BYTES = 2 * 1024 * 1024
M_MMAP_THRESHOLD = -3  # malloc.h


def mmap_anonymous(size_bytes: int, align_bytes: int = PAGE_BYTES) -> int:
    """A private anonymous mapping of size_bytes starting at a multiple of align_bytes.

    Not Python's mmap.mmap(-1, n): that one is MAP_SHARED (counted as Shmem, never THP).
    """
    lib = libc()
    span = size_bytes + (align_bytes if align_bytes > PAGE_BYTES else 0)
    base = lib.mmap(None, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if base in (None, MAP_FAILED):
        raise os_error(f"mmap({size_bytes})")
    start = (base + align_bytes - 1) // align_bytes * align_bytes
    # Trim the unaligned head and the tail so exactly [start, start+size) stays mapped.
    if start > base:
        lib.munmap(base, start - base)
    tail = base + span - (start + size_bytes)
    if tail > 0:
        lib.munmap(start + size_bytes, tail)
    return start


class Buffer:
    """The one buffer this child holds."""

    def __init__(self) -> None:
        self.ptr: int | None = None
        self.size_bytes = 0
        self.method = ""
        self.touches = 0
        # glibc raises its mmap threshold after each free of an mmapped chunk (up to 32 MiB);
        # pinning it keeps "free returns the memory at once" true for every size we allocate.
        # The seed's 3 GB is far above any threshold, so for it nothing changes.
        libc().mallopt(M_MMAP_THRESHOLD, 128 * 1024)

    def reply(self, duration_s: float, **extra: Any) -> dict[str, Any]:
        status = status_kib()
        return {"duration_s": duration_s, "size_bytes": self.size_bytes, "method": self.method,
                "rss_anon_kib": status.get("RssAnon"), "vm_rss_kib": status.get("VmRSS"), **extra}

    def alloc(self, size_bytes: int, huge_pages: bool = False) -> dict[str, Any]:
        if self.ptr is not None:
            raise RuntimeError("a buffer is already allocated; free it first")
        lib = libc()
        t0 = time.perf_counter()
        if huge_pages:
            # calloc's chunks are not 2 MiB aligned; THP needs aligned ranges, so map our own.
            ptr = mmap_anonymous(size_bytes, HUGE_PAGE_BYTES)
            if lib.madvise(ptr, size_bytes, MADV_HUGEPAGE) != 0:
                err = os_error("madvise(MADV_HUGEPAGE)")
                lib.munmap(ptr, size_bytes)
                raise err
            method = "mmap+MADV_HUGEPAGE"
        else:
            ptr = lib.calloc(size_bytes, 1)
            if not ptr:
                raise MemoryError(f"calloc({size_bytes}, 1) returned NULL: the kernel refused to "
                                  "reserve that much address space (vm.overcommit_memory?)")
            method = "calloc"
        duration_s = time.perf_counter() - t0
        self.ptr, self.size_bytes, self.method, self.touches = ptr, size_bytes, method, 0
        return self.reply(duration_s, address=ptr)

    def touch(self) -> dict[str, Any]:
        """Write every byte (memset: the fastest way to fault in every page), then verify one byte per page."""
        if self.ptr is None:
            raise RuntimeError("nothing allocated; allocate first")
        self.touches += 1
        pattern = 1 + (self.touches - 1) % 255  # never 0: a rewrite must change something
        t0 = time.perf_counter()
        libc().memset(self.ptr, pattern, self.size_bytes)
        duration_s = time.perf_counter() - t0
        # Read back one byte per page: proves every page holds what we wrote.
        view = memoryview((ctypes.c_ubyte * self.size_bytes).from_address(self.ptr))
        checksum = sum(bytes(view[::PAGE_BYTES]))
        pages = -(-self.size_bytes // PAGE_BYTES)
        if checksum != pattern * pages:
            raise RuntimeError(f"checksum {checksum} != {pattern} * {pages} pages: memory did not keep what was written")
        return self.reply(duration_s, checksum=checksum, pages=pages, pattern=pattern,
                          gb_per_s=self.size_bytes / duration_s / 1e9 if duration_s > 0 else None)

    def free(self) -> dict[str, Any]:
        if self.ptr is None:
            raise RuntimeError("nothing allocated; nothing to free")
        lib = libc()
        t0 = time.perf_counter()
        if self.method == "calloc":
            lib.free(self.ptr)  # above the mmap threshold: glibc munmaps the chunk at once
        elif lib.munmap(self.ptr, self.size_bytes) != 0:
            raise os_error("munmap")
        duration_s = time.perf_counter() - t0
        self.ptr = None
        return self.reply(duration_s)

    def status(self) -> dict[str, Any]:
        return self.reply(0.0, allocated=self.ptr is not None, pid=os.getpid())


def main() -> None:
    buf = Buffer()
    serve({"alloc": buf.alloc, "touch": buf.touch, "free": buf.free, "status": buf.status})


if __name__ == "__main__":
    main()
