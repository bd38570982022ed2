"""The Recording: what every experiment yields and every chart takes.

On disk a Recording is one folder of plain files that pandas alone can read:

    meta.json       experiment, parameters, provenance (kernel, guest kind, hypervisor, date, ...)
    samples.csv     one row per sample: t_s, then memory columns with units in their names
    events.csv      t_s, kind, detail: what the experiment did and when
    buddyinfo.csv   (optional) snapshots of /proc/buddyinfo: t_s, label, zone, order, free_blocks
    manifest.json   rows, bytes and SHA-256 of each file above, written last

A folder is written atomically: into a hidden sibling first, then renamed into
place, so a reader sees the whole recording or none of it. load() checks the
manifest, so a file cut short, edited, dropped or added later is one RecordingError
naming it, never numbers that load as if whole. A folder without a manifest (saved
by reclaimlab before manifests) still loads, with a RecordingWarning, after the
checks that need none (every CSV must end with a whole line). Add a manifest to a
folder known to be whole (the shipped ones, say) with:

    python -m reclaimlab.recording.recording --write-manifest DIR [DIR...]
    python -m reclaimlab.recording.recording --check DIR [DIR...]
"""
from __future__ import annotations

import argparse
import csv
import errno
import hashlib
import io
import json
import math
import os
import shutil
import stat
import sys
import tempfile
import warnings
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
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
RECORDING_FILES = ("meta.json", "samples.csv", "events.csv", "buddyinfo.csv")  # what load() reads
WRITE_MANIFEST_COMMAND = "python -m reclaimlab.recording.recording --write-manifest"


class RecordingError(ValueError):
    """A recording cannot be saved or loaded; the message names the file and the problem."""


class RecordingWarning(UserWarning):
    """A recording loaded without being verified (no manifest.json: saved before manifests)."""


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
    # Why this recording is in front of you (live and why, or recorded and why): a fact of this showing,
    # given by whoever made or loaded it, so never written into meta; a live run's own reason is
    # meta["mode_reason"], which a loaded recording keeps as the run wrote it.
    why_shown: str = ""

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


def check_out(out_dir: str | os.PathLike, name: str = "run") -> Path:
    """Refuse, before any work, an `out_dir` that save() could not write (RecordingError says why and what to pass).

    save() writes a hidden sibling folder first and renames it onto `out_dir`, so this checks
    what that rename needs: a real new (or empty) folder name, not the current folder, a mount
    point or a symbolic link, and a parent this process can write in. `name` (the experiment)
    only shapes the examples in the messages. Creates nothing: it probes the nearest existing
    ancestor with a temporary folder, which also catches read-only file systems where root's
    os.access() would say yes.
    """
    out = _check_target(out_dir, name)
    parent = out.parent
    probe_in = parent
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent  # save() creates the missing folders in between
    if not probe_in.is_dir():
        raise RecordingError(f"{out}: cannot write there ({probe_in} is not a folder); choose a writable --out")
    try:
        tempfile.TemporaryDirectory(prefix=".reclaimlab-probe.", dir=probe_in).cleanup()
    except OSError as exc:
        raise RecordingError(f"{out}: cannot write in {probe_in} ({exc.strerror}); choose a writable --out") from None
    if out.is_dir() and not _may_replace(out):
        raise RecordingError(f"{out}: an empty folder that this user may not replace ({parent} has the sticky bit "
                             f"and neither is theirs); pass a new folder name such as {parent / name}-1")
    return out


def _check_target(out_dir: str | os.PathLike, name: str = "run") -> Path:
    """The refusals that need no writing: what the final rename of a folder onto `out_dir` cannot replace."""
    if not str(out_dir).strip():
        raise RecordingError(f"'' (an empty name) means the current folder, which a recording cannot replace; "
                             f"pass a new folder name such as runs/{name}-1")
    out = Path(out_dir)
    if str(out) == "." or out.name == ".." or _same_folder(out, Path.cwd()):
        raise RecordingError(f"{out_dir}: names the current folder or one above it, which a recording cannot "
                             f"replace; pass a new folder name such as runs/{name}-1")
    if out.is_symlink():
        raise RecordingError(f"{out}: is a symbolic link (to {os.readlink(out)}), which the final rename would "
                             f"replace rather than fill; pass a new folder name such as {out / name}-1 (inside "
                             f"the folder it points to)")
    if _is_mount_point(out):
        raise RecordingError(f"{out}: is a mount point (another file system, or a bind mount, sits there), which "
                             f"the final rename cannot replace; pass a new folder inside it such as {out / name}-1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RecordingError(f"{out}: already exists and is not an empty folder; choose a new --out, "
                             f"such as {out}-2")
    return out


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _is_mount_point(path: Path) -> bool:
    """A mount point, including a bind mount from the same file system (os.path.ismount misses those)."""
    if os.path.ismount(path):
        return True
    if not path.is_dir():
        return False
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False  # no /proc: os.path.ismount's answer is all there is
    return os.path.realpath(path) in mount_points(mountinfo)


def mount_points(mountinfo: str) -> set[str]:
    """The mount points named in /proc/self/mountinfo text (field 5; spaces and the like come octal-escaped)."""
    points = set()
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(fields[4].encode("latin-1", "backslashreplace").decode("unicode_escape"))
    return points


def _may_replace(folder: Path) -> bool:
    """False where a sticky parent (like /tmp) keeps this user from removing `folder` (rename onto it)."""
    euid = os.geteuid()
    parent_stat, folder_stat = folder.parent.stat(), folder.stat()
    if euid == 0 or not parent_stat.st_mode & stat.S_ISVTX:
        return True
    return euid in (parent_stat.st_uid, folder_stat.st_uid)


def save(rec: Recording, out_dir: str | os.PathLike) -> Path:
    """Write `rec` to `out_dir` atomically: a hidden sibling folder, the manifest last, then one rename.

    Refuses what check_out refuses without writing (an existing non-empty folder, the current
    folder, a mount point, a symbolic link). On a write error nothing is left behind and
    RecordingError names the cause; reclaimlab.recording.keep then keeps the run elsewhere.
    """
    out = _check_target(out_dir)
    _check_schema(rec.meta, rec.samples.columns, out)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(parent, out.name)
        # The writer's pid in the name lets a later save() tell a killed writer's leftovers from a live one's.
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise RecordingError(f"{out}: cannot write there ({_os_problem(exc)}); nothing was saved") from None
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
        _write(tmp / MANIFEST_NAME, _manifest_text(tmp))  # last: it vouches for what is written above
        _fsync_dir(tmp)
        # rename() replaces an empty folder in one step, so `out` is never missing in between.
        os.rename(tmp, out)
        _fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise RecordingError(f"{out}: could not write the recording ({_os_problem(exc)}); "
                                 f"nothing was saved there") from None
        raise
    return out


def _os_problem(exc: OSError) -> str:
    """An OSError in words, with the fix where one is plain (not the temporary file's name)."""
    words = exc.strerror or str(exc)
    fixes = {errno.ENOSPC: "free some space there", errno.EDQUOT: "free some of your quota there",
             errno.EROFS: "choose a folder on a writable file system",
             errno.EACCES: "choose a folder this user may write in", errno.EPERM: "choose a folder this user may write in"}
    return f"{words}: {fixes[exc.errno]}" if exc.errno in fixes else words


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


# --- the manifest -------------------------------------------------------------------------------

def _rows(data: bytes) -> int:
    """Data rows of a CSV (its header not counted; a quoted field may span lines)."""
    return max(0, sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8", errors="replace")))) - 1)


def _file_entry(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"bytes": len(data), "rows": _rows(data) if path.suffix == ".csv" else None,
            "sha256": hashlib.sha256(data).hexdigest()}


def _manifest_text(root: Path) -> str:
    files = {name: _file_entry(root / name) for name in RECORDING_FILES if (root / name).is_file()}
    return json.dumps({"manifest_version": MANIFEST_VERSION, "files": files}, indent=2, sort_keys=True) + "\n"


def _restore_hint(root: Path) -> str:
    return (f"restore the folder from where it came (`git checkout -- {root}` for a shipped one) "
            f"or record it again")


def read_manifest(root: Path) -> dict[str, dict[str, Any]] | None:
    """{file name: {bytes, rows, sha256}} from manifest.json, or None where there is none."""
    path = root / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: not readable ({exc}); {_restore_hint(root)}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                              for v in files.values()):
        raise RecordingError(f"{path}: not a reclaimlab manifest (no files with sha256); {_restore_hint(root)}")
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise RecordingError(f"{path}: manifest_version {manifest.get('manifest_version')!r}, this reclaimlab "
                             f"reads {MANIFEST_VERSION}; upgrade reclaimlab")
    return files


def verify(root: Path) -> bool:
    """Check the folder against its manifest: True when it matches, False when it has none.

    RecordingError names the first file that is cut short, edited, missing, or added later.
    """
    files = read_manifest(root)
    if files is None:
        return False
    for name in RECORDING_FILES:
        if (root / name).is_file() and name not in files:
            raise RecordingError(f"{root / name}: not in {MANIFEST_NAME}, so it was added after the recording "
                                 f"was saved; remove it or {_restore_hint(root)}")
    for name, want in sorted(files.items()):
        path = root / name
        if not path.is_file():
            raise RecordingError(f"{path}: missing, but {MANIFEST_NAME} lists it: the recording is incomplete; "
                                 f"{_restore_hint(root)}")
        have = _file_entry(path)
        if have["sha256"] == want["sha256"]:
            continue
        shape = f"{have['bytes']} bytes" + (f", {have['rows']} rows" if have["rows"] is not None else "")
        listed = f"{want.get('bytes')} bytes" + (f", {want.get('rows')} rows" if want.get("rows") is not None else "")
        if have["rows"] is not None and (isinstance(want.get("rows"), int) and have["rows"] < want["rows"]
                                         or not _ends_whole(path)):
            what = "cut short (truncated)"
        else:
            what = "changed since it was saved (edited)"
        raise RecordingError(f"{path}: {what}: {shape}, but {MANIFEST_NAME} says {listed} and another SHA-256; "
                             f"its numbers cannot be trusted; {_restore_hint(root)}")
    return True


def _ends_whole(path: Path) -> bool:
    """True when the file is empty or ends with a newline, as pandas ends every CSV it writes."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _check_whole_lines(root: Path) -> None:
    """Without a manifest, at least catch a file cut mid-line."""
    for name in RECORDING_FILES:
        path = root / name
        if path.suffix == ".csv" and path.is_file() and not _ends_whole(path):
            raise RecordingError(f"{path}: its last line is cut off (no newline at the end): the file was "
                                 f"truncated; {_restore_hint(root)}")


def write_manifest(path: str | os.PathLike, *, force: bool = False) -> str:
    """Write manifest.json for an existing recording folder (atomically); returns what it did.

    The folder must load (partial allowed) so that a broken one is never vouched for; one whose
    manifest already matches is left alone; one whose manifest does not match is refused unless
    `force` (the files were changed on purpose).
    """
    root = Path(path)
    try:
        matches = verify(root)
    except RecordingError:
        if not force:
            raise
        matches = False
    if matches:
        return f"{root}: {MANIFEST_NAME} already matches; unchanged"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordingWarning)
        load(root, allow_partial=True, verify_manifest=False)
    text = _manifest_text(root)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{MANIFEST_NAME}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(root)
    return f"{root}: wrote {MANIFEST_NAME} ({', '.join(json.loads(text)['files'])})"


def load(path: str | os.PathLike, *, allow_partial: bool = False, require_manifest: bool = False,
         verify_manifest: bool = True, why_shown: str | None = None) -> Recording:
    """Read and validate a recording folder; RecordingError names the file and the problem.

    why_shown: why the caller shows this recording (e.g. "recorded mode was asked for"); it becomes
    the Recording's `why_shown`, and meta stays exactly as the run wrote it.

    Its manifest.json is checked first. Without one (a folder saved before manifests) it loads
    with a RecordingWarning, unless `require_manifest` (the shipped datasets) makes that an error.
    """
    root = Path(path)
    if not root.is_dir():
        raise RecordingError(f"{root}: no such recording folder")
    if not (verify_manifest and verify(root)):
        if require_manifest:
            raise RecordingError(f"{root / MANIFEST_NAME}: missing, so nothing vouches that the files are whole; "
                                 f"if they are, add it with `{WRITE_MANIFEST_COMMAND} {root}`")
        _check_whole_lines(root)
    if verify_manifest and not (root / MANIFEST_NAME).exists():
        warnings.warn(f"{root}: no {MANIFEST_NAME} (saved by an older reclaimlab), so it is loaded without checking "
                      f"that its files are whole; if they are, add one with `{WRITE_MANIFEST_COMMAND} {root}`",
                      RecordingWarning, stacklevel=2)
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
    return Recording(samples=samples, events=events, meta=meta, buddyinfo=buddy, path=root,
                     why_shown=why_shown or f"loaded from {root}")


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


def main(argv: list[str] | None = None) -> int:
    """python -m reclaimlab.recording.recording --write-manifest DIR... | --check DIR..."""
    parser = argparse.ArgumentParser(prog="python -m reclaimlab.recording.recording",
                                     description="Write or check the manifest.json of recording folders.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write-manifest", action="store_true",
                        help="write manifest.json for each folder (which must load); one that matches is left alone")
    action.add_argument("--check", action="store_true", help="check each folder against its manifest and load it")
    parser.add_argument("--force", action="store_true",
                        help="with --write-manifest: replace a manifest that does not match (files changed on purpose)")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="recording folders, e.g. data/recordings/*/*/")
    args = parser.parse_args(argv)
    failed = 0
    for folder in args.dirs:
        try:
            if args.write_manifest:
                print(write_manifest(folder, force=args.force))
            else:
                load(folder, allow_partial=True, require_manifest=True)
                print(f"{folder}: whole ({MANIFEST_NAME} matches)")
        except RecordingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
