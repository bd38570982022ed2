"""A minimal writer of the newc cpio format the Linux kernel unpacks as an initramfs.

Written here rather than calling cpio(1) so device nodes and root ownership need no root on
the host and the build depends on one tool fewer. Pure: entries in, bytes out.
"""
from __future__ import annotations

import stat
from dataclasses import dataclass

TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    name: str                 # path inside the archive, no leading '/'
    mode: int                 # full st_mode: type bits | permissions
    data: bytes = b""         # file content, or the target of a symlink
    rdev: tuple[int, int] = (0, 0)  # (major, minor) for device nodes


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, e: Entry, name: bytes) -> bytes:
    fields = (ino, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name) + 1, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def newc(entries: list[Entry]) -> bytes:
    """The archive: every entry owned by root, mtime 0 (so equal inputs give equal bytes)."""
    out = bytearray()
    for ino, e in enumerate(list(entries) + [Entry(TRAILER, 0)], 1):
        name = e.name.lstrip("/").encode()
        head = _header(ino if e.name != TRAILER else 0, e, name) + name + b"\0"
        out += head + _pad4(len(head)) + e.data + _pad4(len(e.data))
    return bytes(out)


def directory(name: str) -> Entry:
    return Entry(name, stat.S_IFDIR | 0o755)


def file(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int) -> Entry:
    return Entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))


def read_newc(data: bytes) -> list[Entry]:
    """The entries of a newc archive (e.g. a decompressed initrd), up to its trailer."""
    out: list[Entry] = []
    pos = 0
    while pos + 110 <= len(data):
        if data[pos:pos + 6] not in (b"070701", b"070702"):
            raise ValueError(f"not a newc cpio archive at byte {pos}")
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_end = pos + 110 + namesize
        name = data[pos + 110:name_end - 1].decode()
        start = name_end + (-(name_end - pos) % 4)
        if name == TRAILER:
            break
        out.append(Entry(name, mode, data[start:start + size]))
        pos = start + size + (-size % 4)
    return out
