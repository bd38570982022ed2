"""What a refault run showed (labs 01 and 05): how much the host had taken back before the cold
touch, and the cold touch against the hot and the first one. `reported_kib` counts every report of the
whole guest, and the cold buffer is a fresh mapping whose frames need not be the reported ones: the
slowdown is explained only by the share of the cold touch's frames that sat in reported blocks
(`touched_reported`, from maps a live run takes after each touch, locally or in the kit's VM), and where
a run has no such maps the claims say so.

Result names (local and the kit's VM alike, declared in recording.schema): touch_{first,hot,cold}_s,
{first,hot,cold}_touch_gb_per_s,
reported_before_cold_kib, waited_for_report_s.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .. import analysis
from ..analysis import size_kib  # noqa: F401 (one definition; re-exported for callers here)
from ..claims import THRESHOLDS, Claim, claim, ratio_verdict, times
from ...recording.recording import Recording
from ...probe.physmap import FrameClass
from ...units import format_size
from . import _host_now, _stall


def reported_share(rec: Recording) -> float | None:
    """The share of the buffer the host had taken back before the cold touch (None: no host view)."""
    reported = reported_kib(rec)
    return None if reported is None else reported / size_kib(rec)


def reported_kib(rec: Recording) -> float | None:
    """KiB the host had taken back before the cold touch; VM recordings made before the names were
    shared carry it as the fall of QEMU's RSS (hot_host_peak_kib - hot_host_rss_after_kib)."""
    res = rec.meta.get("results", {})
    if res.get("reported_before_cold_kib") is not None:
        return float(res["reported_before_cold_kib"])
    peak, after = res.get("hot_host_peak_kib"), res.get("hot_host_rss_after_kib")
    return None if peak is None or after is None else float(max(peak - after, 0))


def _why_not_reported(rec: Recording, reported_kib: float) -> tuple[str, dict[str, Any]]:
    size = size_kib(rec)
    res = rec.meta.get("results", {})
    try:
        t0, t1 = analysis.when(rec, "free", "hot"), analysis.when(rec, "touch", "cold")
    except KeyError:
        return "", {}
    return _stall.reasons(rec, unreported_kib=size - reported_kib, size_kib=size, t_free_s=t0, t_end_s=t1,
                          snapshot="before_cold", waited_s=res.get("waited_for_report_s"),
                          wait_bound_s=rec.meta.get("parameters", {}).get("wait_for_report_s"))


def reported_before_cold(rec: Recording) -> Claim:
    """How much the host had back when the cold touch began, and where short, why."""
    size = size_kib(rec)
    res = rec.meta.get("results", {})
    sentences = {
        "no_host_view": "This run had no view of the host's side: the cold touch came after a fixed wait, and "
                        "whether the host had taken the pages back is not known.",
        "nearly_all": "Before the cold touch the whole guest had reported **{reported}** to the host, {share:.0%} of "
                      "the buffer's size.",
        "partial": "Before the cold touch the whole guest had reported only **{reported}** to the host ({share:.0%} of "
                   "the buffer's size){waited}. {why}",
        "little": "Before the cold touch the whole guest had reported only **{reported}** to the host ({share:.0%} of "
                  "the buffer's size){waited}. {why} {try_}",
    }
    share = reported_share(rec)
    if share is None:
        return claim("refault.reported_before_cold", "no_host_view", sentences)
    reported = reported_kib(rec)
    waited_s = res.get("waited_for_report_s")
    waited = f" in the {waited_s:.0f} s the experiment waited" if waited_s is not None else ""
    own = buffer_reported(rec)
    # The counter counts every program's reports; where the maps locate the buffer, its own share decides.
    judged, missing = (share, size - reported) if own is None else (own["share"], size - own["reported_kib"])
    if judged >= THRESHOLDS["reported_enough_share"]:
        return _with_own(_with_host_now(claim("refault.reported_before_cold", "nearly_all", sentences, value=share,
                                              unit="share", reported=analysis.gib(reported), share=share,
                                              reported_kib=reported), rec), own)
    why, evidence = _why_not_reported(rec, size - missing)
    verdict = "partial" if judged >= THRESHOLDS["refault_min_reported_share"] else "little"
    c = claim("refault.reported_before_cold", verdict, sentences, value=share, unit="share",
              reported=analysis.mib(reported), share=share, waited=waited, why=why, try_=_stall.what_to_try(evidence),
              reported_kib=reported, size_kib=size, **evidence)
    return _with_own(_with_host_now(c, rec), own)


def buffer_reported(rec: Recording) -> dict[str, float] | None:
    """Of the frames the buffer held after the hot touch, how many sat in blocks marked reported at 'before_cold'
    (the maps; the same per-block count as touched_reported): {"frames_kib", "reported_kib", "share"}, or None."""
    return _reported_frames(rec, "hot_touched", BASELINE_MAP)


def _reported_frames(rec: Recording, ours_map: str, reported_map: str) -> dict[str, float] | None:
    """Our frames at map `ours_map` (less our pages at BASELINE_MAP) in blocks marked reported at `reported_map`:
    per map block, min(our pages, reported pages). None where a map is missing or the two differ in shape."""
    by_label = {m.label: m for m in rec.physmaps}
    if ours_map not in by_label or reported_map not in by_label or BASELINE_MAP not in by_label:
        return None
    o, r = by_label[ours_map].snapshot, by_label[reported_map].snapshot
    if o.counts.shape != r.counts.shape:
        return None
    ours = o.counts[:, FrameClass.OURS].astype("int64")
    frames = int(ours.sum()) - by_label[BASELINE_MAP].snapshot.pages(FrameClass.OURS)
    if frames <= 0:
        return None
    reported = int(np.minimum(ours, r.counts[:, FrameClass.FREE_REPORTED]).sum())
    return {"frames_kib": float(o.kib(frames)), "reported_kib": float(o.kib(reported)),
            "share": min(reported / frames, 1.0)}


def _with_own(c: Claim, own: dict[str, float] | None) -> Claim:
    """The buffer's own figure from the maps beside the whole guest's counter."""
    if own is None:
        return c
    other = (" The counter's rise was mostly other programs' memory." if own["share"] <
             THRESHOLDS["refault_min_reported_share"] else "")
    extra = (f"Of the {analysis.mib(own['frames_kib'])} of frames the buffer held after the hot touch, "
             f"**{analysis.mib(own['reported_kib'])}** ({own['share']:.0%}) sat in blocks marked reported at "
             f"'{BASELINE_MAP}' (maps of physical memory).{other}")
    return dataclasses.replace(c, sentence=f"{c.sentence} {extra}",
                               evidence={**c.evidence, "buffer_reported_kib": own["reported_kib"],
                                         "buffer_reported_share": own["share"]})


def _with_host_now(c: Claim, rec: Recording) -> Claim:
    """The maps' 'reported now' beside the counter, from the hot free to the cold touch (where both are marked)."""
    try:
        return _host_now.with_host_now(c, rec, analysis.when(rec, "free", "hot"), analysis.when(rec, "touch", "cold"))
    except KeyError:
        return c


# Labels of the live run's maps: (map whose reported blocks count, map holding the touch's frames).
TOUCH_MAPS = {"hot": ("first_touched", "hot_touched"), "cold": ("before_cold", "cold_touched")}
BASELINE_MAP = "before_cold"   # the child with its buffer freed: its pages there are not the buffer's


def touched_reported(rec: Recording, touch: str) -> dict[str, float] | None:
    """Of the frames the `touch` ("hot"/"cold") got, how many sat in blocks marked reported at the map just
    before it: {"frames_kib", "reported_kib", "share"}; None where the run has no such maps.

    Per map block: min(our pages after, reported pages before). Reporting hands over whole blocks of
    page_reporting_order (9 here, the maps' block order), so a block's reported pages are all of it or none
    and this counts frames, not guesses. The child's own other pages (its interpreter) are left out by
    subtracting its pages at 'before_cold', when the buffer was freed."""
    source, after = TOUCH_MAPS[touch]
    return _reported_frames(rec, after, source)


def touched_host_missing(rec: Recording, touch: str) -> dict[str, float] | None:
    """Of the frames the `touch` got, how many sat in blocks the host held no page of at the map just before
    it (the kit's VM: the host's map beside the guest's): {"frames_kib", "missing_kib", "share"}; None where
    the run has no host maps. Whole empty blocks only, so these frames surely had nothing behind them, reported
    or not (e.g. never touched since the guest booted: the host never backed them)."""
    by_label = {m.label: m for m in rec.physmaps}
    source, after = TOUCH_MAPS[touch]
    if source not in by_label or after not in by_label or by_label[source].host is None:
        return None
    host, b = by_label[source].host, by_label[after].snapshot
    if host.block_order != b.block_order:
        return None
    ours = b.counts[:, FrameClass.OURS].astype("int64")
    n = min(len(ours), host.blocks)
    frames = int(ours.sum())
    if frames <= 0:
        return None
    missing = int(ours[:n][host.resident_pages[:n] == 0].sum())
    return {"frames_kib": float(b.kib(frames)), "missing_kib": float(b.kib(missing)), "share": missing / frames}


def _speeds(rec: Recording) -> dict[str, float | None]:
    res = rec.meta.get("results", {})
    return {k: res.get(f"{k}_touch_gb_per_s") for k in ("first", "hot", "cold")}


NOT_MAPPED = ("this recording has no maps of which frames each touch got, so whether they were the reported ones, "
              "and so {what}, is **not measured here** (a live run maps them after each touch: in the kit's VM, "
              "and locally where the page flags can be read, as root)")


def _cause(rec: Recording, verdict: str) -> tuple[str, dict[str, Any]]:
    """The cold touch against the hot one explained only by the share of its frames that had been reported."""
    cold, hot = touched_reported(rec, "cold"), touched_reported(rec, "hot")
    if cold is None:
        what = "what slowed it" if verdict == "slower" else "what a refault costs"
        return f"The cold buffer is a fresh mapping: {NOT_MAPPED.format(what=what)}.", {}
    evidence = {"cold_frames_reported_share": cold["share"], "cold_frames_kib": cold["frames_kib"],
                "hot_frames_reported_share": None if hot is None else hot["share"]}
    hot_words = "" if hot is None else (f", against {hot['share']:.0%} of the hot touch's (in blocks reported at the "
                                        f"map before the first `free`)")
    figure = (f"Of the frames the cold touch got, **{cold['share']:.0%}** ({analysis.mib(cold['reported_kib'])} of "
              f"{analysis.mib(cold['frames_kib'])}) sat in blocks marked reported to the host just before it{hot_words} "
              f"(maps of physical memory).")
    enough = cold["share"] >= THRESHOLDS["refault_min_reported_share"]
    above_hot = hot is None or cold["share"] > hot["share"]
    if verdict == "slower":
        if enough and above_hot:
            return (f"{figure} That share is what this run shows behind the slowdown: a first write to a frame the "
                    f"host may have dropped waits for the host to back it."), evidence
        host = _host_missing_words(rec)
        if host:
            return f"{figure} Too few of its frames had been reported to explain the slowdown by reporting. {host[0]}", \
                {**evidence, **host[1]}
        return (f"{figure} Too few of its frames had been reported for reporting to explain the slowdown: what "
                f"slowed it is **not measured here**."), evidence
    if enough:
        return f"{figure} Writing to those frames cost no time this run could measure.", evidence
    return f"{figure} Too few had been reported for this run to show what a refault costs.", evidence


def _host_missing_words(rec: Recording) -> tuple[str, dict[str, Any]] | None:
    """The host's map behind a slowdown the reported share does not explain: the share of the cold touch's frames
    the host held nothing behind, where it is enough and above the hot touch's (else None)."""
    cold, hot = touched_host_missing(rec, "cold"), touched_host_missing(rec, "hot")
    if cold is None or cold["share"] < THRESHOLDS["refault_min_reported_share"] or \
            (hot is not None and cold["share"] <= hot["share"]):
        return None
    hot_words = "" if hot is None else f", against {hot['share']:.0%} of the hot touch's"
    return (f"The host's map shows what did: just before the cold touch the host held no page in the blocks of "
            f"**{cold['share']:.0%}** of its frames ({analysis.mib(cold['missing_kib'])} of "
            f"{analysis.mib(cold['frames_kib'])}, in reported blocks or not)"
            f"{hot_words}; a first write to such a frame waits for the host to back it."), \
        {"cold_frames_host_missing_share": cold["share"],
         "hot_frames_host_missing_share": None if hot is None else hot["share"]}


def cold_vs_hot(rec: Recording) -> Claim:
    """The refault cost: the cold touch against the hot one (ratio = hot speed / cold speed, > 1: slower)."""
    sp = _speeds(rec)
    hot, cold = sp["hot"], sp["cold"]
    share = reported_share(rec)
    # What the run measured before the cold touch: the whole guest's reports; the maps (where taken): our frames.
    sentences = {
        "slower": "Touching {size} again right after `free` (hot) ran at **{hot:.2f} GB/s**; after the wait (cold), at "
                  "**{cold:.2f} GB/s**: **{ratio_words} slower**. {reported_words} {cause}",
        "about_the_same": "The cold touch ran at **{cold:.2f} GB/s**, about as fast as the hot one ({hot:.2f} GB/s). "
                          "{reported_words} {cause}",
        "faster": "The cold touch ran at **{cold:.2f} GB/s**, *faster* than the hot one ({hot:.2f} GB/s, "
                  "{inverse_words}): that is not the refault cost, which can only slow a touch down. Touches this "
                  "short vary more than the effect when other programs take the CPU (or every instruction is "
                  "emulated, as under TCG): run it again, or compare with the recording.",
        "not_measurable": "The cold touch ran at {cold_text} against {hot_text} for the hot one, but this does "
                          "**not measure the refault cost**: {reason}",
    }
    size = format_size(size_kib(rec) * 1024)
    reason = None
    if hot is None or cold is None or hot <= 0 or cold <= 0:
        reason = "the recording lacks a touch speed."
    elif share is not None and share < THRESHOLDS["refault_min_reported_share"]:
        res_kib = reported_kib(rec)
        own = buffer_reported(rec)   # the same missing figure as reported_before_cold's where the maps locate it
        why, evidence = _why_not_reported(rec, own["reported_kib"] if own is not None else res_kib)
        frames = touched_reported(rec, "cold")
        mapped = "" if frames is None else (
            f" The maps show it for our buffer: of the frames the cold touch got, {frames['share']:.0%} "
            f"({analysis.mib(frames['reported_kib'])} of {analysis.mib(frames['frames_kib'])}) sat in blocks reported "
            f"just before it.")
        reason = (f"the whole guest had reported only {analysis.mib(res_kib)} ({share:.0%} of the buffer's size) "
                  f"before the cold touch, so it mostly got frames no report had given back.{mapped} {why} "
                  f"{_stall.what_to_try(evidence)}")
    elif (few := _few_frames_reported(rec)) is not None and _host_missing_words(rec) is None:
        # The counter counts every program's reports; the maps say whether the cold touch's own frames were reported.
        # (Where the host's map shows the cold touch's frames unbacked, _cause names that instead.)
        why, evidence = _why_not_reported(rec, few["reported_kib"])
        reason = (f"of the frames the cold touch got, only **{few['share']:.0%}** ({analysis.mib(few['reported_kib'])} "
                  f"of {analysis.mib(few['frames_kib'])}) sat in blocks reported just before it (maps of physical "
                  f"memory), so it mostly got frames no report had given back (whether the host backed them is not "
                  f"measured without the host's map), though the whole guest had reported "
                  f"{analysis.mib(reported_kib(rec) or 0)} meanwhile ({share or 0:.0%} of the buffer's size, every "
                  f"program's memory). {why} {_stall.what_to_try(evidence)}")
    if reason is not None:
        cold_frames = touched_reported(rec, "cold")
        return claim("refault.cold_vs_hot", "not_measurable", sentences, cold_text=_gbps(cold), hot_text=_gbps(hot),
                     reason=reason, hot_gb_per_s=hot, cold_gb_per_s=cold, reported_share=share,
                     cold_frames_reported_share=None if cold_frames is None else cold_frames["share"])
    ratio = hot / cold
    verdict = ratio_verdict(ratio)
    cause, frames = _cause(rec, verdict)
    return claim("refault.cold_vs_hot", verdict, sentences, value=ratio, unit="ratio", size=size,
                 hot=hot, cold=cold, reported_words=_reported_words(rec), ratio_words=times(ratio), cause=cause,
                 inverse_words=f"{times(1 / ratio)} faster", hot_gb_per_s=hot, cold_gb_per_s=cold,
                 reported_share=share, **frames)


def _few_frames_reported(rec: Recording) -> dict[str, float] | None:
    """The cold touch's frames (touched_reported) where too few of them had been reported to measure a refault."""
    frames = touched_reported(rec, "cold")
    if frames is None or frames["share"] >= THRESHOLDS["refault_min_reported_share"]:
        return None
    return frames


def _reported_words(rec: Recording) -> str:
    """What the host view showed before the cold touch: the whole guest's reports, not known to be ours."""
    share = reported_share(rec)
    if share is None:
        return "This run had no view of the host's side: whether anything was reported before the cold touch is unknown."
    return (f"Meanwhile the whole guest had reported {analysis.mib(reported_kib(rec))} to the host ({share:.0%} of the "
            f"buffer's size), counting every program's free memory, not only our buffer's.")


def _gbps(v: float | None) -> str:
    return f"{v:.2f} GB/s" if v else "no speed"


def cold_vs_first(rec: Recording) -> Claim:
    """The cold touch against the very first one (ratio = first speed / cold speed)."""
    sp = _speeds(rec)
    first, cold = sp["first"], sp["cold"]
    sentences = {
        "about_the_same": "The cold touch was about as fast as the very first one ({first:.2f} GB/s).",
        "slower": "The cold touch was {ratio_words} slower than even the very first one ({first:.2f} GB/s), a touch "
                  "of memory that had never been freed: why is not measured here.",
        "faster": "The cold touch was {inverse_words} faster than the very first one ({first:.2f} GB/s); what the "
                  "first touch paid for beyond it is not measured here.",
        "not_measurable": "The recording lacks the first or the cold touch's speed.",
        "too_little_reported": "The cold touch ran at {cold:.2f} GB/s against {first:.2f} GB/s for the very first "
                               "one, but with only {share:.0%} of {of_what} before it, this "
                               "says nothing about pages the host took back.",
    }
    if not first or not cold:
        return claim("refault.cold_vs_first", "not_measurable", sentences)
    share = reported_share(rec)
    if share is not None and share < THRESHOLDS["refault_min_reported_share"]:
        # Same gate as cold_vs_hot: a cold touch that found its pages still in the guest measures no refault.
        return claim("refault.cold_vs_first", "too_little_reported", sentences, first=first, cold=cold, share=share,
                     of_what="the buffer taken back by the host", first_gb_per_s=first, cold_gb_per_s=cold,
                     reported_share=share)
    few = _few_frames_reported(rec)
    if few is not None:
        return claim("refault.cold_vs_first", "too_little_reported", sentences, first=first, cold=cold,
                     share=few["share"], of_what="the frames it got in blocks reported to the host (maps)",
                     first_gb_per_s=first, cold_gb_per_s=cold, reported_share=share,
                     cold_frames_reported_share=few["share"])
    ratio = first / cold
    return claim("refault.cold_vs_first", ratio_verdict(ratio), sentences, value=ratio, unit="ratio", first=first,
                 cold=cold, ratio_words=times(ratio), inverse_words=times(1 / ratio),
                 first_gb_per_s=first, cold_gb_per_s=cold)


def all_claims(rec: Recording) -> list[Claim]:
    return [reported_before_cold(rec), cold_vs_hot(rec), cold_vs_first(rec)]
