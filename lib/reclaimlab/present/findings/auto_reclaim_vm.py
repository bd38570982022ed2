"""WSL's autoMemoryReclaim as WSL runs it, in the kit's VM: claims for lab 04 from those recordings (pure).

    claims.show([vm_run(rec, label) for label, rec in runs.items()] + [host_at_equal_time(runs)])

The runs (wsl/vm_autoreclaim.py) keep the CPU gate ON at WSL's 0.5 % (the VM's own CPU, idle when the
guest is), write the root cgroup's real `memory.reclaim`, and record the host's view: QEMU's resident
memory (`host_vm_rss_kib`). A claim says whether the policy acted, when (in WSL's clock too), what it
wrote and how, and how far the host's view fell, all read from the recording.
"""
from __future__ import annotations

from typing import Mapping

from .. import analysis
from ..claims import Claim, claim
from ...recording.recording import Recording
from . import auto_reclaim as ar
from .auto_reclaim import _label, idle_mark_s

HOST_FELL_KIB = 128 * 1024     # QEMU's resident memory must fall at least this much to say the host got memory back
HOST_COLUMN = "host_vm_rss_kib"


def watched_s(rec: Recording) -> float:
    return float(rec.samples["t_s"].iloc[-1]) - idle_mark_s(rec)


def common_watch_s(recs: Mapping[str, Recording]) -> float:
    """The time after the idle mark that every run covers."""
    return min(watched_s(r) for r in recs.values())


def has_host_view(rec: Recording) -> bool:
    return HOST_COLUMN in rec.samples.columns and bool(rec.samples[HOST_COLUMN].notna().any())


def host_fall_kib(rec: Recording, t0: float, t1: float) -> float | None:
    """How far QEMU's resident memory fell from t0 to t1 (KiB; None: no host view)."""
    if not has_host_view(rec):
        return None
    return -analysis.change(rec, HOST_COLUMN, t0, t1)


def _scale(rec: Recording) -> float:
    res, p = rec.meta.get("results") or {}, rec.meta.get("parameters") or {}
    return float(res.get("time_scale") or p.get("time_scale") or 1.0)


def _clock(scale: float) -> str:
    return "WSL's real clock" if scale == 1.0 else f"time-compressed ×{scale:g}"


_METHOD = {
    "drop": "**{label}**: wrote `drop_caches={level}`, no `memory.reclaim` (that is what `dropCache` does).",
    "plain_as_wsl": "**{label}**: its {n} request(s) were real writes to the root cgroup's `memory.reclaim` in the "
                    "kit's VM (cgroup2 mounted as WSL's init mounts it), as a plain amount, which is what released "
                    "WSL writes.",
    "swappiness_refused": "**{label}**: its {n} request(s) were real writes to the root cgroup's `memory.reclaim` in "
                          "the kit's VM. WSL's newer code adds `swappiness=0`; this guest's kernel ({kernel}) refused "
                          "that key (EINVAL), and WSL would then have logged the failure and reclaimed nothing. The "
                          "kit wrote the plain amount instead{swap}.",
    "with_swappiness": "**{label}**: its {n} request(s) were real writes to the root cgroup's `memory.reclaim` in the "
                       "kit's VM, with `swappiness=0` as newer WSL writes them; the kernel accepted the key.",
    "stand_in": "**{label}**: its {n} request(s) did not write the root cgroup's `memory.reclaim` ({method}): this is "
                "not how WSL reclaims.",
    "no_request": "**{label}**: made no drop and no reclaim request.",
}


def method(rec: Recording, label: str | None = None) -> Claim:
    """How the run's reclaim was carried out: drop_caches, or memory.reclaim (and what became of swappiness=0)."""
    label = label or _label(rec)
    res = rec.meta.get("results") or {}
    key = f"auto_reclaim.vm_method.{label}"
    reqs = rec.event_times("reclaim")
    drops = list(rec.events.detail[rec.events.kind == "drop_caches"]) if len(rec.events) else []
    if not reqs:
        if drops:
            return claim(key, "drop", _METHOD, label=label, level=str(drops[0]).strip())
        return claim(key, "no_request", _METHOD, label=label)
    m = res.get("method")
    n = len(reqs)
    if not (isinstance(m, str) and m.startswith("memory.reclaim (cgroup2 root")):
        return claim(key, "stand_in", _METHOD, label=label, n=n, method=m or "method not recorded")
    refused = res.get("swappiness_refused")
    if refused:
        swap = res.get("guest_swap_kib")
        swap_text = (": equivalent here, since the VM has no swap, so `memory.reclaim` could take only page cache "
                     "and reclaimable slab, which is what `swappiness=0` asks for" if swap == 0 else
                     f", which is NOT equivalent: the VM had {analysis.mib(swap)} of swap, so process memory could "
                     "be swapped out" if isinstance(swap, (int, float)) else
                     "; whether that is equivalent is not measured (the VM's swap was not recorded)")
        return claim(key, "swappiness_refused", _METHOD, label=label, n=n, swap=swap_text, swap_kib=swap,
                     kernel=rec.meta.get("kernel_release") or "kernel not recorded")
    if refused is False:
        return claim(key, "with_swappiness", _METHOD, label=label, n=n)
    return claim(key, "plain_as_wsl", _METHOD, label=label, n=n)


_RUN = {
    "host_fell": "**{label}** ({clock}, the CPU gate on at WSL's {limit:.1%}{left_out}): its gate counted {idle_polls} of "
                 "{polls} polls idle. It first acted **{wait:.0f} s** after the idle mark ({wsl_wait:.0f} s of WSL's clock), "
                 "{what}. The cache went from {cache_idle} to **{cache_end}**, and QEMU's resident memory (the host's "
                 "view) from {rss_idle} to **{rss_end}**: it fell by **{fell}** by the end, {tail:.0f} s after the "
                 "last action.",
    "host_kept": "**{label}** ({clock}, the CPU gate on at WSL's {limit:.1%}{left_out}): it first acted **{wait:.0f} s** after "
                 "the idle mark ({wsl_wait:.0f} s of WSL's clock), {what}, and the cache went from {cache_idle} to "
                 "{cache_end}, but QEMU's resident memory (the host's view) fell by less than {min_fall}: {rss_idle} "
                 "at the idle mark, **{rss_end}** at the end. What the guest freed had not reached the host by "
                 "the end of the run.",
    "no_action": "**{label}** ({clock}, the CPU gate on at WSL's {limit:.1%}{left_out}): made no drop or reclaim in the "
                 "{watch:.0f} s it watched after the idle mark; its gate counted {idle_polls} of {polls} polls idle. QEMU's "
                 "resident memory went from {rss_idle} to {rss_end}.",
    "no_host_view": "**{label}**: {acted}; this recording has no host-side view (QEMU's resident memory), so how "
                    "much the host got back is not known.",
}


def _what(rec: Recording) -> str:
    drops = rec.events[rec.events["kind"] == "drop_caches"]
    reqs = [b for b in (ar._first_int(d) for d in rec.events.detail[rec.events.kind == "reclaim"]) if b is not None]
    if len(drops):
        return f"writing `drop_caches={str(drops['detail'].iloc[0]).strip()}`"
    if reqs:
        sizes = (analysis.mib(reqs[0] / 1024) if len(set(reqs)) == 1
                 else f"{analysis.mib(min(reqs) / 1024)} to {analysis.mib(max(reqs) / 1024)}")
        return f"then made {len(reqs)} `memory.reclaim` request(s) of {sizes}"
    return "with no drop or reclaim"


def vm_run(rec: Recording, label: str | None = None) -> Claim:
    """Whether the policy acted in the kit's VM, when, and how far the host's view (QEMU's RSS) fell from the
    idle mark to the end. Value: the fall in KiB (None without a host view)."""
    label = label or _label(rec)
    key = f"auto_reclaim.vm.{label}"
    res = rec.meta.get("results") or {}
    t0, t_end = idle_mark_s(rec), float(rec.samples["t_s"].iloc[-1])
    t = ar.first_action_s(rec)
    scale = _scale(rec)
    shares = [b for b in (res.get("poll_busy_shares") or []) if isinstance(b, (int, float))]
    limit = float(res.get("idle_share") or 0.005)
    left_out = ", the kit's sampler thread left out" if res.get("gate_excludes") == "sampler" else ""
    ev = dict(label=label, clock=_clock(scale), limit=limit, left_out=left_out, polls=res.get("gate_polls", len(shares)),
              idle_polls=res.get("gate_idle_polls", sum(1 for b in shares if b <= limit + 1e-12)),
              watch=t_end - t0, what=_what(rec),
              cache_idle=ar._at(rec, "cached_kib", t0), cache_end=ar._at(rec, "cached_kib", t_end))
    fell = host_fall_kib(rec, t0, t_end)
    if fell is None:
        acted = "it made no drop or reclaim" if t is None else f"it first acted {t - t0:.0f} s after the idle mark"
        return claim(key, "no_host_view", _RUN, acted=acted, **ev)
    ev.update(rss_idle=ar._at(rec, HOST_COLUMN, t0), rss_end=ar._at(rec, HOST_COLUMN, t_end),
              fell=analysis.mib(fell), fell_kib=fell, min_fall=analysis.mib(HOST_FELL_KIB))
    if t is None:
        return claim(key, "no_action", _RUN, value=fell, unit="KiB", **ev)
    acts = ar.action_times(rec)
    ev.update(wait=t - t0, wsl_wait=(t - t0) / scale, tail=t_end - acts[-1])
    return claim(key, "host_fell" if fell >= HOST_FELL_KIB else "host_kept", _RUN, value=fell, unit="KiB", **ev)


_EQUAL = {
    "all_fell": "**At equal time.** {window:.0f} s after the idle mark (the shortest run's watch), QEMU's resident "
                "memory had fallen in every run: {falls}.",
    "some_fell": "**At equal time.** {window:.0f} s after the idle mark (the shortest run's watch), QEMU's resident "
                 "memory had fallen by at least {min_fall} in {n_fell} of {n} runs: {falls}.",
    "none_fell": "**At equal time.** {window:.0f} s after the idle mark (the shortest run's watch), QEMU's resident "
                 "memory had fallen by at least {min_fall} in no run: {falls}.",
    "no_host_view": "**At equal time.** These runs have no host-side view, so what the host got back is not known.",
}


def host_at_equal_time(recs: Mapping[str, Recording]) -> Claim:
    """QEMU's resident memory's fall from each run's idle mark to the same time after it."""
    key = "auto_reclaim.vm.host_at_equal_time"
    window = common_watch_s(recs)
    falls = {label: host_fall_kib(rec, idle_mark_s(rec), idle_mark_s(rec) + window) for label, rec in recs.items()}
    if all(f is None for f in falls.values()):
        return claim(key, "no_host_view", _EQUAL)
    fell = [k for k, f in falls.items() if f is not None and f >= HOST_FELL_KIB]
    verdict = "all_fell" if len(fell) == len(falls) else "some_fell" if fell else "none_fell"
    def acted_by(rec: Recording) -> bool:
        t = ar.first_action_s(rec)
        return t is not None and t <= idle_mark_s(rec) + window

    text = "; ".join((f"{label} **{analysis.mib(f)}**" if f is not None else f"{label} not measured")
                     + ("" if acted_by(recs[label]) else " (it had not acted yet)" if ar.first_action_s(recs[label])
                        is not None else " (it never acted)")
                     for label, f in sorted(falls.items(), key=lambda kv: -(kv[1] or 0.0)))
    return claim(key, verdict, _EQUAL, value=window, unit="s", window=window, falls=text, fall_kib=falls,
                 n_fell=len(fell), n=len(falls), min_fall=analysis.mib(HOST_FELL_KIB))


_TAKEAWAY = {
    "idle_acts_busy_blocks": "**`.wslconfig` takeaway, from all these runs.** In the kit's VM, whose CPU is idle when "
                             "its guest is, `autoMemoryReclaim` with the gate on gave memory back to the host: most with "
                             "{best} (QEMU's resident memory fell by {best_fell}), {order}. Where the guest stayed "
                             "busier than the gate at every poll ({busy}), neither `dropCache` nor `gradual` gave "
                             "anything back. So `autoMemoryReclaim={best_setting}` suits a WSL that sits idle; on a busy "
                             "one (an editor's language server) these settings gave nothing back, and `memory=` in "
                             "`[wsl2]` is what bounds the VM.",
    "idle_acts": "**`.wslconfig` takeaway, from all these runs.** In the kit's VM, whose CPU is idle when its guest "
                 "is, `autoMemoryReclaim` with the gate on gave memory back to the host: most with {best} (QEMU's resident "
                 "memory fell by {best_fell}), {order}. The busy-machine runs do not show a gate shut at every poll "
                 "({busy_verdicts}), so no advice about a busy machine follows from them.",
    "idle_did_not_return": "**`.wslconfig` takeaway, from all these runs.** No run in the kit's VM showed the host's "
                           "view falling by {min_fall} ({vm_verdicts}), so these runs do not show that "
                           "`autoMemoryReclaim` returns memory to the host; no advice follows from them.",
}


def wslconfig_takeaway(vm_claims: list[Claim], busy_claims: list[Claim]) -> Claim:
    """The `.wslconfig` advice the verdicts of the VM runs (`vm_run`) and the busy runs
    (`auto_reclaim_busy.busy_run`) support together."""
    key = "auto_reclaim.wslconfig_all"
    min_fall = analysis.mib(HOST_FELL_KIB)
    fell = sorted((c for c in vm_claims if c.verdict == "host_fell"), key=lambda c: -c.value)
    if not fell:
        return claim(key, "idle_did_not_return", _TAKEAWAY, min_fall=min_fall,
                     vm_verdicts=", ".join(f"{c.evidence['label']}: {c.verdict}" for c in vm_claims) or "no runs")
    best = fell[0]
    setting = best.evidence["label"].split(" · ")[0]
    order = "then " + ", ".join(f"{c.evidence['label']} ({c.evidence['fell']})" for c in fell[1:]) if fell[1:] else \
        "the only one that did"
    others = [c for c in vm_claims if c.verdict != "host_fell"]
    if others:
        def why(c: Claim) -> str:
            if c.verdict == "no_action":
                return "its gate never opened" if c.evidence.get("idle_polls") == 0 else "it did not act"
            return {"host_kept": "its host view did not fall",
                    "no_host_view": "no host view was recorded"}.get(c.verdict, c.verdict)
        order += "; " + ", ".join(f"{c.evidence['label']} did not ({why(c)})" for c in others)
    ev = dict(best=best.evidence["label"], best_fell=best.evidence["fell"], order=order, best_setting=setting)
    shipped = [c for c in busy_claims if "pressure" not in c.verdict]
    if shipped and all(c.verdict == "gate_shut" for c in shipped):
        lo = min(c.evidence["busy_min"] for c in shipped)
        return claim(key, "idle_acts_busy_blocks", _TAKEAWAY, busy=f"at least {lo:.1%} of all CPUs", **ev)
    return claim(key, "idle_acts", _TAKEAWAY, **ev,
                 busy_verdicts=", ".join(f"{c.evidence.get('label', c.key)}: {c.verdict}" for c in shipped)
                 or "no shipped-setting runs")
