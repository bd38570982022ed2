"""What a calloc-reclaim run showed (lab 01): calloc, touch and free told from our own workload's
figures; the whole guest as labelled context; and whether, when and why (not) the host took the
memory back.

The workload's own figure is its memory cgroup's charge where the run had one (only the allocator
was in it), else the allocator's RssAnon: neither moves when another program allocates beside it.
"""
from __future__ import annotations

import dataclasses

import math

from .. import analysis
from ..analysis import size_kib  # noqa: F401 (one definition; re-exported for callers here)
from ..claims import THRESHOLDS, Claim, claim, negligible, share_verdict
from ...recording.recording import Recording
from ...units import format_size
from . import _host_now, _stall
from ...recording import provenance

AFTER_FREE_S = 1.0  # the guest's counters are read this long after free (free itself takes ~0.2 s)


VM_WHO = "the guest's AnonPages: the agent is the VM's only program"


def in_vm(rec: Recording) -> bool:
    """A run in the kit's VM: its host view is QEMU's resident memory, and its agent is the guest's one program."""
    return rec.meta.get("guest_kind") == "kit-vm"


def _own_vm(rec: Recording, step: str) -> float | None:
    """In the kit's VM the agent allocates and nothing else runs: the guest's AnonPages at each step."""
    try:
        t = {"before": analysis.when(rec, "calloc"), "calloc": analysis.when(rec, "touch"),
             "touch": analysis.when(rec, "free"),
             "free": analysis.when(rec, "free") + (rec.meta.get("results", {}).get("free_s") or 0) + AFTER_FREE_S}[step]
    except KeyError:
        return None
    value = analysis.value_at(rec, "anon_kib", t)
    return None if math.isnan(value) else value


def _own(rec: Recording, step: str) -> tuple[float | None, str]:
    """Our workload's memory (KiB) right after `step` ("before", "calloc", "touch", "free"), and whose figure."""
    if in_vm(rec):
        return _own_vm(rec, step), VM_WHO
    res = rec.meta.get("results", {})
    cg = res.get("cgroup_before_kib" if step == "before" else f"{step}_cgroup_kib")
    if cg is not None and res.get("calloc_cgroup_kib") is not None:
        return float(cg), "its own memory cgroup"
    rss = res.get("child_rss_anon_before_kib" if step == "before" else f"{step}_child_rss_anon_kib")
    return (float(rss) if rss is not None else None), "its own RssAnon"


def _change(rec: Recording, a: str, b: str) -> tuple[float | None, str]:
    x, who = _own(rec, a)
    y, _ = _own(rec, b)
    return (None if x is None or y is None else y - x), who


def calloc(rec: Recording) -> Claim:
    """Did calloc commit memory? Judged on the allocator's own figure, against the buffer's size."""
    size = size_kib(rec)
    change, who = _change(rec, "before", "calloc")
    sentences = {
        "next_to_nothing": "`calloc` of {size} returned, and our allocator ({who}) grew by **{change}**: next to "
                           "nothing. It reserved address space; no memory is committed until a page is written.",
        "committed": "`calloc` of {size} committed **{change}** ({share:.0%} of the buffer) at once, by our "
                     "allocator's {who}. A fresh large mapping reads as zeros without memory behind it; a calloc "
                     "that clears recycled heap memory commits it.",
        "not_measurable": "This recording has no figure of the allocator's own memory around `calloc` "
                          "(an older recording): the whole guest's counters below are all there is.",
    }
    if change is None:
        return claim("calloc_reclaim.calloc", "not_measurable", sentences, size=format_size(size * 1024))
    verdict = "next_to_nothing" if negligible(change, size) else "committed"
    return claim("calloc_reclaim.calloc", verdict, sentences, value=change, unit="KiB", who=who,
                 size=format_size(size * 1024), change=analysis.mib(change), share=change / size, size_kib=size)


def touch(rec: Recording) -> Claim:
    """How much of the buffer the writes committed, and how fast."""
    size = size_kib(rec)
    change, who = _change(rec, "calloc", "touch")
    res = rec.meta.get("results", {})
    gbps = res.get("touch_gb_per_s")
    if not gbps and in_vm(rec) and res.get("touch_s"):  # the kit's VM times the agent's touch
        gbps = size * 1024 / 1e9 / max(float(res["touch_s"]), 1e-3)
    speed = f"{gbps:.2f} GB/s" if gbps else "a speed not recorded"
    sentences = {
        "nearly_all": "Writing every byte committed it: our allocator ({who}) grew by **{change}**, "
                      "{share:.0%} of the buffer, at {speed}, page fault by page fault.",
        "most": "Writing every byte committed **{change}** ({share:.0%} of the buffer; {who}) at {speed}: "
                "not all of it, which a buffer of huge pages or a recording cut short would explain.",
        "some": "Writing every byte committed only **{change}** ({share:.0%} of the buffer; {who}): the touch "
                "did not finish in this recording (see the banner: is it partial?).",
        "little": "Writing every byte committed only **{change}** ({share:.0%} of the buffer; {who}): the touch "
                  "did not finish in this recording (see the banner: is it partial?).",
        "not_measurable": "This recording has no figure of the allocator's own memory after the touch.",
    }
    if change is None:
        return claim("calloc_reclaim.touch", "not_measurable", sentences)
    return claim("calloc_reclaim.touch", share_verdict(change / size), sentences, value=change / size, unit="share",
                 who=who, change=analysis.gib(change), share=change / size, speed=speed, touch_gb_per_s=gbps,
                 change_kib=change, size_kib=size)


def free(rec: Recording) -> Claim:
    """What `free` gave back to the guest: the allocator's own fall."""
    size = size_kib(rec)
    change, who = _change(rec, "touch", "free")
    sentences = {
        "returned": "`free` gave the memory back to the **guest** at once: our allocator ({who}) shrank by "
                    "**{fall}**. The host does not know yet: that is section 2.",
        "kept": "After `free` our allocator ({who}) shrank by only **{fall}**: glibc kept part of the buffer "
                "(a chunk below its mmap threshold stays in its heap).",
        "not_measurable": "This recording has no figure of the allocator's own memory after `free`.",
    }
    if change is None:
        return claim("calloc_reclaim.free", "not_measurable", sentences)
    fall = -change
    verdict = "returned" if fall >= THRESHOLDS["share_nearly_all"] * size else "kept"
    return claim("calloc_reclaim.free", verdict, sentences, value=fall, unit="KiB", who=who,
                 fall=analysis.gib(fall), size_kib=size)


def whole_guest(rec: Recording) -> Claim:
    """The whole guest's (or container's) anonymous memory beside ours: context, labelled, and whether
    other programs moved it."""
    size = size_kib(rec)
    in_container = rec.meta.get("guest_kind") == "container" and "cgroup_anon_bytes" in rec.samples.columns
    col, scale, name = (("cgroup_anon_bytes", 1 / 1024, "your container's anonymous memory") if in_container
                        else ("anon_kib", 1, "the whole guest's AnonPages"))
    try:
        t_calloc, t_touch, t_free = analysis.when(rec, "calloc"), analysis.when(rec, "touch"), analysis.when(rec, "free")
    except KeyError:
        t_calloc = math.nan
    sentences = {
        "matches": "For context, {name} (every process in it counts) told the same story: {by_calloc} between "
                   "`calloc` and the touch, {by_touch} during the touch, {by_free} after `free`.",
        "busy": "For context, {name} (every process in it counts) moved by {by_calloc} between `calloc` and the "
                "touch, {by_touch} during the touch and {by_free} after `free`, against our allocator's "
                "{own_calloc}, {own_touch} and {own_free}: **other programs were allocating or freeing meanwhile** "
                "(up to {worst} apart). That is why this lab quotes the workload's own figures.",
        "not_measurable": "This recording has no whole-guest anonymous memory to compare with.",
        "one_program": "In the kit's VM the agent is the guest's only program, so the figures above are the whole "
                       "guest's: no other program allocated or freed beside it.",
    }
    if in_vm(rec):
        return claim("calloc_reclaim.whole_guest", "one_program" if _own_vm(rec, "free") is not None
                     else "not_measurable", sentences)
    own_c, _ = _change(rec, "before", "calloc")
    own_t, _ = _change(rec, "calloc", "touch")
    own_f, _ = _change(rec, "touch", "free")
    if col not in rec.samples.columns or math.isnan(t_calloc) or None in (own_c, own_t, own_f):
        return claim("calloc_reclaim.whole_guest", "not_measurable", sentences)
    by_calloc = analysis.change(rec, col, t_calloc, t_touch) * scale
    by_touch = analysis.change(rec, col, t_touch, t_free) * scale
    by_free = analysis.change(rec, col, t_free, t_free + AFTER_FREE_S) * scale
    gaps = [abs(by_calloc - own_c), abs(by_touch - own_t), abs(by_free - own_f)]
    worst = max(gaps)
    verdict = "busy" if worst >= THRESHOLDS["busy_guest_share"] * size else "matches"
    return claim("calloc_reclaim.whole_guest", verdict, sentences, value=worst, unit="KiB", name=name,
                 by_calloc=analysis.signed_mib(by_calloc), by_touch=analysis.signed_mib(by_touch), by_free=analysis.signed_mib(by_free),
                 own_calloc=analysis.signed_mib(own_c), own_touch=analysis.signed_mib(own_t), own_free=analysis.signed_mib(own_f), worst=analysis.mib(worst),
                 guest_change_kib={"calloc": by_calloc, "touch": by_touch, "free": by_free},
                 own_change_kib={"calloc": own_c, "touch": own_t, "free": own_f})


def _end_s(rec: Recording) -> float:
    return float(rec.samples["t_s"].iloc[-1])


def reporting(rec: Recording) -> Claim:
    """How much of the freed buffer the host got back, and where it stopped short, why."""
    size = size_kib(rec)
    sentences = {
        "no_host_view": "This recording has no view of the host's side (`host_reported_kib`): whether the host "
                        "took the memory back cannot be seen from it.",
        "returned": "The host got it back: **{reported}** was reported after `free`, {share:.0%} of the buffer, "
                    "within {observed}.",
        "partial": "The host got back **{reported}** ({share:.0%} of the buffer) in the {observed} watched: "
                   "free page reporting was on, but had not handed all of it back. {why} {try_}",
        "stalled": "The host got back only **{reported}** ({share:.0%} of the buffer) in the {observed} watched: "
                   "free page reporting was on, but handed over little of it. {why} {try_}",
    }
    if in_vm(rec) and analysis.has(rec, "host_vm_rss_kib"):
        return _reporting_vm(rec)
    if "host_reported_kib" not in rec.samples.columns or rec.samples["host_reported_kib"].isna().all():
        return claim("calloc_reclaim.reporting", "no_host_view", sentences)
    t_free, t_end = analysis.when(rec, "free"), _end_s(rec)
    reported = analysis.change(rec, "host_reported_kib", t_free, t_end)
    share = reported / size
    observed = f"{t_end - t_free:.0f} s"
    if share >= THRESHOLDS["reported_enough_share"]:
        c = claim("calloc_reclaim.reporting", "returned", sentences, value=share, unit="share",
                  reported=analysis.gib(reported), share=share, observed=observed, reported_kib=reported)
        return _host_now.with_host_now(c, rec, t_free, t_end)
    why, evidence = _stall.reasons(rec, unreported_kib=size - reported, size_kib=size, t_free_s=t_free,
                                   t_end_s=t_end, snapshot="observed",
                                   wait_bound_s=rec.meta.get("parameters", {}).get("observe_s"))
    verdict = "partial" if share >= THRESHOLDS["share_most"] else "stalled"
    c = claim("calloc_reclaim.reporting", verdict, sentences, value=share, unit="share",
              reported=analysis.mib(reported), share=share, observed=observed, why=why,
              try_=_stall.what_to_try(evidence),
              reported_kib=reported, **evidence)
    return _host_now.with_host_now(c, rec, t_free, t_end)


def _reporting_switch(rec: Recording) -> str:
    on = (rec.meta.get("parameters") or {}).get("reporting", rec.meta.get("free_page_reporting"))
    return {True: "on", False: "off", "on": "on", "off": "off"}.get(on, "in an unknown state")


def _reporting_vm(rec: Recording) -> Claim:
    """In the kit's VM the host's view is QEMU's resident memory: how much of what the touch added fell after free."""
    sentences = {
        "returned": "The host got it back: QEMU's resident memory (the host's view of this VM) fell by **{returned}** "
                    "after `free`, {share:.0%} of what the touch had added to it, within {observed} (free page "
                    "reporting {switch}).",
        "partial": "QEMU's resident memory (the host's view of this VM) fell by **{returned}** after `free`, "
                   "{share:.0%} of what the touch had added, in the {observed} watched (free page reporting "
                   "{switch}): the host had not got all of it back.",
        "stalled": "QEMU's resident memory (the host's view of this VM) fell by only **{returned}** after `free`, "
                   "{share:.0%} of what the touch had added, in the {observed} watched (free page reporting "
                   "{switch}): the guest's free memory stayed with the host.",
        # what the touch added came back, but it added much less than the buffer (pages the host backed before)
        "returned_what_it_added": "QEMU's resident memory (the host's view of this VM) fell by **{returned}** after "
                                  "`free`, {share:.0%} of what the touch had added to it, within {observed} (free page "
                                  "reporting {switch}).",
        "not_measurable": "This run in the kit's VM did not record QEMU's resident memory before `free`.",
    }
    r = rec.meta.get("results", {})
    peak, touched = r.get("free_host_peak_kib"), r.get("touched_host_kib")
    if peak is None or not touched or touched <= 0:
        return claim("calloc_reclaim.reporting", "not_measurable", sentences)
    t_free, t_end = analysis.when(rec, "free"), _end_s(rec)
    returned = peak - analysis.value_at(rec, "host_vm_rss_kib", t_end)
    share = returned / touched
    verdict = ("returned" if share >= THRESHOLDS["reported_enough_share"] else
               "partial" if share >= THRESHOLDS["share_most"] else "stalled")
    if verdict == "returned" and touched < THRESHOLDS["reported_enough_share"] * size_kib(rec):
        verdict = "returned_what_it_added"   # not "got it back": the rest of the buffer stayed with the host
    c = claim("calloc_reclaim.reporting", verdict, sentences, value=share, unit="share",
              returned=analysis.mib(max(returned, 0)), share=max(share, 0), observed=f"{t_end - t_free:.0f} s",
              switch=_reporting_switch(rec), reported_kib=returned, touched_host_kib=touched)
    return _with_small_blocks_vm(_with_backed_before(c, rec, touched), rec)


def _with_backed_before(c: Claim, rec: Recording, touched_kib: float) -> Claim:
    """Where the touch added to QEMU much less than the buffer, the figure: the rest was memory the host already
    backed (touched since boot and never reported), which the share above leaves out."""
    size = size_kib(rec)
    if touched_kib >= THRESHOLDS["reported_enough_share"] * size:
        return c
    extra = (f"The touch added only **{analysis.mib(touched_kib)}** to QEMU for a buffer of {analysis.mib(size)}: the "
             f"other {analysis.mib(size - touched_kib)} were pages the host already backed, and the share above leaves "
             f"them out.")
    return dataclasses.replace(c, sentence=f"{c.sentence} {extra}", evidence={**c.evidence, "buffer_kib": size})


# Free memory below the reporting order worth a sentence in the kit's VM (a fresh boot holds a few MiB there).
SMALL_BLOCKS_MIN_KIB = 64 * 1024


def _huge_words(rec: Recording) -> str:
    """Where the touch took the buffer in huge pages (AnonHugePages just before `free`), that figure: such a buffer
    takes whole 2 MiB blocks, not the small free ones, and frees whole blocks again."""
    if not analysis.has(rec, "anon_huge_kib"):
        return ""
    t = analysis.when(rec, "free") - 0.2
    huge, anon = analysis.value_at(rec, "anon_huge_kib", t), analysis.value_at(rec, "anon_kib", t)
    if not anon or huge < 0.9 * anon:
        return ""
    return (f" The touch took the buffer in 2 MiB huge pages (AnonHugePages {analysis.mib(huge)} of AnonPages "
            f"{analysis.mib(anon)} before `free`): a huge page takes a whole 2 MiB block, not small ones, and frees it "
            f"whole.")


def _with_small_blocks_vm(c: Claim, rec: Recording) -> Claim:
    """Where the guest held much free memory in blocks below the reporting order (a long-used guest), the figures
    before `calloc` and after the watch: memory reporting never hands over, which QEMU's fall does not show."""
    if _reporting_switch(rec) != "on":
        return c   # nothing is reported at all: the order says nothing
    before, after = _stall.small_block_free_kib(rec, "before"), _stall.small_block_free_kib(rec, "after")
    if before is None or after is None or max(before[0], after[0]) < SMALL_BLOCKS_MIN_KIB:
        return c
    order = analysis.reporting_order(rec)
    extra = (f"In the guest, **{analysis.mib(after[0])}** of free memory sat in blocks below order {order} after the "
             f"watch ({analysis.mib(before[0])} before `calloc`; `/proc/buddyinfo`): reporting never hands those "
             f"over, so whatever of them the host backs, it keeps.{_huge_words(rec)}")
    return dataclasses.replace(c, sentence=f"{c.sentence} {extra}",
                               evidence={**c.evidence, "small_block_free_kib": {"before": before[0], "after": after[0]}})


def _batches_vm(rec: Recording, sentences: dict[str, str]) -> Claim:
    """The falls of QEMU's resident memory after free: the batches the host took back, as it sees them."""
    from .vm import falls
    sentences = {**sentences,
                 "none": "QEMU's resident memory (the host's view of this VM) did not fall after `free` in this run "
                         f"(free page reporting {_reporting_switch(rec)}).",
                 "sooner": "The host's view (QEMU's resident memory) first fell **{first:.1f} s** after `free`, sooner "
                           "than the documented 2 s: an earlier free in the guest can start the 2 s clock. "
                           "{batches_cap} in all, the first included{gaps}: {sizes}. {blocks}"}
    t_free = analysis.when(rec, "free")
    f = falls(rec, "host_vm_rss_kib", t_free)
    if not len(f):
        return claim("calloc_reclaim.batches", "none", sentences)
    first = float(f["after_s"].iloc[0])
    gaps_s = f["after_s"].diff().dropna()
    verdict = ("sooner" if first < THRESHOLDS["report_delay_early_s"] else
               "later" if first > THRESHOLDS["report_delay_late_s"] else "as_documented")
    blocks = ("Here the host's view is QEMU's resident memory falling, so each batch is what QEMU dropped as "
              "the reports reached it.")
    return claim("calloc_reclaim.batches", verdict, sentences, value=first, unit="s", first=first, n=len(f),
                 batches=_count(len(f)), batches_cap=_count(len(f)).capitalize(),
                 gaps=f", typically {gaps_s.median():.1f} s apart" if len(gaps_s) else "",
                 sizes=", ".join(f"{m:,.0f} MiB" for m in f["MiB"]), blocks=blocks,
                 batch_kib=[float(m) * 1024 for m in f["MiB"]], page_reporting_order=rec.meta.get("page_reporting_order"))


def batches(rec: Recording) -> Claim:
    """When the first report came after free, and in what batches (whole blocks of the reporting order?)."""
    sentences = {
        "no_host_view": "Without a host-side view there are no batches to see.",
        "none": "No report came after `free` in this recording.",
        "as_documented": "The first report came **{first:.1f} s** after `free`, as the kernel documents (2 s after "
                         "a high-order free, plus the pass itself); {batches} in all, the first included{gaps}: {sizes}. {blocks}",
        "sooner": "The first report came **{first:.1f} s** after `free`, sooner than the documented 2 s: the "
                  "counter counts every free in the guest, {earlier} "
                  "{batches_cap} in all, the first included{gaps}: {sizes}. {blocks}",
        # the reports after free add up to little of the buffer: they say nothing of when the host has it back
        "too_little": "Reports came after `free` in {batches} ({sizes}; the first {first:.1f} s after it), "
                      "**{total}** in all, {share:.0%} of the buffer, counting every program's free memory: the host "
                      "did not get the {size} back in the {observed} watched, so this run does not show when it "
                      "would (the sentence above says where it went). {blocks}",
        "later": "The first report came **{first:.1f} s** after `free`, later than the documented 2 s: the reporting "
                 "work waits its turn for a CPU, late on a busy guest. {batches_cap} in all, the first included{gaps}: {sizes}. {blocks}",
    }
    if in_vm(rec) and analysis.has(rec, "host_vm_rss_kib"):
        return _batches_vm(rec, sentences)
    if "host_reported_kib" not in rec.samples.columns:
        return claim("calloc_reclaim.batches", "no_host_view", sentences)
    t_free = analysis.when(rec, "free")
    b = analysis.bursts(rec, "host_reported_kib", t_free)
    if not len(b):
        return claim("calloc_reclaim.batches", "none", sentences)
    first = float(b["start_s"].iloc[0] - t_free)
    gaps_s = b["start_s"].diff().dropna()
    order = analysis.reporting_order(rec)
    block_kib = 2 ** order * provenance.page_kib(rec.meta) if order is not None else None
    whole = float((b["rise"] % block_kib == 0).mean()) if block_kib else None
    if whole is None:
        blocks = ""
    elif whole == 1:
        blocks = (f"Every batch is a whole multiple of {analysis.mib(block_kib)}, an order-{order} block: reporting "
                  f"hands over whole free blocks, never single pages.")
    else:
        blocks = (f"{whole:.0%} of the batches are whole multiples of {analysis.mib(block_kib)} (an order-{order} "
                  f"block); the counter also counts other frees in the guest.")
    size = size_kib(rec)
    total = float(b["rise"].sum())
    if total < THRESHOLDS["share_most"] * size:
        verdict = "too_little"
    elif first < THRESHOLDS["report_delay_early_s"]:
        verdict = "sooner"
    elif first > THRESHOLDS["report_delay_late_s"]:
        verdict = "later"
    else:
        verdict = "as_documented"
    return claim("calloc_reclaim.batches", verdict, sentences, value=first, unit="s", first=first, n=len(b),
                 earlier=_earlier_report(rec, t_free), total=analysis.mib(total), share=total / size,
                 size=format_size(size * 1024), observed=f"{_end_s(rec) - t_free:.0f} s", reported_after_free_kib=total,
                 batches=_count(len(b)), batches_cap=_count(len(b)).capitalize(),
                 gaps=f", typically {gaps_s.median():.1f} s apart" if len(gaps_s) else "",
                 sizes=", ".join(analysis.mib(r) for r in b["rise"]), blocks=blocks,
                 batch_kib=[float(r) for r in b["rise"]], whole_block_share=whole, page_reporting_order=order)


# How far before `free` a report shows that a reporting pass was already due (the documented delay is 2 s).
EARLIER_REPORT_WINDOW_S = 3.0


def _earlier_report(rec: Recording, t_free: float) -> str:
    """Why the first report came sooner than 2 s, as far as the counter shows: a report in the seconds before free."""
    before = analysis.rises(rec, "host_reported_kib", t_free - EARLIER_REPORT_WINDOW_S, t_free)
    w = f"{EARLIER_REPORT_WINDOW_S:.0f} s"
    if len(before):
        return (f"and reports of other free memory came in the {w} before `free` ({analysis.mib(before['rise'].sum())}): "
                f"reporting was already under way.")
    return (f"and an earlier free can start the 2 s clock; no report came in the {w} before `free`, so what started "
            f"it is not measured here.")


def _count(n: int) -> str:
    return "1 batch" if n == 1 else f"{n} batches"


def all_claims(rec: Recording) -> list[Claim]:
    return [calloc(rec), touch(rec), free(rec), whole_guest(rec), reporting(rec), batches(rec)]
