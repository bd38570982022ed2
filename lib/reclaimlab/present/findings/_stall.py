"""Why free page reporting did not hand back what was freed: the reasons the kernel's own figures give.

Shared by the experiments that free memory and wait for the host (calloc-reclaim, refault). Pure:
a Recording in, sentences and evidence out.
"""
from __future__ import annotations

import math
from typing import Any

from .. import analysis
from ..claims import THRESHOLDS
from ...recording.recording import Recording
from . import _budget, _landed


def small_block_free_kib(rec: Recording, label: str) -> tuple[int, int] | None:
    """(free KiB in blocks below page_reporting_order, free KiB at or above it) in buddyinfo snapshot
    `label`; None without that snapshot or without a known order."""
    order = analysis.reporting_order(rec)
    b = rec.buddyinfo
    if order is None or b is None or b.empty or not (b["label"] == label).any():
        return None
    every = analysis.free_kib_at_least(rec, label, 0)
    large = analysis.free_kib_at_least(rec, label, order)
    return every - large, large


def per_cpu_free_kib(rec: Recording, label: str) -> int | None:
    """KiB of free pages on the per-CPU lists at buddyinfo snapshot `label`; None where the run did not
    read them (recordings made before 2026-11-26, the kit's VM)."""
    value = ((rec.meta.get("results") or {}).get("per_cpu_free_kib") or {}).get(label)
    return None if value is None else int(value)


def others_allocated_kib(rec: Recording, t0_s: float, t1_s: float) -> float:
    """How far the whole guest's AnonPages rose within [t0, t1] over its value at t0, minus what our
    own workload added meanwhile (NaN without AnonPages)."""
    rise = analysis.peak_change(rec, "anon_kib", t0_s, t1_s)
    own = 0.0
    if "workload_rss_anon_kib" in rec.samples.columns:
        w = analysis.peak_change(rec, "workload_rss_anon_kib", t0_s, t1_s)
        own = 0.0 if math.isnan(w) else max(w, 0.0)
    return rise - own if not math.isnan(rise) else math.nan


def reasons(rec: Recording, *, unreported_kib: float, size_kib: float, t_free_s: float, t_end_s: float,
            snapshot: str, waited_s: float | None = None, wait_bound_s: float | None = None) -> tuple[str, dict[str, Any]]:
    """The reasons reporting stopped short, as one Markdown sentence, and the evidence behind them.

    Checks, each from the recording: free memory left in blocks below the reporting order (the buddyinfo
    snapshot `snapshot`), free pages on the per-CPU lists at that snapshot (which buddyinfo does not count),
    another process allocating meanwhile (AnonPages), and the watch ending while reports still came (the
    last one within `tail_still_reporting_s` of the end)."""
    found: list[str] = []
    evidence: dict[str, Any] = {}
    if rec.meta.get("free_page_reporting") == "off":
        return ("Free page reporting was off in this guest: the host never hears which pages are free.",
                {"free_page_reporting": "off"})
    order = analysis.reporting_order(rec)
    blocks = small_block_free_kib(rec, snapshot)
    landed = _landed.below_order(rec, t_free_s, t_end_s)
    if landed is not None:
        evidence["landed"] = landed
    if landed is not None and landed["rise_kib"] >= THRESHOLDS["stall_small_blocks_share"] * unreported_kib:
        # The maps say where the freed memory went: below the order, unreported (a long-used guest).
        evidence.setdefault("reasons", []).append("landed_below_order")
        found.append(f"free memory not reported in blocks below order {order} rose by **{analysis.mib(landed['rise_kib'])}** "
                     f"between the maps at '{landed['from']}' and '{landed['to']}' ({analysis.mib(landed['small_before_kib'])} "
                     f"→ {analysis.mib(landed['small_after_kib'])}), against the {analysis.mib(unreported_kib)} missing: "
                     f"the freed memory landed in blocks smaller than order {order}, which reporting never hands over, "
                     f"as on a guest in use a long time (free pages held apart by pages in use)")
        if blocks is not None:
            evidence.update(small_block_free_kib=blocks[0], large_block_free_kib=blocks[1])
    elif blocks is not None:
        small, large = blocks
        evidence.update(small_block_free_kib=small, large_block_free_kib=large)
        # Where the maps tell reported from not, blocks already reported before the free were not left to report.
        left = landed["large_unreported_after_kib"] if landed is not None else large
        if left >= unreported_kib:
            # Free memory in reportable blocks exceeded what was missing: small blocks are not why; the budget?
            evidence.setdefault("reasons", []).append("large_blocks_left")
            budget, figures = _budget.held(rec, label=snapshot, missing_kib=unreported_kib, large_kib=large,
                                           watched_s=t_end_s - t_free_s)
            evidence.update(figures)
            unrep = ("" if landed is None else
                     f", {analysis.mib(left)} of it not marked reported at '{landed['to']}' (the maps)")
            found.append(f"the snapshot after the wait still held **{analysis.mib(large)}** in free blocks of order "
                         f"{order} and up (`/proc/buddyinfo`{unrep}), more than the {analysis.mib(unreported_kib)} missing, "
                         f"so small free blocks do not explain it; {budget}{_patched_params(rec)}")
        elif small >= THRESHOLDS["stall_small_blocks_share"] * unreported_kib:
            evidence.setdefault("reasons", []).append("small_blocks")
            found.append(f"**{analysis.mib(small)}** of the guest's free memory sat in blocks smaller than "
                         f"order {order} (`/proc/buddyinfo` after the wait) and only {analysis.mib(left)} in "
                         f"blocks of order {order} and up{'' if landed is None else ' not yet reported (the maps)'}, "
                         f"less than the {analysis.mib(unreported_kib)} missing: "
                         f"only free blocks of at least `page_reporting_order` are reported")
    else:
        evidence["small_block_free_kib"] = None
    per_cpu = per_cpu_free_kib(rec, snapshot)
    evidence["per_cpu_free_kib"] = per_cpu
    if per_cpu is not None and per_cpu >= THRESHOLDS["stall_per_cpu_share"] * unreported_kib:
        evidence.setdefault("reasons", []).append("per_cpu_lists")
        found.append(f"**{analysis.mib(per_cpu)}** of free pages sat on the CPUs' per-CPU page lists "
                     f"(`/proc/zoneinfo`, `pagesets`, after the wait), where a freed page goes first: they count "
                     f"in neither MemFree nor `/proc/buddyinfo`, and reporting walks only the buddy free lists")
    others = others_allocated_kib(rec, t_free_s, t_end_s)
    if not math.isnan(others):
        evidence["others_allocated_kib"] = round(others)
        if others >= THRESHOLDS["busy_guest_share"] * size_kib:
            evidence.setdefault("reasons", []).append("others_allocated")
            found.append(f"other programs allocated **{analysis.mib(others)}** meanwhile (the guest's AnonPages rose "
                         f"while our workload held nothing), taking freed blocks before they were reported")
    if "host_reported_kib" in rec.samples.columns:
        steps = analysis.rises(rec, "host_reported_kib", t_free_s, t_end_s)
        if len(steps):
            quiet_s = t_end_s - float(steps["t_s"].iloc[-1])
            evidence["last_report_before_end_s"] = round(quiet_s, 1)
            left = None if landed is None else landed["large_unreported_after_kib"]
            if quiet_s < THRESHOLDS["tail_still_reporting_s"] and left is not None and left < 0.1 * unreported_kib:
                # the maps: hardly any reportable block was left unreported, so a longer wait would add little
                evidence.setdefault("reasons", []).append("still_reporting_little_left")
                found.append(f"reports were still coming when the watch ended, but the map at '{landed['to']}' left "
                             f"only {analysis.mib(left)} in free blocks of order {order} and up not yet reported: a "
                             f"longer wait would add at most that")
            elif quiet_s < THRESHOLDS["tail_still_reporting_s"]:
                # the bound is the wait for reports; the recording's time watched adds the steps around it
                bound = (f": the wait for them stopped at its bound of {wait_bound_s:.0f} s, too early" if wait_bound_s
                         else ": it ended too early")
                evidence.setdefault("reasons", []).append("ended_early")
                found.append(f"reports were still coming when the watch ended{bound}")
    if waited_s is not None:
        evidence["waited_s"] = waited_s
    if not found:
        found.append("none of the usual signs shows in this recording (no other program allocating, no reports "
                     "at the end" + (", no small free blocks left)" if blocks is not None else
                                     "; it has no `/proc/buddyinfo` snapshot to tell whether free memory sat in "
                                     "small blocks)"))
    why = "; ".join(found)
    return why[0].upper() + why[1:] + ".", evidence


# Not settings: upstream's order and this kernel's running counts (reports, passes, blocks walked since boot).
NOT_SETTINGS = {"page_reporting_order", "reported_kib", "passes", "walked"}


def _patched_params(rec: Recording) -> str:
    """The run's page_reporting settings beyond upstream's order, as a clause."""
    params = rec.meta.get("page_reporting_params") or {}
    extra = {k: v for k, v in params.items() if k not in NOT_SETTINGS}
    if not extra:
        return ", and this guest's kernel may change that"
    listed = ", ".join(f"`{k}={v}`" for k, v in sorted(extra.items()))
    return (f"; this guest's kernel patches it, with parameters {listed} at the run's start, whose effect on "
            f"the passes this run does not measure")


# What to try, for each reason the recording shows (and all of them where it shows none).
TRY = {
    "ended_early": "give it longer (`observe_s` / `wait_for_report_s`)",
    "others_allocated": "run it again when no other program is allocating",
    "small_blocks": "compact memory first so free memory forms large blocks again (lab 03)",
    "landed_below_order": "compact memory first so free memory forms large blocks again (lab 03)",
    # reportable blocks were left: more passes, i.e. more time, would report them
    "large_blocks_left": "give it longer (`observe_s` / `wait_for_report_s`)",
    # no knob drains them (compact_memory and drop_caches leave them, measured on kernel 6.18, 2026-11-26):
    # the kernel trims a CPU's list a little at a time, or the CPU allocates from it again
    "per_cpu_lists": "give the per-CPU lists time to drain (the kernel trims them back to the free lists a little "
                     "at a time)",
}


WHEN_NO_REASON = ("ended_early", "others_allocated", "small_blocks")  # the usual causes, when none shows


def what_to_try(evidence: dict[str, Any]) -> str:
    """One sentence of advice that follows from the reasons `reasons()` found (its evidence)."""
    found = [TRY[r] for r in evidence.get("reasons", ()) if r in TRY] or [TRY[r] for r in WHEN_NO_REASON]
    found = list(dict.fromkeys(found))  # two reasons may share one piece of advice
    text = ", ".join(found[:-1]) + (", or " if len(found) > 2 else " or ") + found[-1] if len(found) > 1 else found[0]
    return f"To see the full effect: {text}."
