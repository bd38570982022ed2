"""What a compaction run showed (lab 03): Recording -> Claims, from /proc/buddyinfo snapshots and the
kernel's compaction counters (/proc/vmstat compact_*).

Free page reporting takes only free blocks of at least `page_reporting_order`. So the figures that
matter are, per snapshot, the free memory in blocks of at least that order ("reportable") and the free
memory in smaller blocks. A long-used guest may already hold most of its free memory in small blocks
before the fragmenter starts, and compaction may join nothing (no movable pages to move, or the freed
memory lands in blocks still below the reporting order): the verdicts say which, from the kernel's own
numbers, instead of assuming the textbook outcome.
"""
from __future__ import annotations

import math
from typing import Any

from .. import analysis
from ..claims import THRESHOLDS, Claim, claim, negligible, share_verdict
from ...recording.recording import Recording
from ...units import format_kib
from ...recording import provenance
from . import _host_now

DEFAULT_ORDER = 9  # the kernel's default, pageblock_order: 9 with 4 KiB pages on x86-64


def reporting_order(rec: Recording) -> tuple[int, bool]:
    """(the reporting order of the run, True if the run recorded it; else the default, assumed)."""
    order = analysis.reporting_order(rec)
    return (order, True) if order is not None else (DEFAULT_ORDER, False)


def order_claim(rec: Recording) -> Claim:
    order, known = reporting_order(rec)
    sentences = {
        "known": "This guest reports free blocks of order **{order}** and up ({block} and larger): the figures below "
                 "split free memory at that order.",
        "assumed": "This recording does not say which order its guest reports; the figures below assume the kernel's "
                   "default, order **{order}** ({block} blocks).",
    }
    page_kib = provenance.page_kib(rec.meta)
    c = claim("compaction.reporting_order", "known" if known else "assumed", sentences, value=order, unit="order",
              order=order, block=_size((2 ** order) * page_kib))
    return _host_now.with_outside_buddy(c, rec)


def _size(kib: float) -> str:
    return format_kib(kib, digits=None, smallest="KiB", largest="MiB")


def labels(rec: Recording) -> list[str]:
    return list(dict.fromkeys(rec.buddyinfo["label"])) if len(rec.buddyinfo) else []


def snapshot(rec: Recording, label: str, order: int) -> dict[str, float]:
    """Free memory (KiB) in all blocks, in blocks of at least `order`, below it, and the number of such blocks."""
    free = analysis.free_kib_at_least(rec, label, 0)
    big = analysis.free_kib_at_least(rec, label, order)
    near = analysis.free_kib_at_least(rec, label, max(order - 3, 0)) - big  # just below the order
    return {"free_kib": free, "big_kib": big, "small_kib": free - big, "near_kib": near,
            "big_blocks": analysis.blocks_at_least(rec, label, order)}


def snapshots_table(rec: Recording) -> tuple[list[tuple[str, ...]], tuple[str, ...]]:
    order, _ = reporting_order(rec)
    rows = []
    for label in labels(rec):
        s = snapshot(rec, label, order)
        rows.append((label, analysis.gib(s["free_kib"]), analysis.gib(s["big_kib"]), analysis.mib(s["small_kib"]),
                     f"{s['big_blocks']:,}"))
    return rows, ("snapshot", "free memory", f"in blocks of order ≥ {order} (reportable)",
                  "free, but in smaller blocks", f"blocks of order ≥ {order}")


def _freed_kib(rec: Recording) -> float:
    """Memory the fragmenter freed (KiB): what the run says, else its size minus what it kept."""
    res = rec.meta.get("results") or {}
    page_kib = provenance.page_kib(rec.meta)
    if res.get("fragment_freed_pages"):
        return float(res["fragment_freed_pages"]) * page_kib
    size = res.get("size_bytes") or (rec.meta.get("parameters") or {}).get("size_bytes")
    held = res.get("fragment_held_pages")
    if size and held is not None:
        return float(size) / 1024 - float(held) * page_kib
    return math.nan


def fragmented(rec: Recording) -> Claim:
    """Did the fragmenter leave its freed memory in blocks below the reporting order?"""
    order, _ = reporting_order(rec)
    sentences = {
        "fragmented": "**Fragmented.** The fragmenter freed {freed}, and free memory in blocks *below* order {order} "
                      "rose by **{small_rise}** while reportable free memory (blocks of order {order} and up) changed by "
                      "{big_change}: the guest has that memory free, but free page reporting cannot see it.{where}"
                      "{long_used}",
        "partly": "**Partly fragmented.** The fragmenter freed {freed}; free memory in blocks below order {order} rose "
                  "by {small_rise} ({value:.0%} of it), and reportable free memory changed by {big_change}.{where}"
                  "{long_used}",
        "already": "**Already fragmented.** Before the fragmenter ran, **{small_before}** of this guest's free memory "
                   "already sat in blocks below order {order} (a guest that has been in use a long time), and the "
                   "fragmenter's {freed} {added}.",
        "not_fragmented": "**Not fragmented.** Free memory in blocks below order {order} changed by only {small_rise} "
                          "although the fragmenter freed {freed}: its freed pages merged into large blocks at once "
                          "(the pages it kept did not pin them), so this run shows little fragmentation.",
        "not_run": "This run has no *before* and *fragmented* buddyinfo snapshots.",
    }
    have = labels(rec)
    if "fragmented" not in have or not have:
        return claim("compaction.fragmented", "not_run", sentences, unit="share")
    b, f = snapshot(rec, have[0], order), snapshot(rec, "fragmented", order)
    freed = _freed_kib(rec)
    rise = f["small_kib"] - b["small_kib"]
    share = rise / freed if freed and not math.isnan(freed) else math.nan
    v = share_verdict(share)
    if v in ("nearly_all", "most"):
        verdict = "fragmented"
    elif v == "some":
        verdict = "partly"
    elif b["small_kib"] >= THRESHOLDS["share_most"] * (freed if not math.isnan(freed) else 0) and b["small_kib"] > 0:
        verdict = "already"
    else:
        verdict = "not_fragmented"
    where, accounted = _where_reportable_went(rec, have[0], f["big_kib"] - b["big_kib"], rise)
    long_used = ""
    if verdict in ("fragmented", "partly") and not math.isnan(freed) and \
            b["small_kib"] >= THRESHOLDS["share_most"] * freed:
        # the guest's own small blocks, there before the fragmenter: a guest in use a long time
        long_used = (f" Before it ran, **{analysis.mib(b['small_kib'])}** of this guest's free memory already sat in "
                     f"blocks below order {order} ('{have[0]}'), as on a guest in use a long time.")
    return claim("compaction.fragmented", verdict, sentences, value=share, unit="share", order=order, where=where,
                 long_used=long_used,
                 **accounted,
                 freed=analysis.mib(freed) if not math.isnan(freed) else "an unknown amount",
                 small_rise=analysis.mib(rise), big_change=analysis.signed_mib(f["big_kib"] - b["big_kib"]),
                 added=(f"added only {analysis.mib(rise)} to it" if rise >= 0 else
                        f"did not add to it: it fell by {analysis.mib(-rise)} meanwhile, as other programs took "
                        f"free memory or freed pages merged"),
                 small_before=analysis.mib(b["small_kib"]), small_rise_kib=rise, freed_kib=freed,
                 small_before_kib=b["small_kib"], big_change_kib=f["big_kib"] - b["big_kib"])


def _where_reportable_went(rec: Recording, before: str, big_change_kib: float,
                           small_rise_kib: float) -> tuple[str, dict[str, Any]]:
    """Where the reportable free memory the fragmenting took went, where the run read the per-CPU lists
    at both snapshots: the fragmenter's kept pages, its holes, the per-CPU lists, and the rest."""
    from ._stall import per_cpu_free_kib
    res = rec.meta.get("results") or {}
    pcp_before, pcp_after = per_cpu_free_kib(rec, before), per_cpu_free_kib(rec, "fragmented")
    held = res.get("fragment_held_pages")
    if big_change_kib >= 0 or pcp_before is None or pcp_after is None or held is None:
        return "", {}
    held_kib = float(held) * provenance.page_kib(rec.meta)
    pcp_rise = pcp_after - pcp_before
    rest = -big_change_kib - held_kib - small_rise_kib - pcp_rise
    pcp = f"grew by {analysis.mib(pcp_rise)}" if pcp_rise >= 0 else f"shrank by {analysis.mib(-pcp_rise)}"
    if negligible(rest, -big_change_kib):
        tail = ""
    elif rest > 0:
        tail = f"; the remaining {analysis.mib(rest)} went elsewhere in the guest (cache, other programs, the kernel)"
    else:
        tail = f"; the rest of the guest freed {analysis.mib(-rest)} meanwhile"
    return (f" Of the {analysis.mib(-big_change_kib)} of reportable free memory that went, the fragmenter's kept pages "
            f"hold {analysis.mib(held_kib)}, the holes it left {analysis.mib(small_rise_kib)}, and the per-CPU page lists "
            f"(`/proc/zoneinfo`, where a freed page goes first and counts in no buddy list) {pcp}{tail}.",
            {"held_kib": held_kib, "per_cpu_rise_kib": pcp_rise, "unaccounted_kib": rest})


def _counter_change(rec: Recording, column: str, t0: float | None) -> float | None:
    if t0 is None or column not in rec.samples.columns or not rec.samples[column].notna().any():
        return None
    later = rec.events[rec.events["t_s"] > t0]["t_s"]
    t1 = float(later.min()) if len(later) else float(rec.samples["t_s"].iloc[-1])
    return analysis.change(rec, column, t0, t1)


def _scan(rec: Recording, t_compact: float | None) -> dict[str, Any]:
    """What a `compact_memory` write itself moves: the migrate and free scanners' page counts (/proc/vmstat).
    compact_success/compact_fail count only compaction for an allocation (mm/page_alloc.c), never this write."""
    migrate = _counter_change(rec, "compact_migrate_scanned_pages", t_compact)
    free = _counter_change(rec, "compact_free_scanned_pages", t_compact)
    isolated = _counter_change(rec, "compact_isolated_pages", t_compact)  # recorded since 2026-12-06
    words = {k: f"{v:,.0f}" if v is not None else "an unknown number of" for k, v in (("m", migrate), ("f", free))}
    took = f" (it took {isolated:,.0f}, to move or as targets)" if isolated is not None else ""
    return {"scan": f"`compact_memory` scanned {words['m']} pages for pages to move and {words['f']} for free "
                    f"pages to move them into{took}",
            "migrate_scanned_pages": migrate, "free_scanned_pages": free, "isolated_pages": isolated}


def _kept_pattern(rec: Recording) -> int | None:
    """The fragmenter's period: it kept one page in every N (N from its freed and kept pages), None if unknown."""
    res = rec.meta.get("results") or {}
    held, freed = res.get("fragment_held_pages"), res.get("fragment_freed_pages")
    if not held or freed is None:
        return None
    return round((float(freed) + float(held)) / float(held))


def _held_moved(rec: Recording, order: int) -> tuple[str, dict[str, Any]]:
    """What compaction did to the fragmenter's own kept pages (their page frames before and after, read from
    its /proc/<pid>/pagemap), and, for a period-2 pattern, why it cannot free all their blocks."""
    res = rec.meta.get("results") or {}
    held, moved, vacated = (res.get(k) for k in ("fragment_held_pages", "compact_moved_held_pages",
                                                 "compact_vacated_blocks"))
    if moved is None or held is None:
        text = (" Which of the fragmenter's kept pages it moved is not measured in this run (a run as root reads "
                "their page frames from the fragmenter's `/proc/<pid>/pagemap`).")
    else:
        text = (f" It moved {moved:,} of the fragmenter's {held:,} kept pages (movable anonymous pages) and emptied "
                f"{vacated or 0:,} block{'' if vacated == 1 else 's'} of order {order} of them.")
    if _kept_pattern(rec) == 2:
        text += (" The fragmenter kept every other page: compaction moves pages it finds from the zone's bottom into "
                 "free pages it finds from the top until the two scans meet, and the kept pages of each block it "
                 "empties fill the holes of another such block.")
    return text, {"held_pages": held, "moved_held_pages": moved, "vacated_blocks": vacated,
                  "kept_one_in": _kept_pattern(rec)}


def compacted(rec: Recording) -> Claim:
    """What compact_memory did to reportable free memory, and why where it did little."""
    order, _ = reporting_order(rec)
    sentences = {
        "joined": "**Compacted.** {scan}, and reportable free memory (blocks of order {order} and up) grew by "
                  "**{big_rise}**: {value:.0%} of the {small_before} that sat in smaller blocks after "
                  "fragmenting{was_fragmenter}. Free memory joined into blocks the host can take.",
        "joined_most": "**Compacted, mostly.** {scan}, and reportable free memory (blocks of order {order} and up) "
                       "grew by **{big_rise}**: {value:.0%} of the {small_before} that sat in smaller blocks after "
                       "fragmenting{was_fragmenter}; {left} stayed in smaller blocks.{held_moved}",
        "some": "**Compacted, partly.** {scan}; reportable free memory grew by {big_rise}, {value:.0%} of the "
                "{small_before} in smaller blocks.{held_moved}",
        "below_order": "**Compaction joined memory, but below the reporting order.** {scan}; reportable free memory "
                       "changed by only {big_rise}, while free memory in blocks of orders {near_from} to "
                       "{order_below} changed by **{near_change}**: larger than before, still too small for a guest "
                       "that reports order {order} and up.",
        "freed_nothing": "**Compaction freed nothing reportable.** {scan}, yet reportable free memory changed by "
                         "{big_rise} and blocks just below order {order} by {near_change}.{held_moved}",
        "did_not_run": "**Compaction did not run.** Reportable free memory changed by {big_rise} and the kernel's "
                       "counter of pages scanned for migration did not move: nothing was compacted.",
        "not_run": "This run has no *fragmented* and *compacted* buddyinfo snapshots.",
    }
    have = labels(rec)
    if "fragmented" not in have or "compacted" not in have:
        return claim("compaction.compacted", "not_run", sentences, unit="share")
    f, c = snapshot(rec, "fragmented", order), snapshot(rec, "compacted", order)
    t_compact = next(iter(rec.event_times("compact_memory") or rec.event_times("compact")), None)
    scan = _scan(rec, t_compact)
    scanned = scan["migrate_scanned_pages"]
    big_rise = c["big_kib"] - f["big_kib"]
    near_change = c["near_kib"] - f["near_kib"]
    base = f["small_kib"]
    share = big_rise / base if base > 0 else math.nan
    v = share_verdict(share)
    if v == "nearly_all":
        verdict = "joined"
    elif v == "most":  # "most", not "nearly all": the rest still sat in smaller blocks
        verdict = "joined_most"
    elif v == "some":
        verdict = "some"
    elif scanned is not None and negligible(scanned, 1) and scanned == 0:
        verdict = "did_not_run"
    elif near_change > 0 and not negligible(near_change, base):
        verdict = "below_order"
    else:
        verdict = "freed_nothing"
    frag_rise = fragmented(rec).evidence.get("small_rise_kib")
    held_moved, held_ev = _held_moved(rec, order)
    return claim("compaction.compacted", verdict, sentences, value=share, unit="share", order=order,
                 order_below=order - 1, near_from=max(order - 3, 0), held_moved=held_moved, **held_ev, **scan,
                 big_rise=analysis.signed_mib(big_rise), near_change=analysis.signed_mib(near_change), small_before=analysis.mib(base),
                 was_fragmenter=(f" ({analysis.mib(frag_rise)} of it left there by the fragmenter)"
                                 if frag_rise and frag_rise > 0 else ""),
                 left=analysis.mib(c["small_kib"]), small_after_kib=c["small_kib"],
                 big_rise_kib=big_rise, near_change_kib=near_change, small_before_kib=base)


def host_windows(rec: Recording) -> list[dict[str, Any]]:
    """Per step (fragment, compaction, release): how much the host got back in the window after it (KiB)."""
    if analysis.has(rec, "host_reported_kib"):
        col, sign = "host_reported_kib", 1
    elif analysis.has(rec, "host_vm_rss_kib"):
        col, sign = "host_vm_rss_kib", -1   # the VM's resident memory falls as the host takes pages back
    else:
        return []
    kinds = [k for k in ("fragment", "compact_memory", "compact", "release", "unfragment") if rec.event_times(k)]
    steps = sorted((rec.event_times(k)[0], k) for k in kinds)
    end = float(rec.samples["t_s"].iloc[-1])
    out = []
    res = rec.meta.get("results") or {}
    for (t0, kind), t1 in zip(steps, [t for t, _ in steps[1:]] + [end]):
        if kind == "fragment":  # "while held" starts once the fragmenter has touched and freed its memory
            t0 = min(t0 + float(res.get("fragment_s") or 0.0), t1)
        out.append({"step": kind, "t0_s": t0, "length_s": t1 - t0,
                    "returned_kib": sign * analysis.change(rec, col, t0, t1), "column": col})
    return out


def _first_report(rec: Recording, window: dict[str, Any]) -> tuple[float, float] | None:
    """(seconds after the window's start, KiB) of the first report to the host in a window, None if none."""
    col, t0 = window["column"], window["t0_s"]
    s = rec.samples[rec.samples["t_s"] <= t0 + window["length_s"]][["t_s", col]].dropna()
    s = s[s["t_s"] >= s["t_s"][s["t_s"] <= t0].max()]  # from the last sample before the window: its first rise counts
    rises = s[col].diff() * (1 if col == "host_reported_kib" else -1)
    hit = rises[rises > 0]
    return (float(s.loc[hit.index[0], "t_s"]) - t0, float(hit.iloc[0])) if len(hit) else None


def _elsewhere(rec: Recording, frag: Claim) -> str:
    """Where reportable memory may have come from while the fragmenter's own freed memory sat below the order:
    the run's figures if they show one, else that it was not measured."""
    rest = frag.evidence.get("unaccounted_kib")
    if rest is not None and rest < 0 and not negligible(rest, frag.evidence.get("freed_kib") or 1):
        return f"the rest of the guest freed {analysis.mib(-rest)} meanwhile (the first table's accounting)"
    if any("buddy allocator" in str(n) for n in rec.meta.get("notices") or []):
        return "the kernel brought more memory under the buddy allocator during this run (the notice above)"
    return ("which memory it was is not measured here: `reported_kib` counts every block the guest reports, "
            "not only the fragmenter's")


def _small_words(small_rise_kib: float, freed_kib: float) -> str:
    """How much of what the fragmenter freed sat below the order: never more of it than it freed (a rise of
    small-block memory beyond that came from the rest of the guest)."""
    if freed_kib and small_rise_kib >= freed_kib:
        return (f"free memory in blocks below the order rose by {analysis.mib(small_rise_kib)}, more than the "
                f"{analysis.mib(freed_kib)} it freed, so all of that sat")
    return f"{analysis.mib(small_rise_kib)} of the {analysis.mib(freed_kib)} it freed sat"


def host_reporting(rec: Recording) -> Claim:
    """When did the host get memory back: while fragmented, after compaction, after release, and what of
    it the run's figures let us attribute to the fragmenter or to compaction."""
    order, _ = reporting_order(rec)
    sentences = {
        "after_compaction": "The host got {held} while the memory was fragmented, **{compact}** in the "
                            "{compact_s:.0f} s after `compact_memory` and {release} after the fragmenter released "
                            "the rest. Compaction added {big_rise} of free blocks of order {order} and up (the "
                            "snapshots above){excess}{early}.{short}",
        "after_compaction_elsewhere": "The host got {held} while the memory was fragmented, **{compact}** in the "
                                      "{compact_s:.0f} s after `compact_memory` and {release} after the fragmenter "
                                      "released the rest. Compaction added only {big_rise} of free blocks of order "
                                      "{order} and up, so most of it was not compaction's doing: {source}.{short}",
        "after_release": "The host got {held} while the memory was fragmented and {compact} after compaction, but "
                         "**{release}** once the fragmenter released the pages it kept: here the free blocks of "
                         "order {order} formed when the pinning pages went, not by compaction.",
        "while_fragmented": "The host got **{held}** while the memory was still fragmented, {compact} after compaction "
                            "and {release} after release: the fragmenter's holes were large enough to report at order "
                            "{order} on this guest.{short}",
        "while_fragmented_elsewhere": "The host got **{held}** while the memory was still fragmented, {compact} after "
                                      "compaction and {release} after release. Not from the fragmenter's holes: "
                                      "{small_words} below order {order} (above); "
                                      "{source}.{short}",
        "little": "The host got little back in any window ({held} fragmented, {compact} after compaction, {release} "
                  "after release, of {freed} freed): reporting stalled on this guest, with its free memory in blocks "
                  "below order {order} (the snapshots above) or taken by other programs at once.{short}",
        "no_host_view": "This recording has no host-side view, so when the host got memory back is not measured here.",
    }
    windows = {w["step"].replace("unfragment", "release").replace("compact_memory", "compact"): w
               for w in host_windows(rec)}
    if not windows:
        return claim("compaction.host_reporting", "no_host_view", sentences, unit="share")
    freed = _freed_kib(rec)
    got = {k: windows[k]["returned_kib"] if k in windows else 0.0 for k in ("fragment", "compact", "release")}
    total = sum(max(v, 0.0) for v in got.values())
    whole = freed if freed and not math.isnan(freed) else total
    share = total / whole if whole else math.nan
    some = THRESHOLDS["share_some"] * whole
    frag = fragmented(rec)
    comp = compacted(rec)
    big_rise = comp.evidence.get("big_rise_kib") or 0.0
    if share_verdict(share) == "little" or total <= 0:
        verdict = "little"
    elif got["fragment"] >= some:
        # the fragmenter's own freed memory below the order cannot be what the host got
        verdict = "while_fragmented_elsewhere" if frag.verdict in ("fragmented", "already") else "while_fragmented"
    elif got["compact"] >= some:
        verdict = "after_compaction" if big_rise >= got["compact"] / 2 else "after_compaction_elsewhere"
    else:
        verdict = "after_release"
    first = _first_report(rec, windows["compact"]) if "compact" in windows else None
    compact_s = float((rec.meta.get("results") or {}).get("compact_memory_s") or 0.0)
    early = ""
    if first is not None and first[0] < _REPORT_DELAY_S:
        early = (f"; the first {analysis.mib(first[1])} came only {first[0]:.2f} s after it started"
                 f"{' (it ran ' + format(compact_s * 1000, '.0f') + ' ms)' if compact_s else ''}, too soon to tell "
                 f"its blocks from others")
    excess = (f": no more than that can be its doing; the other {analysis.mib(got['compact'] - big_rise)} were "
              f"free blocks it did not make" if got["compact"] > big_rise * THRESHOLDS["same_ratio"] else "")
    c = claim("compaction.host_reporting", verdict, sentences, value=share, unit="share", order=order,
              held=analysis.mib(max(got["fragment"], 0)), compact=analysis.mib(max(got["compact"], 0)),
              release=analysis.mib(max(got["release"], 0)), freed=analysis.mib(whole),
              compact_s=windows.get("compact", {}).get("length_s", 0.0), big_rise=analysis.signed_mib(big_rise),
              small_words=_small_words(max(frag.evidence.get("small_rise_kib") or 0.0, 0.0), whole),
              source=_elsewhere(rec, frag), excess=excess, early=early,
              first_report_after_compact_s=first[0] if first else None,
              first_report_kib=first[1] if first else None, big_rise_kib=big_rise,
              fragment_kib=got["fragment"], compact_kib=got["compact"], release_kib=got["release"],
              freed_kib=whole, short=_short_release(windows.get("release")))
    counted = [w for w in windows.values() if w["column"] == "host_reported_kib"]
    frag_map = [m.t_s for m in rec.physmaps if m.label == "fragmented"]
    if not counted or not frag_map:  # the kit's VM: the host's figure is QEMU's RSS, not a counter
        return c
    return _host_now.with_host_now(c, rec, frag_map[0], float(rec.samples["t_s"].iloc[-1]))


# The kernel reports a freed block no sooner than this after the free that asked for a pass (mm/page_reporting.c,
# PAGE_REPORTING_DELAY = 2 * HZ): a report sooner than this after compaction began came from a pass already due.
_REPORT_DELAY_S = 2.0


def _short_release(window: dict[str, Any] | None) -> str:
    """Where the watch after the release ended sooner than the kernel's reporting delay: its figure cannot show
    what the release handed over, so say so (else nothing)."""
    if window is None or window["length_s"] >= _REPORT_DELAY_S:
        return ""
    return (f" The watch after the release lasted only {window['length_s']:.1f} s, less than the "
            f"{_REPORT_DELAY_S:.0f} s the kernel waits before reporting a freed block: what the release handed "
            f"the host is not measured here.")


def all_claims(rec: Recording) -> dict[str, Claim]:
    return {"order": order_claim(rec), "fragmented": fragmented(rec), "compacted": compacted(rec),
            "host": host_reporting(rec)}
