"""What the runs in the kit's own VM showed (lab 05): the host's view (QEMU's resident memory) after
free with free page reporting on and off, when and in what steps it fell, the page cache, the
refault control and compaction. The refault run itself is judged by `findings.refault` (same names).
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .. import analysis
from ..claims import THRESHOLDS, Claim, claim, ratio_verdict, share_verdict, times
from ...recording.recording import Recording
from ...recording import provenance
from ._budget import BUDGET_DIVISOR, REPORT_CAPACITY  # noqa: F401 (one definition; re-exported for callers here)
from .refault import reported_kib, reported_share

WINDOW_S = 15.0          # "given back within 15 s of free"


def falls(rec: Recording, column: str, t0_s: float, t1_s: float = math.inf, gap_s: float = 1.0,
          min_kib: float = 8 * 1024) -> pd.DataFrame:
    """The falls of `column` after t0_s: rows of (after_s, MiB); falls < gap_s apart are merged."""
    s = rec.samples[(rec.samples["t_s"] >= t0_s) & (rec.samples["t_s"] <= t1_s)][["t_s", column]].dropna()
    d = s[column].diff()
    out: list[dict[str, float]] = []
    for t, drop in zip(s["t_s"][d < 0], -d[d < 0]):
        if out and t - t0_s - out[-1]["last_s"] < gap_s:
            out[-1]["MiB"] += drop / 1024
            out[-1]["last_s"] = t - t0_s
        else:
            out.append({"after_s": t - t0_s, "last_s": t - t0_s, "MiB": drop / 1024})
    df = pd.DataFrame(out, columns=["after_s", "last_s", "MiB"])
    return df[df["MiB"] * 1024 >= min_kib].drop(columns="last_s").reset_index(drop=True)


def story(rec: Recording) -> dict[str, Any]:
    """The numbers of one calloc-reclaim run in the VM: the host's view at rest, at its peak, its falls."""
    r = rec.meta["results"]
    t_free = analysis.when(rec, "free")
    t_end = float(rec.samples["t_s"].iloc[-1])
    base, peak = r["host_rss_before_kib"], r["free_host_peak_kib"]
    touched = max(peak - base, 1)
    in_window = rec.samples[rec.samples["t_s"] <= t_free + WINDOW_S]["host_vm_rss_kib"].dropna()
    returned_window = peak - float(in_window.iloc[-1])
    return dict(t_free=t_free, t_end=t_end, base=base, peak=peak, touched=touched,
                steps=falls(rec, "host_vm_rss_kib", t_free),
                returned=peak - analysis.value_at(rec, "host_vm_rss_kib", t_end), returned_window=returned_window,
                anon_fall=analysis.value_at(rec, "anon_kib", t_free) - analysis.value_at(rec, "anon_kib", t_end),
                back_s=r.get("free_host_back_s"), touch_s=r.get("touch_s"))


def boot(rec: Recording) -> Claim:
    """How long this guest took to boot, and the whole run."""
    m = rec.meta
    sentences = {
        "measured": "This guest booted in **{boot:.1f} s** (QEMU's start to the agent's first line, {hv}); the "
                    "whole run, boot included, took {total:.0f} s.",
        "not_measurable": "This recording does not say how long the guest took to boot.",
    }
    if not m.get("boot_s"):
        return claim("vm.boot", "not_measurable", sentences)
    total = m["boot_s"] + float(rec.samples["t_s"].iloc[-1])
    return claim("vm.boot", "measured", sentences, value=m["boot_s"], unit="s", boot=m["boot_s"],
                 hv=m.get("hypervisor", "hypervisor unknown"), total=total, run_s=total)


def host_return(rec: Recording, label: str) -> Claim:
    """What the host's view gave back after free in one run (label: "on" or "off")."""
    st = story(rec)
    share = st["returned_window"] / st["touched"]
    steps = st["steps"]
    sentences = {
        "returned": "**With free page reporting {label}**, the host's view fell in **{n} step(s)** ({sizes} MiB), "
                    "the first {first:.1f} s after `free`; within {window:.0f} s, {share:.0%} of what the touch had "
                    "added (+{touched}) was back with the host.",
        "partial": "**With free page reporting {label}**, the host's view fell in {n} step(s) ({sizes} MiB), but "
                   "within {window:.0f} s only {share:.0%} of what the touch had added (+{touched}) was back.",
        "kept": "**With free page reporting {label}**, the host's view moved by {moved} in the {watched:.0f} s after "
                "`free` ({share:.0%} of what the touch had added): the guest's free memory stays in QEMU's RSS "
                "until the VM stops. That is WSL 2 before build 19013: memory freed in Linux, `vmmem` as large as ever.",
    }
    if share >= THRESHOLDS["reported_enough_share"]:
        verdict = "returned"
    elif share >= THRESHOLDS["share_some"]:
        verdict = "partial"
    else:
        verdict = "kept"
    return claim(f"vm.host_return.{label}", verdict, sentences, value=share, unit="share", label=label.upper(),
                 n=len(steps), sizes=", ".join(f"{m:.0f}" for m in steps["MiB"]) or "none",
                 first=float(steps["after_s"].iloc[0]) if len(steps) else float("nan"), window=WINDOW_S,
                 share=max(share, 0.0), touched=analysis.mib(st["touched"]), moved=analysis.mib(abs(st["returned"])),
                 watched=st["t_end"] - st["t_free"], touched_kib=st["touched"], returned_window_kib=st["returned_window"])


def on_vs_off(rec_on: Recording, rec_off: Recording) -> Claim:
    """Did reporting make the difference? Compares what came back within the window in both runs."""
    a, b = story(rec_on), story(rec_off)
    on, off = a["returned_window"] / a["touched"], b["returned_window"] / b["touched"]
    sentences = {
        "reporting_returns": "The one difference between the two guests, the balloon's `free-page-reporting`, "
                             "is the difference between {on:.0%} and {off:.0%} back with the host.",
        "no_difference": "In these two runs the host got back {on:.0%} with reporting on and {off:.0%} with it off: "
                         "**no clear difference**, so this pair does not show what reporting does. Look at the "
                         "verdicts above for why (a run that stalled, or a run cut short), and run them again.",
    }
    verdict = ("reporting_returns" if on >= THRESHOLDS["share_most"] and off < THRESHOLDS["share_some"]
               else "no_difference")
    return claim("vm.on_vs_off", verdict, sentences, value=on - off, unit="share", on=max(on, 0.0), off=max(off, 0.0))


def first_step(rec: Recording) -> Claim:
    """When the host's view first fell after free, against the kernel's documented 2 s."""
    steps = story(rec)["steps"]
    sentences = {
        "none": "The host's view did not fall after `free` in this run.",
        "as_documented": "The first step came **{first:.1f} s** after `free`: about the documented 2 s after a "
                         "high-order free (a pass takes time of its own, and an earlier free in the guest can "
                         "start the 2 s clock early).",
        "sooner": "The first step came **{first:.1f} s** after `free`, sooner than the documented 2 s: an earlier "
                  "free in the guest can start the 2 s clock (a freshly booted guest is still reporting its "
                  "boot-time free memory, which costs the host nothing and so does not show in `VmRSS`); which "
                  "free started it here is not measured.",
        "later": "The first step came **{first:.1f} s** after `free`, later than the documented 2 s: the guest's "
                 "one CPU is emulated and shared with the rest of this machine, and the reporting work waits its turn.",
    }
    if not len(steps):
        return claim("vm.first_step", "none", sentences)
    first = float(steps["after_s"].iloc[0])
    verdict = ("sooner" if first < THRESHOLDS["report_delay_early_s"] else
               "later" if first > THRESHOLDS["report_delay_late_s"] else "as_documented")
    return claim("vm.first_step", verdict, sentences, value=first, unit="s", first=first)


def step_budget(rec: Recording) -> Claim:
    """The reporting budget per pass of the top order's free list (mm/page_reporting.c budgets each zone x order x
    migratetype list on its own; a freed buffer lands mostly in that one), against the steps measured."""
    steps = story(rec)["steps"]
    b = rec.buddyinfo
    sentences = {
        "matches": "Before the run the guest's zone {zone} had **{n_top}** free blocks of order {top} ({block:.0f} "
                   "MiB each): that list's budget is ⌈{n_top} / 512⌉ = {calls} call(s) plus one, so up to {calls1} × "
                   "32 × {block:.0f} MiB = **{budget:.0f} MiB** a pass. The largest step measured: {largest:.0f} MiB "
                   "({sizes} MiB in all steps), as the budget predicts.",
        "differs": "Before the run the guest's zone {zone} had **{n_top}** free blocks of order {top} ({block:.0f} "
                   "MiB each): that list's budget is up to **{budget:.0f} MiB** a pass. The steps measured "
                   "({sizes} MiB) differ: a step can merge two passes when the host's view is read between them, "
                   "hold blocks from other lists (each zone × order × migratetype has a budget of its own), or be "
                   "smaller when less was left to report.",
        "not_measurable": "This recording has no buddyinfo snapshot before the run, or no step to compare.",
    }
    if b is None or b.empty or not (b["label"] == "before").any() or not len(steps):
        return claim("vm.step_budget", "not_measurable", sentences)
    top = int(b["order"].max())
    blocks = b[(b["label"] == "before") & (b["order"] == top)].groupby("zone")["free_blocks"].sum()
    n_top, zone = int(blocks.max()), str(blocks.idxmax())
    calls = -(-n_top // (REPORT_CAPACITY * BUDGET_DIVISOR))
    block = 2 ** top * provenance.page_kib(rec.meta) / 1024
    budget = (calls + 1) * REPORT_CAPACITY * block
    largest = float(steps["MiB"].max())
    verdict = "matches" if ratio_verdict(largest / budget) == "about_the_same" else "differs"
    return claim("vm.step_budget", verdict, sentences, value=largest, unit="MiB", zone=zone, n_top=n_top, top=top,
                 block=block, calls=calls, calls1=calls + 1, budget=budget, largest=largest,
                 sizes=", ".join(f"{m:.0f}" for m in steps["MiB"]))


def page_cache(rec: Recording) -> list[Claim]:
    """Dropping the guest's page cache: what the host got back of what the cache cost it; and the cold read."""
    r = rec.meta["results"]
    t_write, t_drop = analysis.when(rec, "write_file"), analysis.when(rec, "drop_caches")
    cache_rise = analysis.peak_change(rec, "cached_kib", t_write, t_drop)
    host_rise = r["drop_caches_host_peak_kib"] - analysis.value_at(rec, "host_vm_rss_kib", t_write)
    host_fall = r["drop_caches_host_peak_kib"] - r["drop_caches_host_rss_after_kib"]
    share = host_fall / max(host_rise, 1)
    drop_s = r.get("drop_caches_3_s")
    sentences = {
        "returned": "Writing the file filled the guest's page cache (+{cache_rise}) and the host's view rose by "
                    "{host_rise}: no process holds this memory, yet the host pays for it. `drop_caches=3` emptied "
                    "the cache in {drop}; the freed pages were free blocks like any others, the guest reported "
                    "them, and the host's view fell by **{host_fall}** ({share:.0%} of what the cache had cost it).",
        "partial": "Writing the file filled the guest's page cache (+{cache_rise}) and the host's view rose by "
                   "{host_rise}. After `drop_caches=3` ({drop}) the host's view fell by only **{host_fall}** "
                   "({share:.0%} of what the cache had cost it) before the cold read began: reporting had not "
                   "finished (the watch is bounded by `observe_s`).",
        "kept": "Writing the file filled the guest's page cache (+{cache_rise}) and the host's view rose by "
                "{host_rise}. After `drop_caches=3` ({drop}) the host's view fell by {host_fall} ({share:.0%}): "
                "**the host got nothing back** in this run. Was free page reporting off (see the banner)?",
    }
    verdict = ("returned" if share >= THRESHOLDS["share_most"] else
               "partial" if share >= THRESHOLDS["share_some"] else "kept")
    drop = claim("vm.page_cache", verdict, sentences, value=share, unit="share", cache_rise=analysis.mib(cache_rise),
                 host_rise=analysis.mib(host_rise), host_fall=analysis.mib(host_fall), share=share,
                 drop=f"{drop_s:.2f} s" if drop_s is not None else "a time not recorded",
                 host_rise_kib=host_rise, host_fall_kib=host_fall)
    cached, cold = r.get("read_file_cached_s"), r.get("read_file_cold_s")
    refill = analysis.value_at(rec, "host_vm_rss_kib", analysis.when(rec, "rm_file")) - r["drop_caches_host_rss_after_kib"]
    read_sentences = {
        "slower": "The price comes at the next read: **{cold:.2f} s** from the disk instead of {cached:.2f} s from "
                  "the cache ({ratio_words} slower), and the host's view rose again by {refill} as the cache refilled.",
        "about_the_same": "The next read took {cold:.2f} s against {cached:.2f} s from the cache: about the same, "
                          "so this disk (a file on the host, itself in the host's page cache) hid the cost.",
        "faster": "The next read took {cold:.2f} s against {cached:.2f} s from the cache: faster, which says the "
                  "cached read was slowed by something else (a busy machine), not that the disk is faster.",
        "not_measurable": "This recording lacks the read times.",
    }
    ratio = cold / cached if cached and cold else None
    read = claim("vm.cold_read", ratio_verdict(ratio), read_sentences, value=ratio, unit="ratio",
                 cold=cold or 0.0, cached=cached or 0.0, ratio_words=times(ratio) if ratio else "",
                 refill=analysis.mib(refill))
    return [drop, read]


def refault_control(rec_on: Recording, rec_off: Recording) -> Claim:
    """The control: the cold touch with reporting off against the cold touch with it on."""
    on, off = rec_on.meta["results"].get("cold_touch_gb_per_s"), rec_off.meta["results"].get("cold_touch_gb_per_s")
    hot_off = rec_off.meta["results"].get("hot_touch_gb_per_s")
    sentences = {
        "faster": "With reporting off, the third touch ran at **{off:.2f} GB/s**, {ratio_words} the speed of the "
                  "cold touch with reporting on ({on:.2f} GB/s), {hot_words}",
        "about_the_same": "With reporting off, the third touch ran at {off:.2f} GB/s, about as fast as the cold "
                          "touch with reporting on ({on:.2f} GB/s): in this pair the control shows **no refault "
                          "cost**; see the verdicts above for why.",
        "slower": "With reporting off, the third touch ran at {off:.2f} GB/s, *slower* than the cold touch with "
                  "reporting on ({on:.2f} GB/s): not what reporting explains; touches on a busy machine vary, "
                  "run the pair again.",
        "not_measurable": "The recordings lack a cold touch speed.",
    }
    ratio = off / on if on and off else None
    # "near its own hot touch" only where this run's own hot touch was within the same-speed factor of it
    below_hot = hot_off / off if hot_off and off else None
    kept = _kept_words(rec_off)
    if below_hot is not None and ratio_verdict(below_hot) == "slower":
        hot_words = (f"yet {times(below_hot)} slower than its own hot touch ({hot_off:.2f} GB/s){kept[0]}: not a "
                     "refault; touches under TCG vary on a busy host, run the pair again.")
    else:
        hot_words = f"near its own hot touch ({(hot_off or 0.0):.2f} GB/s){kept[1]}"
    return claim("vm.refault_control", ratio_verdict(ratio, more="faster", less="slower"), sentences, value=ratio,
                 unit="ratio", on=on or 0.0, off=off or 0.0, hot_off=hot_off or 0.0,
                 ratio_words=times(ratio) if ratio else "", hot_words=hot_words)


def _kept_words(rec_off: Recording) -> tuple[str, str]:
    """Whether the control's host kept its pages, from the control's own figure (QEMU's RSS before the third
    touch): (after "slower than its hot touch", after "near its hot touch")."""
    back, share = reported_kib(rec_off), reported_share(rec_off)
    if back is None or share is None:
        return "", ": whether the host kept every page is not measured in this control."
    if share < THRESHOLDS["share_some"]:
        kept = f"the host had kept its pages (QEMU's resident memory fell by {analysis.mib(back)} before it)"
        return f" although {kept}", f": {kept}, so nothing had to be supplied again."
    gave = f"QEMU's resident memory fell by {analysis.mib(back)} ({share:.0%} of the buffer) before it"
    return f" ({gave})", f", though {gave}: the host had not kept every page."


def compaction(rec: Recording) -> Claim:
    """What compact_memory returned to the host, of what fragmenting had left unreportable."""
    r = rec.meta["results"]
    t_frag, t_comp = analysis.when(rec, "fragment"), analysis.when(rec, "compact")
    unreportable = lambda t: (analysis.value_at(rec, "mem_free_kib", t)  # noqa: E731
                              - analysis.value_at(rec, "reportable_free_kib", t))
    stuck = unreportable(t_comp) - unreportable(t_frag)
    returned = r.get("compaction_returned_kib")
    order = analysis.reporting_order(rec)
    sentences = {
        "nearly_all": "The fragmenter left **{stuck}** free in the guest that reporting could not use (no free "
                      "block of order {order} could form); after `compact_memory` the host's view fell by "
                      "**{returned}** ({share:.0%} of it).",
        "most": "The fragmenter left **{stuck}** free in the guest that reporting could not use (no free block of "
                "order {order} could form); after `compact_memory` the host's view fell by **{returned}** "
                "({share:.0%}): most of it, not all. Why the rest stayed is not measured here (one `compact_memory` "
                "stops where its two scanners meet and does not promise to clear every block).",
        "some": "The fragmenter left **{stuck}** free in the guest that reporting could not use; after "
                "`compact_memory` the host's view fell by only **{returned}** ({share:.0%}). Why the rest stayed is not "
                "measured here (one `compact_memory` stops where its two scanners meet and does not promise to "
                "clear every block).",
        "little": "The fragmenter left **{stuck}** free in the guest that reporting could not use; after "
                  "`compact_memory` the host's view fell by only **{returned}** ({share:.0%}): **compaction freed "
                  "next to no large blocks in this run** (it can miss holes: see the instructor notes).",
        "not_measurable": "This recording lacks what compaction returned, or no memory was left unreportable.",
    }
    if returned is None or not stuck or stuck <= 0 or math.isnan(stuck):
        return claim("vm.compaction", "not_measurable", sentences)
    share = returned / stuck
    return claim("vm.compaction", share_verdict(share), sentences, value=share, unit="share",
                 stuck=analysis.mib(stuck), returned=analysis.mib(returned), share=share, order=order,
                 stuck_kib=stuck, returned_kib=returned)
