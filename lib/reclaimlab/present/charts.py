"""Altair charts from a Recording, rendered offline.

Charts are drawn by altair and rendered to SVG by vl-convert inside the kernel
(`use_offline_renderer`): the page needs no JavaScript from a CDN, so a browser
with no internet shows them, and an executed notebook stays small (tens of KB a
chart, where an embedded JupyterChart costs ~0.9 MB of JavaScript each).

Each chart is emitted as an HTML `<img>` whose source is the SVG as a data URL, with alt text that
describes it, plus that text as text/plain. JupyterLab refuses `image/svg+xml` output in a notebook it
does not trust (any executed notebook opened later: the chart shows as its text), but shows sanitized
HTML, and its sanitizer keeps an `<img>` with a data URL; nbconvert's HTML shows the same `<img>`.
The base64 costs nothing against bare SVG in the notebook's JSON (which escapes every quote): executed
in recorded mode, lab 01 is 224 KB either way. No PNG beside it: JupyterLab (trusted or not) and
nbconvert both pick text/html before image/png, so a PNG would never be shown there and would about
triple each chart's bytes (lab 01's memory chart: 36 KB of SVG, 83 KB of PNG; vl-convert 1.9, measured 2026-11-26).
"""
from __future__ import annotations

import math

import base64
import html
import re

import altair as alt
import pandas as pd

from ..recording.recording import Recording
from . import analysis
from ..recording import provenance
from ..units import GIB as BYTES_PER_GIB, KIB_PER_GIB, KIB_PER_MIB
MAX_POINTS = 1500  # per series: more is invisible at chart width and only grows the page

# What the guest's memory holds, bottom to top of the stack, with the meminfo fields behind each.
STACK = [
    ("Anonymous (AnonPages)", ("anon_kib",)),
    ("Page cache (Cached + Buffers)", ("cached_kib", "buffers_kib")),
    ("Reclaimable slab (SReclaimable)", ("slab_reclaimable_kib",)),
    ("Free (MemFree)", ("mem_free_kib",)),
]
STACK_COLORS = ["#d62728", "#1f77b4", "#9467bd", "#c7c7c7"]
# In a container /proc/meminfo is the host's, not the learner's: the stack is the memory cgroup's own
# split instead, bottom to top, filling up to the cgroup's limit.
CGROUP_STACK = [
    "Anonymous (cgroup anon)",
    "Page cache (cgroup file)",
    "Other charged to the cgroup (kernel, slab, ...)",
    "Free within the limit (limit − usage)",
]
HOST_COLUMNS = {
    "host_reported_kib": "Reported to the host since start (page_reporting reported_kib)",
    "host_vm_working_set_kib": "Host: VM process working set (vmmem)",
    "host_vm_rss_kib": "Host: QEMU process resident memory (VmRSS)",
}

RENDERER = "reclaimlab-img"
_MARK_KIND = {"area": "area chart", "line": "line chart", "bar": "bar chart", "point": "scatter plot",
              "rule": "chart", "text": "chart"}


def _title(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("text")
    if isinstance(value, list):
        value = " ".join(map(str, value))
    return str(value) if value else None


def _layers(spec: dict) -> list[dict]:
    """Every unit spec (one with a mark) in a chart, layers flattened, first layer first."""
    if "mark" in spec:
        return [spec]
    return [unit for sub in spec.get("layer", []) + spec.get("vconcat", []) for unit in _layers(sub)]


def _field_values(spec: dict, unit: dict, field: str) -> list:
    name = (unit.get("data") or spec.get("data") or {}).get("name")
    rows = spec.get("datasets", {}).get(name, [])
    return list(dict.fromkeys(r[field] for r in rows if r.get(field) is not None))


def describe(spec: dict) -> str:
    """Alt text for a chart from its Vega-Lite spec: kind, title, axes and the series it shows."""
    units = _layers(spec)
    main = next((u for u in units if (u.get("mark") if isinstance(u.get("mark"), str) else u.get("mark", {}).get("type"))
                 in ("area", "line", "bar", "point")), units[0] if units else {})
    mark = main.get("mark")
    mark = mark if isinstance(mark, str) else (mark or {}).get("type", "")
    enc = main.get("encoding", {})
    stacked = mark == "area" and (enc.get("y") or {}).get("stack")
    parts = [("stacked " if stacked else "") + _MARK_KIND.get(mark, "chart")]
    title = _title(spec.get("title"))
    if title:
        parts[0] += f": {title}"
    axes = []
    for channel, where in (("x", "horizontal axis"), ("y", "vertical axis")):
        e = enc.get(channel) or {}
        label = _title(e.get("title")) if "title" in e else e.get("field")
        if label:
            axes.append(f"{where}: {label}")
    if axes:
        parts.append("; ".join(axes))
    color = enc.get("color") or {}
    if color.get("field"):
        # every layer drawn with the same colour field (a series drawn on top is a layer of its own)
        present = list(dict.fromkeys(v for u in units if ((u.get("encoding") or {}).get("color") or {}).get("field")
                                     == color["field"] for v in _field_values(spec, u, color["field"])))
        order = color.get("sort") if isinstance(color.get("sort"), list) else (color.get("scale") or {}).get("domain")
        if isinstance(order, list):
            present = [v for v in order if v in present] + [v for v in present if v not in order]
        if present:
            parts.append("series: " + ", ".join(map(str, present)))
    marks = [u for u in units if u is not main and (u.get("mark") if isinstance(u.get("mark"), str)
                                                    else u.get("mark", {}).get("type")) == "rule"]
    if marks:
        parts.append("dashed vertical lines mark the experiment's steps")
    return ". ".join(p[0].upper() + p[1:] for p in parts) + "."


def _svg_size(svg: str) -> tuple[str, str] | None:
    m = re.search(r'<svg[^>]*?\swidth="([\d.]+)"[^>]*?\sheight="([\d.]+)"', svg)
    return (m.group(1), m.group(2)) if m else None


def img_mimebundle(spec: dict, **_: object) -> dict:  # options (presenter=...) are read when a chart is built
    """An altair renderer: the chart as an HTML <img> of its SVG (data URL) with alt text, plus that
    text as text/plain. Renders in untrusted notebooks, nbconvert's HTML, with no JavaScript."""
    from altair.utils.mimebundle import spec_to_mimebundle  # the call altair's own "svg" renderer makes
    svg = spec_to_mimebundle(spec, format="svg", mode="vega-lite")["image/svg+xml"]
    text = describe(spec)
    size = _svg_size(svg)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    src = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return {"text/html": f'<img class="reclaimlab-chart" src="{src}" alt="{html.escape(text, quote=True)}"{dims}>',
            "text/plain": text}


def use_offline_renderer(presenter: bool = False) -> None:
    """Render every chart as an <img> of inline SVG (no CDN, shown untrusted); `presenter` enlarges
    fonts for a projector. This is altair's own display setting (what lab.setup switches on, as
    `%matplotlib inline` would): the renderer is registered here, not at import, and the presenter
    choice is that renderer's option (`alt.renderers.options`), not a global of this module."""
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, img_mimebundle)
    alt.renderers.enable(RENDERER, presenter=bool(presenter))
    alt.data_transformers.disable_max_rows()


def presenter_fonts() -> bool:
    """Whether charts are drawn for a projector: the `presenter` option of the offline renderer,
    where use_offline_renderer (lab.setup) enabled it; False otherwise."""
    return alt.renderers.active == RENDERER and bool(alt.renderers.options.get("presenter", False))


def _font(size: int) -> int:
    return int(size * 1.5) if presenter_fonts() else size


def _configure(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    return (chart.configure_axis(labelFontSize=_font(11), titleFontSize=_font(12))
                 .configure_legend(labelFontSize=_font(11), titleFontSize=_font(12), orient="bottom",
                                   # columnPadding: browsers draw sans-serif wider than vl-convert measures it
                                   columns=2, labelLimit=400, columnPadding=_font(40))
                 .configure_title(fontSize=_font(14), anchor="start"))


def _thin(df: pd.DataFrame) -> pd.DataFrame:
    """Keep at most MAX_POINTS evenly spread rows (first and last always kept)."""
    if len(df) <= MAX_POINTS:
        return df
    step = len(df) / MAX_POINTS
    idx = sorted({int(i * step) for i in range(MAX_POINTS)} | {len(df) - 1})
    return df.iloc[idx]


def _kib(s: pd.DataFrame, column: str) -> pd.Series:
    """A column in KiB: meminfo's columns are in KiB (*_kib), the cgroup's in bytes (*_bytes)."""
    return s[column] / 1024 if column.endswith("_bytes") else s[column]


def _series(samples: pd.DataFrame, column: str, key: str, label: str, unit: str,
            since_start: bool) -> pd.DataFrame | None:
    """One column as a long frame (t_s, key=label, unit), or None where the recording lacks it."""
    if column not in samples.columns or not samples[column].notna().any():
        return None
    kib = _kib(samples, column)
    v = kib - (kib.dropna().iloc[0] if since_start else 0)
    return pd.DataFrame({"t_s": samples["t_s"], key: label,
                         unit: v / (KIB_PER_GIB if unit == "GiB" else KIB_PER_MIB)})


EVENT_LABEL_ROWS = 6  # rows of step labels above a chart; a label that fits in none is left off (its rule stays)
EVENT_REPEATS_COLLAPSED = 4  # a step repeated this often is labelled once, "kind ×n", at its first time
_CHAR_PX_PER_FONT_PX = 0.68  # a generous width per character: browsers draw sans-serif wider than vl-convert measures


def _event_labels(events: pd.DataFrame) -> pd.DataFrame:
    """(t_s, label) of each step to label: its kind, plus its detail when short; a kind repeated
    EVENT_REPEATS_COLLAPSED times or more is labelled once, at its first time, as "kind ×n"."""
    counts = events["kind"].value_counts()
    rows, seen = [], set()
    for t, kind, detail in zip(events["t_s"], events["kind"], events["detail"].fillna("")):
        if counts[kind] >= EVENT_REPEATS_COLLAPSED:
            if kind not in seen:
                seen.add(kind)
                rows.append((t, f"{kind} ×{counts[kind]}"))
            continue
        rows.append((t, kind + (f" {detail}" if detail and len(detail) < 18 else "")))
    return pd.DataFrame(rows, columns=["t_s", "label"])


def event_label_rows(labels: pd.DataFrame, x_domain: tuple[float, float], width: float,
                     font_px: float) -> pd.DataFrame:
    """Place each label in the first row where it overlaps no other label (greedy, in time order).

    Returns `labels` with `row` (0 = nearest the plot; -1 = left off: no row had room), `align`
    ("left" of its rule, or "right" where it would run past the plot's right edge) and the label's
    estimated horizontal extent in pixels (`x0_px`, `x1_px`).
    """
    lo, hi = x_domain
    span = (hi - lo) or 1.0
    placed: list[list[tuple[float, float]]] = [[] for _ in range(EVENT_LABEL_ROWS)]
    out = []
    for t, label in zip(labels["t_s"], labels["label"]):
        x = (t - lo) / span * width
        w = len(label) * font_px * _CHAR_PX_PER_FONT_PX + 6  # 6 px: the gap to the rule and to the next label
        align, x0, x1 = ("left", x, x + w) if x + w <= width + 20 else ("right", x - w, x)
        row = next((r for r, spans in enumerate(placed) if all(x1 <= a or x0 >= b for a, b in spans)), -1)
        if row >= 0:
            placed[row].append((x0, x1))
        out.append((row, align, x0, x1))
    return labels.assign(row=[o[0] for o in out], align=[o[1] for o in out],
                         x0_px=[o[2] for o in out], x1_px=[o[3] for o in out])


def _x_domain(rec: Recording, t_s: pd.Series) -> tuple[float, float]:
    """The x scale's domain in our charts: Vega-Lite's default includes zero; nice=False ends it at the data."""
    times = pd.concat([t_s, rec.events["t_s"]])
    return min(0.0, float(times.min())), float(times.max())


def _events_layer(rec: Recording, x_domain: tuple[float, float], width: int,
                  labelled: bool = True) -> alt.LayerChart | None:
    """Dashed rules at the experiment's steps, labelled above the plot in staggered rows, never overlapping."""
    ev = rec.events[rec.events["kind"] != "note"]
    if ev.empty:
        return None
    font_px = _font(10)
    row_px = font_px + 3
    rules = alt.Chart(ev[["t_s"]]).mark_rule(strokeDash=[4, 3], color="#555").encode(
        x=alt.X("t_s:Q", scale=alt.Scale(domain=list(x_domain), nice=False, zero=False)))
    if not labelled:
        return alt.layer(rules)
    labels = event_label_rows(_event_labels(ev), x_domain, width, font_px)
    layers = [rules]
    for (row, align), group in labels[labels["row"] >= 0].groupby(["row", "align"]):
        layers.append(alt.Chart(group[["t_s", "label"]]).mark_text(
            align=align, baseline="bottom", dx=3 if align == "left" else -3, fontSize=font_px, color="#333",
        ).encode(x="t_s:Q", y=alt.value(-3 - row * row_px), text="label:N"))
    return alt.layer(*layers)


def is_container_recording(rec: Recording) -> bool:
    """True when `rec` was made in a container with a memory cgroup (its meminfo columns are the host's)."""
    return rec.meta.get("guest_kind") == "container" and "cgroup_usage_bytes" in rec.samples.columns


def _meminfo_parts(s: pd.DataFrame) -> dict[str, pd.Series]:
    parts = {}
    for name, cols in STACK:
        present = [c for c in cols if c in s.columns]
        if present:
            parts[name] = s[present].sum(axis=1) / KIB_PER_GIB
    return parts


def _cgroup_parts(s: pd.DataFrame, limit_bytes: int | None) -> dict[str, pd.Series]:
    usage = s["cgroup_usage_bytes"].astype(float)
    anon_name, file_name, other_name, free_name = CGROUP_STACK
    parts = {}
    for name, col in ((anon_name, "cgroup_anon_bytes"), (file_name, "cgroup_file_bytes")):
        if col in s.columns:
            parts[name] = s[col].astype(float).fillna(0)
    # usage also counts kernel memory, slab and sockets; v1 usage is batched per CPU, so never below 0
    parts[other_name] = (usage - sum(parts.values(), 0.0)).clip(lower=0)
    if limit_bytes:
        parts[free_name] = (limit_bytes - usage).clip(lower=0)
    return {name: v / BYTES_PER_GIB for name, v in parts.items()}


def memory_stack(rec: Recording) -> tuple[pd.DataFrame, list[str], str]:
    """(long frame of t_s, part, GiB; the parts bottom to top; whose memory it is) for stacked_memory.

    A container recording stacks its memory cgroup (anon, file, other, free within the limit), since its
    meminfo columns are the host's; any other recording stacks /proc/meminfo's fields (STACK).
    """
    if is_container_recording(rec):
        # Above 10 Hz memory.stat is read on every k-th sample only (sampler.py): carry it forward, then thin.
        stat = [c for c in ("cgroup_anon_bytes", "cgroup_file_bytes") if c in rec.samples.columns]
        s = _thin(rec.samples.assign(**{c: rec.samples[c].ffill() for c in stat}))
        parts, order = _cgroup_parts(s, rec.meta.get("cgroup_limit_bytes")), CGROUP_STACK
        whose = "the container's memory cgroup"
    else:
        s = _thin(rec.samples)
        parts, order, whose = _meminfo_parts(s), [n for n, _ in STACK], "the guest's memory"
    if not parts:
        raise ValueError("this recording has none of the meminfo columns a memory chart needs")
    long = pd.concat([pd.DataFrame({"t_s": s["t_s"], "part": name, "GiB": v}) for name, v in parts.items()],
                     ignore_index=True)
    return long, list(order), whose


FREE_DWARFS_FACTOR = 3  # free memory more than 3x the rest would flatten the parts the lesson is about


def stacked_memory(rec: Recording, title: str | None = None, width: int = 640, height: int = 260,
                   include_free: bool | None = None):
    """What the guest's memory (in a container: its memory cgroup) holds over time (GiB), steps marked.

    include_free: stack free memory on top; None (default) leaves it out where it would dwarf the rest
    (a 24 GiB guest moving 3 GiB) and says so in the axis title.
    """
    long, order, whose = memory_stack(rec)
    free_part = order[-1]  # both stacks put free memory last
    held = long[long["part"] != free_part].groupby("t_s")["GiB"].sum()
    if include_free is None:
        free_max = long.loc[long["part"] == free_part, "GiB"].max()
        include_free = not (held.max() > 0 and free_max > FREE_DWARFS_FACTOR * held.max())
    y_title = f"{whose} (GiB)"
    if not include_free:
        long, order = long[long["part"] != free_part], order[:-1]
        y_title = f"{whose}, free not shown (GiB)"
    colors = STACK_COLORS[:len(order)]
    x_domain = _x_domain(rec, long["t_s"])
    area = alt.Chart(long).mark_area(opacity=0.85).encode(
        x=alt.X("t_s:Q", title="time (s)", scale=alt.Scale(domain=list(x_domain), nice=False, zero=False)),
        y=alt.Y("GiB:Q", stack="zero", title=y_title),
        color=alt.Color("part:N", sort=order, title=None, scale=alt.Scale(domain=order, range=colors)),
        order=alt.Order("order:Q"),
    ).transform_calculate(order=f"indexof({order!r}, datum.part)")
    layers = [area]
    ev = _events_layer(rec, x_domain, width)
    if ev is not None:
        layers.append(ev)
    title = title or f"{rec.meta.get('experiment', '')}: what {whose} holds"
    return _configure(alt.layer(*layers).properties(
        width=width, height=height, title=title))


def lines(rec: Recording, columns: dict[str, str], title: str, unit: str = "MiB",
          width: int = 640, height: int = 220, since_start: bool = False, on_top: str | None = None,
          panel: dict[str, str] | None = None, panel_height: int = 120):
    """Selected *_kib or *_bytes columns as lines in `unit` (MiB or GiB), with the steps marked.

    `columns` maps a column to its legend label; absent columns are skipped, never invented.
    `since_start` plots each column's change since the first sample.
    `on_top`: a column drawn last, dashed and thicker, so a line that runs on another stays visible.
    `panel`: columns drawn in a second panel below, on the same time axis but their own scale, so a
    change of tens of MiB stays visible beside lines that move by GiB (e.g. slab beside the page cache).
    """
    s = _thin(rec.samples)
    def frame(cols: dict[str, str]) -> pd.DataFrame | None:
        parts = [p for col, label in cols.items() if (p := _series(s, col, "series", label, unit, since_start)) is not None]
        return pd.concat(parts, ignore_index=True) if parts else None
    long, below = frame(columns), frame(panel or {})
    if long is None:
        raise ValueError(f"this recording has none of the columns {', '.join(columns)}")
    present = set(long["series"]) | (set(below["series"]) if below is not None else set())
    labels = [label for label in {**columns, **(panel or {})}.values() if label in present]  # one legend for both
    top_label = columns.get(on_top) if on_top in columns and columns.get(on_top) in labels else None
    x_domain = _x_domain(rec, long["t_s"] if below is None else pd.concat([long["t_s"], below["t_s"]]))
    encoding = dict(
        x=alt.X("t_s:Q", title="time (s)", scale=alt.Scale(domain=list(x_domain), nice=False, zero=False)),
        y=alt.Y(f"{unit}:Q", title=unit + (" since start" if since_start else "")),
        color=alt.Color("series:N", title=None, sort=labels, scale=alt.Scale(domain=labels)),
    )
    if top_label is not None:  # one legend for colour and dash: same field, same title, same domain
        encoding["strokeDash"] = alt.StrokeDash("series:N", title=None, sort=labels, scale=alt.Scale(
            domain=labels, range=[[7, 3] if label == top_label else [1, 0] for label in labels]))
        layers = [alt.Chart(long[long["series"] != top_label]).mark_line(interpolate="step-after").encode(**encoding),
                  alt.Chart(long[long["series"] == top_label]).mark_line(interpolate="step-after", strokeWidth=3)
                  .encode(**encoding)]
    else:
        layers = [alt.Chart(long).mark_line(interpolate="step-after").encode(**encoding)]
    ev = _events_layer(rec, x_domain, width)
    if ev is not None:
        layers.append(ev)
    chart = alt.layer(*layers).properties(width=width, height=height)
    if below is None:
        return _configure(chart.properties(title=title))
    lower = [alt.Chart(below).mark_line(interpolate="step-after").encode(
        **{**encoding, "strokeDash": alt.Undefined,
           "y": alt.Y(f"{unit}:Q", title=unit + (" since start" if since_start else "") + ", own scale")})]
    ev = _events_layer(rec, x_domain, width, labelled=False)
    if ev is not None:
        lower.append(ev)
    lower_chart = alt.layer(*lower).properties(width=width, height=panel_height)
    return _configure(alt.vconcat(chart, lower_chart, spacing=12, title=title).resolve_scale(y="independent"))


def host_view(rec: Recording, title: str | None = None, width: int = 640, height: int = 200):
    """The host's side: memory the guest handed back, or the VM process's footprint."""
    present = {c: label for c, label in HOST_COLUMNS.items()
               if c in rec.samples.columns and rec.samples[c].notna().any()}
    if not present:
        return None
    cumulative = "host_reported_kib" in present
    return lines(rec, present, title or "The host's side", unit="GiB", width=width, height=height,
                 since_start=cumulative and len(present) == 1)


def buddy_orders(rec: Recording, labels: list[str] | None = None, reporting_order: int | None = None,
                 width: int = 560, height: int = 240):
    """Free memory per buddy order (MiB) in each buddyinfo snapshot, summed over zones.

    Blocks of at least `reporting_order` are the only ones free page reporting hands to the host.
    """
    b = rec.buddyinfo
    if b.empty:
        raise ValueError("this recording has no buddyinfo snapshots")
    page_kib = provenance.page_kib(rec.meta)
    tot = b.groupby(["label", "order"], sort=False, as_index=False)["free_blocks"].sum()
    tot["MiB"] = tot["free_blocks"] * (2 ** tot["order"]) * page_kib / KIB_PER_MIB
    if labels:
        tot = tot[tot["label"].isin(labels)]
    label_order = labels or list(dict.fromkeys(tot["label"]))
    if reporting_order is None:
        reporting_order = analysis.reporting_order(rec)
    tot["reportable"] = tot["order"] >= (reporting_order if reporting_order is not None else 99)
    top_mib = 10 ** max(1, math.ceil(math.log10(max(float(tot["MiB"].max()), 1.0) * 1.05)))
    bars = alt.Chart(tot).mark_bar().encode(
        x=alt.X("order:O", title="buddy order (block = 2^order pages)"),
        xOffset=alt.XOffset("label:N", sort=label_order),
        # symlog keeps tiny and huge orders on one chart; explicit ticks keep the low orders readable. The
        # domain runs to the next power of ten above the tallest bar: symlog's own domain cut off order 10.
        y=alt.Y("MiB:Q", title="free memory in blocks of this order (MiB)",
                scale=alt.Scale(type="symlog", domain=[0, top_mib], nice=False),
                axis=alt.Axis(values=[v for v in (0, 1, 10, 100, 1000, 10000, 100000, 1000000) if v <= top_mib],
                              format=",.0f")),
        color=alt.Color("label:N", sort=label_order, title=None),
        opacity=alt.condition("datum.reportable", alt.value(1.0), alt.value(0.55)),
    )
    title = "Free memory by block size"
    if reporting_order is not None:
        title += f" (solid bars: order ≥ {reporting_order}, the blocks free page reporting can hand back)"
    return _configure(bars.properties(width=width, height=height, title=title))


def compare(recordings: dict[str, Recording], column: str, title: str, unit: str = "GiB",
            since_start: bool = False, width: int = 640, height: int = 240):
    """One column from several recordings on the same axes (e.g. two reclaim policies)."""
    parts = [p for label, rec in recordings.items()
             if (p := _series(_thin(rec.samples), column, "run", label, unit, since_start)) is not None]
    if not parts:
        raise ValueError(f"none of these recordings has the column {column}")
    long = pd.concat(parts, ignore_index=True)
    color = alt.Color("run:N", title=None, sort=list(recordings))
    chart = alt.Chart(long).mark_line(interpolate="step-after").encode(
        x=alt.X("t_s:Q", title="time (s)", scale=alt.Scale(nice=False)),
        y=alt.Y(f"{unit}:Q", title=unit + (" since start" if since_start else "")), color=color)
    # each run's steps, dashed in its own colour (runs' steps fall at different times, so they stay unlabelled)
    steps = pd.concat([rec.events.loc[rec.events["kind"] != "note", ["t_s"]].assign(run=label)
                       for label, rec in recordings.items()], ignore_index=True)
    if not steps.empty:
        chart = alt.layer(chart, alt.Chart(steps).mark_rule(strokeDash=[4, 3], opacity=0.7).encode(
            x="t_s:Q", color=color))
    return _configure(chart.properties(width=width, height=height, title=title))


def compare_from_mark(recordings: dict[str, Recording], column: str, title: str, marks: dict[str, float],
                      window_s: float, unit: str = "GiB", since_mark: bool = False, width: int = 640,
                      height: int = 220):
    """One column from several runs at EQUAL TIME: each run's t_s counted from its own mark
    (`marks[label]`, e.g. its idle mark) and cut at `window_s`; each run's actions as dashed rules.
    `since_mark`: the change since the mark (for a cumulative column such as host_reported_kib)."""
    parts, steps = [], []
    for label, rec in recordings.items():
        t0 = marks[label]
        s = rec.samples[(rec.samples["t_s"] >= t0) & (rec.samples["t_s"] <= t0 + window_s)].copy()
        s["t_s"] = s["t_s"] - t0
        part = _series(_thin(s), column, "run", label, unit, since_mark)
        if part is not None:
            parts.append(part)
        ev = rec.events[rec.events["kind"].isin(("drop_caches", "reclaim"))
                        & (rec.events["t_s"] >= t0) & (rec.events["t_s"] <= t0 + window_s)]
        steps.append(pd.DataFrame({"t_s": ev["t_s"] - t0, "run": label}))
    if not parts:
        raise ValueError(f"none of these recordings has the column {column}")
    color = alt.Color("run:N", title=None, sort=list(recordings))
    chart = alt.Chart(pd.concat(parts, ignore_index=True)).mark_line(interpolate="step-after").encode(
        x=alt.X("t_s:Q", title="time after the idle mark (s)", scale=alt.Scale(nice=False)),
        y=alt.Y(f"{unit}:Q", title=unit + (" since the mark" if since_mark else "")), color=color,
        strokeDash=alt.StrokeDash("run:N", legend=None, sort=list(recordings)))   # lines that coincide stay visible
    rules = pd.concat(steps, ignore_index=True)
    if not rules.empty:
        chart = alt.layer(chart, alt.Chart(rules).mark_rule(strokeDash=[4, 3], opacity=0.5).encode(
            x="t_s:Q", color=color))
    return _configure(chart.properties(width=width, height=height, title=title))


def workload_memory(rec: Recording, title: str = "Memory while we calloc, touch and free: change since the start"):
    """Lab 01's chart: our allocator's own figure (its cgroup, else RssAnon; dashed, on top: it runs on the guest's AnonPages) and,
    as context, the whole guest's AnonPages and MemFree (in a container: the cgroup's counters)."""
    whole = ({"cgroup_anon_bytes": "Context: your container's anonymous memory (cgroup)",
              "cgroup_usage_bytes": "Context: your container's charged memory (cgroup)"} if is_container_recording(rec)
             else {"anon_kib": "Context: the whole guest's AnonPages (every process)",
                   "mem_free_kib": "Context: the whole guest's MemFree"})
    # The figure lab 01's claims quote: its own memory cgroup where the run had one, else its RssAnon.
    if (rec.meta.get("results") or {}).get("calloc_cgroup_kib") is not None and "workload_cgroup_bytes" in rec.samples:
        own = {"workload_cgroup_bytes": "Our allocator's own memory cgroup (dashed)"}
    else:
        own = {"workload_rss_anon_kib": "Our allocator's own anonymous memory (RssAnon, dashed)"}
    return lines(rec, {**own, **whole}, title=title, unit="GiB", since_start=True, on_top=next(iter(own)))


def touch_speeds(recordings: dict[str, Recording], title: str = "Writing every page of the buffer: speed of each touch",
                 width: int = 420, height: int = 220):
    """The first, hot and cold touch speeds (GB/s) of refault runs, grouped by touch, one bar per run."""
    order = ["first", "hot", "cold"]
    rows = [{"run": label, "touch": k, "GB/s": rec.meta.get("results", {}).get(f"{k}_touch_gb_per_s")}
            for label, rec in recordings.items() for k in order]
    speeds = pd.DataFrame(rows).dropna()
    if speeds.empty:
        raise ValueError("these recordings have no touch speeds (first/hot/cold_touch_gb_per_s)")
    runs = list(recordings)
    enc = dict(x=alt.X("touch:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
               y=alt.Y("GB/s:Q", title="GB/s (higher is faster)"),
               tooltip=["run", "touch", alt.Tooltip("GB/s:Q", format=".2f")])
    if len(runs) > 1:
        enc.update(xOffset=alt.XOffset("run:N", sort=runs), color=alt.Color("run:N", sort=runs, title=None))
    return _configure(alt.Chart(speeds, title=title).mark_bar().encode(**enc).properties(width=width, height=height))


def policy_model(runs: dict[str, pd.DataFrame], busy_until_s: float, title: str, width: int = 620,
                 height: int = 240):
    """The model VM's page cache under each setting (rows of `autoreclaim_policy.simulate`, one frame per
    "version · setting"), with its steps marked: a labelled rule where the build ends, and a dot at each
    poll where the setting acted (reclaim, drop_caches or compact_memory)."""
    frames = [pd.DataFrame(df).assign(setting=name) for name, df in runs.items()]
    if not frames:
        raise ValueError("policy_model(): no runs to draw")
    sim = pd.concat(frames, ignore_index=True)
    sim["minute"] = sim["t_s"] / 60
    sim["cache_GiB"] = sim["cache_bytes"] / 2**30
    sim["version"] = sim["setting"].str.split(" · ").str[0]
    # one field on two channels with the same title: Vega-Lite merges them into one legend
    color = alt.Color("setting:N", title="version · setting", sort=list(runs))
    lines = alt.Chart(sim).mark_line(interpolate="step-after").encode(
        x=alt.X("minute:Q", title="minutes"), y=alt.Y("cache_GiB:Q", title="page cache (GiB)"), color=color,
        strokeDash=alt.StrokeDash("setting:N", title="version · setting", sort=list(runs)),
        # released lines drawn wider, so a newer line on the same values (both disabled: flat) leaves it visible
        strokeWidth=alt.StrokeWidth("version:N", title="version", scale=alt.Scale(domain=["released", "newer"],
                                                                                   range=[4, 1.5])))
    acted = sim[sim["actions"].astype(str).str.contains("reclaim|drop_caches|compact_memory")]
    dots = alt.Chart(acted).mark_point(filled=True, size=30).encode(x="minute:Q", y="cache_GiB:Q", color=color)
    build_end = pd.DataFrame({"minute": [busy_until_s / 60], "label": ["build ends"]})
    rule = alt.Chart(build_end).mark_rule(strokeDash=[4, 3], color="#555").encode(x="minute:Q")
    label = alt.Chart(build_end).mark_text(align="left", dx=4, dy=-4, baseline="bottom", color="#555").encode(
        x="minute:Q", y=alt.value(0), text="label:N")
    return _configure(alt.layer(lines, dots, rule, label).properties(width=width, height=height, title=title))
