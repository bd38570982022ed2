"""How much of one file sits in the page cache right now (like util-linux `fincore`), via mincore(2).

    resident_kib("/var/tmp/x.bin")   # -> KiB of the file's pages in memory, None if it cannot be read

The file is mapped read-only without touching its pages (mapping faults nothing in), mincore
reports one byte per page whose low bit says "resident", and the mapping is dropped again.
This is the figure that belongs to *our* file alone, unlike /proc/meminfo's Cached, which holds every
file of the guest.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os

_libc = None


def _lib():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        _libc = lib
    return _libc


def resident_pages(path: str | os.PathLike) -> tuple[int, int] | None:
    """(resident pages, pages of the file), or None where the file is gone or cannot be mapped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        page = mmap.PAGESIZE
        pages = (size + page - 1) // page
        if pages == 0:
            return 0, 0
        lib = _lib()
        addr = lib.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vec = ctypes.create_string_buffer(pages)
            if lib.mincore(addr, size, vec) != 0:
                return None
            resident = pages - vec.raw.count(0)  # one byte per page, low bit set when resident
        finally:
            lib.munmap(addr, size)
        return resident, pages
    finally:
        os.close(fd)


def resident_kib(path: str | os.PathLike) -> int | None:
    got = resident_pages(path)
    return None if got is None else got[0] * mmap.PAGESIZE // 1024


class FileResident:
    """A sampler column: KiB of the workload's file resident in memory (empty while there is no file)."""

    column = "workload_file_resident_kib"

    def __init__(self) -> None:
        self.path: str | None = None

    def read(self) -> int | None:
        return resident_kib(self.path) if self.path else None

    def close(self) -> None:
        self.path = None
