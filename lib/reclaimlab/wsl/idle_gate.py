"""How busy is too busy: WSL's CPU-idle gate against a steady load, from the source's thresholds.

    gate_facts("newer")                               # the threshold, what counts, where in the source
    verdict = busy_load_verdict("newer", "dropCache", one_cpu_share=0.03, nprocs=12)
    verdict.acts, verdict.guest_share, verdict.limit_one_cpu_share

Pure (no I/O). The thresholds are shares of ALL CPUs' time, so a load of `one_cpu_share` (what `top`
shows for one process, 0.03 = 3 %) is `one_cpu_share / nprocs` of the guest: the same language server
is "too busy" on a 2-CPU guest and quiet on a 12-CPU one. `busy_load_verdict` does not just compare
numbers: it runs the Policy (autoreclaim_policy) on a model guest under that steady load for an hour
of WSL's real time and reports whether, and when, it first acted.

Sources (the same commits as autoreclaim_policy.py):
  released: microsoft/WSL src/linux/init/main.cpp at 02cd979fe9a4, ConfigureMemoryReduction():
    `ReclaimThreshold = (get_nprocs() * CLK_TCK * 30 s) / 200` (line 342, 0.5 % of all CPUs over a
    30 s poll, in jiffies), tested STRICTLY (`ReclaimWindow[ReclaimIndex] > Start - ReclaimThreshold`,
    383) on user CPU only (`GetUserCpuTime`, 1060: the first field of /proc/stat's cpu line; nice,
    system, irq, softirq and steal do not count), plus the window sum (382).
  newer: util.cpp at 3e27a6a50177, `CpuIdleTracker::IsIdle`: `Busy * 1000 <= Total * 5` (3578, 3582:
    0.5 %, INCLUSIVE) per 10 s interval and summed over 12 intervals (3581), busy = user + nice + system
    + irq + softirq + steal (`ReadCpuBusyIdle`, 3659).
  pressure (proposed, not merged in WSL; PR #40779 head 4e60f356b): gradual has NO CPU gate while PSI
    is available (util.cpp 4083-4103); the busy share only caps the step at 256 MiB per poll (4113).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..units import GIB
from .autoreclaim_policy import Policy, simulate


@dataclass(frozen=True)
class GateFacts:
    variant: str
    share: float | None          # of all CPUs' time; None = no CPU gate
    inclusive: bool              # idle when the share equals the threshold
    counts: str                  # which /proc/stat fields count as busy
    source: str


GATES = {
    "released": GateFacts("released", 0.005, False,
                          "user only (the first field of /proc/stat's cpu line; nice, system, irq, softirq, "
                          "steal excluded)",
                          "microsoft/WSL 02cd979fe9a4 src/linux/init/main.cpp:342 (ReclaimThreshold), :382-383 "
                          "(strict test), :1060 (GetUserCpuTime)"),
    "newer": GateFacts("newer", 0.005, True,
                       "user + nice + system + irq + softirq + steal (idle and iowait are idle)",
                       "microsoft/WSL 3e27a6a50177 src/linux/init/util.cpp:3578 (IsIdle: Busy*1000 <= Total*5), "
                       ":3581 (12 intervals), :3659 (ReadCpuBusyIdle)"),
    "pressure": GateFacts("pressure", None, True,
                          "none while PSI is available (busy only limits the step to 256 MiB per poll)",
                          "microsoft/WSL PR #40779 head 4e60f356b src/linux/init/util.cpp:4083-4103, :4113 "
                          "(proposed, not merged in WSL)"),
}


def gate_facts(variant: str) -> GateFacts:
    if variant not in GATES:
        raise ValueError(f"variant {variant!r} is not one of {', '.join(GATES)}")
    return GATES[variant]


def limit_one_cpu_share(variant: str, nprocs: int) -> float | None:
    """The steadiest load (share of ONE CPU, all processes together) the gate still calls idle."""
    if not isinstance(nprocs, int) or isinstance(nprocs, bool) or nprocs < 1:
        raise ValueError(f"nprocs {nprocs!r} must be the guest's number of CPUs (1 or more)")
    facts = gate_facts(variant)
    return None if facts.share is None else facts.share * nprocs


@dataclass(frozen=True)
class BusyVerdict:
    variant: str
    mode: str
    one_cpu_share: float
    nprocs: int
    guest_share: float                 # what the gate sees: (load + background) / nprocs
    limit_one_cpu_share: float | None  # the gate's limit in the same unit as one_cpu_share
    acts: bool                         # the model policy reclaimed/dropped within `horizon_s`
    first_action_s: float | None
    horizon_s: float

    def sentence(self) -> str:
        load = f"{self.one_cpu_share:.1%} of one CPU on {self.nprocs} CPUs ({self.guest_share:.2%} of the guest)"
        if self.limit_one_cpu_share is None:
            gate = "no CPU gate"
        else:
            gate = f"gate limit {self.limit_one_cpu_share:.1%} of one CPU"
        did = (f"first acted after {self.first_action_s:g} s" if self.acts
               else f"never acted in {self.horizon_s / 60:g} min")
        return f"{self.variant} {self.mode}, {load}, {gate}: {did}."


def busy_load_verdict(variant: str, mode: str, one_cpu_share: float, nprocs: int, *,
                      background_one_cpu_share: float = 0.0, horizon_s: float = 3600.0,
                      psi_some_avg10: float | None = 0.0) -> BusyVerdict:
    """Run `Policy(mode, variant)` at WSL's real timing under a steady load; did it ever act?

    The model guest: 16 GiB, 2 GiB anonymous, 8 GiB of cold page cache (the situation of #10011),
    CPU busy at (one_cpu_share + background) / nprocs for the whole horizon. Acting = a Reclaim or a
    DropCaches (compaction alone gives back no cache).
    """
    if not (0 <= one_cpu_share <= nprocs if isinstance(nprocs, int) else False):
        raise ValueError(f"one_cpu_share {one_cpu_share!r} must be between 0 and nprocs ({nprocs!r})")
    limit = limit_one_cpu_share(variant, nprocs)
    share = min(1.0, (one_cpu_share + background_one_cpu_share) / nprocs)
    policy = Policy(mode, variant)
    rows = simulate(policy, duration_s=horizon_s, busy_until_s=horizon_s + policy.poll_interval_s,
                    mem_total_bytes=16 * GIB, anon_bytes=2 * GIB, cache_bytes=8 * GIB,
                    busy_share=share, idle_share=share, psi_some_avg10=psi_some_avg10)
    first = next((r["t_s"] for r in rows if "reclaim" in r["actions"] or "drop_caches" in r["actions"]), None)
    return BusyVerdict(variant, policy.mode, float(one_cpu_share), nprocs, share, limit, first is not None,
                       first, horizon_s)
