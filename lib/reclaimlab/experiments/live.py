"""The live step scripts of each experiment, run on this guest while the sampler records.

Each script is short: mark an event, do a step in a workload child or turn a knob,
wait while the sampler watches. `LiveRun` owns what every script shares: the
sampler and host views, the results and notices that go into meta, and the
guarantee that an interruption stops the workload and yields a recording marked
partial, never one that passes for complete.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable

from ..control import knobs
from ..probe import sources
from ..probe.consent_source import consent_source
from ..probe.procfs import cpu_shares, parse_status_kib
from ..catalog import REGISTRY, attach_runner  # noqa: F401
from .registry import ExperimentInterrupted
from ..recording.recorder import why_interrupted
from ..recording.recording import Recording
from ..units import format_size, parse_size
from ..waiting import wait_until


class LiveRun:
    """Sampler + host views + meta for one live run; use as a context manager."""

    def __init__(self, experiment: str, params: dict[str, Any], mode: str, quiet: bool,
                 buddyinfo: bool = False, extra_sources: tuple = (), allow: bool | None = None,
                 guest_info: Any = None):
        from ..probe.hostviews import available_host_views
        from ..sampling.sampler import Sampler

        self.experiment = experiment
        self.allow = allow  # the caller's consent to system-wide changes (None: the environment decides)
        self.params = params
        self.quiet = quiet
        self.roots = sources.Roots.from_env()
        self.results: dict[str, Any] = {}
        self.notices: list[str] = []
        self.host_views = available_host_views(self.roots)
        # The sampler's Recorder builds the meta once, at stop(), with these results and notices.
        self.sampler = Sampler(hz=float(params.get("sample_hz", 10.0)), roots=self.roots,
                               extra_sources=[*self.host_views, *extra_sources], buddyinfo=buddyinfo,
                               physmap=True,
                               experiment=experiment, parameters=params, guest_info=guest_info,
                               results=self.results, notices=self.notices)
        self.recording: Recording | None = None
        self._step = "start"

    # -- life cycle
    def __enter__(self) -> "LiveRun":
        self.sampler.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        why = None
        if exc_type is not None:
            why = why_interrupted(exc_type, exc) + f" during step {self._step!r}"
        try:
            exp = REGISTRY.get(self.experiment)
            source = consent_source(self.allow) if exp is not None and exp.knobs else None
            reason = "this guest can run it" + (f"; consent to system-wide changes: {source}" if source else "")
            rec = self.sampler.stop(interrupted=why, mode_reason=reason)
        finally:
            for view in self.host_views:
                view.close()
        self.recording = rec
        if exc_type is None:
            return False
        if issubclass(exc_type, KeyboardInterrupt) and not isinstance(exc, ExperimentInterrupted):
            raise ExperimentInterrupted(
                f"{self.experiment} interrupted during {self._step!r}: the workload was stopped and its memory "
                f"freed; what was sampled so far is kept, marked partial", rec) from None
        return False

    # -- steps
    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"  {message}", flush=True)

    def mark(self, kind: str, detail: str = "") -> float:
        """Note an event now; returns its t_s on the sampler's clock."""
        self._step = kind
        return self.sampler.mark(kind, detail)

    def step(self, kind: str, detail: str, fn: Callable[[], Any]) -> Any:
        """Mark `kind`, run fn, note its duration in the results; returns fn's result."""
        self.mark(kind, detail)
        t0 = time.monotonic()
        out = fn()
        # Repeated steps (drop_caches 1/2/3, touch first/hot/cold) keep one duration each.
        suffix = f"_{detail}" if detail and (detail.isidentifier() or detail.isdigit()) else ""
        self.results[f"{kind}{suffix}_s"] = round(time.monotonic() - t0, 4)
        return out

    def wait(self, seconds: float, until: Callable[[], bool] | None = None, poll_s: float = 0.25) -> float:
        """Sleep up to `seconds`, returning early once `until()` is true; returns the time waited."""
        return wait_until(seconds, until, poll_s)

    def reported_kib(self) -> int | None:
        for view in self.host_views:
            if view.column == "host_reported_kib":
                return view.read()
        return None

    def wait_for_host(self, base_kib: int, target_kib: float, seconds: float) -> int:
        """Wait up to `seconds` until the host view has risen by `target_kib` over `base_kib`; returns the rise."""
        self.wait(seconds, until=lambda: (self.reported_kib() or base_kib) - base_kib >= target_kib)
        return (self.reported_kib() or base_kib) - base_kib

    def meminfo_kib(self, field: str) -> int:
        return sources.meminfo(self.roots)[field]


class _ChildRssAnon:
    """A sampler column: the workload child's own anonymous memory (RssAnon), like a per-process
    view in a task manager; empty before the child starts and after it exits."""

    column = "workload_rss_anon_kib"
    field = "RssAnon"

    def __init__(self) -> None:
        self.pid: int | None = None
        self._fd: int | None = None

    def attach(self, pid: int) -> None:
        self.detach()
        self.pid = pid
        try:
            self._fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        except OSError:
            self._fd = None

    def detach(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self.pid = None, None

    def read(self) -> int | None:
        fd = self._fd
        if fd is None:
            return None
        try:
            text = os.pread(fd, 4096, 0)
        except OSError:  # the child has exited
            return None
        return parse_status_kib(text.decode("ascii", "replace")).get(self.field)

    def close(self) -> None:
        self.detach()


class _ChildRss(_ChildRssAnon):
    """A sampler column: the workload child's whole resident memory (VmRSS), what `ps` and `top` show as RSS."""

    column = "workload_rss_kib"
    field = "VmRSS"


def _sized(run: LiveRun, requested: Any, mode: str) -> int:
    """The size this guest can safely take: scaled down with a notice (auto) or refused (live)."""
    from .sizing import plan_allocation

    plan = plan_allocation(parse_size(requested), mode, roots=run.roots)
    run.results["requested_bytes"] = parse_size(requested)
    run.results["size_bytes"] = plan.size_bytes
    if plan.scaled:
        run.notices.append(plan.notice)
        run.say(plan.notice)
    return plan.size_bytes


# ---------------------------------------------------------------- calloc-reclaim

def _cgroup_kib(cgroup: Any) -> int | None:
    """The KiB charged to the workload's own cgroup now (None without one)."""
    if cgroup is None:
        return None
    try:
        return cgroup.usage_bytes() // 1024
    except (OSError, ValueError):
        return None


def _own_cgroup_sources(cgroup: Any) -> tuple:
    return (_WorkloadCgroupBytes(cgroup),) if cgroup is not None else ()


@contextlib.contextmanager
def _allocating_run(name: str, params: dict[str, Any], mode: str, quiet: bool, guest_info: Any = None):
    """A live run whose allocator child is measured by itself: (run, the child's RssAnon source, its own memory
    cgroup or None). The cgroup is made before the run and removed after it, whatever happens."""
    child = _ChildRssAnon()
    with knobs.own_workload_cgroup() as (cgroup, why_not), \
            LiveRun(name, params, mode, quiet, extra_sources=(child, *_own_cgroup_sources(cgroup)),
                    guest_info=guest_info) as run:
        run.results["workload_cgroup_version"] = cgroup.version if cgroup is not None else None
        if cgroup is None:
            run.notices.append(f"no memory cgroup of its own for the workload ({why_not}): its own figure is its "
                               f"RssAnon")
        yield run, child, cgroup


def calloc_reclaim(params: dict[str, Any], mode: str, guest: str, allow: bool | None, quiet: bool,
                   guest_info: Any = None) -> Recording:
    from .workloads.allocator import Allocator

    with _allocating_run("calloc-reclaim", params, mode, quiet, guest_info) as (run, child, cgroup):
        size = _sized(run, params["size"], mode)
        run.say(f"calloc {format_size(size)}, touch every page, hold {params['hold_s']} s, free, "
                f"then watch the host's side for up to {params['observe_s']} s")
        run.wait(params["baseline_s"])
        with Allocator(size, huge_pages=params["huge_pages"]) as alloc:
            child.attach(alloc.pid)
            run.sampler.ours_pid = alloc.pid  # its pages are "ours" in the maps of physical memory
            run.sampler.snapshot_physmap("before")
            if cgroup is not None:
                cgroup.add(alloc.pid)  # what it allocates from now on is charged there, and only it
            run.results["child_rss_anon_before_kib"] = alloc.status().get("RssAnon")
            run.results["cgroup_before_kib"] = _cgroup_kib(cgroup)
            run.wait(0.5)
            r = run.step("calloc", format_size(size), alloc.calloc)
            run.results["calloc_child_rss_anon_kib"] = r.rss_anon_kib
            run.results["calloc_cgroup_kib"] = _cgroup_kib(cgroup)
            run.wait(params["hold_s"])
            r = run.step("touch", "", alloc.touch)
            run.results.update(touch_child_s=r.duration_s, touch_gb_per_s=r.gb_per_s,
                               touch_child_rss_anon_kib=r.rss_anon_kib, touch_cgroup_kib=_cgroup_kib(cgroup))
            run.sampler.snapshot_physmap("touched")
            run.wait(params["hold_s"])
            base = run.reported_kib()
            r = run.step("free", "", alloc.free)
            run.results["free_child_s"] = r.duration_s
            run.results["free_child_rss_anon_kib"] = r.rss_anon_kib
            run.results["free_cgroup_kib"] = _cgroup_kib(cgroup)
            run.sampler.snapshot_physmap("freed")
            run.wait(0.5)
        run.sampler.ours_pid = None
        child.detach()
        size_kib = size // 1024
        t_free = time.monotonic()
        if base is not None:
            # Stop watching once 90 % is back, or when observe_s is over.
            run.results["reported_after_free_kib"] = run.wait_for_host(base, 0.9 * size_kib, params["observe_s"])
            run.results["observed_after_free_s"] = round(time.monotonic() - t_free, 2)
        else:
            run.notices.append("no host-side view on this guest: the chart shows the guest's side only")
            run.wait(min(params["observe_s"], 5.0))
        # Where reporting stalls, this says why: free memory in blocks below page_reporting_order.
        run.sampler.snapshot_buddyinfo("observed")
        run.wait(params["tail_s"])
        run.mark("end")
    return run.recording


attach_runner("calloc-reclaim", calloc_reclaim)  # declared in catalog/kit.py


# ---------------------------------------------------------------- refault

def refault(params: dict[str, Any], mode: str, guest: str, allow: bool | None, quiet: bool,
            guest_info: Any = None) -> Recording:
    from .workloads.allocator import Allocator

    with _allocating_run("refault", params, mode, quiet, guest_info) as (run, child, cgroup):
        size = _sized(run, params["size"], mode)
        size_kib = size // 1024
        run.say(f"touch {format_size(size)}, free, touch again at once (hot), free, wait for the host "
                f"to take it back, touch again (cold)")
        run.wait(params["baseline_s"])
        with Allocator(size) as alloc:
            child.attach(alloc.pid)
            # Its pages are "ours" in the maps: which frames each touch got, and whether they had been reported
            # (findings.refault.touched_reported). No map sits between a free and the touch after it but the
            # cold touch's, which follows a wait anyway.
            run.sampler.ours_pid = alloc.pid
            if cgroup is not None:
                cgroup.add(alloc.pid)
            alloc.calloc()
            first = run.step("touch", "first", alloc.touch)
            run.sampler.snapshot_physmap("first_touched")
            run.step("free", "first", alloc.free)
            hot = run.step("touch", "hot", alloc.touch_again)
            run.sampler.snapshot_physmap("hot_touched")
            run.step("free", "hot", alloc.free)
            base = run.reported_kib()
            t_wait = time.monotonic()
            if base is not None:
                # Bounded: until 90 % of the buffer is reported, or wait_for_report_s.
                run.mark("wait", "for the host to take the pages back")
                run.results["reported_before_cold_kib"] = run.wait_for_host(base, 0.9 * size_kib,
                                                                            params["wait_for_report_s"])
            else:
                run.notices.append("no host-side view: the cold touch waits a fixed time instead")
                run.wait(params["wait_for_report_s"])
            run.results["waited_for_report_s"] = round(time.monotonic() - t_wait, 2)
            # Where reporting stalled (the free blocks' orders), and the map of which blocks are reported now.
            run.sampler.snapshot_buddyinfo("before_cold")
            cold = run.step("touch", "cold", alloc.touch_again)
            run.sampler.snapshot_physmap("cold_touched")
            run.step("free", "cold", alloc.free)
        run.sampler.ours_pid = None
        child.detach()
        for name, r in (("first", first), ("hot", hot), ("cold", cold)):
            # touch_<name>_s (the step's duration) is the one duration; the rate is the child's own
            run.results[f"{name}_touch_gb_per_s"] = r.gb_per_s
        run.wait(params["tail_s"])
        run.mark("end")
    return run.recording


attach_runner("refault", refault)  # declared in catalog/kit.py


# ---------------------------------------------------------------- page-cache

def _walk_filesystem(timeout_s: float) -> None:
    """Stat every file on the root filesystem (like `find / -xdev`): fills the dentry and inode caches,
    the reclaimable slab that drop_caches 2 frees. Runs as a child that dies with us."""
    import subprocess

    from .workloads._child import PR_SET_PDEATHSIG, libc

    def die_with_parent() -> None:
        libc().prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)

    proc = subprocess.Popen(["find", "/", "-xdev"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass  # enough slab was filled for the lesson; stop here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def page_cache(params: dict[str, Any], mode: str, guest: str, allow: bool | None, quiet: bool,
               guest_info: Any = None) -> Recording:
    from ..probe.fincore import FileResident
    from ..probe.consent import SystemChangeRefused
    from .workloads.pagecache import PageCacheFile

    # Our file's own figures, apart from the rest of the guest: its resident pages (mincore) and the
    # memory cgroup its writer and reader run in (the cache is charged to whoever loaded it).
    resident = FileResident()
    cgroup, why_no_cgroup = None, None
    with contextlib.ExitStack() as stack:
        try:
            cgroup = stack.enter_context(knobs.WorkloadCgroup())
        except (SystemChangeRefused, OSError) as exc:
            why_no_cgroup = str(exc)
        extra = (resident,) + ((_WorkloadCgroupBytes(cgroup),) if cgroup is not None else ())
        with LiveRun("page-cache", params, mode, quiet, extra_sources=extra, allow=allow, guest_info=guest_info) as run:
            size = _sized(run, params["size"], mode)
            if why_no_cgroup:
                run.notices.append(f"no memory cgroup of its own for the workload ({why_no_cgroup}): "
                                   f"the file's own figure is its resident pages (mincore)")
            else:
                run.results["workload_cgroup_version"] = cgroup.memory.version
            run.say(f"write and read a {format_size(size)} file, drop_caches 1; fill the slab, drop_caches 2; "
                    f"read and fill again, drop_caches 3")
            settle_s = params["settle_s"]
            run.wait(params["baseline_s"])
            with PageCacheFile(size) as f:
                f.start()
                if cgroup is not None:
                    cgroup.add(f.pid)
                resident.path = str(f.path)
                run.step("write_file", format_size(size), f.write)
                run.step("sync", "", f.sync)
                run.step("read_file", "", f.read)
                run.wait(settle_s)
                for level in (1, 2, 3):
                    if level == 2:
                        run.step("walk_fs", "find / -xdev", lambda: _walk_filesystem(params["walk_timeout_s"]))
                        run.wait(settle_s)
                    if level == 3:
                        run.step("read_file", "again", f.read)
                        run.step("walk_fs", "again", lambda: _walk_filesystem(params["walk_timeout_s"]))
                        run.wait(settle_s)
                    result = run.step("drop_caches", str(level), lambda lv=level: knobs.drop_caches(lv, allow=allow))
                    run.results[f"drop_caches_{level}_sync_s"] = result.sync_s
                    run.wait(params["observe_s"])
                resident.path = None
            run.results["file_bytes"] = size
            run.wait(params["tail_s"])
            run.mark("end")
    return run.recording


attach_runner("page-cache", page_cache)  # declared in catalog/kit.py


# ---------------------------------------------------------------- app-cache

def app_cache(params: dict[str, Any], mode: str, guest: str, allow: bool | None, quiet: bool,
              guest_info: Any = None) -> Recording:
    """The blog's picture with a real application: a small SQLite app builds and queries a database; `free`'s
    columns and the host's view (the maps of physical memory) are taken once it is done, then drop_caches=1."""
    from ..probe.fincore import FileResident
    from .workloads.sqliteapp import SqliteApp

    resident, rss = FileResident(), _ChildRss()
    with LiveRun("app-cache", params, mode, quiet, extra_sources=(resident, rss), allow=allow,
                 guest_info=guest_info) as run:
        size = _sized(run, params["size"], mode)
        run.say(f"a SQLite app builds a {format_size(size)} database and queries it (a full scan, "
                f"{params['lookups']} random lookups); then drop_caches 1")
        run.wait(params["baseline_s"])
        run.sampler.snapshot_buddyinfo("before")
        with SqliteApp(size, cache_kib=params["cache_kib"]) as app:
            app.start()
            rss.attach(app.pid)
            run.sampler.ours_pid = app.pid  # its pages are "ours" in the maps of physical memory
            resident.path = str(app.path)
            steps = [run.step("build_db", format_size(size), app.build),
                     run.step("query", "scan", app.scan),
                     run.step("query", "lookups", lambda: app.lookups(params["lookups"]))]
            run.results.update(db_bytes=steps[0].size_bytes, db_rows=steps[0].detail.get("rows"),
                               app_rss_max_kib=max((r.detail.get("rss_kib") or 0) for r in steps) or None,
                               sqlite_cache_kib=params["cache_kib"])
            run.wait(params["settle_s"])
            run.sampler.snapshot_buddyinfo("queried")  # the picture: free's columns and the host's view now
            result = run.step("drop_caches", "1", lambda: knobs.drop_caches(1, allow=allow))
            run.results["drop_caches_1_sync_s"] = result.sync_s
            run.wait(params["observe_s"])  # free page reporting hands the dropped cache to the host
            run.sampler.snapshot_buddyinfo("dropped")
            resident.path = None
            run.sampler.ours_pid = None
        rss.detach()
        run.wait(params["tail_s"])
        run.mark("end")
    return run.recording


attach_runner("app-cache", app_cache)  # declared in catalog/kit.py


# ---------------------------------------------------------------- compaction

def compaction(params: dict[str, Any], mode: str, guest: str, allow: bool | None, quiet: bool,
               guest_info: Any = None) -> Recording:
    from .workloads.fragmenter import Fragmenter, managed_pages

    with LiveRun("compaction", params, mode, quiet, allow=allow, guest_info=guest_info) as run:
        size = _sized(run, params["size"], mode)
        order = sources.page_reporting_order(run.roots)
        run.say(f"fragment {format_size(size)} of free memory, compact_memory, release, and watch the host's side")
        managed_before = managed_pages(run.roots)
        run.wait(params["baseline_s"])
        run.sampler.snapshot_buddyinfo("before")
        with Fragmenter(size) as frag:
            run.sampler.ours_pid = frag.pid  # its kept pages are "ours" in the maps of physical memory
            r = run.step("fragment", format_size(size), frag.fragment)
            run.results.update(fragment_freed_pages=r.freed_pages, fragment_held_pages=r.held_pages,
                               fragment_fill_bytes=r.fill_bytes)
            run.sampler.snapshot_buddyinfo("fragmented")
            run.wait(params["settle_s"])
            base = run.reported_kib()
            held_before = frag.held_pfns()
            run.step("compact_memory", "", lambda: knobs.compact_memory(allow=allow))
            run.sampler.snapshot_buddyinfo("compacted")
            run.results.update(_held_pages_moved(held_before, frag.held_pfns(), order))
            run.wait(params["settle_s"])
            run.results["reported_while_held_kib"] = None if base is None else (run.reported_kib() or base) - base
            run.step("release", "", frag.release)
            run.sampler.ours_pid = None
        run.sampler.snapshot_buddyinfo("released")
        run.wait(params["observe_s"])
        run.sampler.snapshot_buddyinfo("observed")
        if managed_pages(run.roots) != managed_before:
            # This guest onlines memory lazily; new blocks appearing mid-run are not compaction's doing.
            run.notices.append("the kernel brought more memory under the buddy allocator during this run "
                               "(deferred memory init): compare the snapshots with that in mind")
        run.results["page_reporting_order"] = order
        run.mark("end")
    return run.recording


def _held_pages_moved(before: list[int | None] | None, after: list[int | None] | None,
                      order: Any) -> dict[str, int | None]:
    """What compact_memory did to the fragmenter's own kept pages (from their PFNs before and after): how many
    it migrated, how many blocks of 2**order pages they pinned before and after, and how many of those blocks
    they left entirely (the migrated pages land wherever the kernel found free pages, often spread over more
    blocks: the count pinned can rise while blocks are vacated). Unlike /proc/buddyinfo, no other program's
    pages move these figures. None where PFNs are hidden (not root)."""
    from ..probe import pagemap
    from .workloads.fragmenter import REPORTING_ORDER_DEFAULT

    order = order if isinstance(order, int) and not isinstance(order, bool) else REPORTING_ORDER_DEFAULT
    if before is None or after is None:
        return {"held_blocks_order": order, "fragment_held_blocks": None, "compacted_held_blocks": None,
                "compact_moved_held_pages": None, "compact_vacated_blocks": None}
    return {"held_blocks_order": order, "fragment_held_blocks": pagemap.blocks_holding(before, order),
            "compacted_held_blocks": pagemap.blocks_holding(after, order),
            "compact_moved_held_pages": pagemap.moved_pages(before, after),
            "compact_vacated_blocks": pagemap.vacated_blocks(before, after, order)}


attach_runner("compaction", compaction)  # declared in catalog/kit.py


# ---------------------------------------------------------------- auto-reclaim

class _WorkloadCgroupBytes:
    """A sampler column: the memory charged to the experiment's own cgroup (the cache it reclaims)."""

    column = "workload_cgroup_bytes"

    def __init__(self, cgroup: Any):
        self._cgroup = cgroup

    def read(self) -> int | None:
        try:
            return self._cgroup.usage_bytes()
        except (OSError, ValueError):
            return None


# Scales that fit a lab: the released 30 s polls / 3 and 10 min windows become 1.5 s / 9 s and 30 s;
# the newer 10 s polls / 2 min window become 1 s / 12 s; the pressure variant's 10 s polls become 1 s.
DEFAULT_TIME_SCALE = {"released": 0.05, "newer": 0.1, "pressure": 0.1}


class _PollLog:
    """Daemon.on_tick: what the gate (and, for the pressure variant, PSI and refaults) saw at each poll.

    One dict per poll, t_s on the sampler's clock: busy_share / user_share (of ALL CPUs, this process
    left out, as the gate counts them), interval_idle / idle (the gate's verdict for the poll and for
    its window), psi_some_avg10, refault_delta_pages, zone and floor_bytes (pressure variant only), and
    the actions the poll decided.
    """

    def __init__(self, policy: Any):
        self._policy = policy
        self.polls: list[dict[str, Any]] = []
        self._origin = (0.0, time.monotonic())   # (t_s on the sampler's clock, monotonic) at one instant

    def anchor(self, t_s: float) -> None:
        """The sampler's t_s now (a mark's), so each poll's monotonic time maps onto the sampler's clock."""
        self._origin = (t_s, time.monotonic())

    def __call__(self, tick: Any, obs: Any) -> None:
        p = self._policy
        row: dict[str, Any] = {
            "t_s": round(self._origin[0] + obs.now_s - self._origin[1], 3),
            "busy_share": None if obs.busy_cpu_fraction is None else round(obs.busy_cpu_fraction, 5),
            "user_share": None if obs.user_cpu_fraction is None else round(obs.user_cpu_fraction, 5),
            # the per-poll test of the newer and pressure gates (0.5 % inclusive; released tests user CPU)
            "interval_idle": (None if obs.busy_cpu_fraction is None
                              else obs.busy_cpu_fraction <= p.idle_share + 1e-12),
            "idle": bool(tick.idle),
            "actions": [a.kind for a in tick.actions],
        }
        if p.variant == "pressure":
            lp = p.last_pressure
            row.update(psi_some_avg10=obs.psi_some_avg10, refault_file_pages=obs.refault_file_pages,
                       refault_delta_pages=None if lp is None else lp.refault_delta_pages,
                       zone=None if lp is None else lp.zone, floor_bytes=p.floor_bytes,
                       reclaim_bytes=None if lp is None else lp.reclaim_bytes)
        self.polls.append(row)


def _gate_summary(polls: list[dict[str, Any]], policy: Any) -> dict[str, Any]:
    """The results that sum up the per-poll figures (None where no poll had a reading)."""
    busy = sorted(r["busy_share"] for r in polls if r["busy_share"] is not None)
    out: dict[str, Any] = {
        "gate_polls": len(busy),
        "gate_idle_polls": sum(1 for r in polls if r["interval_idle"]),
        "gate_busy_share_min": busy[0] if busy else None,
        "gate_busy_share_median": busy[len(busy) // 2] if busy else None,
        "gate_busy_share_max": busy[-1] if busy else None,
        "gate_limit_share": policy.idle_share,
    }
    if policy.variant == "pressure":
        psi = [r["psi_some_avg10"] for r in polls if r.get("psi_some_avg10") is not None]
        deltas = [r["refault_delta_pages"] for r in polls if r.get("refault_delta_pages") is not None]
        out.update(psi_some_avg10_max=max(psi) if psi else None,
                   refault_pages_total=sum(deltas) if deltas else None,
                   refault_delta_pages_max=max(deltas) if deltas else None,
                   pressure_zones=sorted({r["zone"] for r in polls if r.get("zone")}))
    return out


def _busy_share(roots: Any, seconds: float) -> float | None:
    """The guest's busy CPU share (WSL's newer definition) over `seconds`, this process left out."""
    from ..wsl.autoreclaim_daemon import read_cpu_times

    before = read_cpu_times(roots, exclude_self=True)
    time.sleep(seconds)
    return cpu_shares(before, read_cpu_times(roots, exclude_self=True))[1]


def auto_reclaim(params: dict[str, Any], mode: str, guest: str, allow: bool | None, quiet: bool,
                 guest_info: Any = None) -> Recording:
    from ..wsl.autoreclaim_daemon import Daemon, knob_applier
    from ..wsl.autoreclaim_policy import Policy
    from .workloads.busy import BusyLoop, check_busy_params, process_cpu_s
    from .workloads.pagecache import PageCacheFile

    variant = params["variant"]
    busy_share = params["busy"]
    if busy_share:
        check_busy_params(busy_share, params["busy_period_ms"])
    # Resolve the "0 = default" parameters here, so the recording's parameters (and every banner that
    # prints them) say what ran, not the placeholder.
    params["time_scale"] = scale = params["time_scale"] or DEFAULT_TIME_SCALE[variant]
    order = sources.page_reporting_order(sources.Roots.from_env())
    policy = Policy(params["policy"], variant, scale, page_reporting_order=order or 0,
                    idle_share=params["idle_share"] or None)
    params["idle_share"] = policy.idle_share
    with knobs.WorkloadCgroup() as cgroup:
        with LiveRun("auto-reclaim", params, mode, quiet, extra_sources=(_WorkloadCgroupBytes(cgroup),), allow=allow,
                     guest_info=guest_info) as run:
            size = _sized(run, params["size"], mode)
            available = "memory.reclaim" if cgroup.memory.version == 2 else knobs.V1_SQUEEZE
            busy = _busy_share(run.roots, max(1.0, params["baseline_s"]))
            run.results.update(policy=policy.describe(), reclaim_method_available=available, time_scale=scale,
                               idle_share=policy.idle_share, guest_busy_share_baseline=busy,
                               cgroup_version=cgroup.memory.version, page_reporting_order=order)
            if policy.idle_share >= 1:
                run.notices.append(
                    "idle_share=1: the CPU gate was off. Other programs kept this guest's busy CPU at "
                    f"{busy:.0%} in the baseline (WSL's threshold is 0.5 %), so its idle test could never pass; "
                    "the idle windows' timing is WSL's, counted from the workload's end (the idle mark)"
                    if busy is not None else "idle_share=1: the CPU gate was off; the idle windows' timing is WSL's")
            else:
                run.notices.append(
                    f"the CPU gate was on at the variant's own limit: {policy.idle_share:.1%} of all CPUs' time "
                    f"per poll ({policy.idle_share * (os.cpu_count() or 1):.1%} of one CPU on this "
                    f"{os.cpu_count()}-CPU guest); every poll's busy share is in results['polls']"
                    + (" (the pressure variant has no CPU gate while PSI exists: the busy share only caps its "
                       "step at 256 MiB)" if variant == "pressure" else ""))
            if params["policy"] == "gradual" and available != "memory.reclaim":
                run.notices.append(
                    f"this guest has cgroup v1, which has no memory.reclaim: 'gradual' reclaims with the nearest "
                    f"honest stand-in ({available}) on the experiment's own cgroup, where WSL writes the root "
                    "cgroup's memory.reclaim (the whole guest's cache) and would fall back to dropCache here")
            run.say(policy.describe())
            knob_apply = knob_applier(allow, cgroup=cgroup, mark=run.sampler.mark)
            action_ticks: list[int] = []   # how many polls had finished when each drop/reclaim ran
            log = _PollLog(policy)
            daemon = Daemon(policy, lambda action: apply(action), on_tick=log)

            def apply(action: Any) -> object:
                if action.kind in ("drop_caches", "reclaim"):
                    action_ticks.append(len(daemon.ticks))
                return knob_apply(action)

            busy_cm = BusyLoop(busy_share, params["busy_period_ms"]) if busy_share else contextlib.nullcontext()
            with busy_cm as busy_loop, PageCacheFile(size) as f:
                if busy_loop is not None:
                    run.mark("busy", busy_loop.describe())
                    busy_cpu0_s, busy_t0 = process_cpu_s(busy_loop.pid), time.monotonic()
                f.start()
                cgroup.add(f.pid)  # its page cache is charged here, where the reclaim acts
                run.step("fill_cache", format_size(size), lambda: (f.write(), f.sync(), f.read()))
                # The thread starts at the idle mark: its first poll is a baseline, and the window must
                # fill with intervals after the workload's end (a busy fill would block it anyway).
                log.anchor(run.mark("idle", "the workload is done; the guest goes quiet"
                                    + (" (but for the busy loop)" if busy_loop is not None else "")))
                with daemon:

                    def settled() -> bool:
                        # gradual: the cache is (nearly) gone; dropCache: its one drop happened; and the
                        # poll that acted has finished (its compact_memory follows the action in that poll)
                        done = ((cgroup.usage_bytes() or 0) < 0.05 * size
                                or (policy.effective_mode == "dropCache" and bool(action_ticks)))
                        return done and bool(action_ticks) and len(daemon.ticks) > action_ticks[-1]

                    run.wait(params["observe_s"], until=settled)
                if busy_loop is not None:
                    # what the loop itself used over fill + watch, as a share of ONE CPU (as top shows it)
                    run.results["busy_loop_cpu_share"] = round(
                        (process_cpu_s(busy_loop.pid) - busy_cpu0_s) / (time.monotonic() - busy_t0), 5)
                    stats = busy_loop.stats()
                    run.results["busy_loop_late_wakes"] = stats.get("late_wakes")
                    run.results["busy_loop_wakes"] = stats.get("wakes")
                run.results["polls"] = log.polls
                run.results["nprocs"] = os.cpu_count()
                run.results.update(_gate_summary(log.polls, policy))
                reclaims = [r for _, a, r in daemon.applied if a.kind == "reclaim"]
                run.results["reclaimed_kib"] = sum(getattr(r, "reclaimed_bytes", 0) for r in reclaims) // 1024
                # the method of the reclaim requests actually made; none for a run that made none
                run.results["method"] = reclaims[0].method if reclaims else None
                run.results["reclaim_requests"] = [getattr(r, "request", "") for r in reclaims]
                run.results["actions"] = [a.kind for _, a, _ in daemon.applied]
                run.results["errors"] = [f"{e.action.kind if e.action else 'observe'}: {e.error}" for e in daemon.errors]
            # Free page reporting needs seconds after each action: watch until the host view stops
            # rising (tail_s at least), so runs can be compared at equal time after their action.
            run.mark("tail", "after the last action: free page reporting finishes")
            # a run that dropped or reclaimed nothing (a gate that never opened) has nothing on its way to
            # the host: watch only until the host view is still, not the whole tail
            acted = any(kind in ("drop_caches", "reclaim") for kind in run.results["actions"])
            run.results["report_settled_s"] = _wait_reporting_settles(
                run, params["tail_s"] if acted else min(params["tail_s"], params["report_quiet_s"]),
                params["report_quiet_s"])
            run.mark("end")
    return run.recording


def _wait_reporting_settles(run: LiveRun, at_least_s: float, quiet_s: float) -> float | None:
    """Wait at least `at_least_s`, then until the host view has not risen for `quiet_s` (bounded by
    3 x at_least_s). Returns the time waited, or None where there is no host view (then at_least_s)."""
    t0 = time.monotonic()
    if run.reported_kib() is None:
        run.wait(at_least_s)
        return None
    last_kib, last_rise = run.reported_kib(), t0
    while time.monotonic() - t0 < 3 * at_least_s:
        time.sleep(0.25)
        now_kib = run.reported_kib() or last_kib
        if now_kib > last_kib:
            last_kib, last_rise = now_kib, time.monotonic()
        if time.monotonic() - t0 >= at_least_s and time.monotonic() - last_rise >= quiet_s:
            break
    return round(time.monotonic() - t0, 2)


attach_runner("auto-reclaim", auto_reclaim)  # declared in catalog/kit.py
