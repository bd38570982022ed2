"""`reclaimlab map`: this guest's physical memory as a grid of blocks, from its page flags (root only).

One character per block (2 MiB by default), in physical address order, coloured by what most of the
block holds (the memory charts' colours) on a terminal, a letter per class when piped. `--watch S`
redraws every S seconds until Ctrl-C; `--out FILE.png|FILE.svg` also writes the picture.
Where /proc/kpageflags cannot be read (not root, a container, Binder, macOS) it says why, exit 2.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from ..probe import physmap, sources
from ..probe.physmap import CLASS_LABELS, CLASSES, FrameClass, Snapshot
from ..units import format_size
from .errors import UserError

LETTERS = {
    FrameClass.HOLE: "-", FrameClass.FREE_REPORTED: "r", FrameClass.FREE: "f", FrameClass.OURS: "O",
    FrameClass.ANON: "a", FrameClass.FILE: "c", FrameClass.SLAB: "s", FrameClass.PGTABLE: "p",
    FrameClass.KERNEL: "k", FrameClass.NO_FLAGS: ".",
}
FULL, DIM = "█", "░"   # reported free blocks are drawn dimmed: the host holds nothing there
MIN_WATCH_S = 1.0      # a map of 24 GiB takes ~0.7 s to read: faster redraws would only read
IMAGE_SUFFIXES = (".png", ".svg")


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _cell(cls: FrameClass, color: bool) -> str:
    if not color:
        return LETTERS[cls]
    from ..present.physmap_chart import CLASS_COLORS
    r, g, b = _rgb(CLASS_COLORS[cls] if cls != FrameClass.FREE_REPORTED else CLASS_COLORS[FrameClass.FREE])
    glyph = " " if cls == FrameClass.HOLE else DIM if cls == FrameClass.FREE_REPORTED else FULL
    return f"\x1b[38;2;{r};{g};{b}m{glyph}\x1b[0m"


def grid_lines(snap: Snapshot, columns: int, color: bool) -> list[str]:
    """The map, `columns` blocks a line, each line led by the physical address it starts at."""
    cells = {c: _cell(c, color) for c in CLASSES}
    shown = snap.dominant.copy()
    shown[snap.has_ours] = FrameClass.OURS  # any page of ours marks the block: that is what the reader looks for
    line_bytes = columns * snap.block_pages * snap.page_bytes
    return [f"{(start // columns) * line_bytes / 2**30:7.2f} GiB " + "".join(cells[FrameClass(c)] for c in shown[start:start + columns])
            for start in range(0, snap.blocks, columns)]


def legend_lines(snap: Snapshot, color: bool) -> list[str]:
    """What each mark means and how much memory each class holds in all (pages, not blocks)."""
    kib = snap.class_kib()
    lines = [f"  {_cell(c, color)} {CLASS_LABELS[c]}: {format_size(kib[c] * 1024)}" for c in CLASSES]
    unreported = snap.free_unreported_kib_by_order()
    lines.append("free, not reported, by block order: " + (", ".join(
        f"{k}: {format_size(v * 1024)}" for k, v in sorted(unreported.items())) or "none"))
    outside = snap.outside_buddy_kib
    lines.append(f"MemFree outside the buddy and per-CPU lists: {format_size(outside * 1024)} (among the no-flags frames)"
                 if outside is not None else snap.why_no_outside_buddy() or "")
    return lines


def render(snap: Snapshot, columns: int, color: bool) -> list[str]:
    size = format_size(snap.block_pages * snap.page_bytes)
    header = (f"reclaimlab map  {snap.time_utc[:19]}Z  {snap.kernel_release}  {snap.blocks:,} blocks of {size}, "
              f"{columns} a line (a block shows what most of it holds; {LETTERS[FrameClass.OURS]!r} or orange: some of ours)")
    return [header, *grid_lines(snap, columns, color), "", *legend_lines(snap, color)]


def default_columns(width: int) -> int:
    """The widest power of two up to 128 that fits beside the address column."""
    room = max(width - 12, 16)
    return min(128, 1 << int(math.log2(room)))


def check_options(order: int, watch: float | None, out: str | None) -> Path | None:
    try:
        physmap.check_block_order(order)
    except ValueError as exc:
        raise UserError(f"--order {exc}") from None
    if watch is not None and not (math.isfinite(watch) and watch >= MIN_WATCH_S):
        raise UserError(f"--watch {watch:g}: must be at least {MIN_WATCH_S:g} seconds (reading the map takes most "
                        "of a second), e.g. --watch 2")
    if out is None:
        return None
    path = Path(out)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"--out {out}: the picture must end in .png or .svg, e.g. --out map.png")
    if not path.parent.is_dir():
        raise UserError(f"--out {out}: folder {path.parent} does not exist; create it or choose another")
    return path


def _snapshot(roots: sources.Roots, order: int) -> Snapshot:
    try:
        return physmap.read_snapshot(roots, block_order=order)
    except physmap.MapUnavailable as exc:
        raise UserError(str(exc)) from None


def run_map(roots: sources.Roots, order: int, watch_s: float | None, stream: TextIO, tty: bool,
            columns: int) -> Snapshot:
    """Draw once, or every watch_s seconds until Ctrl-C; returns the last snapshot."""
    snap = _snapshot(roots, order)
    drawn = 0
    t0 = time.monotonic()
    k = 0
    while True:
        lines = render(snap, columns, color=tty)
        prefix = f"\x1b[{drawn}F\x1b[J" if tty and drawn else ""
        stream.write(prefix + "\n".join(lines) + "\n")
        stream.flush()
        drawn = len(lines)
        if watch_s is None:
            return snap
        k += 1
        try:
            time.sleep(max(0.0, t0 + k * watch_s - time.monotonic()))
            snap = _snapshot(roots, order)
        except KeyboardInterrupt:  # the normal way to end a watch
            return snap


@click.command("map")
@click.option("--order", default=9, show_default=True, type=int, metavar="N",
              help="one block = 2**N pages (9: 2 MiB, the size free page reporting hands to the host)")
@click.option("--watch", "watch_s", default=None, type=float, metavar="SECONDS",
              help=f"redraw every SECONDS (at least {MIN_WATCH_S:g}) until Ctrl-C")
@click.option("--out", default=None, metavar="FILE.png|FILE.svg", help="also write the map as a picture")
@click.option("--columns", default=None, type=click.IntRange(min=1, max=4096), metavar="N",
              help="blocks a line (default: what the terminal fits, at most 128)")
@click.option("--proc-root", default=None, metavar="DIR",
              help="read another /proc (default: RECLAIMLAB_PROC_ROOT or /proc)")
def map_command(order: int, watch_s: float | None, out: str | None, columns: int | None, proc_root: str | None) -> None:
    """Draw this guest's physical memory, block by block: free (reported or not), anonymous, page cache,
    slab, kernel. Needs root on a machine that is yours."""
    out_path = check_options(order, watch_s, out)
    roots = sources.Roots.from_env(proc_root)
    stdout = sys.stdout
    cols = columns or default_columns(shutil.get_terminal_size().columns)
    snap = run_map(roots, order, watch_s, stdout, tty=stdout.isatty(), columns=cols)
    if out_path is not None:
        from ..present.physmap_chart import save_image
        try:
            save_image(snap, out_path)
        except OSError as exc:
            raise UserError(f"--out {out_path}: cannot write ({exc.strerror}); choose a writable place") from None
        click.echo(f"map written to {out_path}")
