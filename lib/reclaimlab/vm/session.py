"""One booted kit's VM kept for a lab's several experiments: one boot per lab, not one per run.

    session = VmSession()
    machine, size, notices = session.machine(size_bytes=512 << 20)   # boots on the first call, reuses it after
    ...
    session.close()                                                  # also at interpreter exit and on an interrupt

Lab 04 runs two auto-reclaim watches in the VM (its chosen version's gradual and dropCache), lab 05 its
reporting-on runs. Each run after the first starts
clean in the reused guest (`fresh()`): the last run's file removed, every clean page dropped (where the
order changed, a small allocation touched and freed so that a reporting pass runs at the new order), then a wait
until the host's view of the guest stops falling (reporting has handed back what is free). A run then sees what a new
boot would show apart from the warm slab; its recording says it reused the guest (`clean_start` in results,
and a notice). What cannot start clean keeps a boot of its own (`reusable`): with free page reporting off the
host keeps every page a run touched and nothing in the guest makes it let go; lab 01's refault measures first
touches of memory the host never backed. The reporting order is written at runtime where a run asks for one:
/sys/module/page_reporting/parameters/page_reporting_order is a 0644 module parameter of mm/page_reporting.c,
used as soon as it is written (the kit's 6.1 guest reads back what was written; OrderNotWritable where a kernel
refuses it, and the run then boots with it on the command line). The recording says how the order was set.
QEMU dies with this process anyway (PR_SET_PDEATHSIG in machine).
"""
from __future__ import annotations

import atexit
import contextlib
import time
from typing import Any, Callable

from . import build, slots
from .errors import VmCommandError
from .machine import Machine, read_rss_kib
from .sizing import host_allowance_bytes, plan
from ..waiting import until_settled

ORDER_PATH = "/sys/module/page_reporting/parameters/page_reporting_order"
SETTLE_S = 3.0          # free page reporting passes come ~2 s apart: no fall for this long means it is done
SETTLE_LIMIT_S = 30.0   # a clean start waits no longer than this for the host's view to settle
SETTLE_SLACK_KIB = 2048 # a fall smaller than this is noise (QEMU's own allocations), not reporting
NUDGE_BYTES = 16 << 20  # touched and freed after the drop: a high-order free starts a reporting pass


# Runs that start clean in a reused reporting-on guest. With reporting off nothing does: the host keeps every page
# a run touched, so the next run's first touches would land on memory the host already backs.
REUSABLE = ("calloc-reclaim", "page-cache", "refault", "compaction", "auto-reclaim")


def reusable(name: str, reporting: bool, session_reporting: bool = True) -> bool:
    """Whether a run of `name` (free page reporting `reporting`) may use a session's guest (pure)."""
    return bool(reporting) and bool(session_reporting) and name in REUSABLE


def order_now(machine: Machine, timeout_s: float) -> int | None:
    """page_reporting_order as a running guest reads it now (a session may have written it since the boot)."""
    got = machine.command("get", ORDER_PATH, timeout_s=timeout_s).detail.get("value", "")
    return int(got) if got.isdigit() else None


class OrderNotWritable(VmCommandError):
    """The guest refused a runtime page_reporting_order: the run must boot with it on the command line."""


def write_order(machine: Machine, order: int) -> int:
    """Write page_reporting_order in the running guest and read it back; OrderNotWritable where the write is
    refused or does not hold."""
    try:
        machine.command("set", ORDER_PATH, str(order), timeout_s=30.0)
    except VmCommandError as exc:
        raise OrderNotWritable(f"{ORDER_PATH} cannot be written at runtime here: {exc}") from None
    got = order_now(machine, timeout_s=30.0)
    if got != order:
        raise OrderNotWritable(f"{ORDER_PATH} reads {got!r} after writing {order}: it cannot be set at runtime")
    return got


def nudge(machine: Machine) -> None:
    """Start a reporting pass at the order now set: the kernel starts one only when a free forms a block of the
    order, so a small buffer (NUDGE_BYTES) is touched and freed."""
    for verb, *args in (("alloc", NUDGE_BYTES), ("touch",), ("free",)):
        machine.command(verb, *args, timeout_s=60.0)


class VmSession:
    """Lazily boots one Machine (free page reporting `reporting`) and hands it out until close()."""

    def __init__(self, cache_dir: Any = None, reporting: bool = True):
        self.cache_dir = cache_dir
        self.reporting = bool(reporting)
        self._machine: Machine | None = None
        self._notices: list[str] = []
        self._mem_asked: int | None = None
        self._boot_scaled = False   # the boot's plan scaled the guest's memory down (its first notice says so)
        self.boot_order: int | None = None   # page_reporting_order the guest booted with (its hello)
        self.boots = 0          # how many times this session booted a guest (1 for a whole lab)
        self.boot_s = 0.0       # the seconds those boots took
        self.runs = 0           # runs handed this guest since its boot
        self.last_fresh: dict[str, Any] | None = None   # what the last clean start did and saw
        self.slot: slots.Slot | None = None   # the machine's VM slot this session holds while its guest runs
        self._slot_hold = contextlib.ExitStack()
        atexit.register(self.close)

    @property
    def alive(self) -> bool:
        return self._machine is not None and self._machine.alive

    def machine(self, size_bytes: int | None, slot_timeout_s: float = 600.0,
                say: Callable[[str], None] = lambda _m: None, *, mem_bytes: int | None = None,
                page_reporting_order: int | None = None) -> tuple[Machine, int, list[str]]:
        """(the booted machine, the size scaled to it, the scaling notices); boots it on first use, once it
        holds one of the machine's VM slots (vm/slots.py: waits up to slot_timeout_s, else VmSlotsFull).
        A reused guest gets a clean start (fresh); a different `mem_bytes` boots a new one.
        page_reporting_order: written to the guest's sysfs before the clean start (None: the boot's own)."""
        if self.alive and mem_bytes != self._mem_asked:
            self.close()
        if self.alive:
            assert self._machine is not None
            self.fresh(page_reporting_order)
            self.runs += 1
            fit = plan(size_bytes, self._machine.mem_mib << 20, 1 << 62)   # the booted guest bounds the size
            return self._machine, fit.size_bytes, self._notices[:1] + fit.notices if self._boot_scaled else fit.notices
        self.close()
        vm_plan = plan(size_bytes, mem_bytes, host_allowance_bytes())
        self.slot = self._slot_hold.enter_context(slots.hold(slot_timeout_s, say))
        m = Machine(build.build(cache_dir=self.cache_dir), mem_mib=vm_plan.mem_mib, reporting=self.reporting)
        t0 = time.monotonic()
        try:
            m.start()
        except BaseException:
            m.stop()
            self._slot_hold.close()
            raise
        self.boot_s += time.monotonic() - t0
        self.boots += 1
        self.runs = 0
        self.last_fresh = None
        order = m.hello.fields.get("page_reporting_order", "") if m.hello else ""
        self.boot_order = int(order) if order.isdigit() else None
        self._machine, self._notices, self._mem_asked = m, list(vm_plan.notices), mem_bytes
        self._boot_scaled = bool(vm_plan.notices) and vm_plan.notices[0].startswith("guest memory")
        if page_reporting_order is not None and page_reporting_order != self.boot_order:
            self.fresh(page_reporting_order)   # the order written, then a pass at it before the first run
        self.runs = 1
        return m, vm_plan.size_bytes, list(vm_plan.notices)

    def current_order(self) -> int | None:
        """page_reporting_order as the running guest reads it now."""
        assert self._machine is not None
        return order_now(self._machine, timeout_s=30.0)

    def set_order(self, order: int | None) -> int | None:
        """Write page_reporting_order (None: the boot's own) in the running guest; what it reads back."""
        assert self._machine is not None
        want = self.boot_order if order is None else order
        return self.current_order() if want is None else write_order(self._machine, want)

    def fresh(self, page_reporting_order: int | None = None) -> dict[str, Any]:
        """A clean start for the next run in this guest: the order set, the last run's file gone, every clean
        page dropped, a reporting pass started, and the host's view settled. Returns (and keeps) what it saw."""
        assert self._machine is not None
        m = self._machine
        t0 = time.monotonic()
        before = self.current_order()
        order = self.set_order(page_reporting_order)
        m.command("rm_file", timeout_s=120.0)
        m.command("drop_caches", 3, timeout_s=120.0)
        if self.reporting and order != before:   # a high-order free wakes the reporting worker at the new order
            nudge(m)
        settled_kib, settled = self._settle(m)
        self.last_fresh = {"runs_before_in_this_guest": self.runs, "page_reporting_order": order,
                           "host_rss_settled_kib": settled_kib, "settled": settled,
                           "took_s": round(time.monotonic() - t0, 2)}
        return self.last_fresh

    @staticmethod
    def _settle(m: Machine) -> tuple[int | None, bool]:
        """Wait until QEMU's resident memory has not fallen for SETTLE_S (at most SETTLE_LIMIT_S)."""
        rss, settled, _s = until_settled(lambda: read_rss_kib(m.pid)[0], SETTLE_S, SETTLE_LIMIT_S, SETTLE_SLACK_KIB,
                                         poll_s=0.25)
        return (None if rss is None else int(rss)), settled

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
