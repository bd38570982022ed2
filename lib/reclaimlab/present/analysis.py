"""Numbers a lab states, computed from a Recording (pure: no I/O).

A lab never hard-codes what a run showed: it asks these functions, so the text
is true for the live run in front of the learner and for a recorded one alike.
"""
from __future__ import annotations

import math

import pandas as pd

from ..probe import procfs
from ..recording.recording import Recording
from ..units import format_kib, parse_size
from ..recording import provenance


def size_kib(rec: Recording) -> float:
    """The size a run allocated, in KiB: its results' size_bytes, else its parameters' (as typed or in bytes)."""
    res = rec.meta.get("results", {})
    params = rec.meta.get("parameters", {})
    return (res.get("size_bytes") or params.get("size_bytes") or parse_size(params["size"])) / 1024


def value_at(rec: Recording, column: str, t_s: float) -> float:
    """The column's value in the last sample at or before t_s (NaN where absent)."""
    if column not in rec.samples.columns:
        return math.nan
    return float(rec.at(t_s)[column])


def change(rec: Recording, column: str, t0_s: float, t1_s: float) -> float:
    """column(t1) - column(t0), in the column's own unit."""
    return value_at(rec, column, t1_s) - value_at(rec, column, t0_s)


def peak_change(rec: Recording, column: str, t0_s: float, t1_s: float) -> float:
    """The largest rise of the column within [t0, t1] over its value at t0."""
    s = rec.samples
    window = s[(s["t_s"] >= t0_s) & (s["t_s"] <= t1_s)]
    if column not in s.columns or window.empty:
        return math.nan
    return float(window[column].max() - value_at(rec, column, t0_s))


def time_until(rec: Recording, column: str, t0_s: float, target_rise: float) -> float | None:
    """Seconds after t0 until the column has risen by target_rise over its value at t0 (None: never)."""
    s = rec.samples
    base = value_at(rec, column, t0_s)
    after = s[(s["t_s"] >= t0_s) & ((s[column] - base) >= target_rise)] if column in s.columns else s.iloc[0:0]
    return None if after.empty else float(after["t_s"].iloc[0] - t0_s)


def rises(rec: Recording, column: str, t0_s: float = 0.0, t1_s: float = math.inf) -> pd.DataFrame:
    """Each step up of a cumulative counter in [t0, t1]: t_s and the size of the step (e.g. reporting batches)."""
    s = rec.samples
    if column not in s.columns:
        return pd.DataFrame({"t_s": [], "rise": []})
    w = s[(s["t_s"] >= t0_s) & (s["t_s"] <= t1_s)][["t_s", column]].dropna()
    d = w[column].diff()
    steps = w.assign(rise=d)[d > 0]
    return steps[["t_s", "rise"]].reset_index(drop=True)


def blocks_at_least(rec: Recording, label: str, min_order: int) -> int:
    """Free blocks of order >= min_order in the buddyinfo snapshot `label`, all zones."""
    b = rec.buddyinfo
    snap = b[(b["label"] == label) & (b["order"] >= min_order)]
    if not (b["label"] == label).any():
        raise KeyError(f"no buddyinfo snapshot labelled {label!r}; have: {', '.join(dict.fromkeys(b['label']))}")
    return int(snap["free_blocks"].sum())


def free_blocks_by_order(rec: Recording, label: str) -> dict[int, int]:
    """{order: free blocks} in buddyinfo snapshot `label`, summed over zones ({} without it)."""
    b = rec.buddyinfo
    if b is None or b.empty:
        return {}
    snap = b[b["label"] == label]
    return {int(k): int(v) for k, v in snap.groupby("order")["free_blocks"].sum().items()}


def free_kib_at_least(rec: Recording, label: str, min_order: int) -> int:
    """Free memory (KiB) held in blocks of order >= min_order in snapshot `label` (procfs.free_kib_at_least)."""
    return procfs.free_kib_at_least(free_blocks_by_order(rec, label), min_order, provenance.page_kib(rec.meta))


def reporting_order(rec: Recording) -> int | None:
    """The order free page reporting worked at in this run: its meta's page_reporting_order, else the one
    the run put in its results; None where neither names a usable one (procfs.reporting_order)."""
    order = procfs.reporting_order(rec.meta.get("page_reporting_order"))
    if order is None:
        order = procfs.reporting_order((rec.meta.get("results") or {}).get("page_reporting_order"))
    return order


def gib(kib: float) -> str:  # the labs' name for units.format_kib in GiB
    return format_kib(kib, "GiB")


def mib(kib: float) -> str:  # the labs' name for units.format_kib in whole MiB
    return format_kib(kib, "MiB", digits=0, grouping=True)


def signed_mib(kib: float) -> str:
    """A change in whole MiB with its sign: +12 MiB, −3 MiB (a true minus), 0 MiB."""
    return ("+" if kib > 0 else "−" if kib < 0 else "") + mib(abs(kib))


# --------------------------------------------------------------------------- events and bursts


def when(rec: Recording, kind: str, detail: str | None = None, nth: int = 0) -> float:
    """The time (s) of the nth event of `kind` (and `detail`, if given); KeyError naming what exists."""
    ev = rec.events[rec.events["kind"] == kind]
    if detail is not None:
        ev = ev[ev["detail"].astype(str) == str(detail)]
    if len(ev) <= nth:
        have = ", ".join(f"{k}({d})" if d else k for k, d in zip(rec.events["kind"], rec.events["detail"]))
        want = f"{kind!r}" + (f" with detail {detail!r}" if detail is not None else "")
        raise KeyError(f"the {rec.meta.get('experiment', '?')} recording has no event {want}"
                       + (f" number {nth + 1}" if nth else "") + f"; its events: {have}")
    return float(ev["t_s"].iloc[nth])


def next_event(rec: Recording, t_s: float) -> float:
    """The time of the first event after t_s (the last sample's time if none follows)."""
    later = rec.events[rec.events["t_s"] > t_s]["t_s"]
    return float(later.min()) if len(later) else float(rec.samples["t_s"].iloc[-1])


def bursts(rec: Recording, column: str, t0_s: float = 0.0, t1_s: float = math.inf,
           gap_s: float = 1.0) -> pd.DataFrame:
    """Group the rises of a cumulative column (e.g. host_reported_kib) into bursts.

    Rises in consecutive samples less than `gap_s` apart form one burst. Returns one row per burst:
    start_s, end_s (times of its first and last rise) and rise (in the column's unit).
    """
    steps = rises(rec, column, t0_s, t1_s)
    out: list[dict[str, float]] = []
    for t, rise in zip(steps["t_s"], steps["rise"]):
        if out and t - out[-1]["end_s"] < gap_s:
            out[-1]["end_s"] = float(t)
            out[-1]["rise"] += float(rise)
        else:
            out.append({"start_s": float(t), "end_s": float(t), "rise": float(rise)})
    return pd.DataFrame(out, columns=["start_s", "end_s", "rise"])


def has(rec: Recording, column: str) -> bool:
    """True when the recording has the column with at least one value."""
    return column in rec.samples.columns and bool(rec.samples[column].notna().any())
