"""The host figure itself: what the since-boot counter (or, in the kit's VM, QEMU's resident memory) says
beside what the maps show reported *now*.

`host_reported_kib` (the guest's `reported_kib`) is a running total of every report since boot, of any
program's memory, including memory reported twice or reported and reused since. The maps of physical
memory (physmap.json) show which free blocks are marked reported at one moment. A claim about what
"the host got" states the counter's rise; `with_host_now` adds the maps' figures beside it, and where
MemFree held memory in neither the buddy nor the per-CPU lists that entered them during the run (a
freshly booted guest of this project's kernel hands its memory to the buddy allocator late), says
that the counter may count that memory too. Pure: a Recording and a Claim in, a Claim out.
"""
from __future__ import annotations

import dataclasses

from .. import analysis
from ..claims import Claim
from ...recording.recording import Recording

# Less than this entering the buddy lists during a run is within what the lists' own churn moves.
ENTERED_MIN_KIB = 256 * 1024


def maps_between(rec: Recording, t0_s: float, t1_s: float) -> tuple | None:
    """(the last map at or before t0, else the first after it; the last map at or before t1), or None."""
    maps = sorted(rec.physmaps, key=lambda m: m.t_s)
    if len(maps) < 2:
        return None
    before = [m for m in maps if m.t_s <= t0_s + 0.5]
    first = before[-1] if before else maps[0]
    last = [m for m in maps if m.t_s <= t1_s + 0.5 and m.t_s > first.t_s]
    return (first, last[-1]) if last else None


def sentence(rec: Recording, t0_s: float, t1_s: float) -> tuple[str, dict]:
    """The maps' 'reported now' figures between t0 and t1 (and memory entering the buddy lists), or ''."""
    pair = maps_between(rec, t0_s, t1_s)
    if pair is None:
        return "", {}
    a, b = pair
    ra, rb = a.snapshot.free_reported_kib, b.snapshot.free_reported_kib
    now = (f"free memory marked reported *now*: {analysis.mib(ra)} at '{a.label}', {analysis.mib(rb)} at "
           f"'{b.label}' ({'+' if rb >= ra else '−'}{analysis.mib(abs(rb - ra))})")
    if analysis.has(rec, "host_reported_kib"):
        text = f"(`reported_kib` is a running total since boot of every report; the maps of physical memory show {now}.)"
    else:  # the kit's VM: the host's figure is QEMU's resident memory, not a counter
        text = (f"(That figure is QEMU's resident memory falling; the guest's maps of physical memory show {now}, "
                f"counting each block marked reported whether or not QEMU had memory behind it.)")
    evidence = {"reported_now_kib": {a.label: ra, b.label: rb}}
    oa, ob = a.snapshot.outside_buddy_kib, b.snapshot.outside_buddy_kib
    if oa is not None and ob is not None:
        evidence["outside_buddy_kib"] = {a.label: oa, b.label: ob}
        if oa - ob >= ENTERED_MIN_KIB:
            text += (f" Meanwhile **{analysis.mib(oa - ob)}** that MemFree counted in neither the buddy nor the "
                     f"per-CPU lists entered them ({analysis.mib(oa)} → {analysis.mib(ob)} outside, from the maps): "
                     f"memory entering the buddy allocator is free and gets reported too, so the counter's rise may "
                     f"include it; this run does not tell it apart from the workload's.")
    return text, evidence


def with_host_now(c: Claim, rec: Recording, t0_s: float, t1_s: float) -> Claim:
    """`c` with the maps' 'reported now' sentence appended (unchanged where the run has no two maps)."""
    extra, evidence = sentence(rec, t0_s, t1_s)
    if not extra:
        return c
    return dataclasses.replace(c, sentence=f"{c.sentence} {extra}", evidence={**c.evidence, **evidence})


# Upstream MemFree outside the buddy and per-CPU lists is about 0; this much is worth a sentence.
OUTSIDE_MIN_KIB = 1024 * 1024


# A guest up this long has handed its boot-time memory to the buddy allocator (measured here: 15.7 GiB outside
# the lists 4 min after boot, 2.2 GiB at 3.8 h, 2.4 GiB at 7.5 h: what is left is not a fresh boot's).
FRESH_BOOT_S = 3600.0


def why_outside(rec: Recording) -> str:
    """What the run's uptime says about memory in neither list: a fresh boot's late hand-over, or not known."""
    up = rec.meta.get("uptime_s")
    if up is None:
        return ("on a guest of unknown uptime (the recording predates `uptime_s`): whether it was freshly booted, "
                "with a kernel that hands memory to the buddy allocator late, is not known")
    if up < FRESH_BOOT_S:
        return (f"on a guest booted {up / 60:.0f} min before the run (`/proc/uptime`), whose kernel hands memory "
                f"to the buddy allocator late")
    return (f"on a guest up {up / 3600:.1f} h (`/proc/uptime`): not a fresh boot's late hand-over; what holds it "
            f"is not measured here")


def with_outside_buddy(c: Claim, rec: Recording) -> Claim:
    """`c` with, where the run's first map shows much of MemFree in neither the buddy nor the per-CPU lists,
    a sentence saying so: the free memory a lab counts from /proc/buddyinfo is then far below MemFree."""
    maps = sorted(rec.physmaps, key=lambda m: m.t_s)
    if not maps:
        return c
    first = maps[0]
    snap = first.snapshot
    outside = snap.outside_buddy_kib
    if outside is None or outside < OUTSIDE_MIN_KIB:
        return c
    extra = (f"Free memory below means the buddy allocator's free lists (`/proc/buddyinfo`). With the map at "
             f"'{first.label}' they held {analysis.gib(snap.kib(snap.buddy_free_pages))} and the per-CPU lists "
             f"{analysis.gib(snap.kib(snap.per_cpu_pages))}, while MemFree counted {analysis.gib(snap.memfree_kib)}: "
             f"the other **{analysis.gib(outside)}** sat in neither, {why_outside(rec)}. Free page reporting walks "
             f"only the buddy lists.")
    return dataclasses.replace(c, sentence=f"{c.sentence} {extra}",
                               evidence={**c.evidence, "outside_buddy_kib": {first.label: outside},
                                         "memfree_kib": snap.memfree_kib})
