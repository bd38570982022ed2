"""Page reporting order 5 against 9 in the kit's VM: what reached the host (QEMU's RSS fell) from the
same fragmentation (pure). WSL chooses 5 (128 KiB) on Windows builds with the partition-teardown fix,
else 9 (2 MiB) (microsoft/WSL src/windows/service/exe/WslCoreVm.cpp:1452/1456 at 3e27a6a)."""
from __future__ import annotations

from typing import Mapping

from .. import analysis
from ..claims import THRESHOLDS, Claim, claim
from ...recording.recording import Recording


def order_of(rec: Recording) -> int | None:
    """The order the guest ran with (read from its sysfs), not the one asked for."""
    o = rec.meta.get("page_reporting_order")
    return int(o) if isinstance(o, int) or (isinstance(o, str) and o.isdigit()) else None


_HELD = {
    "returned": "**Order {order}** ({block}): while the fragmenter still held one page in {keep}, "
                "**{returned}** of the freed memory reached the host (QEMU's RSS fell) in {observe:g} s: the holes "
                "are larger than a reportable block.",
    "nothing": "**Order {order}** ({block}): while the fragmenter still held one page in {keep}, next to nothing "
               "reached the host ({returned}) in {observe:g} s: the holes are smaller than a reportable block.",
    "not_measurable": "**Order {order}**: this recording has no host-side view.",
}


def returned_while_fragmented(rec: Recording) -> Claim:
    res, p = rec.meta.get("results", {}), rec.meta.get("parameters", {})
    order = order_of(rec)
    kib = res.get("fragmented_returned_kib")
    ev = dict(order=order, block=analysis.mib(4 << order) if order is not None else "?",
              keep=p.get("keep_every", 3), observe=float(p.get("observe_s", 0)),
              returned=analysis.mib(kib) if kib is not None else "—")
    if kib is None:
        return claim(f"reporting_order.while_fragmented.{order}", "not_measurable", _HELD, **ev)
    verdict = "returned" if kib >= THRESHOLDS["order_returned_min_kib"] else "nothing"
    return claim(f"reporting_order.while_fragmented.{order}", verdict, _HELD, value=kib, unit="KiB", **ev)


_CMP = {
    "lower_returns_more": "**Side by side.** From the same fragmentation, order {lo} handed **{lo_ret}** to the host "
                          "before any compaction, order {hi} **{hi_ret}**: the smaller reporting order reports free "
                          "holes that order {hi} must wait for compaction to merge.",
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
                 lo_ret=analysis.mib(ret[lo]), hi_ret=analysis.mib(ret[hi]))
