"""The story's experiments run inside the kit's VM: short step scripts returning Recordings.

    rec = run_vm_experiment("calloc-reclaim", reporting=True, size_bytes=768 << 20)

Each boots its own guest (free page reporting on or off, ~3 s under TCG) unless handed a
booted `machine` (a lab's VmSession, vm/session.py, which gave it a clean start), samples both sides
while it runs, and always stops the VM it booted. The
names match the local experiments; the host view is QEMU's resident memory.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import catalog
from ..recording.recording import Recording
from ..units import format_size
from ..waiting import until_settled, wait_until
from . import build
from .machine import Machine
from .sampler import VmSampler
from .session import NUDGE_BYTES, SETTLE_SLACK_KIB, OrderNotWritable, nudge, order_now, write_order
from .sizing import host_allowance_bytes, plan

class _VmDefaults(Mapping):
    """{experiment: its VM timings}, from each declaration's `vm_defaults` (catalog/kit.py), read at each access."""

    def _table(self) -> dict[str, dict[str, Any]]:
        return {name: dict(exp.vm_defaults) for name, exp in catalog.REGISTRY.items() if exp.vm_defaults is not None}

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self._table()[name]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


DEFAULTS: Mapping[str, dict[str, Any]] = _VmDefaults()
RETURNED_FRACTION = 0.9  # "back" = the host holds at most 10 % of the touched amount more than at rest


class VmExperimentError(ValueError):
    """Unknown experiment or parameter; the message lists what is valid."""


def _back_to(run: VmSampler, base_kib: int, touched_kib: int) -> Callable[[], bool]:
    def back() -> bool:
        rss = run.host_rss_kib()
        return rss is not None and rss - base_kib <= (1 - RETURNED_FRACTION) * touched_kib
    return back


SETTLED_S = 5.0  # reporting passes come ~2 s apart: no fall for this long means it is done


def _observe_return(run: VmSampler, base_kib: int, touched_kib: int, limit_s: float, name: str) -> None:
    """Watch the host take the memory back until it is back (90 %), settles, or limit_s passes.

    `<name>_host_back_s` is when 90 % was back (None if never); the first round typically
    leaves ~40 MiB of the guest out of MemFree for good (not anon, cache or slab; compaction and
    drop_caches do not bring it back), so small sizes may settle short of 90 %.
    """
    t0 = time.monotonic()
    back = _back_to(run, base_kib, touched_kib)
    lowest, lowest_at, back_s = run.host_rss_kib() or 0, t0, None
    while time.monotonic() - t0 < limit_s:
        rss = run.host_rss_kib()
        now = time.monotonic()
        if rss is None:
            break
        if rss < lowest - 1024:
            lowest, lowest_at = rss, now
        if back_s is None and back():
            back_s = now - t0
            break
        if lowest_at > t0 and now - lowest_at > SETTLED_S:
            break
        time.sleep(0.1)
    rss = run.host_rss_kib()
    peak = run.results.get(f"{name}_host_peak_kib")
    run.results[f"{name}_host_back_s"] = round(back_s, 2) if back_s is not None else None
    run.results[f"{name}_host_rss_after_kib"] = rss
    if rss is not None and peak is not None:
        run.results[f"{name}_host_returned_fraction"] = round((peak - rss) / max(touched_kib, 1), 3)
    run.results[f"{name}_observed_s"] = round(time.monotonic() - t0, 2)


# ---------------------------------------------------------------- the step scripts

AGE_KEEP_EVERY = 2   # keep every other page: the holes are single pages, each between two kept ones


def age(run: VmSampler, age_bytes: int) -> None:
    """Age the guest as long use does: touch `age_bytes` of anonymous memory, free every other page, write a file
    of the freed size (its page cache takes those single-page holes first: the smallest free blocks go first),
    then free the kept pages. What is left is free single pages pinned apart by cached ones."""
    ack = run.step("age", "fragment", "fragment", age_bytes, AGE_KEEP_EVERY)
    run.results["age_held_pages"] = held = int(ack.detail.get("held_pages", 0))
    run.step("age", "write_file", "write_file", max(age_bytes - held * 4096, 4096))
    run.step("age", "unfragment", "unfragment")
    run.snapshot("aged")


THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def calloc_reclaim(run: VmSampler, size: int, p: dict[str, Any]) -> None:
    if p.get("thp_enabled"):
        if p["thp_enabled"] not in ("always", "madvise", "never"):
            raise VmExperimentError(f"calloc-reclaim: thp_enabled={p['thp_enabled']!r}; give always, madvise or never")
        run.machine.command("set", THP_ENABLED, p["thp_enabled"])
    # what the guest's kernel then said, e.g. "always [madvise] never" (the agent sends blanks as '_')
    run.results["thp_enabled"] = run.machine.command("get", THP_ENABLED).detail.get("value", "").replace("_", " ")
    if int(p.get("age_bytes") or 0) > 0:
        age(run, int(p["age_bytes"]))
    wait_until(p["baseline_s"])
    base = run.host_rss_kib() or 0
    run.results["host_rss_before_kib"] = base
    run.snapshot("before")
    run.step("calloc", format_size(size), "alloc", size)
    wait_until(p["hold_s"])
    ack = run.step("touch", "", "touch")
    run.results["touch_pages"] = int(ack.detail.get("pages", 0))
    wait_until(p["hold_s"])
    run.results["free_host_peak_kib"] = run.host_rss_kib()
    run.step("free", "", "free")
    touched_kib = (run.results["free_host_peak_kib"] or base) - base
    run.results["touched_host_kib"] = touched_kib
    _observe_return(run, base, touched_kib, p["observe_s"], "free")
    run.snapshot("after")


def refault(run: VmSampler, size: int, p: dict[str, Any]) -> None:
    """The local run's steps and maps: after each touch a map with the buffer's frames as ours, so
    findings.refault.touched_reported can say how many of them sat in blocks reported just before."""
    wait_until(p["baseline_s"])
    base = run.host_rss_kib() or 0
    run.snapshot("before")
    run.step("calloc", format_size(size), "alloc", size)
    run.step("touch", "first", "touch")
    if run.maps:
        run.snapshot_maps("first_touched", ours=True)
    run.step("free", "first", "free")
    run.step("calloc", "hot", "alloc", size)
    run.step("touch", "hot", "touch")  # at once: the pages are free in the guest, not yet returned
    run.results["hot_host_peak_kib"] = peak = run.host_rss_kib() or base
    if run.maps:
        run.snapshot_maps("hot_touched", ours=True)
    run.step("free", "hot", "free")
    run.mark("wait", "for the host to take the pages back")
    _observe_return(run, base, peak - base, p["wait_for_report_s"], "hot")
    # The local experiment's names for the same things: what the host took back, how long we waited.
    after = run.results.get("hot_host_rss_after_kib")
    run.results["reported_before_cold_kib"] = max(peak - after, 0) if after is not None else None
    run.results["waited_for_report_s"] = run.results.get("hot_observed_s")
    run.results["size_bytes"] = size
    run.snapshot("before_cold")
    run.step("calloc", "cold", "alloc", size)
    run.step("touch", "cold", "touch")  # the host must supply every page again
    if run.maps:
        run.snapshot_maps("cold_touched", ours=True)
    run.step("free", "cold", "free")
    for k in ("first", "hot", "cold"):  # touch_{k}_s: the agent times the touch itself
        run.results[f"{k}_touch_gb_per_s"] = round(size / 1e9 / max(run.results[f"touch_{k}_s"], 1e-3), 3)


def page_cache(run: VmSampler, size: int, p: dict[str, Any]) -> None:
    if not run.machine.hello or run.machine.hello.fields.get("disk") != "yes":
        raise RuntimeError("the guest has no disk mounted; page-cache needs one (see the console)")
    wait_until(p["baseline_s"])
    base = run.host_rss_kib() or 0
    run.snapshot("before")
    run.step("write_file", format_size(size), "write_file", size)
    run.step("sync", "", "sync")
    run.step("read_file", "cached", "read_file")
    wait_until(p["hold_s"])
    run.results["drop_caches_host_peak_kib"] = peak = run.host_rss_kib() or base
    run.snapshot("cached")  # the file's pages in the guest's cache, and resident in the host
    levels = drop_levels(p["drop_levels"])
    for i, level in enumerate(levels):
        run.step("drop_caches", str(level), "drop_caches", level)
        if i == 0:
            _observe_return(run, base, peak - base, p["observe_s"], "drop_caches")
        else:
            wait_until(p["hold_s"])
    run.snapshot("dropped")  # after the drops: what reporting handed back, block by block
    run.step("read_file", "cold", "read_file")  # from the disk again: the cache is refilled
    run.step("rm_file", "", "rm_file")


def drop_levels(text: Any) -> list[int]:
    """"1,2,3" -> [1, 2, 3]: the drop_caches levels of a page-cache run, each 1, 2 or 3, in order."""
    try:
        levels = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        levels = []
    if not levels or any(lv not in (1, 2, 3) for lv in levels):
        raise VmExperimentError(f"page-cache: drop_levels={text!r} is not valid; give drop_caches levels 1, 2 or 3 "
                                f"separated by commas, e.g. \"3\" or \"1,2,3\"")
    return levels


QUIET_S = 6.0  # reporting passes come ~2 s apart (the first ~2 s after a free): no fall for this long, it is done


def _watch_fall(run: VmSampler, limit_s: float, quiet_s: float = QUIET_S) -> tuple[int | None, float]:
    """Watch QEMU's resident memory for at most limit_s, ending once it has not fallen for quiet_s (a fall
    under SETTLE_SLACK_KIB is QEMU's own noise). Returns (its resident KiB at the end, seconds watched)."""
    end, _settled, watched_s = until_settled(run.host_rss_kib, quiet_s, limit_s, SETTLE_SLACK_KIB)
    return (None if end is None else int(end)), round(watched_s, 2)


def _write_order(run: VmSampler, order: int) -> None:
    """Write page_reporting_order in the running guest, then start a reporting pass at it (session.nudge)."""
    try:
        write_order(run.machine, order)
    except OrderNotWritable as exc:
        raise VmExperimentError(f"compaction: then_order={order} was asked for, but {exc}: this kernel fixes the "
                                f"order at boot; run each order on its own (page_reporting_order=N, no then_order)") \
            from None
    run.mark("order", f"{order}, written at runtime")
    run.page_reporting_order = order   # the samples' reportable_free_kib from here on
    nudge(run.machine)


def _orders_while_fragmented(run: VmSampler, peak: int | None, then_order: int, observe_s: float) -> int | None:
    """One fragmentation seen at two reporting orders: the run's own, then `then_order` written at runtime. Each
    phase watches until the host's view stops falling (or observe_s); `order_phases` in results says what each got."""
    phases = []
    for i, order in enumerate((run.page_reporting_order, then_order)):
        if i:
            _write_order(run, then_order)
        start_s, start = run.now_s(), peak if not i else run.host_rss_kib()
        end, watched_s = _watch_fall(run, observe_s)
        phases.append({"order": order, "start_s": round(start_s, 2), "observed_s": watched_s,
                       "nudge_bytes": NUDGE_BYTES if i else 0,
                       "host_rss_start_kib": start, "host_rss_end_kib": end,
                       "returned_kib": None if start is None or end is None else start - end})
        if run.maps:  # what reporting took at this order, block by block
            run.snapshot_maps(f"reported_at_{order}")
    run.results["order_phases"] = phases
    first = phases[0]
    run.results["fragmented_returned_kib"] = first["returned_kib"]   # at the run's own order, as a one-order run
    return phases[-1]["host_rss_end_kib"]


def compaction(run: VmSampler, size: int, p: dict[str, Any]) -> None:
    wait_until(p["baseline_s"])
    base = run.host_rss_kib() or 0
    run.snapshot("before")
    keep = int(p["keep_every"])
    ack = run.step("fragment", format_size(size), "fragment", size, *((keep,) if keep != 3 else ()))
    run.results["fragment_held_pages"] = int(ack.detail.get("held_pages", 0))
    # just after the free, before free page reporting's first pass (~2 s later): QEMU holds it all
    run.results["fragment_host_rss_kib"] = peak = run.host_rss_kib()
    run.snapshot("fragmented")
    then_order = p.get("then_order")
    if then_order is None:
        wait_until(p["observe_s"])  # most of it is free in the guest, but in holes: reportable only above the order
        run.results["fragmented_host_rss_kib"] = before = run.host_rss_kib()
        run.results["fragmented_returned_kib"] = None if before is None or peak is None else peak - before
        if run.maps:  # what reporting took while fragmented, block by block: the holes at this order
            run.snapshot_maps("reported")
    else:
        run.results["fragmented_host_rss_kib"] = before = _orders_while_fragmented(run, peak, then_order,
                                                                                   p["observe_s"])
    run.step("compact", "", "compact")
    run.snapshot("compacted")
    if then_order is None:
        wait_until(p["observe_s"])
    else:
        run.results["compacted_observed_s"] = _watch_fall(run, p["observe_s"])[1]
    after = run.host_rss_kib()
    run.results["compacted_host_rss_kib"] = after
    if before is not None and after is not None:
        run.results["compaction_returned_kib"] = before - after
    run.step("unfragment", "", "unfragment")
    run.results["host_rss_before_kib"] = base


SCRIPTS: dict[str, Callable[[VmSampler, int, dict[str, Any]], None]] = {
    "calloc-reclaim": calloc_reclaim, "refault": refault, "page-cache": page_cache, "compaction": compaction,
}


def run_vm_experiment(name: str, reporting: bool = True, size_bytes: int | None = None,
                      mem_bytes: int | None = None, *, machine: Machine | None = None,
                      cache_dir: Path | None = None, quiet: bool = True,
                      page_reporting_order: int | None = None, notices: list[str] | None = None,
                      clean_start: dict[str, Any] | None = None, then_order: int | None = None,
                      **params: Any) -> Recording:
    """Run experiment `name` in the kit's VM and return its Recording.

    reporting: free page reporting on or off (ignored with `machine`, which has its own).
    page_reporting_order: set on the guest's kernel command line as WSL does (None: the kernel's
    choice); with `machine`, the order its session wrote at runtime. The parameters say which
    (`page_reporting_order_set`); the meta carries what the guest then read from sysfs.
    then_order (compaction only): after watching the fragmented guest at its own order, write this order at
    runtime and watch again: one fragmentation at two orders (results' `order_phases`).
    notices, clean_start: with `machine`, its session's scaling notices and what its clean start
    did (None: the first run after the boot), kept in the results.
    size_bytes / mem_bytes: allocation and guest RAM; None sizes them to what this process
    may safely use. params: the experiment's timings (see DEFAULTS). On an exception or
    Ctrl-C the VM is stopped and the exception carries `.recording` (marked partial).
    """
    if name not in SCRIPTS:
        raise VmExperimentError(f"unknown VM experiment {name!r}; choose one of: {', '.join(SCRIPTS)}")
    unknown = sorted(set(params) - set(DEFAULTS[name]))
    if unknown:
        raise VmExperimentError(f"{name}: unknown parameter(s) {', '.join(unknown)}; valid: "
                                f"{', '.join(f'{k} (default {v!r})' for k, v in DEFAULTS[name].items())}")
    if then_order is not None and name != "compaction":
        raise VmExperimentError(f"{name}: then_order is a compaction parameter (one fragmentation at two orders)")
    p = {**DEFAULTS[name], **params}
    if name == "page-cache":
        drop_levels(p["drop_levels"])  # refuse a bad one before the VM boots
    say = (lambda _m: None) if quiet else (lambda m: print(f"  {m}", flush=True))
    own = machine is None
    if own:
        vm_plan = plan(size_bytes, mem_bytes, host_allowance_bytes())
        machine = Machine(build.build(cache_dir=cache_dir), mem_mib=vm_plan.mem_mib, reporting=reporting,
                          page_reporting_order=page_reporting_order)
        size = vm_plan.size_bytes
        notices = list(vm_plan.notices)
    else:
        size = size_bytes if size_bytes is not None else (machine.mem_mib << 20) // 3
        notices = list(notices or [])
        if clean_start:
            notices.append(f"this run reused the guest the lab booted for its earlier runs "
                           f"({clean_start['runs_before_in_this_guest']} before it), after a clean start: the last "
                           f"run's file removed, the caches dropped, and QEMU's resident memory "
                           + (f"settled at {clean_start['host_rss_settled_kib'] // 1024} MiB" if clean_start.get("settled")
                              else "still falling when the run began"))
    for n in notices:
        say(n)
    if then_order is not None:
        if not machine.reporting:
            raise VmExperimentError(f"{name}: then_order needs free page reporting on")
        p["then_order"] = then_order
    parameters = {**p, "size_bytes": size, "reporting": machine.reporting}
    if machine.page_reporting_order is not None:
        parameters["page_reporting_order"] = machine.page_reporting_order
        parameters["page_reporting_order_set"] = "on the kernel command line"
    elif not own and page_reporting_order is not None:
        parameters["page_reporting_order"] = page_reporting_order
        parameters["page_reporting_order_set"] = "written at runtime to /sys/module/page_reporting/parameters/"
    run: VmSampler | None = None
    try:
        if own:
            machine.start()
            say(f"booted the kit's VM in {machine.boot_s:.1f} s ({machine.accel.hypervisor}, "
                f"{machine.mem_mib} MiB, free page reporting {'on' if machine.reporting else 'off'})")
        run = VmSampler(machine, hz=p["sample_hz"], experiment=name, parameters=parameters,
                        page_reporting_order=None if own else order_now(machine, timeout_s=120.0))
        # notices: where banners look for them (a size scaled down to fit); results keep them too, as ever
        run.notices.extend(notices)
        run.results["notices"] = run.notices
        if not own:
            run.results["clean_start"] = clean_start   # None: the first run after the guest's boot
        asked, got = parameters.get("page_reporting_order"), run.page_reporting_order
        if asked is not None and got != asked:
            run.notices.append(f"page_reporting_order={asked} was asked for ({parameters['page_reporting_order_set']}), "
                               f"but the guest's /sys/module/page_reporting/parameters/page_reporting_order reads {got}")
        run.start()
        SCRIPTS[name](run, size, p)
        wait_until(p["tail_s"])
        run.mark("end")
        return run.stop()
    except BaseException as exc:
        if run is not None:
            run.stop_after(exc)
        raise
    finally:
        if own:
            machine.stop()
