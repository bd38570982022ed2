"""`reclaimlab watch`: a live terminal view of the guest's memory, like `free -s`, with deltas.

An instructor runs it in a terminal beside a workload. It shows what `free` shows
(total, used, free, available) plus page cache, anonymous memory, reclaimable slab and
what the host side says ("returned to host" where this guest has a host view), each
with its change since watch started. "returned to host" counts from the start of the
watch; reported_kib's running total since boot is shown beside it, labelled so. On a terminal it redraws one block; piped (CI,
`| tee`) it prints one line per update. Ctrl-C (or SIGTERM) is the normal way to end it: the
recording is then complete and, with --out, saved; where --out cannot be written at the end
(disk full, say), it is kept in ~/.cache/reclaimlab/unsaved/ and the message says how to move
it. A Ctrl-C or SIGTERM that arrives while it stops and saves is held until the save is done,
then the watch exits with 130 / 143.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import click

from ..recording import keep, recording
from ..probe import sources
from ..probe.procfs import ProcParseError
from ..sampling.sampler import MAX_HZ, MIN_HZ, Sampler, validate_hz
from ..units import KIB, format_size

TTY_REFRESH_MIN_S = 0.25   # a redrawn block faster than this is only flicker
LINE_REFRESH_MIN_S = 1.0   # piped: one line a second at most, so logs stay readable


class WatchError(Exception):
    """Bad input or an unusable guest: one line for the user, exit code 2."""


# What each row shows: label, how to get KiB from a sample (None: not known here), note.
def _kib(column: str) -> Callable[[dict], float | None]:
    return lambda s: s.get(column)


def _sum(*columns: str) -> Callable[[dict], float | None]:
    def get(s: dict) -> float | None:
        values = [s.get(c) for c in columns]
        return None if any(_missing(v) for v in values) else sum(values)  # type: ignore[arg-type]
    return get


def _used(s: dict) -> float | None:
    # procps free >= 4.0.1: used = total - available (older versions subtracted free, buffers, cache)
    total, avail = s.get("mem_total_kib"), s.get("mem_available_kib")
    return None if _missing(total) or _missing(avail) else total - avail


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


MEMORY_ROWS: list[tuple[str, Callable[[dict], float | None], str]] = [
    ("total", _kib("mem_total_kib"), "MemTotal"),
    ("used", _used, "total - available, as free(1)"),
    ("free", _kib("mem_free_kib"), "MemFree: not used for anything"),
    ("available", _kib("mem_available_kib"), "MemAvailable: free + what is easy to reclaim"),
    ("page cache", _sum("buffers_kib", "cached_kib"), "Buffers + Cached: file data, reclaimable"),
    ("anonymous", _kib("anon_kib"), "AnonPages: process memory (malloc, stacks)"),
    ("slab reclaimable", _kib("slab_reclaimable_kib"), "SReclaimable: kernel caches it can drop"),
]
RETURNED_SINCE_BOOT = ("total since boot", "reported_kib: all returned to the host since boot (a running total, "
                                            "not what the host holds now)")
HOST_ROWS: dict[str, tuple[str, str]] = {  # host view column -> (label, note)
    "host_reported_kib": ("returned to host", "freed memory handed to the host since this watch started"),
    "host_vm_working_set_kib": ("host holds (vmmem)", "Windows working set of the WSL VM"),
    "host_vm_rss_kib": ("host holds (QEMU)", "resident memory of the VM's QEMU process"),
}


def _human(kib: float | None, signed: bool = False) -> str:
    if _missing(kib):
        return "-"
    text = format_size(kib * KIB)  # type: ignore[operator]
    return ("+" + text) if signed and kib > 0 else ("0" if signed and kib == 0 else text)  # type: ignore[operator]


def view_rows(first: dict, now: dict, host_columns: list[str]) -> list[tuple[str, str, str, str]]:
    """(label, value now, change since start, note) for every row the display shows."""
    rows = []
    for label, get, note in MEMORY_ROWS:
        v, v0 = get(now), get(first)
        delta = None if _missing(v) or _missing(v0) else v - v0  # type: ignore[operator]
        rows.append((label, _human(v), _human(delta, signed=True) if label != "total" else "", note))
    for column in host_columns:
        label, note = HOST_ROWS.get(column, (column, "host view"))
        v, v0 = now.get(column), first.get(column)
        delta = None if _missing(v) or _missing(v0) else v - v0
        if column == "host_reported_kib":  # a running total since boot: the watch counts its own rise
            rows.append((label, _human(delta), "", note))
            rows.append((*RETURNED_SINCE_BOOT[:1], _human(v), "", RETURNED_SINCE_BOOT[1]))
            continue
        rows.append((label, _human(v), _human(delta, signed=True), note))
    if not host_columns:
        rows.append(("returned to host", "unknown", "", "no host view on this guest (see reclaimlab doctor)"))
    return rows


def render_block(rows: list[tuple[str, str, str, str]], header: str) -> list[str]:
    lines = [header, f"{'':18} {'now':>12} {'since start':>13}"]
    lines += [f"{label:18} {value:>12} {delta:>13}   {note}" for label, value, delta, note in rows]
    return lines


def render_line(t_s: float, rows: list[tuple[str, str, str, str]]) -> str:
    parts = [f"t={t_s:7.1f}s"]
    for label, value, delta, _note in rows:
        parts.append(f"{label.replace(' ', '_')}={value.replace(' ', '')}"
                     + (f"({delta.replace(' ', '')})" if delta else ""))
    return "  ".join(parts)


class Display:
    """Redraws one block on a terminal; prints a line per update elsewhere."""

    def __init__(self, stream: TextIO, tty: bool):
        self.stream = stream
        self.tty = tty
        self._drawn = 0

    def show(self, t_s: float, rows: list[tuple[str, str, str, str]], header: str) -> None:
        if self.tty:
            lines = render_block(rows, header)
            # Cursor up to the block's first line, clear to the end of the screen, redraw.
            prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
            self.stream.write(prefix + "\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            self.stream.write(render_line(t_s, rows) + "\n")
        self.stream.flush()


def parse_options(hz: str, duration: str | None, out: str | None) -> tuple[float, float | None, Path | None]:
    """Validate the command line before anything is sampled; WatchError names the problem."""
    try:
        rate = validate_hz(_number(hz, "--hz"))
    except ValueError as exc:
        raise WatchError(f"--hz: {exc}") from None
    seconds = None
    if duration is not None:
        seconds = _number(duration, "--duration")
        if not math.isfinite(seconds) or seconds <= 0:
            raise WatchError(f"--duration {duration}: must be a finite number of seconds above 0 (e.g. 60; "
                             f"leave --duration out to watch until Ctrl-C)")
    out_path = None
    if out is not None:
        try:
            out_path = recording.check_out(out, name="watch")
        except recording.RecordingError as exc:
            raise WatchError(f"--out {exc}") from None
    return rate, seconds, out_path


def _number(text: str, option: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise WatchError(f"{option} {text!r}: not a number") from None


def _open_host_views(roots: sources.Roots) -> list:
    try:
        from ..probe.hostviews import available_host_views
    except ImportError:
        return []
    return available_host_views(roots)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a CI timeout): ends a watch as Ctrl-C does."""

    signum = signal.SIGTERM


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def run_watch(hz: float, duration_s: float | None, out: Path | None, stream: TextIO, tty: bool,
              roots: sources.Roots | None = None) -> tuple[recording.Recording, keep.Kept | None, list[int]]:
    """Sample and display until `duration_s` passes or Ctrl-C; returns the Recording, where it was kept
    (None without `out`) and the signals that arrived while it was being stopped and saved."""
    roots = roots or sources.Roots.from_env()
    refresh_s = max(1.0 / hz, TTY_REFRESH_MIN_S if tty else LINE_REFRESH_MIN_S)
    views = _open_host_views(roots)
    try:
        sampler = Sampler(hz=hz, roots=roots, extra_sources=views, experiment="watch",
                          parameters={"hz": hz, "duration_s": duration_s})
        try:
            sampler.start()
        except (sources.SourceError, ProcParseError) as exc:
            raise WatchError(str(exc)) from None
        display = Display(stream, tty)
        host_columns = [v.column for v in views]
        saving = f", saving to {out} at the end" if out else ""
        stopped_by = "duration" if duration_s else "end"
        try:
            t_start = time.monotonic()
            k = 0
            while True:
                now_s = time.monotonic() - t_start
                first, latest = sampler.first(), sampler.latest()
                if first and latest:
                    header = (f"reclaimlab watch  {hz:g} Hz  {latest['t_s']:.1f} s  "
                              f"(Ctrl-C to stop{saving})")
                    display.show(latest["t_s"], view_rows(first, latest, host_columns), header)
                if duration_s is not None and now_s >= duration_s:
                    break
                if not sampler.running:
                    stopped_by = "sampler error"
                    break
                k += 1
                wait_s = k * refresh_s - (time.monotonic() - t_start)
                if duration_s is not None:
                    wait_s = min(wait_s, duration_s - (time.monotonic() - t_start))
                if wait_s > 0:
                    time.sleep(wait_s)
        except KeyboardInterrupt as exc:  # the normal way to end a watch: the recording is complete
            stopped_by = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
        with keep.signals_deferred() as held:  # a second Ctrl-C or a `kill` must not lose the finished run
            rec = sampler.stop(stopped_by=stopped_by)
            kept = keep.save_or_keep(rec, out, "watch") if out is not None else None
    finally:
        for view in views:
            view.close()
    return rec, kept, held + list(kept.signals if kept is not None else ())


@click.command("watch")
@click.option("--hz", default="10", show_default=True, metavar="N",
              help=f"samples per second ({MIN_HZ:.3g}, one an hour, to {MAX_HZ:g}); the screen refreshes "
                   f"at most {1 / TTY_REFRESH_MIN_S:g} times a second")
@click.option("--duration", default=None, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
@click.option("--out", default=None, metavar="DIR",
              help="save the Recording there at the end (a new or empty folder; written atomically)")
@click.option("--proc-root", default=None, metavar="DIR",
              help="read a captured /proc tree instead (default: RECLAIMLAB_PROC_ROOT or /proc)")
@click.option("--sys-root", default=None, metavar="DIR",
              help="read a captured /sys tree instead (default: RECLAIMLAB_SYS_ROOT or /sys)")
def watch_command(hz: str, duration: str | None, out: str | None, proc_root: str | None, sys_root: str | None) -> None:
    """Watch memory live, like `free -s`: page cache, anonymous, slab, host side, deltas.

    On a terminal one block is redrawn; piped, one line is printed per update.
    Ctrl-C stops it (and saves with --out).
    """
    try:
        rate, seconds, out_path = parse_options(hz, duration, out)
        roots = sources.Roots.from_env(proc_root, sys_root)
        for option, path in (("--proc-root", roots.proc), ("--sys-root", roots.sys)):
            if not path.is_dir():
                raise WatchError(f"{option} {path}: not a directory; point it at a /proc or /sys tree")
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:  # `kill` and CI timeouts end it like Ctrl-C, so --out is still saved
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            stdout = sys.stdout
            rec, kept, signals = run_watch(rate, seconds, out_path, stdout, tty=stdout.isatty(), roots=roots)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    except WatchError as exc:
        click.echo(f"reclaimlab watch: {exc}", err=True)
        sys.exit(2)
    cost = rec.meta.get("sampler_cost", {})
    click.echo(f"{cost.get('samples', 0)} samples over {cost.get('wall_s', 0):.1f} s "
               f"(sampler used {100 * (cost.get('cpu_share_of_one_core') or 0):.2f} % of a core); {_where(kept)}")
    if kept is not None and kept.path is None:
        click.echo(f"reclaimlab watch: {keep.lost(kept, rec)}", err=True)
    elif kept is not None and not kept.where_asked:
        click.echo(f"reclaimlab watch: {kept.detour()}", err=True)
    if signals:
        click.echo(f"reclaimlab watch: {keep.held(signals)}", err=True)
        sys.exit(128 + signals[0])
    if not rec.complete:
        click.echo(f"reclaimlab watch: stopped early: {rec.meta.get('interrupted')}", err=True)
        sys.exit(1)
    if kept is not None and kept.exit_status:
        sys.exit(kept.exit_status)


def _where(kept: keep.Kept | None) -> str:
    if kept is None:
        return "not saved (pass --out DIR to keep it)"
    if kept.where_asked:
        return f"saved to {kept.path}"
    return f"not saved where asked: kept in {kept.path}" if kept.path else "not saved: lost"
