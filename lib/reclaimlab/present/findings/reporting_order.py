"""Page reporting order 5 against 9 in the kit's VM: what reached the host (QEMU's RSS fell) from the
same fragmentation (pure). WSL chooses 5 (128 KiB) on Windows builds with the partition-teardown fix,
else 9 (2 MiB) (microsoft/WSL src/windows/service/exe/WslCoreVm.cpp:1452/1456 at 3e27a6a)."""
from __future__ import annotations

from typing import Mapping

from .. import analysis
from ..claims import THRESHOLDS, Claim, claim
from ...recording.recording import Recording
from ...units import format_kib
from ...recording import provenance


def order_of(rec: Recording) -> int | None:
    """The order the guest ran with (read from its sysfs), not the one asked for."""
    return analysis.reporting_order(rec)


def _block(order: int | None, page_kib: int = 4) -> str:
    """The size of one block of `order` (4 KiB pages): 128 KiB at order 5, 2 MiB at order 9."""
    if order is None:
        return "?"
    kib = page_kib << order
    return format_kib(kib, digits=None, smallest="KiB", largest="MiB")


_HELD = {
    "returned": "**Order {order}** ({block} blocks): while the fragmenter still held one page in {keep}, leaving free "
                "holes of {hole}, **{returned}** of the {freed} it freed reached the host (QEMU's RSS fell) in "
                "{observe:g} s. A hole that size holds a whole aligned {block} block, and only whole blocks are "
                "reported: the smaller pieces around it stay with the guest.",
    "nothing": "**Order {order}** ({block} blocks): while the fragmenter still held one page in {keep}, leaving free "
               "holes of {hole}, next to nothing of the {freed} it freed reached the host ({returned} in "
               "{observe:g} s): no hole holds a whole {block} block, and only whole blocks are reported.",
    "returned_elsewhere": "**Order {order}** ({block} blocks): while the fragmenter still held one page in {keep}, "
                          "**{returned}** reached the host in {observe:g} s, although its {hole} holes hold no whole "
                          "{block} block: that memory was freed elsewhere in the guest, not in the holes.",
    "not_yet": "**Order {order}** ({block} blocks): its {hole} holes hold whole {block} blocks, yet next to nothing "
               "reached the host ({returned}) in {observe:g} s: reporting had not reached them before compaction "
               "(a pass hands over a budget of blocks, about 2 s apart).",
    "not_measurable": "**Order {order}**: this recording has no host-side view.",
}


def holes_hold_a_block(keep_every: int, order: int) -> bool:
    """With one page kept at every multiple of `keep_every`, does a hole (keep_every - 1 free pages) hold
    an aligned block of 2^order pages? The block must start at a multiple of 2^order after the kept page:
    it fits iff 2^(order+1) <= keep_every."""
    return 2 ** (order + 1) <= keep_every


def returned_while_fragmented(rec: Recording) -> Claim:
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    order = order_of(rec)
    kib = res.get("fragmented_returned_kib")
    keep = int(p.get("keep_every", 3))
    size_kib = int(p.get("size_bytes", 0)) // 1024
    held_kib = int(res.get("fragment_held_pages", 0)) * provenance.page_kib(rec.meta)
    ev = dict(order=order, block=_block(order), keep=keep, observe=float(p.get("observe_s", 0)),
              hole=f"{(keep - 1) * provenance.page_kib(rec.meta)} KiB",
              freed=analysis.mib(size_kib - held_kib) if size_kib else "memory",
              returned=analysis.mib(max(kib, 0)) if kib is not None else "—")
    if kib is None or order is None:
        return claim(f"reporting_order.while_fragmented.{order}", "not_measurable", _HELD, **ev)
    fits = holes_hold_a_block(keep, order)
    if kib >= THRESHOLDS["order_returned_min_kib"]:
        verdict = "returned" if fits else "returned_elsewhere"
    else:
        verdict = "not_yet" if fits else "nothing"
    return claim(f"reporting_order.while_fragmented.{order}", verdict, _HELD, value=kib, unit="KiB",
                 holes_hold_a_block=fits, **ev)


_COMPACTED = {
    "formed": "**Order {order}, after `compact_memory`**: compaction formed **{gained}** of new free blocks of order "
              "{order} or more (buddyinfo, {rep_frag} → {rep_comp}), and the host got **{host}** more in the next "
              "{observe:g} s.",
    "still_reporting": "**Order {order}, after `compact_memory`**: compaction formed no new free blocks of order {order} "
                       "or more (buddyinfo, {rep_frag} → {rep_comp}); the **{host}** the host got in the next "
                       "{observe:g} s is reporting still handing over holes that were reportable before it (each pass "
                       "hands over a limited budget of blocks), not compaction's work.",
    "nothing": "**Order {order}, after `compact_memory`**: compaction formed no new free blocks of order {order} or more "
               "(buddyinfo, {rep_frag} → {rep_comp}: the held pages stayed where they were), and nothing more "
               "reached the host ({host} in {observe:g} s). One `compact_memory` does not promise to move every page.",
    "not_measurable": "**Order {order}, after `compact_memory`**: this recording lacks the buddyinfo snapshots or the "
                      "host-side view to say what compaction did.",
}


def after_compaction(rec: Recording) -> Claim:
    """What `compact_memory` added at the run's order: new reportable blocks (buddyinfo 'fragmented' →
    'compacted') and what then reached the host, so a fall after compaction is not credited to it wrongly."""
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    order = order_of(rec)
    host_kib = res.get("compaction_returned_kib")
    b = rec.buddyinfo
    labels = set(b["label"]) if b is not None and not b.empty else set()
    ev = dict(order=order, observe=float(p.get("observe_s", 0)))
    if order is None or host_kib is None or not {"fragmented", "compacted"} <= labels:
        return claim(f"reporting_order.after_compaction.{order}", "not_measurable", _COMPACTED, **ev)
    rep_frag = analysis.free_kib_at_least(rec, "fragmented", order)
    rep_comp = analysis.free_kib_at_least(rec, "compacted", order)
    gained = rep_comp - rep_frag
    least = THRESHOLDS["order_returned_min_kib"]
    verdict = "formed" if gained >= least else ("still_reporting" if host_kib >= least else "nothing")
    return claim(f"reporting_order.after_compaction.{order}", verdict, _COMPACTED, value=host_kib, unit="KiB",
                 gained=analysis.mib(max(gained, 0)), gained_kib=gained, rep_frag=analysis.mib(rep_frag),
                 rep_comp=analysis.mib(rep_comp), host=analysis.mib(max(host_kib, 0)), host_kib=host_kib, **ev)


_CMP = {
    "lower_returns_more": "**Side by side.** From the same fragmentation, order {lo} handed **{lo_ret}** to the host "
                          "before any compaction, order {hi} **{hi_ret}**: the smaller reporting order reports free "
                          "holes that order {hi} can report only once they merge into whole {hi_block} blocks.",
    "about_the_same": "**Side by side.** From the same fragmentation, order {lo} handed {lo_ret} and order {hi} "
                      "{hi_ret} to the host before compaction: no clear difference in this run (the holes were "
                      "too small, or too large, for the order to matter).",
    "not_comparable": "**Side by side.** These recordings cannot be compared: {why}.",
}


def compare(recs: Mapping[str, Recording]) -> Claim:
    """Order 5 against 9: which handed more to the host while fragmented."""
    by_order = {order_of(r): r for r in recs.values()}
    orders = sorted(o for o in by_order if o is not None)
    why = ""
    if len(orders) < 2:
        why = "they do not run at two different orders (see each banner's page_reporting_order)"
    else:
        keeps = {by_order[o].meta.get("parameters", {}).get("keep_every", 3) for o in orders}
        if len(keeps) > 1:
            why = "they fragmented differently (keep_every " + ", ".join(map(str, sorted(keeps))) + ")"
    if why:
        return claim("reporting_order.compare", "not_comparable", _CMP, why=why)
    lo, hi = orders[0], orders[-1]
    ret = {o: by_order[o].meta.get("results", {}).get("fragmented_returned_kib") for o in (lo, hi)}
    if None in ret.values():
        return claim("reporting_order.compare", "not_comparable", _CMP, why="one has no host-side view")
    diff = ret[lo] - ret[hi]
    verdict = "lower_returns_more" if diff >= THRESHOLDS["order_returned_min_kib"] else "about_the_same"
    return claim("reporting_order.compare", verdict, _CMP, value=diff, unit="KiB", lo=lo, hi=hi,
                 lo_ret=analysis.mib(max(ret[lo], 0)), hi_ret=analysis.mib(max(ret[hi], 0)), hi_block=_block(hi))


_RELEASED = {
    "returned": "**Order {order}, after the release**: when the fragmenter let go of its held pages ({held}), the "
                "holes merged into whole blocks and **{host}** reached the host in the {dt:.0f} s the recording went on.",
    "watch_too_short": "**Order {order}, after the release**: the fragmenter let go of its held pages ({held}) only "
                       "{dt:.0f} s before the recording ended, and next to nothing reached the host in that time "
                       "({host}). Reporting waits about 2 s after a free, then works in passes about 2 s apart, so a "
                       "watch this short can end before the merged blocks go; a longer `tail_s` would show it.",
    "nothing": "**Order {order}, after the release**: the fragmenter let go of its held pages ({held}), and in the "
               "{dt:.0f} s the recording went on next to nothing more reached the host ({host}): the holes did not "
               "become reported blocks in that time (the recording has no buddyinfo snapshot after the release "
               "to show whether they merged).",
    "not_measurable": "**Order {order}, after the release**: this recording has no release step or no host-side view.",
}


def after_release(rec: Recording) -> Claim:
    """What reached the host after the fragmenter released its held pages (the `unfragment` step), and
    whether the recording watched long enough after it to show reporting at all."""
    order = order_of(rec)
    t = rec.event_times("unfragment")
    held_kib = int(rec.meta.get("results", {}).get("fragment_held_pages", 0)) * provenance.page_kib(rec.meta)
    ev = dict(order=order, held=analysis.mib(held_kib) if held_kib >= 1024 else f"{held_kib} KiB")
    if not t or "host_vm_rss_kib" not in rec.samples.columns or rec.samples["host_vm_rss_kib"].isna().all():
        return claim(f"reporting_order.after_release.{order}", "not_measurable", _RELEASED, **ev)
    end = float(rec.samples["t_s"].iloc[-1])
    host_kib = -analysis.change(rec, "host_vm_rss_kib", t[0] - 0.5, end)
    dt = end - t[0]
    if host_kib >= THRESHOLDS["order_returned_min_kib"]:
        verdict = "returned"
    else:
        verdict = "watch_too_short" if dt < THRESHOLDS["order_release_watch_s"] else "nothing"
    return claim(f"reporting_order.after_release.{order}", verdict, _RELEASED, value=host_kib, unit="KiB",
                 dt=dt, host=analysis.mib(host_kib if host_kib > 0 else 0), host_kib=host_kib, **ev)
