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
    """The order the guest ran with at its start (read from its sysfs), not the one asked for."""
    return analysis.reporting_order(rec)


def phases(rec: Recording) -> list[dict]:
    """Each order the fragmented guest was watched at, in order: {order, returned_kib, observed_s, runtime}.
    A run with `then_order` has two (results' order_phases: its own order, then the one written at runtime);
    any other run one, at its order, watched for observe_s."""
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    if res.get("order_phases"):
        return [{**ph, "runtime": i > 0} for i, ph in enumerate(res["order_phases"])]
    return [{"order": order_of(rec), "returned_kib": res.get("fragmented_returned_kib"),
             "observed_s": float(p.get("observe_s", 0)), "runtime": False}]


def order_in_force(rec: Recording) -> int | None:
    """The order at compaction and release: the last one the fragmented guest was watched at."""
    return phases(rec)[-1]["order"]


def _runs(runs: Recording | Mapping[str, Recording]) -> list[Recording]:
    return [runs] if isinstance(runs, Recording) else list(runs.values())


def _block(order: int | None, page_kib: int = 4) -> str:
    """The size of one block of `order` (4 KiB pages): 128 KiB at order 5, 2 MiB at order 9."""
    if order is None:
        return "?"
    kib = page_kib << order
    return format_kib(kib, digits=None, smallest="KiB", largest="MiB")


_RUNTIME = (", written at runtime into the same fragmented guest (then a {nudge} buffer touched and freed: the "
            "kernel starts a reporting pass only on a free)")

_HELD = {
    "returned": "**Order {order}** ({block} blocks){how}: while the fragmenter still held one page in {keep}, leaving free "
                "holes of {hole}, **{returned}** of the {freed} it freed reached the host (QEMU's RSS fell) in "
                "{observe:.0f} s. A hole that size holds a whole aligned {block} block, and only whole blocks are "
                "reported: the smaller pieces around it stay with the guest.",
    "nothing": "**Order {order}** ({block} blocks){how}: while the fragmenter still held one page in {keep}, leaving free "
               "holes of {hole}, next to nothing of the {freed} it freed reached the host ({returned} in "
               "{observe:.0f} s): no hole holds a whole {block} block, and only whole blocks are reported.",
    "returned_elsewhere": "**Order {order}** ({block} blocks){how}: while the fragmenter still held one page in {keep}, "
                          "**{returned}** reached the host in {observe:.0f} s, although its {hole} holes hold no whole "
                          "{block} block: that memory was freed elsewhere in the guest, not in the holes.",
    "not_yet": "**Order {order}** ({block} blocks){how}: its {hole} holes hold whole {block} blocks, yet next to nothing "
               "reached the host ({returned}) in {observe:.0f} s: reporting had not reached them before compaction "
               "(a pass hands over a budget of blocks, about 2 s apart).",
    "not_measurable": "**Order {order}**: this recording has no host-side view.",
}


def holes_hold_a_block(keep_every: int, order: int) -> bool:
    """With one page kept at every multiple of `keep_every`, does a hole (keep_every - 1 free pages) hold
    an aligned block of 2^order pages? The block must start at a multiple of 2^order after the kept page:
    it fits iff 2^(order+1) <= keep_every."""
    return 2 ** (order + 1) <= keep_every


def returned_while_fragmented(rec: Recording, order: int | None = None) -> Claim:
    """What reached the host while fragmented at `order` (default: the run's first, or only, order)."""
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    all_phases = phases(rec)
    phase = next((ph for ph in all_phases if ph["order"] == order), all_phases[0]) if order is not None \
        else all_phases[0]
    order, kib = phase["order"], phase["returned_kib"]
    keep = int(p.get("keep_every", 3))
    size_kib = int(p.get("size_bytes", 0)) // 1024
    held_kib = int(res.get("fragment_held_pages", 0)) * provenance.page_kib(rec.meta)
    how = _RUNTIME.format(nudge=format_kib(int(phase.get("nudge_bytes") or 0) // 1024, digits=None)) \
        if phase["runtime"] else ""
    ev = dict(order=order, block=_block(order), keep=keep, observe=float(phase["observed_s"] or 0), how=how,
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


def while_fragmented(runs: Recording | Mapping[str, Recording]) -> list[Claim]:
    """returned_while_fragmented for every order every run was watched at."""
    return [returned_while_fragmented(r, ph["order"]) for r in _runs(runs) for ph in phases(r)]


_COMPACTED = {
    "formed": "**Order {order}, after `compact_memory`**: compaction formed **{gained}** of new free blocks of order "
              "{order} or more (buddyinfo, {rep_frag} → {rep_comp}), and the host got **{host}** more in the next "
              "{observe:.0f} s.",
    "still_reporting": "**Order {order}, after `compact_memory`**: compaction formed only {gained} of new free blocks "
                       "of order {order} or more (buddyinfo, {rep_frag} → {rep_comp}); the **{host}** the host got in "
                       "the next {observe:.0f} s ({rate_after}/s; {rate_before}/s before compaction) is mostly reporting "
                       "still handing over holes that were reportable before it (each pass hands over a limited budget "
                       "of blocks): compaction's part of it is at most {gained}.",
    "nothing": "**Order {order}, after `compact_memory`**: compaction formed only {gained} of new free blocks of order "
               "{order} or more (buddyinfo, {rep_frag} → {rep_comp}), and nothing more "
               "reached the host ({host} in {observe:.0f} s). One `compact_memory` does not promise to move every page.",
    "not_measurable": "**Order {order}, after `compact_memory`**: this recording lacks the buddyinfo snapshots or the "
                      "host-side view to say what compaction did.",
}


def after_compaction(rec: Recording) -> Claim:
    """What `compact_memory` added at the run's order: new reportable blocks (buddyinfo 'fragmented' →
    'compacted') and what then reached the host, so a fall after compaction is not credited to it wrongly."""
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    order = order_in_force(rec)
    host_kib = res.get("compaction_returned_kib")
    b = rec.buddyinfo
    labels = set(b["label"]) if b is not None and not b.empty else set()
    ev = dict(order=order, observe=float(res.get("compacted_observed_s") or p.get("observe_s", 0)))
    if order is None or host_kib is None or not {"fragmented", "compacted"} <= labels:
        return claim(f"reporting_order.after_compaction.{order}", "not_measurable", _COMPACTED, **ev)
    rep_frag = analysis.free_kib_at_least(rec, "fragmented", order)
    rep_comp = analysis.free_kib_at_least(rec, "compacted", order)
    gained = rep_comp - rep_frag
    least = THRESHOLDS["order_returned_min_kib"]
    verdict = "formed" if gained >= least else ("still_reporting" if host_kib >= least else "nothing")
    last = phases(rec)[-1]
    rate_before = (last["returned_kib"] or 0) / max(float(last["observed_s"] or 0), 1e-3)
    return claim(f"reporting_order.after_compaction.{order}", verdict, _COMPACTED, value=host_kib, unit="KiB",
                 rate_before=analysis.mib(max(rate_before, 0)),
                 rate_after=analysis.mib(max(host_kib, 0) / max(ev["observe"], 1e-3)),
                 gained=analysis.mib(max(gained, 0)), gained_kib=gained, rep_frag=analysis.mib(rep_frag),
                 rep_comp=analysis.mib(rep_comp), host=analysis.mib(max(host_kib, 0)), host_kib=host_kib, **ev)


_CMP = {
    "lower_returns_more": "**Side by side.** {source}, order {lo} handed **{lo_ret}** to the host in {lo_s:.0f} s "
                          "before any compaction, order {hi} **{hi_ret}** in {hi_s:.0f} s: the smaller reporting order reports free "
                          "holes that order {hi} can report only once they merge into whole {hi_block} blocks.",
    "about_the_same": "**Side by side.** {source}, order {lo} handed {lo_ret} in {lo_s:.0f} s and order {hi} "
                      "{hi_ret} in {hi_s:.0f} s to the host before compaction: no clear difference in this run (the holes were "
                      "too small, or too large, for the order to matter).",
    "not_comparable": "**Side by side.** These recordings cannot be compared: {why}.",
}


def compare(runs: Recording | Mapping[str, Recording]) -> Claim:
    """Order 5 against 9: which handed more to the host while fragmented. `runs`: one run watched at two
    orders (then_order), or two runs at one order each that fragmented the same way."""
    recs = _runs(runs)
    by_order = {ph["order"]: (ph, r) for r in recs for ph in phases(r)}
    orders = sorted(o for o in by_order if o is not None)
    why = ""
    if len(orders) < 2:
        why = "they do not run at two different orders (see each banner's page_reporting_order)"
    else:
        keeps = {by_order[o][1].meta.get("parameters", {}).get("keep_every", 3) for o in orders}
        if len(keeps) > 1:
            why = "they fragmented differently (keep_every " + ", ".join(map(str, sorted(keeps))) + ")"
    if why:
        return claim("reporting_order.compare", "not_comparable", _CMP, why=why)
    lo, hi = orders[0], orders[-1]
    ret = {o: by_order[o][0]["returned_kib"] for o in (lo, hi)}
    if None in ret.values():
        return claim("reporting_order.compare", "not_comparable", _CMP, why="one has no host-side view")
    first, last = phases(recs[0])[0]["order"], phases(recs[0])[-1]["order"]
    source = (f"From one fragmentation, watched at order {first} and then at order {last}" if len(recs) == 1
              else "From the same fragmentation in two runs")
    diff = ret[lo] - ret[hi]
    verdict = "lower_returns_more" if diff >= THRESHOLDS["order_returned_min_kib"] else "about_the_same"
    return claim("reporting_order.compare", verdict, _CMP, value=diff, unit="KiB", lo=lo, hi=hi, source=source,
                 lo_s=float(by_order[lo][0]["observed_s"] or 0), hi_s=float(by_order[hi][0]["observed_s"] or 0),
                 lo_ret=analysis.mib(max(ret[lo], 0)), hi_ret=analysis.mib(max(ret[hi], 0)), hi_block=_block(hi))


_RELEASED = {
    "returned": "**Order {order}, after the release**: when the fragmenter let go of its held pages ({held}), the "
                "holes merged: free blocks of order {order} or more grew by {formed} (the guest's buddyinfo) and "
                "**{host}** reached the host in the {dt:.0f} s the recording went on.",
    "still_reporting": "**Order {order}, after the release**: **{host}** reached the host in the {dt:.0f} s after the "
                       "fragmenter let go of its held pages ({held}), yet free blocks of order {order} or more grew by "
                       "only {formed} (the guest's buddyinfo): that is mostly reporting still handing over holes it "
                       "had not reached ({before} fell in the {before_s:.0f} s before the release); the release's part "
                       "of it is at most {formed}.",
    "returned_elsewhere": "**Order {order}, after the release**: **{host}** reached the host in the {dt:.0f} s after "
                          "the release, though free blocks of order {order} or more grew by only {formed} and nothing "
                          "was falling before it: memory freed elsewhere in the guest, not the fragmenter's.",
    "not_merged": "**Order {order}, after the release**: the fragmenter let go of its held pages ({held}), yet in the "
                  "{dt:.0f} s the recording went on free blocks of order {order} or more grew by only {formed} (the "
                  "guest's buddyinfo) and {host} reached the host: the freed pages had not joined the holes into "
                  "larger blocks. Where they waited (the per-CPU free lists take single freed pages first) is not "
                  "measured here.",
    "watch_too_short": "**Order {order}, after the release**: the holes merged (free blocks of order {order} or more "
                       "grew by {formed}), but the recording ended {dt:.0f} s after the release with next to nothing "
                       "reported ({host}). Reporting waits about 2 s after a free, then works in passes about 2 s "
                       "apart; a longer `tail_s` would show it.",
    "formed_not_reported": "**Order {order}, after the release**: the holes merged (free blocks of order {order} or "
                           "more grew by {formed}), yet in the {dt:.0f} s the recording went on next to nothing reached "
                           "the host ({host}).",
    "not_measurable": "**Order {order}, after the release**: this recording has no release step, no host-side view or "
                      "no record of the guest's free blocks.",
}

BEFORE_RELEASE_S = 4.0   # two reporting passes: a fall this close before the release is reporting still under way
FALLING_KIB = 8 * 1024   # ... where it is at least this (QEMU's own noise is ~2 MiB)


def after_release(rec: Recording) -> Claim:
    """What the release of the fragmenter's held pages (the `unfragment` step) did: whether the holes merged
    into blocks of the order (the samples' reportable_free_kib, from the guest's buddyinfo), and what reached the
    host, told apart from reporting that was still handing over earlier holes."""
    order = order_in_force(rec)
    t = rec.event_times("unfragment")
    held_kib = int(rec.meta.get("results", {}).get("fragment_held_pages", 0)) * provenance.page_kib(rec.meta)
    ev = dict(order=order, held=analysis.mib(held_kib) if held_kib >= 1024 else f"{held_kib} KiB")
    cols = rec.samples.columns
    if not t or any(c not in cols or rec.samples[c].isna().all() for c in ("host_vm_rss_kib", "reportable_free_kib")):
        return claim(f"reporting_order.after_release.{order}", "not_measurable", _RELEASED, **ev)
    end = float(rec.samples["t_s"].iloc[-1])
    host_kib = -analysis.change(rec, "host_vm_rss_kib", t[0] - 0.5, end)
    formed_kib = analysis.change(rec, "reportable_free_kib", t[0] - 0.5, end)
    before_kib = -analysis.change(rec, "host_vm_rss_kib", t[0] - BEFORE_RELEASE_S, t[0])
    dt, least = end - t[0], THRESHOLDS["order_returned_min_kib"]
    formed, returned = formed_kib >= least, host_kib >= least
    if formed:
        verdict = "returned" if returned else (
            "watch_too_short" if dt < THRESHOLDS["order_release_watch_s"] else "formed_not_reported")
    elif returned:
        verdict = "still_reporting" if before_kib >= FALLING_KIB else "returned_elsewhere"
    else:
        verdict = "not_merged"
    return claim(f"reporting_order.after_release.{order}", verdict, _RELEASED, value=host_kib, unit="KiB",
                 dt=dt, host=analysis.mib(host_kib if host_kib > 0 else 0), host_kib=host_kib,
                 formed=analysis.mib(max(formed_kib, 0)), formed_kib=formed_kib, before_s=BEFORE_RELEASE_S,
                 before=analysis.mib(max(before_kib, 0)), before_kib=before_kib, **ev)
