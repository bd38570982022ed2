"""The maps of physical memory of a run, step by step, in a lab: `show_physical_memory(rec, steps)`.

The maps come with the Recording (physmap.json: one map per step, taken as root from /proc/kpageflags).
Where the run has none, the lab says why in one sentence, from the recording itself: the page flags
were unreadable (its meta["physmap_unavailable"]), or it was made before reclaimlab recorded maps; a
live run without maps falls back to the shipped recording of the same experiment, and says so.
"""
from __future__ import annotations

from typing import Mapping

from ..recording.recording import Recording, RecordingError
from .output import box, display_html, escape


def why_no_maps(rec: Recording) -> str:
    """Why `rec` holds no map of physical memory, in one sentence."""
    why = rec.meta.get("physmap_unavailable")
    if why:
        return f"This run recorded no map of physical memory: {why}."
    if rec.meta.get("guest_kind") == "kit-vm":
        return ("This run in the kit's VM holds no map of physical memory: it was recorded before reclaimlab took maps "
                "there (2026-12-06); run it live, or use the shipped recordings.")
    return ("This recording holds no map of physical memory (it has no physmap.json: it was made before reclaimlab "
            "recorded maps); record it again as root to see them.")


def pick_steps(rec: Recording, steps: Mapping[str, str]) -> list:
    """The maps of `rec` whose labels `steps` names, in the order `steps` names them (the first of each label)."""
    by_label: dict = {}
    for m in rec.physmaps:
        by_label.setdefault(m.label, m)
    return [by_label[label] for label in steps if label in by_label]


def _shipped(rec: Recording) -> Recording | None:
    """The shipped recording of the same experiment where it has maps and `rec` is a live run (None otherwise)."""
    if rec.is_recorded or rec.meta.get("guest_kind") == "kit-vm":
        return None
    from ..recording import datasets
    try:
        shipped = datasets.find(str(rec.meta.get("experiment")))
    except RecordingError:
        return None
    return shipped if shipped.physmaps else None


def physical_memory_html(rec: Recording, steps: Mapping[str, str], caption: str = "") -> str:
    """The maps of `steps` ({label: the name shown}) as small multiples, or a box saying why there are none."""
    from ..present.physmap_chart import steps_html

    shown, note = rec, ""
    if not pick_steps(rec, steps):
        why = (why_no_maps(rec) if not rec.physmaps else
               f"This run's maps are of other steps ({', '.join(dict.fromkeys(m.label for m in rec.physmaps))}).")
        shipped = _shipped(rec)
        if shipped is None or not pick_steps(shipped, steps):
            return box("info", escape(why))
        shown = shipped
        note = box("notice", escape(f"{why} Shown instead: the shipped {rec.meta.get('experiment')} "
                                    f"recording of {str(shipped.meta.get('date_utc', '?'))[:10]}."))
    picked = pick_steps(shown, steps)
    return note + steps_html(picked, dict(steps), caption=caption)


def show_physical_memory(rec: Recording, steps: Mapping[str, str], caption: str = "") -> None:
    """Show the run's maps of physical memory at `steps` ({label: the name shown}), in that order."""
    display_html(physical_memory_html(rec, steps, caption))
