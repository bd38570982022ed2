"""Runs an autoMemoryReclaim Policy against this guest: observes /proc, turns the knobs, in a thread.

    policy = Policy("gradual", "released", time_scale=0.01)      # autoreclaim_policy: the pure engine
    with Daemon(policy, apply=knob_applier(allow, cgroup=cgroup, mark=sampler.mark)):
        ...                 # every poll: observe(), policy.decide(), apply each action in order

Like WSL's memory-reduction thread: the Policy decides, this module does the I/O. `observe()` reads
/proc/stat and /proc/meminfo (parsed by probe/procfs.py) into an Observation; `knob_applier()` turns
each action into a control/knobs.py call and marks the event.

For the pressure variant (proposed, not merged in WSL: microsoft/WSL #40778-#40779) `observe(pressure=True)`
also reads PSI `some avg10` from /proc/pressure/memory and `workingset_refault_file` from /proc/vmstat
(None where missing), and after a reclaim that worked the Daemon re-reads the refault counter, as the
series does (util.cpp 4124-4128 at 4e60f356b), so the next poll's delta is charged to that reclaim.

On this kit's cgroup v1 guest there is no memory.reclaim. The applier maps `Reclaim(bytes)` to
`knobs.cgroup_reclaim(bytes, allow, cgroup)`, whose v1 result is a labelled limit_in_bytes squeeze of a
`WorkloadCgroup` (ReclaimResult.method says which); `Policy(memory_reclaim_available=False)` instead
reproduces WSL's own fallback (gradual behaves as dropCache).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from ..control import knobs
from ..probe import sources
from ..probe.procfs import CpuTimes, cpu_shares, parse_cpu_times, parse_pid_stat
from ..units import KIB
from .autoreclaim_policy import Action, Compact, DropCaches, Observation, Policy, Reclaim, Tick


def observe(roots=None, cpu_prev: CpuTimes | None = None, probe_s: float = 0.0,
            now_s: float | None = None, exclude_self: bool = False,
            pressure: bool = False) -> tuple[Observation, CpuTimes]:
    """Read /proc/stat and /proc/meminfo under `roots` -> (Observation, the CPU reading to pass next time).

    `probe_s` > 0 also measures user CPU over the next `probe_s` seconds (the released compaction probe;
    it sleeps that long). `exclude_self` leaves this process's own CPU time out of the shares.
    `pressure` also reads PSI memory `some avg10` and the file refault counter (None where missing).
    Raises sources.SourceError naming a missing or unreadable file.
    """
    roots = roots or sources.Roots.from_env()
    cpu_now = read_cpu_times(roots, exclude_self)
    user, busy = cpu_shares(cpu_prev, cpu_now)
    probe = None
    if probe_s > 0:
        time.sleep(probe_s)
        probe, _ = cpu_shares(cpu_now, read_cpu_times(roots, exclude_self))
    m = sources.meminfo(roots)
    if "MemTotal" not in m or "MemFree" not in m:
        raise sources.SourceError(f"{roots.proc / 'meminfo'}: no MemTotal/MemFree lines")
    reclaimable_kib = m.get("Active(file)", 0) + m.get("Inactive(file)", 0) + m.get("SReclaimable", 0)
    psi = refaults = None
    if pressure:
        psi_all = sources.psi_memory(roots)
        psi = psi_all["some"]["avg10"] if psi_all is not None else None
        refaults = read_refaults(roots)
    obs = Observation(
        now_s=time.monotonic() if now_s is None else now_s,
        mem_total_bytes=m["MemTotal"] * KIB, mem_free_bytes=m["MemFree"] * KIB,
        user_cpu_fraction=user, busy_cpu_fraction=busy,
        reclaimable_cache_bytes=reclaimable_kib * KIB, cached_bytes=m.get("Cached", 0) * KIB,
        probe_user_cpu_fraction=probe, psi_some_avg10=psi, refault_file_pages=refaults)
    return obs, cpu_now


def read_refaults(roots=None) -> int | None:
    """/proc/vmstat's cumulative workingset_refault_file (pages), or None where absent or unreadable."""
    roots = roots or sources.Roots.from_env()
    try:
        return sources.vmstat(roots).get("workingset_refault_file")
    except (sources.SourceError, ValueError):
        return None


def read_cpu_times(roots=None, exclude_self: bool = False) -> CpuTimes:
    """/proc/stat's aggregate line; with `exclude_self`, also this process's ticks (0 where unreadable)."""
    roots = roots or sources.Roots.from_env()
    p = roots.proc / "stat"
    cpu = parse_cpu_times(sources.read_text(p), str(p))
    if exclude_self:
        text = sources.read_optional(roots.proc / str(os.getpid()) / "stat")
        if text:
            try:
                own = parse_pid_stat(text)
                cpu = replace(cpu, own_user=own.utime_ticks, own_system=own.stime_ticks)
            except ValueError:   # procfs.ProcParseError: leave own ticks at 0, as where unreadable
                pass
    return cpu


def knob_applier(allow: bool | None, cgroup=None, mark: Callable[[str, str], object] | None = None,
                 roots=None) -> Callable[[Action], object]:
    """An `apply(action)` for Daemon that turns each action into a knobs.* call, then marks the event.

    DropCaches -> knobs.drop_caches(level) (syncs first); Compact -> knobs.compact_memory();
    Reclaim -> knobs.cgroup_reclaim(bytes, cgroup=cgroup): cgroup v2 memory.reclaim, or on cgroup v1
    the labelled limit_in_bytes squeeze of `cgroup` (a knobs.WorkloadCgroup; required there).
    The event detail says what ran: "1" for a drop, "<requested> bytes, <reclaimed> reclaimed,
    <method>" for a reclaim, so the recording carries the method. Returns the knob's result;
    knobs.SystemChangeRefused propagates (the Daemon records it).
    A file-only Reclaim (newer) asks for `swappiness=0` too (knobs writes it where the kernel accepts it).
    """
    def apply(action: Action) -> object:
        if isinstance(action, DropCaches):
            result, detail = knobs.drop_caches(action.level, allow=allow, roots=roots), str(action.level)
        elif isinstance(action, Compact):
            result, detail = knobs.compact_memory(allow=allow, roots=roots), action.reason
        elif isinstance(action, Reclaim):
            result = knobs.cgroup_reclaim(action.bytes, allow=allow, cgroup=cgroup, roots=roots,
                                          swappiness=0 if action.file_only else None)
            detail = f"{action.bytes} bytes, {result.reclaimed_bytes} reclaimed, {result.method}"
            if result.request:
                detail += f" ({result.request})"
        else:
            raise TypeError(f"not an autoreclaim action: {action!r}")
        if mark is not None:
            mark(action.kind, detail)
        return result
    return apply


@dataclass
class DaemonError:
    now_s: float
    action: Action | None
    error: BaseException


class Daemon:
    """Runs a Policy against this guest in a background thread, like WSL's reduction thread.

    Every poll: observe(), policy.decide(), then `apply(action)` for each action in order (apply turns
    an action into a knob call and marks the event). Errors from observe/apply are kept in `.errors`
    (and passed to `on_error`) and the loop goes on, as the newer WSL thread does. `on_tick(tick, obs)`
    sees every poll. Stop with stop() or use it as a context manager; stop() joins the thread.
    `exclude_self` (default) leaves this process (notebook, sampler, this thread) out of the CPU
    shares, so only the guest's other work can keep it from going idle.
    """

    def __init__(self, policy: Policy, apply: Callable[[Action], object], *, roots=None,
                 on_tick: Callable[[Tick, Observation], None] | None = None,
                 on_error: Callable[[DaemonError], None] | None = None,
                 observe_fn: Callable[..., tuple[Observation, CpuTimes]] | None = None,
                 read_cpu: Callable[[], CpuTimes] | None = None, exclude_self: bool = True,
                 read_refaults_fn: Callable[[], int | None] | None = None):
        self.policy = policy
        self._apply = apply
        self._roots = roots
        self._on_tick = on_tick
        self._on_error = on_error
        wants_pressure = policy.variant == "pressure"
        self._observe = observe_fn or (lambda cpu_prev, probe_s: observe(roots, cpu_prev, probe_s,
                                                                         exclude_self=exclude_self,
                                                                         pressure=wants_pressure))
        self._read_refaults = read_refaults_fn or (lambda: read_refaults(roots))
        self._read_cpu = read_cpu or (lambda: read_cpu_times(roots, exclude_self))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks: list[Tick] = []
        self.applied: list[tuple[float, Action, object]] = []   # (now_s, action, what apply returned)
        self.errors: list[DaemonError] = []

    def start(self) -> "Daemon":
        if self._thread is not None:
            raise RuntimeError("this Daemon was already started; make a new one")
        self._thread = threading.Thread(target=self._run, name=f"autoreclaim-{self.policy.mode}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"the autoreclaim thread did not stop within {timeout_s} s "
                                   "(an apply() call is still running)")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _error(self, now_s: float, action: Action | None, exc: BaseException) -> None:
        err = DaemonError(now_s, action, exc)
        self.errors.append(err)
        if self._on_error:
            self._on_error(err)

    def _run(self) -> None:
        policy = self.policy
        if not policy.runs_thread:
            return
        poll_s = policy.poll_interval_s
        # Both WSL threads sleep one poll first; that first reading is only a baseline (no fraction yet).
        cpu_prev: CpuTimes | None = None
        next_s = time.monotonic() + poll_s
        while not self._stop.wait(max(0.0, next_s - time.monotonic())):
            next_s += poll_s
            try:
                obs, cpu_prev = self._observe(cpu_prev, policy.compact_probe_s)
            except Exception as exc:  # noqa: BLE001
                self._error(time.monotonic(), None, exc)
                continue
            actions = policy.decide(obs)
            worked: list[bool] = []
            for action in actions:
                if self._stop.is_set():
                    break
                if isinstance(action, Compact) and action.after_reclaim and not (worked and worked[-1]):
                    continue   # WSL: `if (!compactedThisIdlePeriod || reclaimed)`, and the reclaim failed
                try:
                    self.applied.append((obs.now_s, action, self._apply(action)))
                    worked.append(True)
                except Exception as exc:  # noqa: BLE001
                    self._error(obs.now_s, action, exc)
                    worked.append(False)
                policy.outcome(action, worked[-1])
                if worked[-1] and isinstance(action, Reclaim) and policy.variant == "pressure":
                    policy.note_refaults_after_reclaim(self._read_refaults())
            # WSL re-reads /proc/stat after a memory operation that worked, so its own CPU does not count.
            if any(worked) and policy.exclude_own_work:
                try:
                    cpu_prev = self._read_cpu()
                except Exception as exc:  # noqa: BLE001
                    self._error(obs.now_s, None, exc)
            tick = policy.last_tick
            if tick is not None:
                self.ticks.append(tick)
                if self._on_tick:
                    try:
                        self._on_tick(tick, obs)
                    except Exception as exc:  # noqa: BLE001
                        self._error(obs.now_s, None, exc)
            if next_s < time.monotonic():       # fell behind (a slow apply): do not burst-catch-up
                next_s = time.monotonic() + poll_s
