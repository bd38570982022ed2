"""The guest's map and the host's side by side for a run in the kit's VM: `show_guest_and_host_maps(rec)`.

A run in the kit's VM carries, at each step it snapshots buddyinfo, the guest's map of physical memory
(its page flags, over the agent) and the host's (QEMU's RAM residency), in physmap.json. This shows one
step's pair as an offline image with the agreement computed from the maps; where the run has none, one
sentence says why (a local run has no host map; an older VM recording no maps; a map that could not be
taken is named in the recording's meta).
"""
from __future__ import annotations

from typing import Mapping

from ..recording.recording import Recording
from .output import box, display_html, escape
from .physmaps import why_no_maps


def why_no_host_map(rec: Recording) -> str | None:
    """Why `rec` has no guest/host pair of maps to show, in one sentence; None where it has one."""
    if rec.meta.get("guest_kind") != "kit-vm":
        return ("The host's map exists only in the kit's VM, where this notebook is the host: this run's guest "
                f"({rec.meta.get('guest_kind') or 'unknown'}) has a host the kit cannot read.")
    if not rec.physmaps:
        return why_no_maps(rec)
    if not any(m.host is not None for m in rec.physmaps):
        why = rec.meta.get("hostmap_unavailable") or "no host map was taken"
        return f"This run holds the guest's maps only: {why}."
    return None


def _pick(rec: Recording, step: str | None):
    with_host = [m for m in rec.physmaps if m.host is not None]
    for m in with_host:
        if m.label == step:
            return m
    return with_host[-1]


def guest_and_host_maps_html(runs: Recording | Mapping[str, Recording],
                             step: str | None | Mapping[str, str] = "after") -> str:
    """HTML: for each run ({title: Recording}, or one Recording) the guest's and the host's map at `step`
    ({title: step} for a step per title, e.g. one run's two steps) (its last pair where it has no such step),
    or a box saying why there are none."""
    from ..present.physmap_chart import guest_host_html

    runs = {"": runs} if isinstance(runs, Recording) else dict(runs)
    parts = []
    for title, rec in runs.items():
        why = why_no_host_map(rec)
        if why is not None:
            parts.append(box("info", escape(f"{title}: {why}" if title else why)))
            continue
        m = _pick(rec, step.get(title) if isinstance(step, Mapping) else step)
        head = f"{title}, " if title else ""
        parts.append(guest_host_html(m.snapshot, m.host, title=f"{head}step {m.label!r} (t = {m.t_s:.0f} s):"))
    return "".join(parts)


def show_guest_and_host_maps(runs: Recording | Mapping[str, Recording],
                             step: str | None | Mapping[str, str] = "after") -> None:
    """Show the guest's map beside the host's for a run in the kit's VM (or several: {title: Recording})."""
    display_html(guest_and_host_maps_html(runs, step))
