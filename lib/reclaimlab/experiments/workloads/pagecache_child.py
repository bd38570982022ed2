"""The page-cache child: writes, syncs and reads back one file for `PageCacheFile` (pagecache.py).

Run as ``python -m reclaimlab.experiments.workloads.pagecache_child``; commands arrive on stdin (_child.py).
Large buffers keep each write/read a single syscall per CHUNK: the work is the kernel's.
"""
from __future__ import annotations

import os
import time
from typing import Any

from ._child import serve

CHUNK_BYTES = 8 * 1024 * 1024


def write(path: str, size_bytes: int) -> dict[str, Any]:
    """Create `path` (it must not exist) and write size_bytes of zeros through the page cache."""
    chunk = bytes(CHUNK_BYTES)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        left = size_bytes
        with memoryview(chunk) as view:
            while left > 0:
                left -= os.write(fd, view[:min(left, CHUNK_BYTES)])
    finally:
        os.close(fd)
    return {"duration_s": time.perf_counter() - t0, "size_bytes": size_bytes}


def sync(path: str) -> dict[str, Any]:
    """fsync the file (its dirty pages reach the disk; they stay cached, now clean and droppable)."""
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"duration_s": time.perf_counter() - t0}


def read(path: str) -> dict[str, Any]:
    """Read the whole file (from the cache if it is still there, else from the disk)."""
    buf = bytearray(CHUNK_BYTES)
    total = 0
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            total += n
    finally:
        os.close(fd)
    return {"duration_s": time.perf_counter() - t0, "size_bytes": total}


def main() -> None:
    serve({"write": write, "sync": sync, "read": read})


if __name__ == "__main__":
    main()
