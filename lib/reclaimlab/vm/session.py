"""One booted kit's VM kept for a lab's several experiments: one boot per lab, not one per run.

    session = VmSession()
    machine, notices = session.machine(size_bytes=512 << 20)   # boots on the first call, reuses it after
    ...
    session.close()                                            # also at interpreter exit and on an interrupt

Lab 04 runs two auto-reclaim watches in the VM (its chosen version's gradual and dropCache); each starts clean in a reused guest (`fresh()`: the file of
the last run removed, every clean page dropped, then a pause for free page reporting to hand it back), so a
run sees what a new boot would show apart from the warm slab. Experiments that need a fresh boot keep theirs
(vm/experiments.py: lab 01's refault measures first touches of memory the host never backed, and lab 03's
runs need different kernel command lines). QEMU dies with this process anyway (PR_SET_PDEATHSIG in machine).
"""
from __future__ import annotations

import atexit
import contextlib
import time
from typing import Any, Callable

from . import build, slots
from .machine import Machine
from .sizing import host_allowance_bytes, plan

SETTLE_S = 3.0   # free page reporting passes come ~2 s apart: what a clean start waits for the host to take back


class VmSession:
    """Lazily boots one Machine (free page reporting on) and hands it out until close()."""

    def __init__(self, cache_dir: Any = None):
        self.cache_dir = cache_dir
        self._machine: Machine | None = None
        self._notices: list[str] = []
        self._size = 0
        self.boots = 0          # how many times this session booted a guest (1 for a whole lab)
        self.boot_s = 0.0       # the seconds those boots took
        self.slot: slots.Slot | None = None   # the machine's VM slot this session holds while its guest runs
        self._slot_hold = contextlib.ExitStack()
        atexit.register(self.close)

    @property
    def alive(self) -> bool:
        return self._machine is not None and self._machine.alive

    def machine(self, size_bytes: int, slot_timeout_s: float = 600.0,
                say: Callable[[str], None] = lambda _m: None) -> tuple[Machine, int, list[str]]:
        """(the booted machine, the size scaled to it, the scaling notices); boots it on first use, once it
        holds one of the machine's VM slots (vm/slots.py: waits up to slot_timeout_s, else VmSlotsFull)."""
        if self.alive:
            assert self._machine is not None
            self.fresh()
            return self._machine, min(size_bytes, self._size), list(self._notices)
        self.close()
        vm_plan = plan(size_bytes, None, host_allowance_bytes())
        self.slot = self._slot_hold.enter_context(slots.hold(slot_timeout_s, say))
        m = Machine(build.build(cache_dir=self.cache_dir), mem_mib=vm_plan.mem_mib, reporting=True)
        t0 = time.monotonic()
        try:
            m.start()
        except BaseException:
            m.stop()
            self._slot_hold.close()
            raise
        self.boot_s += time.monotonic() - t0
        self.boots += 1
        self._machine, self._size, self._notices = m, vm_plan.size_bytes, list(vm_plan.notices)
        return m, vm_plan.size_bytes, list(vm_plan.notices)

    def fresh(self) -> None:
        """A clean start for the next run in this guest: the last run's file gone, every clean page dropped."""
        assert self._machine is not None
        m = self._machine
        m.command("rm_file", timeout_s=120.0)
        m.command("drop_caches", 3, timeout_s=120.0)
        time.sleep(SETTLE_S)

    def close(self) -> None:
        """Stop the guest (idempotent): QEMU is killed if the agent does not quit."""
        m, self._machine = self._machine, None
        try:
            if m is not None:
                m.stop()
        finally:
            self._slot_hold.close()
            self.slot = None

    def __enter__(self) -> "VmSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
