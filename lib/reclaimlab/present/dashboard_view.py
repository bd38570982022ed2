"""What the live dashboard shows, from one sample: pure functions, no threads and no I/O.

dashboard.py samples and streams; this module turns a sample (a {column: value} row of KiB
figures, as the Recording's columns) into what the browser draws: the series and their colours,
one point per sample in the axis's unit, the readouts already formatted, the fonts. Python is the
only formatter: dashboard.js never builds a size string (it writes the readouts it is sent and
plain numbers on an axis whose title carries the unit chosen here, by units.format_kib's rules).
"""
from __future__ import annotations

from typing import Any, Sequence

from . import charts
from .. import units

PRESENTER_FONT_SCALE = 1.5   # as charts._font
STACK = charts.STACK  # (label, meminfo columns), bottom to top: the same parts as the labs' charts
STACK_COLORS = charts.STACK_COLORS
HOST_LABELS = charts.HOST_COLUMNS
HOST_COLORS = ["#2ca02c", "#ff7f0e", "#8c564b"]  # in HOST_LABELS order; apart from the stack's colours

# The readouts beside the chart: GiB from 1 GiB up, MiB below (units.format_kib's options).
READOUT = {"digits": {"GiB": 2, "MiB": 0}, "smallest": "MiB", "largest": "GiB", "missing": "n/a"}
# Decimals of a point's values in the axis unit: 1 MiB steps on a GiB axis, 0.1 MiB on a MiB one,
# far below a pixel of the chart and short in the message.
AXIS_DECIMALS = {"GiB": 3, "MiB": 1}


def font_px(size: float, presenter: bool) -> int:
    return int(round(size * (PRESENTER_FONT_SCALE if presenter else 1.0)))


def stack_labels(container: bool = False) -> list[str]:
    return list(charts.CGROUP_STACK) if container else [label for label, _ in STACK]


def stack_values(row: dict[str, Any], container: bool = False,
                 limit_kib: float | None = None) -> list[tuple[str, float | None]]:
    """(label, KiB) of each stack part for one sample; None where the guest lacks the field.

    In a container the host's meminfo is not the learner's memory: the parts are the memory
    cgroup's own split (as charts.memory_stack draws a container recording), up to its limit.
    """
    if not container:
        out = []
        for label, cols in STACK:
            present = [row.get(c) for c in cols if row.get(c) is not None]
            out.append((label, float(sum(present)) if present else None))
        return out
    anon_name, file_name, other_name, free_name = charts.CGROUP_STACK
    usage = row.get("cgroup_usage_bytes")
    anon, file = row.get("cgroup_anon_bytes"), row.get("cgroup_file_bytes")
    kib = lambda b: None if b is None else float(b) / 1024  # noqa: E731
    other = None if usage is None else max(0.0, float(usage) - float(anon or 0) - float(file or 0))
    free = None if usage is None or not limit_kib else max(0.0, limit_kib - float(usage) / 1024)
    return [(anon_name, kib(anon)), (file_name, kib(file)), (other_name, kib(other)), (free_name, free)]


def host_value(column: str, value: float | None, base: float | None) -> float | None:
    """What the chart shows for a host column: reported_kib as the change since the dashboard
    started (it counts from boot), the VM process's footprint as it is."""
    if value is None:
        return None
    if column == "host_reported_kib":
        return None if base is None else float(value - base)
    return float(value)


def series(columns: Sequence[str], container: bool = False) -> list[dict[str, str]]:
    """What each value of a point() is, in order: the stack parts bottom to top, then the host
    views this guest has (label, colour, kind), as the browser draws and labels them."""
    out = [{"label": label, "color": color, "kind": "stack"}
           for label, color in zip(stack_labels(container), STACK_COLORS)]
    out += [{"label": label, "color": color, "kind": "line"}
            for (c, label), color in zip(HOST_LABELS.items(), HOST_COLORS) if c in columns]
    return out


def values_kib(row: dict[str, Any], host_base: dict[str, float], container: bool = False,
               limit_kib: float | None = None) -> list[float | None]:
    """KiB of each series() entry for one sample, in order; None where the guest lacks it."""
    values = [kib for _, kib in stack_values(row, container, limit_kib)]
    values += [host_value(c, row[c], host_base.get(c)) for c in HOST_LABELS if c in row]
    return values


def axis_unit(total_kib: float | None) -> str:
    """The chart's unit for a guest (or container) of total_kib: the one units.format_kib would
    pick for the total with the readouts' options (GiB from 1 GiB up, MiB below; GiB if unknown)."""
    if total_kib is None or not total_kib > 0:
        return "GiB"
    return units.format_kib(total_kib, **READOUT).rsplit(" ", 1)[1]


def in_unit(kib: float | None, unit: str) -> float | None:
    """KiB as a plain number in the axis unit, rounded to AXIS_DECIMALS (None stays None)."""
    if kib is None:
        return None
    return round(kib * units.KIB / dict(units.UNITS)[unit], AXIS_DECIMALS[unit])


def point(row: dict[str, Any], host_base: dict[str, float], unit: str, container: bool = False,
          limit_kib: float | None = None) -> list[float | None]:
    """One sample as the browser draws it: [t_s, each series() entry in `unit` (in_unit)]."""
    return [row["t_s"], *(in_unit(v, unit) for v in values_kib(row, host_base, container, limit_kib))]


def readouts(row: dict[str, Any], host_base: dict[str, float], container: bool = False,
             limit_kib: float | None = None) -> list[str]:
    """Each series() entry of one sample as the view writes it beside the chart ('3.42 GiB', 'n/a')."""
    return [units.format_kib(v, **READOUT) for v in values_kib(row, host_base, container, limit_kib)]


def fonts(presenter: bool) -> dict[str, float]:
    """Font sizes in px (and the host line's width) for the view; presenter enlarges them."""
    f = lambda size: font_px(size, presenter)  # noqa: E731
    return {"axis": f(11), "axis_title": f(12), "title": f(14), "subtitle": f(11), "figures": f(14),
            "events": f(11), "line_width": 3 if presenter else 2.5}


def text_summary(row: dict[str, Any] | None, host_base: dict[str, float], container: bool = False,
                 limit_kib: float | None = None) -> str:
    """The current figures as one line of text: the fallback where widgets do not render."""
    if row is None:
        return "no sample yet"
    names = [d["label"].split(" (")[0] for d in series(tuple(row), container)]
    figures = readouts(row, host_base, container, limit_kib)
    return f"t = {row['t_s']:.1f} s: " + ", ".join(f"{n} {v}" for n, v in zip(names, figures))
