"""A map of physical memory (probe.physmap.Snapshot) as a picture: one square per block, in address order.

    chart = physmap_chart(snapshot)            # altair; shown like every chart (charts.use_offline_renderer)
    save_image(snapshot, "map.svg")            # or .png, rendered offline by vl-convert
    alt_text(snapshot)                         # what the picture shows, in words (counts by class)

Colours are the memory charts' own (charts.STACK_COLORS: anonymous, page cache, slab, free), so a red
square here is what the red band of the stacked chart counts. Reported free blocks are the free
grey, dimmed; blocks holding some of our pages are outlined.
"""
from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from ..probe.physmap import CLASS_LABELS, CLASSES, FrameClass, Snapshot
from ..units import format_size
from .charts import STACK_COLORS

ANON_COLOR, FILE_COLOR, SLAB_COLOR, FREE_COLOR = STACK_COLORS
CLASS_COLORS = {
    FrameClass.HOLE: "#ffffff",
    FrameClass.FREE_REPORTED: "#e9e9e9",   # the free grey at ~40 % on white: dimmed, given back
    FrameClass.FREE: FREE_COLOR,
    FrameClass.OURS: "#ff7f0e",
    FrameClass.ANON: ANON_COLOR,
    FrameClass.FILE: FILE_COLOR,
    FrameClass.SLAB: SLAB_COLOR,
    FrameClass.PGTABLE: "#e377c2",
    FrameClass.KERNEL: "#8c564b",
    FrameClass.NO_FLAGS: "#7f7f7f",
}
DEFAULT_COLUMNS = 128   # 2 MiB blocks: a row is 256 MiB, a 24 GiB guest ~100 rows
CELL_PX = 5


def block_size_text(snap: Snapshot) -> str:
    return format_size(snap.block_pages * snap.page_bytes)


def class_block_counts(snap: Snapshot) -> dict[FrameClass, int]:
    """How many blocks each class holds most of (the squares of each colour)."""
    counts = np.bincount(snap.dominant, minlength=len(CLASSES))
    return {c: int(counts[c]) for c in CLASSES}


def alt_text(snap: Snapshot) -> str:
    """The picture in words: what a square is, and how many squares each class holds most of."""
    by_class = ", ".join(f"{CLASS_LABELS[c]} {n:,}" for c, n in
                         sorted(class_block_counts(snap).items(), key=lambda kv: -kv[1]) if n)
    ours = int(snap.has_ours.sum())
    text = (f"Map of physical memory: {snap.blocks:,} blocks of {block_size_text(snap)}, one square each in order of "
            f"physical address, coloured by what most of the block holds. Blocks by class: {by_class}.")
    if ours:
        text += f" {ours:,} blocks, outlined, hold some of our pages."
    return text + f" Free and reported to the host: {format_size(snap.free_reported_kib * 1024)}."


def _category_runs(category: np.ndarray, labels: np.ndarray, columns: int) -> pd.DataFrame:
    """Runs of blocks of one category within a grid row, as (col, col2, row, what): one rect per run, so a
    mostly uniform guest draws a few hundred rects, not 12,800 (vl-convert's time grows with each mark)."""
    if not len(category):
        return pd.DataFrame({"col": [], "col2": [], "row": [], "what": []})
    index = np.arange(len(category))
    row = index // columns
    starts = np.flatnonzero(np.r_[True, (category[1:] != category[:-1]) | (row[1:] != row[:-1])])
    ends = np.r_[starts[1:], len(category)]
    return pd.DataFrame({"col": starts % columns, "col2": (ends - 1) % columns + 1, "row": row[starts],
                         "what": labels[category[starts]]})


def _runs(snap: Snapshot, columns: int) -> pd.DataFrame:
    labels = np.array([CLASS_LABELS[c] for c in CLASSES], dtype=object)
    return _category_runs(snap.dominant, labels, columns)


def _ours(snap: Snapshot, columns: int) -> pd.DataFrame:
    index = np.flatnonzero(snap.has_ours)
    return pd.DataFrame({"col": index % columns, "col2": index % columns + 1, "row": index // columns})


def _values(df: pd.DataFrame) -> alt.Data:
    # inline values: keeps altair's 5,000-row guard (meant for frames) out of a chart sized by design
    return alt.Data(values=[{k: (int(v) if isinstance(v, (np.integer, int)) else v) for k, v in r.items()}
                            for r in df.to_dict("records")])


def physmap_chart(snap: Snapshot, columns: int = DEFAULT_COLUMNS, cell_px: int = CELL_PX,
                  title: str | None = None) -> alt.LayerChart:
    """One square per block, left to right then down, in physical address order."""
    domain = [CLASS_LABELS[c] for c in CLASSES]
    rows = -(-snap.blocks // columns) or 1
    x = alt.X("col:Q", axis=None, scale=alt.Scale(domain=[0, columns]))
    y = alt.Y("row:Q", axis=None, scale=alt.Scale(domain=[0, rows], reverse=True))
    encoding = dict(x=x, x2="col2:Q", y=y, y2="row2:Q")
    squares = alt.Chart(_values(_runs(snap, columns))).transform_calculate(row2="datum.row + 1").mark_rect(
        stroke=None).encode(
        **encoding,
        color=alt.Color("what:N", title=None, scale=alt.Scale(domain=domain, range=[CLASS_COLORS[c] for c in CLASSES]),
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=500, symbolStrokeColor="#999")))
    layers = [squares]
    if snap.has_ours.any():
        layers.append(alt.Chart(_values(_ours(snap, columns))).transform_calculate(row2="datum.row + 1")
                      .mark_rect(fill=None, stroke="#000", strokeWidth=1).encode(**encoding))
    outlined = " (outlined: ours)" if len(layers) > 1 else ""
    title = title or f"Physical memory, {snap.blocks:,} blocks of {block_size_text(snap)}{outlined}, {snap.time_utc[:19]}Z"
    return alt.layer(*layers).properties(
        width=columns * cell_px, height=rows * cell_px, title=title, description=alt_text(snap))


def save_image(snap: Snapshot, path: str | Path, columns: int = DEFAULT_COLUMNS) -> Path:
    """Write the map as .svg or .png (vl-convert, offline); ValueError for another suffix."""
    return _save(physmap_chart(snap, columns), path)


def _save(chart: alt.TopLevelMixin, path: str | Path) -> Path:
    import vl_convert as vlc
    path = Path(path)
    spec = chart.to_dict()
    suffix = path.suffix.lower()
    if suffix == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec))
    elif suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, scale=2))
    else:
        raise ValueError(f"{path}: the image must end in .png or .svg")
    return path


# The host's side of the kit's VM (vm/hostmap.HostMap: resident pages per block of guest-physical memory).
HOST_LABELS = ("the host holds none of it", "the host holds part of it", "the host holds all of it")
HOST_COLORS = (CLASS_COLORS[FrameClass.FREE_REPORTED], "#a1d99b", "#31a354")  # none: the dimmed "given back" grey; green: no class of the guest map


def host_categories(host) -> np.ndarray:
    """0 none, 1 part, 2 all of each block held by the host (pure; a short last block counts its own pages)."""
    full = np.full(host.blocks, 1 << host.block_order, dtype=np.int64)
    if host.blocks and host.pages % full[0]:
        full[-1] = host.pages % full[0]
    held = host.resident_pages.astype(np.int64)
    return np.where(held == 0, 0, np.where(held >= full, 2, 1)).astype(np.uint8)


def host_alt_text(host) -> str:
    counts = np.bincount(host_categories(host), minlength=3)
    size = format_size(host.page_bytes << host.block_order)
    return (f"The host's map of the VM's RAM: {host.blocks:,} blocks of {size} in guest-physical order; "
            f"{counts[2]:,} wholly held by the host, {counts[1]:,} in part, {counts[0]:,} not at all "
            f"(given back, or never touched). The host holds {format_size(host.resident_kib * 1024)}.")


def host_chart(host, columns: int = DEFAULT_COLUMNS, cell_px: int = CELL_PX, title: str | None = None) -> alt.Chart:
    """The host's residency of the guest's RAM, one square per block, in the guest map's layout."""
    rows = -(-host.blocks // columns) or 1
    data = _values(_category_runs(host_categories(host), np.array(HOST_LABELS, dtype=object), columns))
    size = format_size(host.page_bytes << host.block_order)
    return alt.Chart(data).transform_calculate(row2="datum.row + 1").mark_rect(stroke=None).encode(
        x=alt.X("col:Q", axis=None, scale=alt.Scale(domain=[0, columns])), x2="col2:Q",
        y=alt.Y("row:Q", axis=None, scale=alt.Scale(domain=[0, rows], reverse=True)), y2="row2:Q",
        color=alt.Color("what:N", title=None, scale=alt.Scale(domain=list(HOST_LABELS), range=list(HOST_COLORS)),
                        legend=alt.Legend(orient="bottom", columns=1, labelLimit=500, symbolStrokeColor="#999")),
    ).properties(width=columns * cell_px, height=rows * cell_px, description=host_alt_text(host),
                 title=title or f"The host: QEMU's RAM, {host.blocks:,} blocks of {size}")


def guest_host_chart(guest: Snapshot, host, columns: int = 64, cell_px: int = CELL_PX) -> alt.HConcatChart:
    """The guest's map and the host's side by side, block for block at the same guest-physical address."""
    if guest.block_order != host.block_order:
        raise ValueError(f"the guest's map has blocks of order {guest.block_order}, the host's of order "
                         f"{host.block_order}: take both with the same block_order")
    left = physmap_chart(guest, columns, cell_px, title=f"The guest: its page flags, {guest.blocks:,} blocks")
    chart = alt.hconcat(left, host_chart(host, columns, cell_px)).resolve_scale(color="independent")
    return chart.properties(description=f"{alt_text(guest)} {host_alt_text(host)}")


def save_guest_host_image(guest: Snapshot, host, path: str | Path, columns: int = 64) -> Path:
    """The side-by-side maps as .svg or .png (offline); ValueError for another suffix."""
    return _save(guest_host_chart(guest, host, columns), path)


# --- small multiples: the maps of one run, step by step ------------------------------------------------

STEP_CELL_PX = 2        # 128 blocks a row at 2 px: a 24 GiB guest's map is 256 x 200 px, four fit a page's width
STEP_COLUMNS = 4        # maps a row of the figure


def _ours_runs(snap: Snapshot, columns: int) -> pd.DataFrame:
    """Runs of blocks holding some of our pages within a grid row: one outline per run."""
    index = np.flatnonzero(snap.has_ours)
    if not len(index):
        return pd.DataFrame({"col": [], "col2": [], "row": []})
    row = index // columns
    starts = np.flatnonzero(np.r_[True, (np.diff(index) != 1) | (row[1:] != row[:-1])])
    ends = np.r_[starts[1:], len(index)] - 1
    return pd.DataFrame({"col": index[starts] % columns, "col2": index[ends] % columns + 1, "row": row[starts]})


def step_summary(snap: Snapshot) -> dict[str, int]:
    """KiB of what the steps' pictures compare: ours, free reported, free not reported, page cache, and the
    blocks holding some of ours."""
    kib = snap.class_kib()
    return {"ours_kib": kib[FrameClass.OURS], "reported_kib": kib[FrameClass.FREE_REPORTED],
            "free_kib": kib[FrameClass.FREE], "file_kib": kib[FrameClass.FILE],
            "ours_blocks": int(snap.has_ours.sum())}


def _kib(kib: int) -> str:
    return format_size(kib * 1024)


def steps_alt_text(steps: list, names: dict[str, str]) -> str:
    """The small multiples in words: what a square is, then from each step to the next what changed
    (our pages, free memory reported and not), computed from the maps."""
    if not steps:
        return "No map of physical memory."
    first = steps[0].snapshot
    return (f"{len(steps)} maps of physical memory, one per step ({', '.join(names.get(s.label, s.label) for s in steps)}): "
            f"{first.blocks:,} blocks of {block_size_text(first)} each, in order of physical address, coloured by "
            f"what most of the block holds; reported free blocks pale; blocks with some of our pages outlined. "
            + steps_changes_text(steps, names))


def steps_changes_text(steps: list, names: dict[str, str]) -> str:
    """What the maps hold at the first step and what changed from each step to the next, in sentences."""
    parts: list[str] = []
    prev = None
    for s in steps:
        now, name = step_summary(s.snapshot), names.get(s.label, s.label)
        if prev is None:
            parts.append(f"In the first map ({name}): ours {_kib(now['ours_kib'])}, free and reported {_kib(now['reported_kib'])}, "
                         f"free not reported {_kib(now['free_kib'])}.")
        else:
            changes = []
            for key, what in (("ours_kib", "ours"), ("reported_kib", "free and reported"),
                              ("free_kib", "free not reported")):
                if now[key] != prev[0][key]:
                    changes.append(f"{what} {_kib(prev[0][key])} to {_kib(now[key])}")
            parts.append(f"From {prev[1]} to {name}: " + ("; ".join(changes) if changes else "no change in these")
                         + (f"; our pages in {now['ours_blocks']:,} blocks." if now["ours_blocks"] else "."))
        prev = (now, name)
    return " ".join(parts)


def steps_chart(steps: list, names: dict[str, str] | None = None, columns: int = DEFAULT_COLUMNS,
                cell_px: int = STEP_CELL_PX, per_row: int = STEP_COLUMNS) -> alt.ConcatChart:
    """The maps of a run (recording.physmap.MapStep), side by side in the order taken, one legend."""
    names = names or {}
    charts = []
    for s in steps:
        snap = s.snapshot
        rows = -(-snap.blocks // columns) or 1
        x = alt.X("col:Q", axis=None, scale=alt.Scale(domain=[0, columns]))
        y = alt.Y("row:Q", axis=None, scale=alt.Scale(domain=[0, rows], reverse=True))
        encoding = dict(x=x, x2="col2:Q", y=y, y2="row2:Q")
        domain = [CLASS_LABELS[c] for c in CLASSES]
        layers = [alt.Chart(_values(_runs(snap, columns))).transform_calculate(row2="datum.row + 1")
                  .mark_rect(stroke=None).encode(
                      **encoding, color=alt.Color("what:N", title=None, scale=alt.Scale(
                          domain=domain, range=[CLASS_COLORS[c] for c in CLASSES]),
                          legend=alt.Legend(orient="bottom", columns=3, labelLimit=500, symbolStrokeColor="#999")))]
        if snap.has_ours.any():
            layers.append(alt.Chart(_values(_ours_runs(snap, columns))).transform_calculate(row2="datum.row + 1")
                          .mark_rect(fill=None, stroke="#8a4500", strokeWidth=0.4).encode(**encoding))
        t = f"{names.get(s.label, s.label)} (t = {s.t_s:.0f} s)"
        charts.append(alt.layer(*layers).properties(width=columns * cell_px, height=rows * cell_px, title=t))
    return alt.concat(*charts, columns=per_row).configure_view(stroke=None)


def steps_html(steps: list, names: dict[str, str] | None = None, caption: str = "") -> str:
    """The small multiples as an HTML <figure>: a PNG rendered offline (vl-convert) in a data URL, alt text
    saying what changed, and a caption (by default what changed, as the alt text says it)."""
    import base64
    import html

    import vl_convert as vlc

    names = names or {}
    png = vlc.vegalite_to_png(steps_chart(steps, names).to_dict(), scale=2)
    width = _png_width(png) // 2
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    alt_text = steps_alt_text(steps, names)
    caption = caption or steps_changes_text(steps, names)
    cap = f'<figcaption style="max-width:{width}px">{html.escape(caption)}</figcaption>'
    return (f'<figure class="reclaimlab-physmap"><img class="reclaimlab-chart" src="{src}" width="{width}" '
            f'alt="{html.escape(alt_text, quote=True)}">{cap}</figure>')


def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")  # the IHDR chunk's width, right after the 8-byte signature


# --- the guest's map beside the host's, in words ---------------------------------------------------------

def agreement_sentence(guest: Snapshot, host) -> str:
    """How many blocks the two maps agree on (guest: wholly free and reported; host: holds no page of it),
    and where they differ, computed from the maps (vm.hostmap.agreement)."""
    from ..vm.hostmap import agreement

    a = agreement(guest, host)
    reported = a.both + a.guest_only
    size = format_size(host.page_bytes << host.block_order)
    if not reported:
        text = f"The guest had reported no block of {size} whole at this step"
    else:
        text = (f"Of the {reported:,} blocks of {size} the guest had reported, the host held no page of "
                f"{a.both:,} ({a.both / reported:.0%})")
        if a.guest_only:
            text += f" and still held some page of {a.guest_only:,}"
    text += "."
    if a.host_only:
        why = "(never touched since boot, or not yet reported)"
        never = ("" if not a.host_only_free else f", all wholly free in the guest {why}"
                 if a.host_only_free == a.host_only else f"; {a.host_only_free:,} of them wholly free in the guest {why}")
        more = " more" if reported else ""
        blocks = "block" if a.host_only == 1 else "blocks"
        never = never.replace("all wholly", "wholly") if a.host_only == 1 else never
        text += f" The host held nothing of {a.host_only:,}{more} {blocks} the guest had not reported{never}."
    part = int(np.count_nonzero(host_categories(host) == 1))
    if part:
        text += (f" The host held only part of {part:,} block{'s' if part != 1 else ''}: pages inside them given back (holes smaller than "
                 f"{size}) or never touched.")
    if a.either:
        text += (f" Where either side says \"given back\", both say it for {a.both:,} of {a.either:,} blocks "
                 f"({a.over_either:.0%}).")
    return text


def guest_host_html(guest: Snapshot, host, title: str = "", columns: int = 64) -> str:
    """The two maps side by side as an HTML <figure>: a PNG rendered offline (vl-convert) in a data URL, alt
    text from the maps (both maps in words and how many blocks agree), the agreement as the caption."""
    import base64
    import html

    import vl_convert as vlc

    png = vlc.vegalite_to_png(guest_host_chart(guest, host, columns).to_dict(), scale=2)
    width = _png_width(png) // 2
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    agree = agreement_sentence(guest, host)
    words = f"{alt_text(guest)} {host_alt_text(host)} {agree}"
    head = f"<b>{html.escape(title)}</b> " if title else ""
    return (f'<figure class="reclaimlab-physmap"><img class="reclaimlab-chart" src="{src}" width="{width}" '
            f'alt="{html.escape(words, quote=True)}"><figcaption style="max-width:{width}px">{head}'
            f'{html.escape(agree)}</figcaption></figure>')
