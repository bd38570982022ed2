"""The Recording: what every experiment yields and every chart takes.

On disk a Recording is one folder of plain files that pandas alone can read:

    meta.json       experiment, parameters, provenance (kernel, guest kind, hypervisor, date, ...)
    samples.csv     one row per sample: t_s, then memory columns with units in their names
    events.csv      t_s, kind, detail: what the experiment did and when
    buddyinfo.csv   (optional) snapshots of /proc/buddyinfo: t_s, label, zone, order, free_blocks

A folder is written atomically: into a hidden sibling first, then renamed into
place, so a reader sees the whole recording or none of it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import schema

SCHEMA_VERSION = 1
EVENT_COLUMNS = ["t_s", "kind", "detail"]
BUDDY_COLUMNS = ["t_s", "label", "zone", "order", "free_blocks"]
REQUIRED_META = ("schema_version", "experiment", "mode", "complete", "kernel_release",
                 "guest_kind", "sample_hz", "tool_version", "date_utc")


class RecordingError(ValueError):
    """A recording cannot be saved or loaded; the message names the file and the problem."""


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object" if c in ("kind", "detail", "label", "zone") else "float64")
                         for c in columns})


@dataclass
class Recording:
    samples: pd.DataFrame
    events: pd.DataFrame = field(default_factory=lambda: _empty(EVENT_COLUMNS))
    meta: dict[str, Any] = field(default_factory=dict)
    buddyinfo: pd.DataFrame = field(default_factory=lambda: _empty(BUDDY_COLUMNS))
    path: Path | None = None  # where it was loaded from; None for a recording made in this process

    @property
    def is_recorded(self) -> bool:
        """True when loaded from disk (shown as 'recorded'), False when made live just now."""
        return self.path is not None

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", False))

    def describe_source(self) -> str:
        """One line for a banner: live here, or recorded where and when."""
        m = self.meta
        where = f"{m.get('guest_kind', '?')} guest, {m.get('hypervisor') or 'unknown hypervisor'}, " \
                f"kernel {m.get('kernel_release', '?')}"
        if self.is_recorded:
            return f"RECORDED on {m.get('date_utc', '?')[:10]} ({where}) - loaded from {self.path}"
        if m.get("guest_kind") == "kit-vm":
            return f"LIVE in the kit's VM on this machine ({where})"
        return f"LIVE on this machine ({where})"

    def event_times(self, kind: str) -> list[float]:
        return [float(t) for t in self.events.loc[self.events["kind"] == kind, "t_s"]]

    def at(self, t_s: float) -> pd.Series:
        """The last sample taken at or before t_s (the first sample if t_s precedes them all)."""
        idx = self.samples["t_s"].searchsorted(t_s, side="right") - 1
        return self.samples.iloc[max(int(idx), 0)]


def check_out(out_dir: str | os.PathLike) -> Path:
    """Refuse, before any work, an `out_dir` that save() could not write (RecordingError says why).

    Creates nothing: it probes the nearest existing ancestor with a temporary folder, which
    also catches read-only file systems where root's os.access() would say yes.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RecordingError(f"{out}: already exists and is not an empty folder; choose a new --out")
    probe_in = out if out.is_dir() else out.parent
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise RecordingError(f"{out}: cannot write there ({probe_in} is not a folder); choose a writable --out")
    try:
        tempfile.TemporaryDirectory(prefix=".reclaimlab-probe.", dir=probe_in).cleanup()
    except OSError as exc:
        raise RecordingError(f"{out}: cannot write in {probe_in} ({exc.strerror}); choose a writable --out") from None
    return out


def save(rec: Recording, out_dir: str | os.PathLike) -> Path:
    """Write `rec` to `out_dir` atomically. Refuses an existing non-empty folder."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RecordingError(f"{out}: already exists and is not an empty folder; choose a new --out")
    _check_schema(rec.meta, rec.samples.columns, out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(parent, out.name)
        # The writer's pid in the name lets a later save() tell a killed writer's leftovers from a live one's.
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise RecordingError(f"{out}: cannot write there ({exc.strerror}); choose a writable --out") from None
    try:
        meta = dict(rec.meta)
        meta.setdefault("schema_version", SCHEMA_VERSION)
        _write(tmp / "meta.json", json.dumps(_jsonable(meta), indent=2, sort_keys=True) + "\n")
        # Floats are written in full (shortest round-trip form): a KiB or byte column holds
        # floats wherever it has gaps, and 6 significant digits would round 24684084 KiB.
        _write(tmp / "samples.csv", rec.samples.to_csv(index=False))
        _write(tmp / "events.csv", rec.events.reindex(columns=EVENT_COLUMNS).to_csv(index=False))
        if len(rec.buddyinfo):
            _write(tmp / "buddyinfo.csv", rec.buddyinfo.reindex(columns=BUDDY_COLUMNS).to_csv(index=False))
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
        _fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise RecordingError(f"{out}: could not write the recording ({exc}); nothing was saved") from None
        raise
    return out


def _check_schema(meta: dict[str, Any], columns: Any, where: Path) -> None:
    problem = schema.problem(meta, columns)
    if problem:
        raise RecordingError(f"{where}: {problem}")


def _remove_stale_partials(parent: Path, name: str) -> None:
    """Remove hidden `.NAME.<pid>.*.partial` folders whose writer process is gone (killed mid-save)."""
    for leftover in parent.glob(f".{name}.*.partial"):
        pid_text = leftover.name[len(name) + 2:].split(".", 1)[0]
        if not pid_text.isdigit() or Path(f"/proc/{pid_text}").exists():
            continue
        shutil.rmtree(leftover, ignore_errors=True)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars (a float32 NaN must become null too)
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def load(path: str | os.PathLike, *, allow_partial: bool = False) -> Recording:
    """Read and validate a recording folder; RecordingError names the file and the problem."""
    root = Path(path)
    if not root.is_dir():
        raise RecordingError(f"{root}: no such recording folder")
    meta_path = root / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError(f"{meta_path}: missing; a recording folder needs meta.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{meta_path}: not valid JSON ({exc}); the recording is corrupt, record it again") from None
    if not isinstance(meta, dict):
        raise RecordingError(f"{meta_path}: must hold a JSON object, found {type(meta).__name__}")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise RecordingError(f"{meta_path}: missing keys {', '.join(missing)}")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise RecordingError(f"{meta_path}: schema_version {meta['schema_version']!r}, this reclaimlab reads "
                             f"{SCHEMA_VERSION}; upgrade reclaimlab or record again")
    if not meta["complete"] and not allow_partial:
        raise RecordingError(f"{meta_path}: marked partial (the run was interrupted: "
                             f"{meta.get('interrupted', 'no reason given')}); it cannot stand in for a whole run")

    meta = schema.upgrade(meta)  # results written under older names read as today's
    samples = _read_csv(root / "samples.csv", required=["t_s"])
    _check_schema(meta, samples.columns, root)
    if samples.empty:
        raise RecordingError(f"{root / 'samples.csv'}: has no samples")
    bad_cols = [c for c in samples.columns if not pd.api.types.is_numeric_dtype(samples[c])]
    if bad_cols:
        raise RecordingError(f"{root / 'samples.csv'}: non-numeric values in column(s) {', '.join(bad_cols)}")
    if samples["t_s"].isna().any():
        raise RecordingError(f"{root / 'samples.csv'}: t_s has empty cells; the file is corrupt")
    if (samples["t_s"].diff().dropna() < 0).any():
        raise RecordingError(f"{root / 'samples.csv'}: t_s goes backwards; the file is corrupt")
    events = _read_csv(root / "events.csv", required=EVENT_COLUMNS)
    if events.empty:  # a run without marks (e.g. `reclaimlab watch`): pandas reads the header as text
        events = events.astype({"t_s": "float64"})
    if not pd.api.types.is_numeric_dtype(events["t_s"]):
        raise RecordingError(f"{root / 'events.csv'}: t_s must be numbers")
    events["detail"] = events["detail"].astype(object).fillna("").astype(str)  # all-empty reads as float NaN
    events["kind"] = events["kind"].astype(str)
    buddy_path = root / "buddyinfo.csv"
    buddy = _read_csv(buddy_path, required=BUDDY_COLUMNS) if buddy_path.exists() else _empty(BUDDY_COLUMNS)
    return Recording(samples=samples, events=events, meta=meta, buddyinfo=buddy, path=root)


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise RecordingError(f"{path}: missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    absent = [c for c in required if c not in df.columns]
    if absent:
        raise RecordingError(f"{path}: missing column(s) {', '.join(absent)}")
    return df
