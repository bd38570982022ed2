"""What a page-cache run showed (lab 02): Recording -> Claims.

Our file's own figure comes first: its pages resident in memory (`workload_file_resident_kib`,
mincore) or else the memory cgroup its writer and reader ran in (`workload_cgroup_bytes`: the cache
is charged to the cgroup that loaded it). The guest's `Cached` is context, labelled as such: it
holds every file of the machine, other programs' too, and `drop_caches` drops them all.

Why SReclaimable moves at `drop_caches=1` (which drops clean page cache only, not dentries or
inodes): pages a file system wrote through buffered I/O carry **buffer heads**, one `struct
buffer_head` per block (104 bytes on x86-64), and the page cache is indexed by **xarray nodes**
(`radix_tree_node`, a `struct xa_node` of 576 bytes for 64 slots on x86-64). Both slab caches are
created with SLAB_RECLAIM_ACCOUNT (fs/buffer.c, lib/radix-tree.c), so they count as SReclaimable, and
both are freed with the pages. Measured here (Firecracker guest, Linux 6.18, ext4, 2026-11-26,
/proc/slabinfo before and after): a 1 GiB file written, synced and read, then `drop_caches=1`:
buffer_head −27.9 MiB, radix_tree_node −3.1 MiB (31 MiB per GiB dropped, slab overhead included);
SReclaimable as a whole fell 28.4 MiB, other reclaimable caches having grown meanwhile.
"""
from __future__ import annotations

import math
from typing import Any

from .. import analysis
from ..claims import THRESHOLDS, Claim, claim, negligible, share_verdict
from ...recording.recording import Recording

# Slab freed with the dropped pages, per GiB of them: measured (see the docstring), not computed from
# the structs' sizes, because slab pages hold whole objects and xarray nodes are rarely full.
BUFFER_HEAD_MIB_PER_GIB = 27.9
XARRAY_MIB_PER_GIB = 3.1
SLAB_KIB_PER_KIB = (BUFFER_HEAD_MIB_PER_GIB + XARRAY_MIB_PER_GIB) / 1024


# --------------------------------------------------------------------------- reading the run

def _mib(kib: float) -> str:
    return analysis.mib(kib)


def own_column(rec: Recording) -> tuple[str, float, str] | None:
    """(column, factor to KiB, what it is) of our file's own figure, or None where the run has none."""
    if analysis.has(rec, "workload_file_resident_kib"):
        return "workload_file_resident_kib", 1.0, "the file's own pages in memory (mincore)"
    if analysis.has(rec, "workload_cgroup_bytes"):
        return "workload_cgroup_bytes", 1 / 1024, "the memory cgroup our writer and reader ran in"
    return None


def _own_at(rec: Recording, t_s: float) -> float:
    col = own_column(rec)
    if col is None:
        return math.nan
    v = analysis.value_at(rec, col[0], t_s)
    return (0.0 if math.isnan(v) else v) * col[1]


def file_kib(rec: Recording) -> float:
    res = rec.meta.get("results", {})
    size = res.get("file_bytes") or res.get("size_bytes") or (rec.meta.get("parameters") or {}).get("size_bytes")
    if size is None:
        from ...units import parse_size
        size = parse_size((rec.meta.get("parameters") or {}).get("size", 0))
    return float(size) / 1024


def drop_time(rec: Recording, level: int) -> float | None:
    ev = rec.events[(rec.events["kind"] == "drop_caches") & (rec.events["detail"].astype(str) == str(level))]
    return float(ev["t_s"].iloc[0]) if len(ev) else None


def around_drop(rec: Recording, level: int) -> dict[str, float] | None:
    """Each figure just before drop_caches=level and just before the next step (KiB)."""
    t0 = drop_time(rec, level)
    if t0 is None:
        return None
    t1 = analysis.next_event(rec, t0)
    out = {"t0_s": t0, "t1_s": t1, "window_s": t1 - t0}
    for col in ("cached_kib", "slab_reclaimable_kib", "mem_free_kib", "host_reported_kib"):
        out[f"{col}_before"] = analysis.value_at(rec, col, t0)
        out[f"{col}_after"] = analysis.value_at(rec, col, t1)
    out["own_before_kib"] = _own_at(rec, t0)
    out["own_after_kib"] = _own_at(rec, t1)
    return out


# --------------------------------------------------------------------------- claims

def cache_kept(rec: Recording) -> Claim:
    """After write, sync and read, how much of the file stayed cached (just before the first drop)."""
    size = file_kib(rec)
    t = drop_time(rec, 1) or drop_time(rec, 3)
    col = own_column(rec)
    sentences = {
        "nearly_all": "**The cache stays.** Just before the first drop, **{kept}** of our {size} file was still in memory "
                      "({value:.0%}, {what}): the writer and reader were done, nothing needed the memory, so the kernel "
                      "kept the file's pages.",
        "most": "**The cache stays, mostly.** Just before the first drop, **{kept}** of our {size} file ({value:.0%}) was "
                "still in memory ({what}): the kernel kept most of it, and let some go under this guest's memory pressure.",
        "some": "**Only part of the cache stayed.** Just before the first drop, {kept} of our {size} file ({value:.0%}) was "
                "in memory ({what}): this guest was short of memory, and the kernel reclaimed clean file pages on its own.",
        "little": "**The cache did not stay.** Just before the first drop, only {kept} of our {size} file ({value:.0%}) was "
                  "in memory ({what}): the kernel reclaimed it already (memory pressure on this guest), so the drops "
                  "below have little of ours to drop.",
        "not_measurable": "This run has no figure of our own file (no per-file or per-cgroup column in it); "
                          "the guest's Cached, which holds every file of the machine, rose by {guest_rise} while the file "
                          "was written and read, which is context, not a measure of our file.",
    }
    if t is None:
        return claim("page_cache.cache_kept", "not_measurable", sentences, unit="share",
                     guest_rise="an unknown amount", size=_mib(size), kept="?", what="")
    t_write = rec.event_times("write_file")[0] if rec.event_times("write_file") else 0.0
    guest_rise = analysis.peak_change(rec, "cached_kib", t_write, t)
    if col is None:
        return claim("page_cache.cache_kept", "not_measurable", sentences, unit="share",
                     guest_rise=_mib(guest_rise), size=_mib(size), kept="?", what="", guest_rise_kib=guest_rise)
    kept = _own_at(rec, t)
    share = kept / size if size else math.nan
    return claim("page_cache.cache_kept", share_verdict(share), sentences, value=share, unit="share",
                 kept=_mib(kept), size=_mib(size), what=col[2], kept_kib=kept, file_kib=size,
                 guest_rise=_mib(guest_rise), guest_rise_kib=guest_rise, column=col[0])


def dropped(rec: Recording, level: int) -> list[Claim]:
    """What drop_caches=level did to our file (primary) and to the whole guest's Cached (context)."""
    key = f"page_cache.drop_{level}"
    w = around_drop(rec, level)
    sentences = {
        "nearly_all": "`drop_caches={level}` dropped **{dropped}** of our file's cached pages, **{value:.0%}** of the "
                      "{before} that were in memory ({what}).",
        "most": "`drop_caches={level}` dropped **{dropped}** of our file's cached pages, {value:.0%} of the {before} in "
                "memory ({what}): most of it; the rest was still in use or read back meanwhile.",
        "some": "`drop_caches={level}` dropped only {dropped} of our file's {before} in memory ({value:.0%}, {what}).",
        "little": "`drop_caches={level}` dropped next to nothing of our file ({dropped} of {before}, {what}).",
        "nothing_cached": "When `drop_caches={level}` ran, none of our file was in memory ({what}), so there was nothing "
                          "of ours to drop.",
        "not_measurable": "This run has no figure of our own file, so what `drop_caches={level}` did to it is not measured "
                          "here; the guest-wide Cached below is the only figure.",
        "not_run": "This run has no `drop_caches={level}` step.",
        "cut_short": "The recording ends {window:.1f} s after `drop_caches={level}` began, too soon to see what it "
                     "dropped: nothing is concluded from this step.",
    }
    if w is None:
        return [claim(key, "not_run", sentences, unit="share", level=level)]
    if w["window_s"] < THRESHOLDS["page_cache_min_window_s"]:
        return [claim(key, "cut_short", sentences, unit="share", level=level, window=w["window_s"])]
    col = own_column(rec)
    before, after = w["own_before_kib"], w["own_after_kib"]
    what = col[2] if col else ""
    if col is None:
        own = claim(key, "not_measurable", sentences, unit="share", level=level)
    elif negligible(before, file_kib(rec)):
        own = claim(key, "nothing_cached", sentences, value=0.0, unit="share", level=level, what=what,
                    before_kib=before, after_kib=after)
    else:
        share = (before - after) / before
        own = claim(key, share_verdict(share), sentences, value=share, unit="share", level=level,
                    dropped=_mib(before - after), before=_mib(before), what=what,
                    before_kib=before, after_kib=after, dropped_kib=before - after)
    return [own, _guest_context(rec, level, w, before - after if col else None)]


def _guest_context(rec: Recording, level: int, w: dict[str, float], ours_kib: float | None) -> Claim:
    """The whole guest's Cached at the same drop, labelled as the whole guest (others' files included)."""
    guest_fall = w["cached_kib_before"] - w["cached_kib_after"]
    sentences = {
        "others_too": "For context, the whole guest's Cached changed by {change} at the same time, "
                      "**{others} more than our file**: `drop_caches` drops the clean, unmapped cached pages of "
                      "every file on the machine, other programs' too, so the guest-wide figure is not our file's.",
        "ours_only": "For context, the whole guest's Cached changed by {change} at the same time, about what our file "
                     "lost: little else was cached.",
        "others_grew": "For context, the whole guest's Cached changed by only {change} while our file lost "
                       "{ours}: other programs filled the cache meanwhile (a shared counter).",
        "guest_only": "The whole guest's Cached (every file of the machine, other programs' too) changed by **{change}**.",
    }
    if ours_kib is None or math.isnan(ours_kib):
        verdict = "guest_only"
    else:
        margin = THRESHOLDS["page_cache_others_share"] * file_kib(rec)
        verdict = ("others_too" if guest_fall - ours_kib > margin else
                   "others_grew" if ours_kib - guest_fall > margin else "ours_only")
    return claim(f"page_cache.drop_{level}_guest", verdict, sentences, value=-guest_fall, unit="KiB",
                 change=analysis.signed_mib(-guest_fall), others=_mib(guest_fall - (ours_kib or 0)),
                 ours=_mib(ours_kib or 0), guest_fall_kib=guest_fall, ours_dropped_kib=ours_kib)


def slab_at_level_1(rec: Recording) -> Claim:
    """Why SReclaimable moved at drop_caches=1, which frees no dentries or inodes."""
    sentences = {
        "buffer_heads": "SReclaimable fell too, by **{fall}**, although level 1 frees no dentries or inodes: the "
                        "**buffer heads** and **xarray nodes** of the dropped pages live in reclaimable slab and are "
                        "freed with them. At the rate measured on this kit's test guest ({rate:.0f} MiB per GiB "
                        "dropped) that is {low} for our file's pages, up to {high} for every page the guest dropped: "
                        "the fall is within that range.",
        "near": "SReclaimable fell too, by **{fall}**, although level 1 frees no dentries or inodes: the **buffer "
                "heads** and **xarray nodes** of the dropped pages live in reclaimable slab and are freed with them. "
                "At the rate measured on this kit's test guest ({rate:.0f} MiB per GiB dropped) they come to {low} "
                "for our file's pages, up to {high} for every page the guest dropped: the fall is {side} that range "
                "but close to it (other slab moves too; SReclaimable is a whole-machine counter).",
        "more": "SReclaimable fell by **{fall}**, more than the buffer heads and xarray nodes of the dropped pages "
                "explain (at most {high} at {rate:.0f} MiB per GiB; level 1 frees no dentries or inodes): something else on this guest freed "
                "reclaimable slab at the same time. SReclaimable is a whole-machine counter.",
        "less": "SReclaimable fell by {fall}, less than the buffer heads and xarray nodes of our dropped pages would free ({low}): other "
                "programs filled reclaimable slab meanwhile, or the file system attached no buffer heads to these pages.",
        "still": "SReclaimable did not move at level 1 ({fall}): level 1 frees the page cache only, and these pages "
                 "carried no buffer heads to free with them.",
        "cut_short": "The recording ends {window:.1f} s after `drop_caches=1` began: too soon to read SReclaimable's change.",
        "rose": "SReclaimable *rose* by {rise} across `drop_caches=1`: level 1 frees no dentries or inodes, and other "
                "programs filled reclaimable slab meanwhile (a whole-machine counter).",
        "not_run": "This run has no `drop_caches=1` step.",
    }
    w = around_drop(rec, 1)
    if w is None:
        return claim("page_cache.slab_at_level_1", "not_run", sentences, unit="KiB")
    if w["window_s"] < THRESHOLDS["page_cache_min_window_s"]:
        return claim("page_cache.slab_at_level_1", "cut_short", sentences, unit="KiB", window=w["window_s"])
    fall = w["slab_reclaimable_kib_before"] - w["slab_reclaimable_kib_after"]
    guest_dropped = max(w["cached_kib_before"] - w["cached_kib_after"], 0.0)
    ours = w["own_before_kib"] - w["own_after_kib"]
    # Without a figure of our own, assume the whole file was cached and dropped (the most it can be).
    ours = min(file_kib(rec), guest_dropped) if math.isnan(ours) else max(ours, 0.0)
    low, high = SLAB_KIB_PER_KIB * ours, SLAB_KIB_PER_KIB * max(guest_dropped, ours)
    ratio = THRESHOLDS["slab_explained_ratio"]
    still = THRESHOLDS["slab_still_kib"]
    if abs(fall) < still:
        verdict = "still"
    elif fall < 0:
        verdict = "rose"
    elif fall > high * ratio:
        verdict = "more"
    elif fall < low / ratio:
        verdict = "less"
    elif low <= fall <= high:
        verdict = "buffer_heads"
    else:
        verdict = "near"
    return claim("page_cache.slab_at_level_1", verdict, sentences, value=-fall, unit="KiB",
                 fall=_mib(fall), rise=_mib(-fall), low=_mib(low), high=_mib(high), rate=SLAB_KIB_PER_KIB * 1024,
                 side="below" if fall < low else "above",
                 slab_fall_kib=fall, expected_low_kib=low, expected_high_kib=high,
                 ours_dropped_kib=ours, guest_dropped_kib=guest_dropped)


def slab_at_level_2(rec: Recording) -> Claim:
    """drop_caches=2 after the file-system walk: how much of the reclaimable slab it freed."""
    sentences = {
        "nearly_all": "Walking the file system filled the dentry and inode caches (SReclaimable {walk}); "
                      "`drop_caches=2` then freed **{fall}** of the {before} of reclaimable slab ({value:.0%}). {cached}",
        "most": "Walking the file system filled the dentry and inode caches (SReclaimable {walk}); `drop_caches=2` freed "
                "**{fall}** of the {before} of reclaimable slab ({value:.0%}): most of it (objects in use stay). {cached}",
        "some": "`drop_caches=2` freed {fall} of the {before} of reclaimable slab ({value:.0%}): only some; objects "
                "in use (open files, working directories) stay, and others may have refilled it. {cached}",
        "little": "`drop_caches=2` freed next to nothing of the {before} of reclaimable slab ({fall}); whether its "
                  "objects were in use or refilled at once is not measured here. {cached}",
        "not_run": "This run has no `drop_caches=2` step.",
    }
    w = around_drop(rec, 2)
    if w is None:
        return claim("page_cache.slab_at_level_2", "not_run", sentences, unit="share")
    walks = rec.event_times("walk_fs")
    walk = analysis.peak_change(rec, "slab_reclaimable_kib", walks[0], w["t0_s"]) if walks else math.nan
    before = w["slab_reclaimable_kib_before"]
    fall = before - w["slab_reclaimable_kib_after"]
    share = fall / before if before else math.nan
    return claim("page_cache.slab_at_level_2", share_verdict(share), sentences, value=share, unit="share",
                 fall=_mib(fall), before=_mib(before), walk=analysis.signed_mib(walk),
                 cached=_cached_meanwhile(w), cached_change_kib=w["cached_kib_after"] - w["cached_kib_before"],
                 slab_fall_kib=fall, slab_before_kib=before, walk_rise_kib=walk)


def _cached_meanwhile(w: dict[str, float]) -> str:
    """Cached's change over a drop's window, said as what it is: a whole-machine counter, not the drop's effect."""
    change = w["cached_kib_after"] - w["cached_kib_before"]
    if abs(change) < THRESHOLDS["slab_still_kib"]:
        return "Cached did not move meanwhile."
    if change > 0:
        return (f"Cached rose by {_mib(change)} in the {w['window_s']:.0f} s before the next step: a drop adds no "
                f"cache, so that was other file I/O on the guest, not this drop.")
    return (f"Cached fell by {_mib(-change)} in the {w['window_s']:.0f} s before the next step (a whole-machine "
            f"counter: what freed it is not measured here).")


def sync_cleaned(rec: Recording) -> Claim:
    """Did sync leave the file's pages clean (Dirty back to next to nothing)?"""
    sentences = {
        "clean": "In this run Dirty peaked at **{peak}** while the file was written, was {at_sync} when `sync` started, and "
                 "**{after}** once it returned{took}: the file's pages were now clean copies of what is on disk, which "
                 "`drop_caches=1` can drop.",
        "still_dirty": "In this run Dirty was still **{after}** after `sync` returned (it peaked at {peak}); Dirty "
                       "is a whole-machine counter, and whose pages those were is not measured here. Our file was "
                       "written before `sync` began, and `sync` writes every page dirty when it is called.",
        "not_measurable": "This recording has no Dirty column or no `sync` step.",
    }
    syncs = rec.event_times("sync")
    writes = rec.event_times("write_file")
    if not syncs or not writes or not analysis.has(rec, "dirty_kib"):
        return claim("page_cache.sync_cleaned", "not_measurable", sentences, unit="KiB")
    t_sync = syncs[0]
    peak = analysis.peak_change(rec, "dirty_kib", writes[0], t_sync) + analysis.value_at(rec, "dirty_kib", writes[0])
    after = analysis.value_at(rec, "dirty_kib", analysis.next_event(rec, t_sync))
    sync_s = rec.meta.get("results", {}).get("sync_s")
    verdict = "clean" if negligible(after, file_kib(rec)) else "still_dirty"
    return claim("page_cache.sync_cleaned", verdict, sentences, value=after, unit="KiB",
                 peak=_mib(peak), at_sync=_mib(analysis.value_at(rec, "dirty_kib", t_sync)), after=_mib(after),
                 took=f" ({sync_s:.2f} s later)" if sync_s else "", dirty_after_kib=after, dirty_peak_kib=peak)


def host_after_drop(rec: Recording, level: int | None = None) -> Claim:
    """How much of what drop_caches freed went back to the host in the window after it (level None: the first drop)."""
    if level is None:
        level = next((lv for lv in (1, 2, 3) if drop_time(rec, lv) is not None), 1)
    sentences = {
        "nearly_all": "After `drop_caches={level}` the freed pages were reported like any free memory: **{returned}** went "
                      "back to the host in the following {window:.0f} s, {value:.0%} of the {freed} the drop freed.",
        "most": "After `drop_caches={level}`, **{returned}** went back to the host in the following {window:.0f} s: "
                "{value:.0%} of the {freed} the drop freed. {why}",
        "some": "After `drop_caches={level}` only {returned} went back to the host in {window:.0f} s ({value:.0%} of the "
                "{freed} freed). {why}",
        "little": "After `drop_caches={level}` next to nothing went back to the host in {window:.0f} s ({returned} of "
                  "{freed} freed). {why}",
        "no_host_view": "This run has no host-side view (`host_reported_kib`): what the host got back is not measured here.",
        "cut_short": "The recording ends {window:.1f} s after `drop_caches={level}` began, before reporting (about 2 s "
                     "after pages are freed) could show: what the host got back is not measured here.",
        "not_run": "This run has no `drop_caches={level}` step.",
    }
    w = around_drop(rec, level)
    if w is None:
        return claim("page_cache.host_after_drop", "not_run", sentences, unit="share", level=level)
    if analysis.has(rec, "host_reported_kib"):
        returned = w["host_reported_kib_after"] - w["host_reported_kib_before"]
    elif analysis.has(rec, "host_vm_rss_kib"):  # the kit's VM: its QEMU process's resident memory falls
        returned = analysis.value_at(rec, "host_vm_rss_kib", w["t0_s"]) - analysis.value_at(rec, "host_vm_rss_kib", w["t1_s"])
    else:
        return claim("page_cache.host_after_drop", "no_host_view", sentences, unit="share", level=level)
    if w["window_s"] < THRESHOLDS["page_cache_min_window_s"]:
        return claim("page_cache.host_after_drop", "cut_short", sentences, unit="share", level=level,
                     window=w["window_s"])
    # What the drop freed: the guest's Cached fall (reported pages stay in MemFree, so MemFree cannot say).
    freed = w["cached_kib_before"] - w["cached_kib_after"]
    share = returned / freed if freed > 0 else math.nan
    verdict = share_verdict(share) if freed > 0 else "little"
    why, pace = _why_short(rec, w)
    return claim("page_cache.host_after_drop", verdict, sentences, value=share if freed > 0 else 0.0, unit="share",
                 level=level, returned=_mib(returned), freed=_mib(freed), window=w["window_s"], why=why, pace=pace,
                 returned_kib=returned, freed_kib=freed)


def _why_short(rec: Recording, w: dict[str, float]) -> tuple[str, str]:
    """Why the host got less than the drop freed, from what this run shows: the watch's length against the
    reports in it; anything else is "not measured here". Returns (sentence, which case)."""
    not_measured = ("Why the rest was not reported is not measured here (a `/proc/buddyinfo` snapshot after the "
                    "drop would show whether it sat in blocks below the reporting order).")
    if not analysis.has(rec, "host_reported_kib"):
        return not_measured, "not_measured"
    steps = analysis.rises(rec, "host_reported_kib", w["t0_s"], w["t1_s"])
    if not len(steps):
        return "No report came before the next step. " + not_measured, "no_report"
    quiet_s = w["t1_s"] - float(steps["t_s"].iloc[-1])
    if quiet_s < THRESHOLDS["tail_still_reporting_s"]:
        return (f"Reports were still coming when the next step began {w['window_s']:.0f} s after the drop "
                f"({len(steps)} batches, the last {quiet_s:.1f} s before it): this watch was shorter than reporting "
                f"took here. Whether the rest also sat in blocks below the reporting order (as on a guest in use a "
                f"long time) is not measured here: the run has no `/proc/buddyinfo` snapshot after the drop.",
                "still_reporting")
    return f"Reports had stopped {quiet_s:.1f} s before the next step. " + not_measured, "stopped"


def stayed(rec: Recording, level: int) -> Claim:
    """What the guest's Cached still held after drop_caches=level, and the parts this run can name."""
    sentences = {
        "named": "After `drop_caches={level}` the guest's Cached still held **{kept}**: {shmem} of it Shmem "
                 "(tmpfs and shared memory, which no drop frees), {dirty} Dirty (not yet on disk), and {rest} more, "
                 "which a drop also skips while a process maps the pages or they are in use (this recording has no "
                 "Mapped column to tell those apart).",
        "mapped": "After `drop_caches={level}` the guest's Cached still held **{kept}**: {mapped} of it Mapped (file "
                  "pages a process maps, which a drop skips; tmpfs pages mapped count there too), {shmem} Shmem (tmpfs "
                  "and shared memory, which no drop frees), {dirty} Dirty and {writeback} under writeback (not yet on "
                  "disk). {rest_words}",
        "unnamed": "After `drop_caches={level}` the guest's Cached still held **{kept}**: a drop skips pages a process "
                   "maps, dirty pages and Shmem (tmpfs); this recording has no column to tell which.",
        "not_run": "This run has no `drop_caches={level}` step.",
        "cut_short": "The recording ends {window:.1f} s after `drop_caches={level}` began: too soon to read what stayed.",
    }
    key = f"page_cache.stayed_{level}"
    w = around_drop(rec, level)
    if w is None:
        return claim(key, "not_run", sentences, unit="KiB", level=level)
    if w["window_s"] < THRESHOLDS["page_cache_min_window_s"]:
        return claim(key, "cut_short", sentences, unit="KiB", level=level, window=w["window_s"])
    t = _settled(rec, w)
    kept = analysis.value_at(rec, "cached_kib", t)
    if not (analysis.has(rec, "shmem_kib") and analysis.has(rec, "dirty_kib")):
        return claim(key, "unnamed", sentences, value=kept, unit="KiB", level=level, kept=_mib(kept), cached_kib=kept)
    shmem, dirty = analysis.value_at(rec, "shmem_kib", t), analysis.value_at(rec, "dirty_kib", t)
    if analysis.has(rec, "mapped_kib") and analysis.has(rec, "writeback_kib"):
        return _stayed_mapped(key, sentences, level, kept, shmem, dirty, analysis.value_at(rec, "mapped_kib", t),
                              analysis.value_at(rec, "writeback_kib", t))
    return claim(key, "named", sentences, value=kept, unit="KiB", level=level, kept=_mib(kept), shmem=_mib(shmem),
                 dirty=_mib(dirty), rest=_mib(max(kept - shmem - dirty, 0.0)), cached_kib=kept, shmem_kib=shmem,
                 dirty_kib=dirty)


# Left over after Mapped, Shmem, Dirty and Writeback below this: those figures account for what stayed.
STAYED_REST_MIN_KIB = 16 * 1024


def _stayed_mapped(key: str, sentences: dict[str, str], level: int, kept: float, shmem: float, dirty: float,
                   mapped: float, writeback: float) -> Claim:
    """What stayed, with Mapped and Writeback too. Mapped and Shmem overlap (a mapped tmpfs page is both), so
    kept minus all four is a floor of what none of them covers: 'at least'."""
    rest = kept - shmem - dirty - mapped - writeback
    if rest < STAYED_REST_MIN_KIB:
        words = "Together they cover all of it (Mapped and Shmem may overlap)."
    else:
        words = (f"At least **{_mib(rest)}** is none of these (more where Mapped and Shmem overlap): pages in use at "
                 f"that moment, which is not measured here.")
    return claim(key, "mapped", sentences, value=kept, unit="KiB", level=level, kept=_mib(kept), shmem=_mib(shmem),
                 dirty=_mib(dirty), mapped=_mib(mapped), writeback=_mib(writeback), rest_words=words, cached_kib=kept,
                 shmem_kib=shmem, dirty_kib=dirty, mapped_kib=mapped, writeback_kib=writeback,
                 rest_at_least_kib=max(rest, 0.0))


def _settled(rec: Recording, w: dict[str, float]) -> float:
    """The time the drop's write had returned (its duration in the results), else the window's end."""
    took = (rec.meta.get("results") or {}).get(f"drop_caches_{int(_level_at(rec, w['t0_s']))}_s")
    return min(w["t0_s"] + took + 0.2, w["t1_s"]) if took is not None else w["t1_s"]


def _level_at(rec: Recording, t_s: float) -> int:
    ev = rec.events[(rec.events["kind"] == "drop_caches") & (rec.events["t_s"] == t_s)]
    return int(ev["detail"].iloc[0]) if len(ev) else 0


def blog_picture(rec: Recording) -> Claim:
    """The blog's 'VM at 2 GB while 50 MB is in use': was cache or process memory the larger part here?"""
    sentences = {
        "cache_larger": "Just before the drop the guest held **{cache}** of page cache beside **{anon}** of anonymous "
                        "memory of all its processes: most of what this guest used was cache. Inside the guest it counts "
                        "as available; to the host it is memory the VM uses, because none of it is free and so none of it "
                        "can be reported. That is the blog's \"VM at 2 GB while 50 MB is in use\".",
        "anon_larger": "Just before the drop the guest's processes held **{anon}** of anonymous memory, more than its "
                       "**{cache}** of page cache: on this busy guest, programs, not the cache, were most of what it "
                       "used. The cache part is still the blog's point: it counts as available inside the guest, yet the "
                       "host cannot get it back until it is dropped.",
        "not_run": "This run has no `drop_caches=1` step.",
    }
    t0 = drop_time(rec, 1) or drop_time(rec, 3)
    if t0 is None:
        return claim("page_cache.blog_picture", "not_run", sentences, unit="ratio")
    anon = analysis.value_at(rec, "anon_kib", t0)
    cache = analysis.value_at(rec, "cached_kib", t0)
    if analysis.has(rec, "buffers_kib"):
        cache += analysis.value_at(rec, "buffers_kib", t0)
    verdict = "cache_larger" if cache > anon else "anon_larger"
    return claim("page_cache.blog_picture", verdict, sentences, value=cache / anon if anon else None, unit="ratio",
                 cache=_mib(cache), anon=_mib(anon), cache_kib=cache, anon_kib=anon)


def all_claims(rec: Recording) -> dict[str, Any]:
    """Every claim of lab 02 by name (for tests and the corpus)."""
    return {"cache_kept": cache_kept(rec), "drop_1": dropped(rec, 1), "slab_1": slab_at_level_1(rec),
            "slab_2": slab_at_level_2(rec), "drop_3": dropped(rec, 3), "sync": sync_cleaned(rec),
            "stayed_1": stayed(rec, 1), "host": host_after_drop(rec, 1), "blog": blog_picture(rec)}


def steps_table(rec: Recording) -> tuple[list[tuple[str, ...]], tuple[str, ...]]:
    """Rows of lab 02's table: each step, our file's change, the guest's Cached and SReclaimable, the write's time."""
    res = rec.meta.get("results", {})
    own = own_column(rec) is not None
    rows = []

    def took(level: int) -> str:
        s = res.get(f"drop_caches_{level}_s")
        return f"{s * 1000:.0f} ms" if s is not None else "—"

    def fmt(kib: float) -> str:
        return "—" if kib is None or math.isnan(kib) else analysis.signed_mib(kib)

    writes = rec.event_times("write_file")
    first_drop = drop_time(rec, 1) or drop_time(rec, 3)
    if writes and first_drop is not None:
        rows.append(("write, sync, read the file",
                     fmt(_own_at(rec, first_drop) - _own_at(rec, writes[0])) if own else "—",
                     fmt(analysis.change(rec, "cached_kib", writes[0], first_drop)),
                     fmt(analysis.change(rec, "slab_reclaimable_kib", writes[0], first_drop)), ""))
    for level in (1, 2, 3):
        w = around_drop(rec, level)
        if w is None:
            continue
        if level == 2 and rec.event_times("walk_fs"):
            t_walk = rec.event_times("walk_fs")[0]
            rows.append(("walk the file system", "", "",
                         fmt(analysis.change(rec, "slab_reclaimable_kib", t_walk, w["t0_s"])), ""))
        # a read between the level-2 drop and this one (the kit's VM reads only after level 3: no such row)
        again = [t for t in rec.event_times("read_file")[1:] if level == 3 and t < w["t0_s"]]
        if again:
            t_again = again[0]
            walked = any(t_again <= t < w["t0_s"] for t in rec.event_times("walk_fs"))
            rows.append(("read the file and walk again" if walked else "read the file again",
                         fmt(_own_at(rec, w["t0_s"]) - _own_at(rec, t_again)) if own else "—",
                         fmt(analysis.change(rec, "cached_kib", t_again, w["t0_s"])),
                         fmt(analysis.change(rec, "slab_reclaimable_kib", t_again, w["t0_s"])), ""))
        rows.append((f"drop_caches={level}", fmt(w["own_after_kib"] - w["own_before_kib"]) if own else "—",
                     fmt(w["cached_kib_after"] - w["cached_kib_before"]),
                     fmt(w["slab_reclaimable_kib_after"] - w["slab_reclaimable_kib_before"]), took(level)))
    header = ("step", "our file in memory", "whole guest: Cached", "whole guest: SReclaimable",
              "the write to drop_caches took")
    return rows, header
