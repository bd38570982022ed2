"""Why vmmem stays big on a busy machine: claims for auto-reclaim runs beside a busy loop (pure).

    claims.show([busy_run(rec, label) for label, rec in runs.items()] + [wslconfig_takeaway(runs)])

Each run records every poll of its daemon (`results["polls"]`: the gate's busy share of ALL CPUs, and
for the pressure variant PSI `some avg10`, the file refaults since the last poll and the zone it
concluded). A claim says whether the policy acted and why, from those figures: the gate's limit
against the busy share it measured at each poll, and for the pressure variant (proposed, not merged
in WSL) the PSI and refault figures against the series' thresholds.
"""
from __future__ import annotations

from typing import Mapping

from .. import analysis
from ..claims import Claim, claim
from ...recording.recording import Recording
from .auto_reclaim import _label, gate_figures as _gate_figures, idle_mark_s

ACTIONS = ("drop_caches", "reclaim")


def first_action_s(rec: Recording) -> float | None:
    t0 = idle_mark_s(rec)
    times = sorted(t for kind in ACTIONS for t in rec.event_times(kind) if t >= t0)
    return times[0] if times else None


def watched_s(rec: Recording) -> float:
    return float(rec.samples["t_s"].iloc[-1]) - idle_mark_s(rec)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _pressure_figures(rec: Recording) -> dict:
    from ...wsl import pressure_policy as pp
    res = rec.meta.get("results") or {}
    polls = [r for r in res.get("polls") or [] if r.get("zone")]
    psi = [r["psi_some_avg10"] for r in polls if isinstance(r.get("psi_some_avg10"), (int, float))]
    deltas = [r["refault_delta_pages"] for r in polls if isinstance(r.get("refault_delta_pages"), int)]
    zones = sorted({r["zone"] for r in polls})
    scale = float(res.get("time_scale") or 1.0)
    return dict(psi_max=max(psi) if psi else None, psi_text=f"{max(psi):.2f}" if psi else "not measured",
                calm_below=pp.PRESSURE_RECLAIM_BELOW_AVG10, backoff_at=pp.PRESSURE_BACKOFF_AT_AVG10,
                refaults=sum(deltas) if deltas else None, refault_max=max(deltas) if deltas else None,
                brake_pages=pp.PRESSURE_REFAULT_BACKOFF_PAGES * scale,
                zones=", ".join(zones) or "none", n_calm=sum(1 for r in polls if r["zone"] == "calm"),
                n_reclaim=sum(1 for r in polls if (r.get("reclaim_bytes") or 0) > 0),
                step_mib=pp.PRESSURE_BUSY_STEP_BYTES // (1024 * 1024))


_BUSY = {
    "gate_shut": "**{label}** did not act in the {watch:.0f} s it watched ({wsl_watch:.0f} s of WSL's clock at "
                 "×{scale:g}). Its CPU gate allows at most **{limit:.1%}** of all CPUs' time per poll ({limit_one_cpu:.1%} "
                 "of one CPU on this {nprocs}-CPU guest). The guest was busier at **every one of its {polls} polls**: "
                 "{busy_min:.1%} to {busy_max:.1%} (median {busy_median:.1%}); {loop_text}{others}.",
    "gate_open_no_action": "**{label}** did not act in the {watch:.0f} s it watched, although {idle_polls} of its "
                           "{polls} polls were under its {limit:.1%} limit (busy {busy_min:.1%} to {busy_max:.1%}): "
                           "the variant needs a whole window of quiet polls, which never came.",
    "acted_gate": "**{label}** acted {wait:.1f} s after the idle mark: {idle_polls} of its {polls} polls were under "
                  "its {limit:.1%} limit (busy {busy_min:.1%} to {busy_max:.1%}, median {busy_median:.1%}).",
    "pressure_acted": "**{label}** (proposed, not merged in WSL) acted **{wait:.1f} s** after the idle mark "
                      "({wsl_wait_action:.0f} s of WSL's clock at ×{scale:g}), with "
                      "the guest busy at {busy_min:.1%} to {busy_max:.1%} of all CPUs (median {busy_median:.1%}, "
                      "{idle_polls} of {polls} polls under the shipped gate's {limit:.1%}): it has no CPU gate while "
                      "PSI exists; {loop_text}. PSI `some "
                      "avg10` peaked at **{psi_text}** (it reclaims below {calm_below:g} and backs off at "
                      "{backoff_at:g}), and **{refaults}** file pages refaulted (at most {refault_max} in a poll; "
                      "it brakes at {brake_pages:g} per poll at ×{scale:g}). Its polls were {zones}; {n_reclaim} "
                      "asked for reclaim, {steps}.",
    "pressure_held": "**{label}** (proposed, not merged in WSL) did not act in the {watch:.0f} s it watched: its "
                     "polls were {zones}. PSI `some avg10` peaked at {psi_text} (it reclaims only below "
                     "{calm_below:g}) and {refaults} file pages refaulted (it brakes at {brake_pages:g} per poll).",
    "not_recorded": "**{label}**: this recording has no per-poll CPU figures (it was made before the kit "
                    "recorded them), so why it did or did not act is not measured here.",
}


def busy_run(rec: Recording, label: str | None = None) -> Claim:
    """Whether this run's policy acted, and why, from the gate's busy share at each poll (and, for the
    pressure variant, PSI some avg10 and file refaults). Value: the median busy share of all CPUs."""
    label = label or _label(rec)
    key = f"auto_reclaim.busy.{label}"
    g = _gate_figures(rec)
    if g is None:
        return claim(key, "not_recorded", _BUSY, label=label)
    t, watch = first_action_s(rec), watched_s(rec)
    ev = dict(label=label, watch=watch, wsl_watch=watch / g["scale"], **g)
    loop_all_cpus = (g["loop"] or 0.0) / g["nprocs"]
    ev["others"] = (", and other programs did the rest" if g["busy_min"] > loop_all_cpus + g["limit"] else "")
    variant = (rec.meta.get("parameters") or {}).get("variant")
    if variant == "pressure":
        ev.update(_pressure_figures(rec))
        ev["refaults"] = "—" if ev["refaults"] is None else f"{ev['refaults']:,}"
        ev["refault_max"] = "—" if ev["refault_max"] is None else f"{ev['refault_max']:,}"
        ev["steps"] = (f"at most {ev['step_mib']} MiB each because no poll was CPU-idle" if g["idle_polls"] == 0
                       else f"at most {ev['step_mib']} MiB in a busy poll and all the excess in a CPU-idle one")
        if t is None:
            return claim(key, "pressure_held", _BUSY, value=g["busy_median"], unit="share", **ev)
        return claim(key, "pressure_acted", _BUSY, value=g["busy_median"], unit="share",
                     wait=t - idle_mark_s(rec), wsl_wait_action=(t - idle_mark_s(rec)) / g["scale"], **ev)
    if t is not None:
        return claim(key, "acted_gate", _BUSY, value=g["busy_median"], unit="share", wait=t - idle_mark_s(rec), **ev)
    verdict = "gate_shut" if g["idle_polls"] == 0 else "gate_open_no_action"
    return claim(key, verdict, _BUSY, value=g["busy_median"], unit="share", **ev)


def common_watch_s(recs: Mapping[str, Recording]) -> float:
    """The time after the idle mark that every run covers: the runs are compared over it."""
    return min(watched_s(r) for r in recs.values())


_HOST = {
    "pressure_only": "Over the same **{window:.0f} s** after the idle mark, the experiment's own page cache "
                     "went from {start} to: {ends}. Only the pressure variant gave cache back.",
    "none": "Over the same **{window:.0f} s** after the idle mark, the experiment's own page cache went from "
            "{start} to: {ends}. No run gave cache back.",
    "others": "Over the same **{window:.0f} s** after the idle mark, the experiment's own page cache went from "
              "{start} to: {ends}.",
}


def cache_at_equal_time(recs: Mapping[str, Recording]) -> Claim:
    """The experiment's own cache (its cgroup) at the idle mark and the same time after it in every run."""
    window = common_watch_s(recs)
    ends, gave, start = [], {}, None
    for label, rec in recs.items():
        t0 = idle_mark_s(rec)
        a = analysis.value_at(rec, "workload_cgroup_bytes", t0)
        b = analysis.value_at(rec, "workload_cgroup_bytes", t0 + window)
        start = start or analysis.gib(a / 1024)
        ends.append(f"**{analysis.gib(b / 1024)}** ({label})")
        gave[label] = (a - b) / a if a else 0.0
    gave_back = {k for k, share in gave.items() if share >= 0.5}
    pressure = {k for k, r in recs.items() if (r.meta.get("parameters") or {}).get("variant") == "pressure"}
    verdict = ("pressure_only" if gave_back and gave_back <= pressure
               else "none" if not gave_back else "others")
    return claim("auto_reclaim.busy.cache_at_equal_time", verdict, _HOST, value=window, unit="s", window=window,
                 start=start, ends="; ".join(ends), gave_back_share=gave)


_TAKEAWAY = {
    "gate_blocks": "**`.wslconfig` takeaway.** With the guest busier than the gate's limit at every poll (here "
                   "{busiest}), neither `autoMemoryReclaim=dropCache` nor `=gradual` gave anything back. On such a "
                   "machine, `memory=` in `[wsl2]` is the setting that bounds how big the VM can grow; the pressure "
                   "mode that acted here is not in any WSL release.",
    "shipped_acted": "**`.wslconfig` takeaway.** A shipped setting acted in these runs ({acted}): the guest was "
                     "quiet enough for its gate, so `autoMemoryReclaim` does its job on a machine like this one.",
    "window_not_reached": "**`.wslconfig` takeaway.** No shipped setting acted, but some polls were under the "
                          "gate's limit: these runs were too short to say whether `autoMemoryReclaim` would act "
                          "on a machine like this one, so no advice follows from them.",
    "not_measured": "**`.wslconfig` takeaway.** These runs do not show why the shipped settings did or did not "
                    "act (their per-poll CPU figures are missing), so no advice follows from them.",
}


def wslconfig_takeaway(busy_claims: list[Claim]) -> Claim:
    """The `.wslconfig` advice the runs' verdicts support (from `busy_run` claims)."""
    shipped = [c for c in busy_claims if "pressure" not in c.verdict]
    if not shipped or any(c.verdict == "not_recorded" for c in shipped):
        return claim("auto_reclaim.busy.wslconfig", "not_measured", _TAKEAWAY)
    acted = [c.evidence["label"] for c in shipped if c.verdict == "acted_gate"]
    if acted:
        return claim("auto_reclaim.busy.wslconfig", "shipped_acted", _TAKEAWAY, acted=", ".join(acted))
    if all(c.verdict == "gate_shut" for c in shipped):
        lo = min(c.evidence["busy_min"] for c in shipped)
        return claim("auto_reclaim.busy.wslconfig", "gate_blocks", _TAKEAWAY,
                     busiest=f"at least {lo:.1%} of all CPUs against a limit of "
                             f"{shipped[0].evidence['limit']:.1%}")
    return claim("auto_reclaim.busy.wslconfig", "window_not_reached", _TAKEAWAY)
