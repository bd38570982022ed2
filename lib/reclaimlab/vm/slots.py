"""How many kit's VMs this machine can hold at once, and a queue for them across processes and users.

    n = slot_count(cores=2, mem_available_bytes=20 << 30, vm_bytes=2_400 << 20)   # -> 2 (pure)
    with hold(timeout_s=120, say=print) as slot:   # waits its turn; VmSlotsFull after timeout_s
        ...boot and run the VM...                  # slot.index, slot.count, slot.waited_s

On a hub many participants share one machine, and each one's memory cgroup gives them a live-experiment
lock of their own (probe/lock.py), so nothing else stops ten of them booting ten VMs on two cores. A VM
under TCG keeps one core busy, and each holds its guest's RAM plus QEMU's own: one slot per core, as many
as MemAvailable holds. A slot is flock(2) on one of N files in the machine's lock folder (the kernel frees
it when the holder dies, even by kill -9). Slot files are shared by every participant, so unlike the
experiment lock they are trusted whoever created them: a planted file can only hold a slot, which makes
a run wait and then show its recording, as a participant's own run would; a link or non-file is refused.
"""
from __future__ import annotations

import fcntl
import os
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..control.lock import machine_lock_dir

POLL_S = 0.5
FILE_PREFIX = "reclaimlab-vm-slot-"
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class VmSlotsFull(RuntimeError):
    """Every slot stayed taken for the whole wait (or the machine holds none); the message says which."""

    def __init__(self, message: str, waited_s: float, count: int):
        super().__init__(message)
        self.waited_s = waited_s
        self.count = count


@dataclass(frozen=True)
class Slot:
    index: int
    count: int        # the slots this machine had when this one was taken
    waited_s: float   # how long this run waited for it


def slot_count(cores: int, mem_available_bytes: int, vm_bytes: int) -> int:
    """VMs this machine can hold at once (pure): one per core (TCG keeps one busy), no more than
    MemAvailable holds at `vm_bytes` each (guest RAM plus QEMU's own); 0 where not even one fits."""
    if vm_bytes <= 0:
        raise ValueError(f"vm_bytes must be positive, not {vm_bytes}")
    return max(0, min(max(cores, 1), mem_available_bytes // vm_bytes))


def machine_slot_count(vm_bytes: int) -> int:
    """slot_count for this machine now: its CPUs (os.cpu_count) and /proc/meminfo's MemAvailable."""
    avail = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    return slot_count(os.cpu_count() or 1, avail, vm_bytes)


def _try(path: Path) -> int | None:
    """A descriptor holding `path`'s flock, or None while another process holds it."""
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        try:
            fd = os.open(path, _FLAGS | os.O_CREAT | os.O_EXCL, 0o644)
            os.fchmod(fd, 0o644)   # others open it read-only to lock it
        except FileExistsError:
            fd = os.open(path, _FLAGS)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VmSlotsFull(f"the VM slot {path} is not a regular file; remove it (as root) and run again", 0.0, 0)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def hold(timeout_s: float, say: Callable[[str], None] = lambda _m: None, count: Callable[[], int] | None = None,
         folder: Path | None = None) -> Iterator[Slot]:
    """Take a free slot, waiting up to `timeout_s` for one (`count`: how many slots there are now, asked at
    every try; default: machine_slot_count of a 2 GiB guest). Raises VmSlotsFull after the wait."""
    from .sizing import DEFAULT_MEM_BYTES, QEMU_OVERHEAD_BYTES
    count = count or (lambda: machine_slot_count(DEFAULT_MEM_BYTES + QEMU_OVERHEAD_BYTES))
    folder = folder or machine_lock_dir()
    t0 = time.monotonic()
    told = False
    while True:
        n = count()
        for i in range(n):
            fd = _try(folder / f"{FILE_PREFIX}{i}.lock")
            if fd is not None:
                waited = time.monotonic() - t0
                if told:
                    say(f"▶ a slot for the kit's VM is free after {waited:.0f} s: starting")
                try:
                    yield Slot(i, n, waited)
                finally:
                    os.close(fd)
                return
        waited = time.monotonic() - t0
        if waited >= timeout_s:
            raise VmSlotsFull(f"this machine can run {n} kit's VM{'s' if n != 1 else ''} at once "
                              + ("(not one fits its free memory)" if n == 0 else
                                 f"and {'it was' if n == 1 else 'all were'} busy while this run "
                                 f"waited {waited:.0f} s"), waited, n)
        if not told:
            say(f"⏳ waiting for a slot for the kit's VM: this machine runs {n} at once and "
                f"{'it is' if n == 1 else 'all are'} taken (waiting up to {timeout_s:.0f} s)")
            told = True
        time.sleep(POLL_S)
