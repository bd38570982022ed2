"""Reporting short of 100 %: did upstream's per-pass budget hold, from this run's own free lists?

mm/page_reporting.c walks each zone x order x migratetype free list once a pass, passes 2 s apart
(PAGE_REPORTING_DELAY), and stops a list after budget = DIV_ROUND_UP(free_area[order].nr_free,
PAGE_REPORTING_CAPACITY * 16) calls of up to PAGE_REPORTING_CAPACITY (32) blocks, plus one call for what
the previous list left in the scatterlist. /proc/buddyinfo gives nr_free per zone x order, not the split by
migratetype; the lists of one zone x order hand over at least min(nr_free, budget x 32) blocks a pass however
nr_free is split (a list below budget x 32 is emptied), so this counts that, without the extra call: a floor.
Reported blocks stay on the lists, so nr_free after the wait is what the budget was computed from, give or
take what was allocated or freed meanwhile. Pure: a Recording in, figures out.
"""
from __future__ import annotations

from typing import Any

from .. import analysis
from ...recording import provenance
from ...recording.recording import Recording
REPORT_CAPACITY = 32     # PAGE_REPORTING_CAPACITY: blocks handed to the device per call (mm/page_reporting.c)
BUDGET_DIVISOR = 16      # "a sixteenth of the current list plus one additional call"
PASS_DELAY_S = 2.0   # PAGE_REPORTING_DELAY: a pass runs 2 s after it is requested


def per_pass_kib(rec: Recording, label: str) -> tuple[float, dict[str, int]] | None:
    """(KiB one pass may hand over at least, {zone/order: blocks}) for the lists of buddyinfo snapshot `label`,
    one list per zone x order from the reporting order up; None without the snapshot or the order."""
    order, b = analysis.reporting_order(rec), rec.buddyinfo
    if order is None or b is None or b.empty or not (b["label"] == label).any():
        return None
    page_kib = provenance.page_kib(rec.meta)
    total, lists = 0.0, {}
    for (zone, k), n in b[(b["label"] == label) & (b["order"] >= order)].groupby(["zone", "order"])["free_blocks"].sum().items():
        n = int(n)
        if not n:
            continue
        calls = -(-n // (REPORT_CAPACITY * BUDGET_DIVISOR))
        total += min(n, calls * REPORT_CAPACITY) * (2 ** int(k)) * page_kib
        lists[f"{zone} order {int(k)}"] = n
    return total, lists


def held(rec: Recording, *, label: str, missing_kib: float, large_kib: float, watched_s: float
         ) -> tuple[str, dict[str, Any]]:
    """A clause saying whether the budget could have held reporting to what it was, and its figures
    (large_kib: free memory at or above the reporting order after the wait, which no pass can exceed)."""
    got = per_pass_kib(rec, label)
    if got is None or watched_s <= 0:
        return ("whether the per-pass budget held is not measured here (no `/proc/buddyinfo` snapshot after the wait)",
                {"budget_verdict": "not_measured"})
    per_pass, lists = got
    passes = int(watched_s // PASS_DELAY_S)
    floor = min(per_pass * passes, large_kib)
    evidence = {"budget_per_pass_kib": per_pass, "budget_passes": passes, "budget_floor_kib": floor,
                "budget_lists": lists}
    figures = (f"upstream's per-pass budget (`mm/page_reporting.c`: ⌈free blocks / 512⌉ calls of 32 blocks, plus one, "
               f"per zone × order × migratetype list), from the lists in `/proc/buddyinfo` after the wait, lets a pass "
               f"hand over at least **{analysis.mib(per_pass)}**, so at least {analysis.mib(floor)} in the {passes} "
               f"passes 2 s apart that fit in the {watched_s:.0f} s watched")
    if floor >= missing_kib:
        evidence["budget_verdict"] = "did_not_hold"
        return (f"{figures}, more than the {analysis.mib(missing_kib)} missing: that budget does not explain it, and "
                f"what held reporting back is not measured here"), evidence
    evidence["budget_verdict"] = "may_have_held"
    return (f"{figures}, less than the {analysis.mib(missing_kib)} missing: that budget may have held it back (the "
            f"split by migratetype, `/proc/pagetypeinfo`, which would settle it, is not recorded)"), evidence
