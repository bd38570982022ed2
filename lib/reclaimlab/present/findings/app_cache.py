"""Findings of `app-cache`: what `free -h` said beside what the host held, for a real application.

The blog's picture (a VM at about 2 GB on the host while `free` says about 50 MB is in use) from a run in
which a small SQLite app built and queried a database. At each map of physical memory the run took
(before the app, once it was done, after drop_caches=1) this module computes:

  * `free`'s columns from /proc/meminfo, as procps-ng computes them: buff/cache = Buffers + Cached +
    SReclaimable; used = MemTotal - MemAvailable since procps-ng 4.0.1 (this kit's test guest has 4.0.2),
    and MemTotal - MemFree - buff/cache before it (WSL's Ubuntu of 2019 had 3.3);
  * the host's view: the guest's memory the host still backs = MemTotal - the free blocks reported to it
    NOW (the map's FREE_REPORTED pages; `host_reported_kib` is a running total since boot, not this);
  * the rest of the difference: free memory not handed back, most of it in blocks smaller than the
    reporting order (lab 03's subject), which the host keeps backing;
  * the app's own resident memory (VmRSS) and its database's pages in the page cache (mincore).

Identity (older `free`'s used): MemTotal - reported = used_old + buff/cache + (MemFree - reported).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import analysis
from ..claims import Claim, claim
from ...recording.recording import Recording
from . import _host_now

STEPS = ("before", "queried", "dropped")
STEP_LABELS = {"before": "before the app", "queried": "app done (built, queried)", "dropped": "after drop_caches=1"}
NO_PRESSURE_SHARE = 0.20     # MemAvailable above this share of MemTotal all run long: no memory pressure
APP_SMALL_SHARE = 0.10       # the app's RSS below this share of its database's cached pages: "small"
HOST_GOT_MOST_SHARE = 0.5    # the host view fell by at least this share of what the drop freed
OUTSIDE_WORTH_KIB = 1024 * 1024  # MemFree outside the buddy and per-CPU lists worth a sentence (upstream: ~0)


def free_columns(total_kib: float, free_kib: float, buffers_kib: float, cached_kib: float,
                 sreclaimable_kib: float, available_kib: float) -> dict[str, float]:
    """`free`'s columns (KiB) from /proc/meminfo fields, as procps-ng computes them (pure).

    used: procps-ng >= 4.0.1, MemTotal - MemAvailable (MemTotal - MemFree where that is negative);
    used_old: procps-ng 3.3, MemTotal - MemFree - Buffers - Cached - SReclaimable."""
    buff_cache = buffers_kib + cached_kib + sreclaimable_kib
    used = total_kib - available_kib
    if used < 0:
        used = total_kib - free_kib
    used_old = total_kib - free_kib - buff_cache
    if used_old < 0:
        used_old = total_kib - free_kib
    return {"total": total_kib, "used": used, "used_old": used_old, "free": free_kib, "buff_cache": buff_cache,
            "available": available_kib}


@dataclass(frozen=True)
class View:
    """`free`'s columns and the host's view at one step of the run (KiB; None where not measured)."""

    step: str
    t_s: float
    total_kib: float
    used_kib: float
    used_old_kib: float
    buff_cache_kib: float
    available_kib: float
    free_kib: float
    host_held_kib: float | None          # MemTotal - free blocks reported now (the map)
    free_too_small_kib: float | None     # free, not reported, in blocks below the reporting order
    app_rss_kib: float | None
    db_cached_kib: float | None
    reporting_order: int | None
    outside_buddy_kib: float | None = None  # MemFree in neither the buddy nor the per-CPU lists (the map)

    @property
    def free_unreported_kib(self) -> float | None:
        return None if self.host_held_kib is None else self.free_kib - (self.total_kib - self.host_held_kib)


def _value(rec: Recording, column: str, t_s: float) -> float | None:
    v = analysis.value_at(rec, column, t_s)
    return None if math.isnan(v) else v


def _order(rec: Recording) -> int | None:
    order = (rec.meta.get("guest_info") or {}).get("page_reporting_order") if isinstance(
        rec.meta.get("guest_info"), dict) else None
    order = order if order is not None else rec.meta.get("page_reporting_order")
    return order if isinstance(order, int) and not isinstance(order, bool) else None


def _step_times(rec: Recording) -> dict[str, tuple[float, float, object]]:
    """{step: (t_s, read_s, map snapshot or None)}: the maps where the run took them, else (not root, a map
    unreadable) the events' times: before = the build's start, queried = the drop, dropped = the end."""
    maps = {m.label: m for m in rec.physmaps}
    events = {"before": rec.event_times("build_db"), "queried": rec.event_times("drop_caches"),
              "dropped": rec.event_times("end")}
    out = {}
    for step in STEPS:
        m = maps.get(step)
        if m is not None:
            out[step] = (m.t_s, m.read_s, m.snapshot)
        elif events[step] and not rec.physmaps:
            out[step] = (events[step][0] - 1e-6, 0.0, None)
    return out


def _outside(snap) -> float | None:
    """MemFree outside the buddy and per-CPU lists at a map; a few hundred MiB below zero is the lists moving
    while the map is read (MemFree is read first), so it shows as 0."""
    value = None if snap is None else snap.outside_buddy_kib
    return None if value is None else float(max(value, 0))


def views(rec: Recording) -> dict[str, View]:
    """{step: View} for the steps the run reached (before, queried, dropped); the host's side only where a
    map of physical memory was taken."""
    order = _order(rec)
    cut = order if order is not None else 9
    out = {}
    for step, (t, read_s, snap) in _step_times(rec).items():
        # meminfo from the sample just before the map's read began; MemFree from the map's own read
        mem_free = snap.memfree_kib if snap is not None and snap.memfree_kib is not None else _value(rec, "mem_free_kib", t)
        cols = free_columns(*(x or 0.0 for x in (_value(rec, "mem_total_kib", t), mem_free,
                                                 _value(rec, "buffers_kib", t), _value(rec, "cached_kib", t),
                                                 _value(rec, "slab_reclaimable_kib", t),
                                                 _value(rec, "mem_available_kib", t))))
        held = small = None
        if snap is not None:
            held = cols["total"] - snap.free_reported_kib
            small = float(sum(kib for k, kib in snap.free_unreported_kib_by_order().items() if k < cut))
        out[step] = View(step, t, cols["total"], cols["used"], cols["used_old"], cols["buff_cache"],
                         cols["available"], cols["free"], held, small, _value(rec, "workload_rss_kib", t + read_s),
                         _value(rec, "workload_file_resident_kib", t), order,
                         _outside(snap))
    return out


def _mib(kib: float | None) -> str:
    return "—" if kib is None or math.isnan(kib) else analysis.mib(kib)


def free_table(rec: Recording) -> tuple[list[tuple[str, ...]], tuple[str, ...]]:
    """Rows "what `free -h` said vs what the host held" at each mapped step, and the header."""
    v = views(rec)
    steps = [s for s in STEPS if s in v]
    rows = [
        ("free: used (total − available)", *(_mib(v[s].used_kib) for s in steps)),
        ("free: buff/cache", *(_mib(v[s].buff_cache_kib) for s in steps)),
        ("free: available", *(_mib(v[s].available_kib) for s in steps)),
        ("host held, at most (MemTotal − free blocks reported now)", *(_mib(v[s].host_held_kib) for s in steps)),
        ("… of it free, in blocks too small to report", *(_mib(v[s].free_too_small_kib) for s in steps)),
        ("… of it free, outside the buddy and per-CPU lists", *(_mib(v[s].outside_buddy_kib) for s in steps)),
        ("our app's own memory (its RSS)", *(_mib(v[s].app_rss_kib) for s in steps)),
        ("our database in the page cache (mincore)", *(_mib(v[s].db_cached_kib) for s in steps)),
    ]
    return rows, ("whole guest unless “our”", *(STEP_LABELS[s] for s in steps))


def picture(rec: Recording) -> Claim:
    """Once the app was done: the host held X while `free` said Y used; what the difference was."""
    sentences = {
        "cache_most": "Once the app was done the host held up to **{held}** of this guest while `free` said **{used}** "
                      "used. The page cache (`buff/cache` **{cache}**) was most of the difference; the rest, **{small}**, "
                      "was free memory in blocks too small to hand back (lab 03).{outside}",
        "small_blocks_most": "Once the app was done the host held up to **{held}** of this guest while `free` said "
                             "**{used}** used. The page cache (`buff/cache` **{cache}**) was part of the difference; "
                             "more of it, **{small}**, was free memory in blocks too small to hand back (fragmented, "
                             "lab 03).{outside}",
        "no_host_view": "This recording has no map of physical memory (not root, or an older recording), so the host's "
                        "side is unknown; `free` said **{used}** used and **{cache}** buff/cache.",
        "not_run": "This run has no step after the app was done.",
    }
    v = views(rec).get("queried")
    if v is None:
        return claim("app_cache.picture", "not_run", sentences, unit="KiB")
    fig = dict(used=_mib(v.used_kib), cache=_mib(v.buff_cache_kib), used_kib=v.used_kib, cache_kib=v.buff_cache_kib)
    if v.host_held_kib is None:
        return claim("app_cache.picture", "no_host_view", sentences, unit="KiB", **fig)
    small = v.free_too_small_kib or 0.0
    outside = v.outside_buddy_kib or 0.0
    # "most"/"part" weigh cache against small blocks: memory outside the lists is said apart, with its own figure
    verdict = "cache_most" if v.buff_cache_kib >= small else "small_blocks_most"
    outside_words = (f" And **{_mib(outside)}** that MemFree counted sat outside the buddy and per-CPU lists (the map), "
                     f"never reported, {_host_now.why_outside(rec)}. Whether the host backs that memory at all is not "
                     f"measured here either, so {_mib(v.host_held_kib)} "
                     f"is an upper bound."
                     if outside >= OUTSIDE_WORTH_KIB else "")
    return claim("app_cache.picture", verdict, sentences, value=v.host_held_kib - v.used_kib, unit="KiB",
                 held=_mib(v.host_held_kib), small=_mib(small), held_kib=v.host_held_kib, small_kib=small,
                 outside=outside_words, outside_buddy_kib=v.outside_buddy_kib, **fig)


def app_vs_cache(rec: Recording) -> Claim:
    """The app's own memory beside its database's pages in the page cache."""
    sentences = {
        "app_small": "Our SQLite app used **{rss}** of memory itself (its RSS) while **{db}** of its {size} database "
                     "sat in the page cache: in `free` that is `buff/cache`, not `used`.",
        "app_large": "Our SQLite app used **{rss}** itself (its RSS), not small beside the **{db}** of its database in "
                     "the page cache: this run does not show the blog's small app.",
        "not_measurable": "This recording lacks the app's RSS or its database's resident pages.",
    }
    v = views(rec).get("queried")
    size = rec.meta.get("results", {}).get("db_bytes")
    if v is None or v.app_rss_kib is None or not v.db_cached_kib:
        return claim("app_cache.app_vs_cache", "not_measurable", sentences, unit="ratio")
    ratio = v.app_rss_kib / v.db_cached_kib
    return claim("app_cache.app_vs_cache", "app_small" if ratio < APP_SMALL_SHARE else "app_large", sentences,
                 value=ratio, unit="ratio", rss=_mib(v.app_rss_kib), db=_mib(v.db_cached_kib),
                 size=_mib(size / 1024) if isinstance(size, (int, float)) else "", rss_kib=v.app_rss_kib,
                 db_kib=v.db_cached_kib)


def no_reason_to_drop(rec: Recording) -> Claim:
    """Why the guest kept the cache: the lowest MemAvailable of the run, as a share of MemTotal."""
    sentences = {
        "no_pressure": "The guest had no reason to drop the cache: `available` never fell below **{low}** "
                       "({share:.0%} of {total}). The kernel reclaims cache only when free memory runs short.",
        "pressure": "`available` fell to **{low}** ({share:.0%} of {total}): this guest was short of memory, and "
                    "the kernel may have reclaimed some cache on its own during the run.",
        "not_measurable": "This recording lacks MemAvailable.",
    }
    s = rec.samples
    if "mem_available_kib" not in s.columns or "mem_total_kib" not in s.columns or s["mem_available_kib"].isna().all():
        return claim("app_cache.no_reason_to_drop", "not_measurable", sentences, unit="share")
    low = float(s["mem_available_kib"].min())
    total = float(s["mem_total_kib"].max())
    share = low / total
    return claim("app_cache.no_reason_to_drop", "no_pressure" if share >= NO_PRESSURE_SHARE else "pressure",
                 sentences, value=share, unit="share", low=_mib(low), total=_mib(total), share=share, low_kib=low)


def after_drop(rec: Recording) -> Claim:
    """What drop_caches=1 freed of buff/cache, and how much of it the host got back by the last map."""
    sentences = {
        "host_got_most": "`drop_caches=1` freed **{freed}** of buff/cache; {after_s:.0f} s later the host held "
                         "**{back}** less.",
        "host_got_some": "`drop_caches=1` freed **{freed}** of buff/cache; {after_s:.0f} s later the host held only "
                         "**{back}** less: free memory in blocks too small to report grew by **{small}** (lab 03).",
        "host_got_none": "`drop_caches=1` freed **{freed}** of buff/cache, yet {after_s:.0f} s later the host held "
                         "no less ({back}); free memory in blocks too small to report grew by **{small}** (lab 03).",
        "no_host_view": "`drop_caches=1` freed **{freed}** of buff/cache; this recording has no host view.",
        "not_run": "This run has no map after `drop_caches=1`.",
    }
    v = views(rec)
    a, b = v.get("queried"), v.get("dropped")
    if a is None or b is None:
        return claim("app_cache.after_drop", "not_run", sentences, unit="KiB")
    freed = a.buff_cache_kib - b.buff_cache_kib
    fig = dict(freed=_mib(freed), freed_kib=freed, after_s=b.t_s - a.t_s)
    if a.host_held_kib is None or b.host_held_kib is None:
        return claim("app_cache.after_drop", "no_host_view", sentences, unit="KiB", **fig)
    back = a.host_held_kib - b.host_held_kib
    small = (b.free_too_small_kib or 0.0) - (a.free_too_small_kib or 0.0)
    verdict = ("host_got_most" if freed > 0 and back >= HOST_GOT_MOST_SHARE * freed
               else "host_got_some" if back > 0.02 * max(freed, 1) else "host_got_none")
    return claim("app_cache.after_drop", verdict, sentences, value=back, unit="KiB", back=_mib(max(back, 0.0)),
                 back_kib=back, small=_mib(small), small_kib=small, **fig)


def all_claims(rec: Recording) -> list[Claim]:
    """The section's claims, in the order a lab shows them."""
    return [picture(rec), app_vs_cache(rec), no_reason_to_drop(rec), after_drop(rec)]
