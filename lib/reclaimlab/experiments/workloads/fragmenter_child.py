"""The fragmenter child: scatters free memory into single pages (see fragmenter.py).

Run as ``python -m reclaimlab.experiments.workloads.fragmenter_child``; commands arrive on stdin (_child.py).
"""
from __future__ import annotations

import time
from typing import Any

from ._child import PAGE_BYTES, libc, os_error, serve, status_kib
from .allocator_child import MADV_DONTNEED, MADV_NOHUGEPAGE, mmap_anonymous


class Fragments:
    def __init__(self) -> None:
        self.ptr: int | None = None
        self.size_bytes = 0
        self.freed_pages = 0
        self.filler = 0
        self.fill_bytes = 0

    def fragment(self, size_bytes: int, stride_pages: int = 2, fill_bytes: int = 0,
                 hold_filler: bool = False) -> dict[str, Any]:
        """Map and touch size_bytes in 4 KiB pages, then keep one page of every stride_pages and free the rest.

        Pages touched one after another mostly come from the same split high-order blocks, so
        neighbours in the mapping are mostly neighbours in physical memory: one kept page per
        stride pins its block, and the freed pages around it cannot merge past it. stride 2
        leaves order-0 holes (half the memory stays held); stride 512 (2 MiB) frees 511 of
        every 512 pages, which merge up to order 8 but never to order 9.

        fill_bytes: first touch (and afterwards unmap) this much in a filler mapping. The buddy
        allocator serves small requests from its smallest free blocks first, so without the
        filler the fragment region would only plug holes that are already there (a guest that
        has run a while has hundreds of MiB of them) instead of breaking up order >= 9 blocks.
        """
        if self.ptr is not None:
            raise RuntimeError("already fragmented; release first")
        if stride_pages < 2:
            raise ValueError(f"stride_pages must be >= 2 (keep 1 page of every stride), got {stride_pages}")
        lib = libc()
        t0 = time.perf_counter()
        filler = 0
        if fill_bytes > 0:
            filler = mmap_anonymous(fill_bytes)
            lib.madvise(filler, fill_bytes, MADV_NOHUGEPAGE)
            lib.memset(filler, 1, fill_bytes)
        try:
            ptr = mmap_anonymous(size_bytes)
        except OSError:
            if filler:
                lib.munmap(filler, fill_bytes)
            raise
        # THP would hand us 2 MiB pages: freeing 4 KiB of one splits nothing back to the buddy lists.
        if lib.madvise(ptr, size_bytes, MADV_NOHUGEPAGE) != 0:
            err = os_error("madvise(MADV_NOHUGEPAGE)")
            lib.munmap(ptr, size_bytes)
            raise err
        self.ptr, self.size_bytes = ptr, size_bytes
        lib.memset(ptr, 1, size_bytes)
        touched_s = time.perf_counter() - t0
        pages = size_bytes // PAGE_BYTES
        madvise = lib.madvise
        freed = 0
        for first in range(0, pages, stride_pages):
            count = min(stride_pages, pages - first) - 1  # keep page `first`, free the rest of the stride
            if count > 0 and madvise(ptr + (first + 1) * PAGE_BYTES, count * PAGE_BYTES, MADV_DONTNEED) == 0:
                freed += count
        if filler and not hold_filler:
            lib.munmap(filler, fill_bytes)  # the old holes come back; the new ones stay pinned
            filler = 0
        self.filler, self.fill_bytes = filler, fill_bytes
        self.freed_pages = freed
        status = status_kib()
        return {"duration_s": time.perf_counter() - t0, "touch_s": touched_s, "size_bytes": size_bytes,
                "address": ptr, "freed_pages": freed, "held_pages": pages - freed, "rss_anon_kib": status.get("RssAnon")}

    def release(self) -> dict[str, Any]:
        if self.ptr is None:
            return {"duration_s": 0.0, "rss_anon_kib": status_kib().get("RssAnon")}
        t0 = time.perf_counter()
        if self.filler:
            libc().munmap(self.filler, self.fill_bytes)
            self.filler = 0
        if libc().munmap(self.ptr, self.size_bytes) != 0:
            raise os_error("munmap")
        self.ptr = None
        return {"duration_s": time.perf_counter() - t0, "rss_anon_kib": status_kib().get("RssAnon")}


def main() -> None:
    frag = Fragments()
    serve({"fragment": frag.fragment, "release": frag.release})


if __name__ == "__main__":
    main()
