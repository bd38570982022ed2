"""A finished run is never thrown away: save it where asked, else in the user's cache, and say which.

`reclaimlab record`, `reclaimlab watch` and `python -m reclaimlab.vm run` all end through
save_or_keep(): the recording goes to the folder the user asked for (atomically, by
recording.save); if that fails (disk full, no permission, a read-only file system, any
OSError) it goes, just as atomically, to a new folder under
$XDG_CACHE_HOME/reclaimlab/unsaved/ (else ~/.cache/...), and the message says where and how
to move or load it. Only if that fails too is the run lost, and the message says what was
lost and why. Ctrl-C and SIGTERM that arrive meanwhile are held until the save is done
(signals_deferred), so a second Ctrl-C or a `kill` cannot cut a save short; the caller
then exits with the conventional status (128 + the signal's number).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import re
import shlex
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..paths import cache_dir
from . import recording

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Kept:
    """Where a recording ended up, and why not where asked."""
    asked: Path | None            # the folder the user asked for (None: none was given)
    path: Path | None             # where the recording is now: `asked`, a folder in the cache, or None (lost)
    problems: tuple[str, ...]     # why each failed attempt failed, in order (each names its folder)
    signals: tuple[int, ...] = ()  # SIGINT / SIGTERM held back until the save was done
    complete: bool = True         # the run's own verdict: a partial one loads only with allow_partial=True

    @property
    def where_asked(self) -> bool:
        return self.path is not None and self.path == self.asked

    @property
    def exit_status(self) -> int:
        """0 when saved where asked (or, with nowhere asked, kept); 128 + signal when one arrived; else 1."""
        if self.signals:
            return 128 + self.signals[0]
        return 0 if self.path is not None and (self.where_asked or self.asked is None) else 1

    def detour(self) -> str:
        """Why the recording is not where asked, and how to move or load it: '' when it is."""
        if self.path is None or self.where_asked or self.asked is None:
            return ""
        path = str(self.path)
        why = _without_prefix(self.problems[0], self.asked)
        load_args = repr(path) + ("" if self.complete else ", allow_partial=True")
        return (f"could not save to {self.asked}: {why}. It is kept whole in {path} instead: "
                f"move it with `mv {shlex.quote(path)} {shlex.quote(str(self.asked))}` once that is fixed, "
                f"or load it from there: reclaimlab.recording.recording.load({load_args})")


def held(signals: "list[int] | tuple[int, ...]") -> str:
    """What happened to a Ctrl-C or SIGTERM that arrived while a run was being kept: '' when none did."""
    if not signals:
        return ""
    return (f"{signal.Signals(signals[0]).name} arrived while the recording was being saved: the save was "
            f"finished first, then this exits with status {128 + signals[0]}")


def unsaved_dir(name: str, now: _dt.datetime | None = None) -> Path:
    """A new folder name for a run that could not go where asked: <cache>/unsaved/<name>-<UTC stamp>."""
    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "run"
    base = cache_dir() / "unsaved" / f"{safe}-{stamp}"
    folder, n = base, 1
    while folder.exists():  # two runs kept in the same second
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM until the block ends; yields the list of those that arrived meanwhile.

    Only the main thread receives signals, so elsewhere this holds nothing (and needs to hold nothing).
    A signal this process ignores (SIG_IGN, e.g. SIGINT in a background job) stays ignored.
    """
    arrived: list[int] = []
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in HELD_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, lambda got, _frame: arrived.append(got))
    try:
        yield arrived
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def save_or_keep(rec: recording.Recording, out: Path | None, name: str) -> Kept:
    """Save `rec` in `out` (None: nowhere asked); where that fails, in a new folder under the user's cache.

    `name` (the experiment, or "watch") names the cache folder. Never raises for a failed save:
    the returned Kept says where the recording is, or why it is lost.
    """
    problems: list[str] = []
    with signals_deferred() as arrived:
        for where in ([out] if out is not None else []) + [unsaved_dir(name)]:
            try:
                recording.save(rec, where)
            except recording.RecordingError as exc:
                problems.append(str(exc))
                continue
            except KeyboardInterrupt as exc:  # one that signals_deferred could not hold back
                signum = getattr(exc, "signum", signal.SIGINT)  # a SIGTERM raised as KeyboardInterrupt names itself
                arrived.append(signum)
                problems.append(f"{where}: interrupted by {signal.Signals(signum).name}")
                continue
            return Kept(out, where, tuple(problems), tuple(arrived), rec.complete)
    return Kept(out, None, tuple(problems), tuple(arrived), rec.complete)


def lost(kept: Kept, rec: recording.Recording) -> str:
    """What was lost and why, when neither the asked folder nor the cache could take the recording."""
    meta = rec.meta
    what = (f"{len(rec.samples)} samples over {float(meta.get('duration_s') or 0):.1f} s of "
            f"{meta.get('experiment', 'the run')}, started {meta.get('date_utc', '?')}")
    tried = "; ".join(kept.problems)
    return f"the recording could not be saved anywhere ({tried}): it is lost ({what})"


def _without_prefix(message: str, where: Path) -> str:
    """The reason alone, from a RecordingError message that starts with the folder."""
    prefix = f"{where}: "
    return message[len(prefix):] if message.startswith(prefix) else message
