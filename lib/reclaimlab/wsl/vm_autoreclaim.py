"""WSL's autoMemoryReclaim run against the kit's VM: the policy on the host, its reads and writes in the guest.

    rec = run_vm_autoreclaim("gradual", "newer")          # -> Recording (experiment "auto-reclaim", kit-vm)

WSL runs its memory-reduction thread inside its guest (mini_init). Here the same pure Policy
(autoreclaim_policy) runs in the notebook's process, and every reading and write goes through the
guest agent: `observe` reads the guest's /proc/stat, /proc/meminfo, PSI and refault counter (what
WSL's thread reads), `reclaim` writes the root cgroup's memory.reclaim of the guest's cgroup2 mount
(/sys/fs/cgroup, mounted by the VM's init as WSL's mini_init mounts it), `drop_caches` and `compact`
the guest's /proc/sys/vm knobs. The gate is the VM's own CPU: the guest's idle share, whatever the
host (this busy shared machine) is doing, so the CPU idle gate runs ON at WSL's threshold.

`swappiness=0`: WSL's newer gradual writes "<bytes> swappiness=0" (util.cpp:3772 at 3e27a6a). The VM's
Debian 6.1 kernel refuses that key (EINVAL: memory.reclaim takes a plain amount before Linux 6.9's
swappiness= argument), and WSL would then log the failure and reclaim nothing (RequestReclaim returns
false). The kit writes the plain amount instead, which in this VM is equivalent: it has no swap, so
memory.reclaim can only take file pages and reclaimable slab, which is what `swappiness=0` asks for.
`method` and `swappiness_refused` in the recording say which was written.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..probe.procfs import CpuTimes, cpu_shares
from ..recording.recording import Recording
from ..units import GIB, KIB, format_size
from ..vm.errors import VmCommandError, VmError
from ..vm.machine import Machine
from ..vm.protocol import Reading, parse_reading
from .autoreclaim_daemon import Daemon
from .autoreclaim_policy import Action, Compact, DropCaches, Observation, Policy, Reclaim

METHOD = "memory.reclaim (cgroup2 root of the kit's VM, real write)"
METHOD_PLAIN = ("memory.reclaim (cgroup2 root of the kit's VM, real write; plain amount: the guest kernel refused "
                "'swappiness=0' with EINVAL, and the VM has no swap, so only file pages and slab can go)")


# What the CPU gate leaves out of the guest's busy time. The guest runs nothing but the kit's agent, and at
# rest all of its busy time is the agent's (measured 2026-12-07 in the kit's 1-vCPU VM under TCG on this
# loaded 2-core machine: 1 s polls at 1 Hz sampling saw 7 busy jiffies in 20 polls, the agent's own 7).
# A lab's time-compressed poll of 1 s holds 100 jiffies, so ONE jiffy is 1 % of it, twice WSL's 0.5 %:
# a single tick landing in the agent fails the poll. Part of the agent's work is its sampler thread, the
# stream of samples to the host that WSL's guest does not run (2 jiffies over a 14 s watch of lab 04 at 1 Hz
# here); "sampler" leaves that thread's CPU time out, and lab 04's newer runs then acted at the first poll
# their window allows. The policy's own reads (observe) and its writes stay counted, as WSL's thread's are.
GATE_EXCLUDES = ("none", "sampler", "agent")


def check_gate_excludes(exclude: str) -> str:
    """`exclude` if it is one of GATE_EXCLUDES, else ValueError naming the valid ones."""
    if exclude not in GATE_EXCLUDES:
        raise ValueError(f"gate_excludes {exclude!r} is not one of {', '.join(GATE_EXCLUDES)}")
    return exclude


def gate_cpu(reading: Reading, exclude: str = "none") -> CpuTimes:
    """The reading's CPU counters with `own_*` set to what the gate leaves out (cpu_shares subtracts it)."""
    check_gate_excludes(exclude)
    if exclude == "agent":
        return reading.cpu
    if exclude == "sampler" and reading.sampler_ticks is not None:
        return replace(reading.cpu, own_user=reading.sampler_ticks[0], own_system=reading.sampler_ticks[1])
    return replace(reading.cpu, own_user=0, own_system=0)


def observation(reading: Reading, prev: CpuTimes | None, now_s: float, probe_user: float | None = None,
                exclude: str = "none") -> Observation:
    """An agent reading -> the Observation a Policy decides on (pure). The CPU shares are the whole guest's,
    the agent included (as WSL's thread counts everything), but for what `exclude` leaves out (GATE_EXCLUDES)."""
    user, busy = cpu_shares(prev, gate_cpu(reading, exclude))
    return Observation(now_s=now_s, mem_total_bytes=reading.mem_total_kib * KIB,
                       mem_free_bytes=reading.mem_free_kib * KIB, user_cpu_fraction=user, busy_cpu_fraction=busy,
                       reclaimable_cache_bytes=reading.reclaimable_cache_kib * KIB,
                       cached_bytes=reading.cached_kib * KIB, probe_user_cpu_fraction=probe_user,
                       psi_some_avg10=reading.psi_some_avg10, refault_file_pages=reading.refault_file_pages)


def is_swappiness_refusal(message: str) -> bool:
    """The agent's err text for a memory.reclaim write the kernel refused as an invalid argument."""
    return "memory.reclaim" in message and "errno=22" in message


@dataclass(frozen=True)
class VmReclaimResult:
    requested_bytes: int
    request: str            # what was written, e.g. "268435456" or "268435456 swappiness=0"
    eagain: bool            # the kernel reclaimed less than asked (WSL counts it as success)
    method: str
    cache_before_kib: int   # Active(file) + Inactive(file) + SReclaimable before and after the write
    cache_after_kib: int

    @property
    def reclaimed_bytes(self) -> int:
        return max(0, self.cache_before_kib - self.cache_after_kib) * KIB


class VmGuest:
    """The Daemon's eyes and hands in the kit's VM: observe / read_cpu / read_refaults / apply over the agent."""

    def __init__(self, machine: Machine, mark: Callable[[str, str], object] | None = None,
                 exclude: str = "none"):
        self.machine = machine
        self._mark = mark
        self.exclude = check_gate_excludes(exclude)
        self.sampler_ticks: list[tuple[int, int]] = []   # the sampler thread's utime, stime at each reading
        self.swappiness_refused: bool | None = None    # None until a file-only reclaim was tried
        self.longest_action_s = 0.0                     # the longest drop or reclaim, from its start to its mark

    def reading(self) -> Reading:
        r = parse_reading(self.machine.command("observe", timeout_s=30.0).detail)
        if r.sampler_ticks is not None:
            self.sampler_ticks.append(r.sampler_ticks)
        return r

    def _cpu(self, r: Reading) -> CpuTimes:
        return gate_cpu(r, self.exclude)

    def observe(self, cpu_prev: CpuTimes | None, probe_s: float = 0.0) -> tuple[Observation, CpuTimes]:
        r = self.reading()
        probe = None
        if probe_s > 0:
            time.sleep(probe_s)
            probe, _ = cpu_shares(self._cpu(r), self._cpu(self.reading()))
        return observation(r, cpu_prev, time.monotonic(), probe, self.exclude), self._cpu(r)

    def read_cpu(self) -> CpuTimes:
        return self._cpu(self.reading())

    def read_refaults(self) -> int | None:
        return self.reading().refault_file_pages

    def apply(self, action: Action) -> object:
        t0 = time.monotonic()
        if isinstance(action, DropCaches):
            result = self.machine.command("drop_caches", action.level, timeout_s=120.0)
            detail = str(action.level)
        elif isinstance(action, Compact):
            result = self.machine.command("compact", timeout_s=120.0)
            detail = action.reason
        elif isinstance(action, Reclaim):
            result = self._reclaim(action)
            detail = (f"{action.bytes} bytes, {result.reclaimed_bytes} reclaimed, {result.method} "
                      f"({result.request}{', EAGAIN' if result.eagain else ''})")
        else:
            raise TypeError(f"not an autoreclaim action: {action!r}")
        if action.kind in ("drop_caches", "reclaim"):   # the event is marked at its end; findings read across it
            self.longest_action_s = max(self.longest_action_s, time.monotonic() - t0)
        if self._mark is not None:
            self._mark(action.kind, detail)
        return result

    def _reclaim(self, action: Reclaim) -> VmReclaimResult:
        before = self.reading().reclaimable_cache_kib
        ack = None
        method = METHOD
        if action.file_only and self.swappiness_refused is not True:
            try:
                ack = self.machine.command("reclaim", action.bytes, 0, timeout_s=120.0)
                self.swappiness_refused = False
            except VmCommandError as exc:
                if not is_swappiness_refusal(str(exc)):
                    raise
                self.swappiness_refused = True
        if ack is None:
            ack = self.machine.command("reclaim", action.bytes, timeout_s=120.0)
            if action.file_only:
                method = METHOD_PLAIN
        after = self.reading().reclaimable_cache_kib
        return VmReclaimResult(action.bytes, ack.detail.get("request", "").replace("_", " "),
                               ack.detail.get("eagain") == "1", method, before, after)


# ----------------------------------------------------------------------------- the experiment

DEFAULTS: dict[str, Any] = {"policy": "gradual", "variant": "newer", "time_scale": 1.0, "idle_share": 0.0,
                            "size": "1.5GB", "observe_s": 230.0, "baseline_s": 10.0, "tail_s": 20.0,
                            "sample_hz": 2.0, "maps": True, "gate_excludes": "sampler"}


def run_vm_autoreclaim(policy: str = "gradual", variant: str = "newer", *, machine: Machine | None = None,
                       mem_bytes: int | None = None, cache_dir=None, quiet: bool = True,
                       notices: list[str] | None = None, **params: Any) -> Recording:
    """Fill the VM's page cache, go quiet, and run WSL's policy against the VM with the CPU gate on.

    time_scale: 1.0 = WSL's real clock (a compressed run says so in its parameters and `policy` text).
    idle_share: 0 = WSL's own threshold (0.5 %). gate_excludes: what the gate leaves out of the guest's busy
    CPU (GATE_EXCLUDES; "sampler": the agent's sampler thread, which WSL's guest does not run). observe_s
    bounds the wait for the policy after the idle mark; tail_s is watched after it (free page reporting
    hands the freed memory back in passes).
    machine: a booted guest to run in (a lab's VmSession; left running); `notices`: how its sizes were scaled.
    """
    from ..units import parse_size
    from ..vm import build
    from ..vm.sampler import VmSampler
    from ..vm.sizing import host_allowance_bytes, plan

    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(f'{k} (default {v!r})' for k, v in DEFAULTS.items() if k not in ('policy', 'variant'))}")
    p = {**DEFAULTS, **params, "policy": policy, "variant": variant}
    pol = Policy(policy, variant, float(p["time_scale"]), idle_share=float(p["idle_share"]) or None)
    p["idle_share"] = pol.idle_share
    size = parse_size(p["size"]) if isinstance(p["size"], str) else int(p["size"])
    say = (lambda _m: None) if quiet else (lambda m: print(f"  {m}", flush=True))
    own = machine is None
    notices = list(notices or [])
    if own:
        vm_plan = plan(size, mem_bytes, host_allowance_bytes())
        machine = Machine(build.build(cache_dir=cache_dir), mem_mib=vm_plan.mem_mib, reporting=True)
        size = vm_plan.size_bytes
        notices += vm_plan.notices
    run: VmSampler | None = None
    try:
        if own:
            machine.start()
            say(f"booted the kit's VM in {machine.boot_s:.1f} s ({machine.accel.hypervisor}, {machine.mem_mib} MiB)")
        run = VmSampler(machine, hz=p["sample_hz"], experiment="auto-reclaim", parameters=p)
        run.notices.extend(notices)   # where banners look for them: a size scaled down to fit the VM
        guest = VmGuest(machine, mark=lambda kind, detail: run.mark(kind, detail), exclude=p["gate_excludes"])
        _script(run, guest, pol, size, p, say)
        run.mark("end")
        return run.stop()
    except BaseException as exc:
        if run is not None:
            run.stop_after(exc)
        raise
    finally:
        if own:
            machine.stop()


def _swap_kib(machine: Machine) -> int | None:
    text = machine.command("get", "/proc/meminfo").detail.get("value", "")
    for part in text.split("kB"):
        bits = part.strip("_").split(":")
        if bits[0] == "SwapTotal" and len(bits) > 1:
            return int(bits[1].strip("_"))
    return None


def _maps(run, label: str) -> None:
    """Buddyinfo, then the guest's and the host's maps of physical memory now, kept whole in the recording
    (physmap.json, as every kit-VM run) and folded to KiB per class into results[...][label]: what the guest
    holds as page cache, what it has reported, what QEMU holds."""
    from ..probe.physmap import FrameClass
    from ..vm import hostmap

    res = run.results
    try:
        run.machine.command("snapshot", label)
        step = run.snapshot_maps(label)
    except (VmError, OSError, ValueError) as exc:
        run.notices.append(f"no map of physical memory at {label}: {exc}")
        return
    if step is None or step.host is None:
        run.notices.append(f"no map of physical memory at {label}: {run.maps_why_not or 'not taken'}")
        return
    guest, host = step.snapshot, step.host
    agree = hostmap.agreement(guest, host)
    block_kib = guest.kib(guest.block_pages)
    for key, value in (("guest_map_file_kib", guest.kib(guest.pages(FrameClass.FILE))),
                       ("guest_map_reported_kib", guest.kib(guest.pages(FrameClass.FREE_REPORTED))),
                       ("host_map_resident_kib", host.resident_kib),
                       ("maps_reported_and_empty_kib", agree.both * block_kib)):
        res.setdefault(key, {})[label] = value


FLOOR_KIB = 160 * 1024   # newer's 128 MiB floor plus what the kernel keeps: "nothing left to take"


def watch_done(pol: Policy, tick, busy_share: float | None, cache_after_kib: int | None) -> bool:
    """After an action: a drop happened, or an IDLE poll asked for no more (the policy's own stop: newer's
    floor, released's MemoryLow), or the cache is gone. A busy poll only pauses the steps, and so does
    newer's burst: its tick.idle is the 12-poll window's, and a poll busy over the threshold itself is
    skipped ("a short burst blocks this tick"), asking nothing, though the window stays idle."""
    if pol.effective_mode == "dropCache":
        return True
    if cache_after_kib is not None and cache_after_kib < FLOOR_KIB:
        return True
    burst = pol.variant == "newer" and (busy_share is None or busy_share > pol.idle_share + 1e-12)
    return tick.idle and not burst and not any(a.kind == "reclaim" for a in tick.actions)


def _script(run, guest: VmGuest, pol: Policy, size: int, p: dict[str, Any], say) -> None:
    machine = guest.machine
    if not machine.hello or machine.hello.fields.get("disk") != "yes":
        raise RuntimeError("the kit's VM has no disk mounted; the page-cache workload needs one (see the console)")
    res = run.results
    run.start()
    res.update(policy=pol.describe(), time_scale=pol.time_scale, idle_share=pol.idle_share, cgroup_version=2,
               page_reporting_order=run.page_reporting_order, guest_swap_kib=_swap_kib(machine),
               reclaim_method_available="memory.reclaim", size_bytes=size)
    res["host_rss_before_kib"] = run.host_rss_kib()
    # the file the page-cache experiment writes, read back: its pages stay in the guest's cache
    t0 = run.now_s()
    run.mark("fill_cache", format_size(size), t0)
    machine.command("write_file", size, timeout_s=600.0)
    machine.command("sync", timeout_s=600.0)
    machine.command("read_file", timeout_s=600.0)
    res["fill_cache_s"] = round(run.now_s() - t0, 3)
    if p["maps"]:
        _maps(run, "idle")   # before the baseline: reading the map is work the gate would see
    # the gate's baseline: the VM's own busy CPU (WSL's newer definition) once the workload is done
    a = guest.read_cpu()
    time.sleep(max(1.0, float(p["baseline_s"])))
    res["guest_busy_share_baseline"] = round(cpu_shares(a, guest.read_cpu())[1] or 0.0, 4)
    r = guest.reading()
    res["cache_idle_kib"] = r.reclaimable_cache_kib
    res["host_rss_idle_kib"] = run.host_rss_kib()
    run.mark("idle", "the workload is done; the guest goes quiet")
    say(f"{pol.describe()}")
    say(f"idle: guest busy {res['guest_busy_share_baseline']:.2%}, cache {format_size(r.reclaimable_cache_kib * KIB)}, "
        f"QEMU RSS {format_size((res['host_rss_idle_kib'] or 0) * KIB)}")
    acted: list[int] = []
    # the gates' figures at every poll: the guest's busy share (newer) and user share (released) of that interval
    busy: list[float | None] = []
    user: list[float | None] = []
    daemon = Daemon(pol, lambda action: _apply(action), observe_fn=guest.observe, read_cpu=guest.read_cpu,
                    read_refaults_fn=guest.read_refaults,
                    on_tick=lambda tick, obs: (busy.append(obs.busy_cpu_fraction), user.append(obs.user_cpu_fraction)))

    def _apply(action: Action) -> object:
        if action.kind in ("drop_caches", "reclaim"):
            acted.append(len(daemon.ticks))
        return guest.apply(action)

    daemon_start = len(guest.sampler_ticks)
    with daemon:
        end = time.monotonic() + float(p["observe_s"])
        while time.monotonic() < end and machine.alive:
            time.sleep(0.5)
            n = len(daemon.ticks)
            if not acted or n <= acted[-1] or len(busy) < n:   # (the poll's shares come just after its tick)
                continue
            reclaims = [x for _, a, x in daemon.applied if a.kind == "reclaim"]
            if watch_done(pol, daemon.ticks[n - 1], busy[n - 1], reclaims[-1].cache_after_kib if reclaims else None):
                break
    reclaims = [x for _, a, x in daemon.applied if a.kind == "reclaim"]
    res["reclaimed_kib"] = sum(x.reclaimed_bytes for x in reclaims) // 1024
    res["method"] = reclaims[0].method if reclaims else None
    res["swappiness_refused"] = guest.swappiness_refused
    res["action_longest_s"] = round(guest.longest_action_s, 3)
    res["reclaim_requests"] = [x.request for x in reclaims]
    res["reclaim_eagain"] = sum(x.eagain for x in reclaims)
    res["actions"] = [a.kind for _, a, _ in daemon.applied]
    res["errors"] = [f"{e.action.kind if e.action else 'observe'}: {e.error}" for e in daemon.errors]
    res["gate_polls"] = len(daemon.ticks)
    res["gate_idle_polls"] = sum(t.idle for t in daemon.ticks)
    res["poll_busy_shares"] = [None if b is None else round(b, 5) for b in busy]
    res["poll_user_shares"] = [None if u is None else round(u, 5) for u in user]
    _gate_excluded(run, guest, daemon_start)
    run.mark("tail", "after the last action: free page reporting finishes")
    time.sleep(float(p["tail_s"]))
    r = guest.reading()
    res["cache_after_kib"] = r.reclaimable_cache_kib
    res["host_rss_after_kib"] = run.host_rss_kib()
    if p["maps"]:
        _maps(run, "after")
    say(f"after: cache {format_size(r.reclaimable_cache_kib * KIB)}, QEMU RSS "
        f"{format_size((res['host_rss_after_kib'] or 0) * KIB)}; actions {res['actions']}; errors {res['errors']}")


def _gate_excluded(run, guest: VmGuest, first: int) -> None:
    """Say in the results and the banner what the gate left out of the guest's busy CPU over the watch."""
    res = run.results
    ticks = guest.sampler_ticks[first:]
    left_out = guest.exclude if guest.exclude != "sampler" or ticks else "none"
    res["gate_excludes"] = left_out
    res["gate_sampler_jiffies"] = (sum(ticks[-1]) - sum(ticks[0])) if len(ticks) > 1 else None
    if left_out == "sampler":
        run.notices.append(
            f"the CPU gate left out the guest agent's sampler thread ({res['gate_sampler_jiffies']} jiffies over the "
            "watch): it streams the kit's samples, which WSL's guest does not run; everything else in the guest, "
            "the policy's own reads and writes included, counted as busy")
    elif left_out == "agent":
        run.notices.append("the CPU gate left out the whole guest agent, the policy's own reads and writes included")
