"""The Recording: what every experiment yields and every chart takes.

On disk a Recording is one folder of plain files that pandas alone can read:

    meta.json       experiment, parameters, provenance (kernel, guest kind, hypervisor, date, ...)
    samples.csv     one row per sample: t_s, then memory columns with units in their names
    events.csv      t_s, kind, detail: what the experiment did and when
    buddyinfo.csv   (optional) snapshots of /proc/buddyinfo: t_s, label, zone, order, free_blocks
    physmap.json    (optional) maps of physical memory at the run's steps (recording.physmap: label, t_s, map)
    manifest.json   rows, bytes and SHA-256 of each file above, written last

A folder is written atomically: into a hidden sibling first, then renamed into
place, so a reader sees the whole recording or none of it. load() checks the
manifest, so a file cut short, edited, dropped or added later is one RecordingError
naming it, never numbers that load as if whole. A manifest names only the files
above (never a path), and every file is read as a regular file inside the folder,
never through a link, and only below a size bound (MAX_JSON_BYTES, MAX_CSV_BYTES).
A folder without a manifest loads only when asked for (load(..., require_manifest=False)),
with a RecordingWarning and labelled unverified, after the checks that need none
(every CSV must end with a whole line); a hidden `.NAME.<pid>.*.partial` folder
left by a killed save never loads. Then load() checks the values themselves
(types in meta, numbers finite and >= 0, time increasing, events inside the
samples' span). Add a manifest to a folder known to be whole with:

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
from typing import Any, BinaryIO, Iterable

import numpy as np
import pandas as pd

from .errors import RecordingError, RecordingWarning  # noqa: F401  (defined there, named from here)
from . import physmap as _physmap
from . import schema
from ..units import format_size

SCHEMA_VERSION = 1
EVENT_COLUMNS = ["t_s", "kind", "detail"]
BUDDY_COLUMNS = ["t_s", "label", "zone", "order", "free_blocks"]
REQUIRED_META = ("schema_version", "experiment", "mode", "complete", "kernel_release",
                 "guest_kind", "sample_hz", "tool_version", "date_utc")
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
PHYSMAP_FILE = _physmap.STEPS_FILE  # maps of physical memory at the run's steps (recording.physmap)
RECORDING_FILES = ("meta.json", "samples.csv", "events.csv", "buddyinfo.csv", PHYSMAP_FILE)  # what load() reads
WRITE_MANIFEST_COMMAND = "python -m reclaimlab.recording.recording --write-manifest"


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
    # Maps of physical memory at the run's steps (recording.physmap.MapStep), in the order taken; empty where
    # none was taken (not root, a recording made before 2026-12) and meta["physmap_unavailable"] says why.
    physmaps: list = field(default_factory=list)
    # Why this recording is in front of you (live and why, or recorded and why): a fact of this showing,
    # given by whoever made or loaded it, so never written into meta; a live run's own reason is
    # meta["mode_reason"], which a loaded recording keeps as the run wrote it.
    why_shown: str = ""
    # Why its files were not checked against a manifest: load(require_manifest=False) on a folder without
    # one. "" for a verified recording and for one made in this process.
    unverified: str = ""

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
            return (f"RECORDED on {str(m.get('date_utc', '?'))[:10]} ({where}) - loaded from {self.path}"
                    + (f" - UNVERIFIED: {self.unverified}" if self.unverified else ""))
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
        if rec.physmaps:
            _write(tmp / PHYSMAP_FILE, _physmap.encode_steps(rec.physmaps))
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


# --- reading a recording's files: plain files inside its folder, bounded in size -------------------------

# Checked before a file is read (pandas takes ~6x a CSV's size in memory even to reject it): far above
# the biggest shipped files (meta.json 4 KiB, manifest.json 1 KiB, samples.csv 129 KiB on 2026-12-06)
# and above 11 hours of `reclaimlab watch` at 10 Hz (~155 bytes a sample).
MAX_JSON_BYTES = 1 << 20   # meta.json, manifest.json, data/recordings/index.json
MAX_CSV_BYTES = 64 << 20   # samples.csv, events.csv, buddyinfo.csv
# How far outside the samples' time span an event may lie: the kit's VM marks `end` up to 0.1 s after
# its last sample (the shipped recordings); at low sample rates, up to two sample periods.
EVENT_SLACK_S = 1.0


def _untrusted(root: Path) -> str:
    return f"this recording is not trustworthy; {_restore_hint(root)}"


def _is_plain_name(name: str) -> bool:
    """A file name directly inside a folder: no separator, no '..', not absolute, no NUL."""
    return name not in ("", ".", "..") and "\0" not in name and os.path.basename(name) == name


def open_regular(path: Path, max_bytes: int | None, what: str = "file") -> BinaryIO:
    """`path` opened for reading, refusing (RecordingError) a symbolic link, anything but a regular file
    (a FIFO would block forever) and a file above `max_bytes`; FileNotFoundError where it is absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RecordingError(f"{path}: a symbolic link; a {what} is a plain file, never a link to one "
                                 f"elsewhere, so it was not read; {_restore_hint(path.parent)}") from None
        raise RecordingError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    f = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RecordingError(f"{path}: not a regular file; a {what} is a plain file, so it was not read; "
                                 f"{_restore_hint(path.parent)}")
        if max_bytes is not None and st.st_size > max_bytes:
            raise RecordingError(f"{path}: {format_size(st.st_size)}, more than a {what} may hold "
                                 f"({format_size(max_bytes)}), so it was not read; {_restore_hint(path.parent)}"
                                 + (" (a longer run: read it with pandas itself, or record a shorter one)"
                                    if path.suffix == ".csv" else ""))
    except BaseException:
        f.close()
        raise
    return f


def _open_member(root: Path, name: str) -> BinaryIO:
    """One of the recording's own files (a plain name in RECORDING_FILES or the manifest), bounded in size."""
    if not _is_plain_name(name):
        raise RecordingError(f"{root}: {name!r} is not a file name inside the folder; {_untrusted(root)}")
    bound = (_physmap.MAX_STEPS_FILE_BYTES if name == PHYSMAP_FILE
             else MAX_JSON_BYTES if name.endswith(".json") else MAX_CSV_BYTES)
    return open_regular(root / name, bound, what=f"recording's {name}")


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value (strict JSON writes null)")


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES, what: str = "recording's JSON file") -> Any:
    """The strict JSON in `path` (no NaN), read through open_regular; RecordingError where it is not JSON
    or nested too deeply to parse; FileNotFoundError where it is absent."""
    with open_regular(path, max_bytes, what) as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise RecordingError(f"{path}: not readable as JSON (nested too deeply for a {what}); it is corrupt "
                             f"or forged; {_restore_hint(path.parent)}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RecordingError(f"{path}: not valid JSON ({exc}); the file is corrupt; "
                             f"{_restore_hint(path.parent)}") from None


# --- the manifest -------------------------------------------------------------------------------

def _rows(text: Iterable[str]) -> int | None:
    """Data rows of a CSV (its header not counted; a quoted field may span lines); None if not a CSV."""
    try:
        return max(0, sum(1 for _ in csv.reader(text)) - 1)
    except csv.Error:
        return None


def _file_entry(f: BinaryIO, is_csv: bool) -> dict[str, Any]:
    """bytes, rows and SHA-256 of an open file, read in chunks (memory stays bounded whatever its size)."""
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    rows = None
    if is_csv:
        f.seek(0)
        text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
        rows = _rows(text)
        text.detach()  # the caller closes f
    return {"bytes": size, "rows": rows, "sha256": digest.hexdigest()}


def _manifest_text(root: Path) -> str:
    files = {}
    for name in RECORDING_FILES:
        try:
            f = open_regular(root / name, None)  # what this process is vouching for: no size bound
        except FileNotFoundError:
            continue
        with f:
            files[name] = _file_entry(f, name.endswith(".csv"))
    return json.dumps({"manifest_version": MANIFEST_VERSION, "files": files}, indent=2, sort_keys=True) + "\n"


def _restore_hint(root: Path) -> str:
    return (f"restore the folder from where it came (`git checkout -- {root}` for a shipped one) "
            f"or record it again")


def _looks_partial(root: Path) -> bool:
    """A hidden `.NAME.<pid>.<random>.partial` folder: save() was killed before it finished."""
    return root.name.startswith(".") and root.name.endswith(".partial")


def read_manifest(root: Path) -> dict[str, dict[str, Any]] | None:
    """{file name: {bytes, rows, sha256}} from manifest.json, or None where there is none.

    Every name it lists must be one of RECORDING_FILES: a manifest that names anything else (a path
    such as ../../etc/shadow) is refused before any file it names is opened."""
    path = root / MANIFEST_NAME
    try:
        manifest = read_json(path, what=f"recording's {MANIFEST_NAME}")
    except FileNotFoundError:
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                              for v in files.values()):
        raise RecordingError(f"{path}: not a reclaimlab manifest (no files with sha256); {_restore_hint(root)}")
    for name in files:
        if not _is_plain_name(name):
            raise RecordingError(f"{path}: lists {name!r}, a path outside the recording's folder (a manifest "
                                 f"names only the files inside it); {_untrusted(root)}")
        if name not in RECORDING_FILES:
            raise RecordingError(f"{path}: lists {name!r}, which is not a file of a recording "
                                 f"({', '.join(RECORDING_FILES)}); {_untrusted(root)}")
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise RecordingError(f"{path}: manifest_version {manifest.get('manifest_version')!r}, this reclaimlab "
                             f"reads {MANIFEST_VERSION}; upgrade reclaimlab")
    return files


def verify(root: Path) -> bool:
    """Check the folder against its manifest: True when it matches, False when it has none.

    RecordingError names the first file that is cut short, edited, missing, added later, a link, or
    listed by a manifest that names something outside the folder.
    """
    files = read_manifest(root)
    if files is None:
        return False
    for name in RECORDING_FILES:
        if os.path.lexists(root / name) and name not in files:
            raise RecordingError(f"{root / name}: not in {MANIFEST_NAME}, so it was added after the recording "
                                 f"was saved; remove it or {_restore_hint(root)}")
    for name, want in sorted(files.items()):
        path = root / name
        try:
            f = _open_member(root, name)
        except FileNotFoundError:
            raise RecordingError(f"{path}: missing, but {MANIFEST_NAME} lists it: the recording is incomplete; "
                                 f"{_restore_hint(root)}") from None
        with f:
            have = _file_entry(f, name.endswith(".csv"))
            whole = _ends_whole(f)
        if have["sha256"] == want["sha256"]:
            continue
        shape = f"{have['bytes']} bytes" + (f", {have['rows']} rows" if have["rows"] is not None else "")
        listed = f"{want.get('bytes')} bytes" + (f", {want.get('rows')} rows" if want.get("rows") is not None else "")
        if have["rows"] is not None and (isinstance(want.get("rows"), int) and have["rows"] < want["rows"]
                                         or not whole):
            what = "cut short (truncated)"
        else:
            what = "changed since it was saved (edited)"
        raise RecordingError(f"{path}: {what}: {shape}, but {MANIFEST_NAME} says {listed} and another SHA-256; "
                             f"its numbers cannot be trusted; {_restore_hint(root)}")
    return True


def _ends_whole(f: BinaryIO) -> bool:
    """True when the open file is empty or ends with a newline, as pandas ends every CSV it writes."""
    f.seek(0, os.SEEK_END)
    if f.tell() == 0:
        return True
    f.seek(-1, os.SEEK_END)
    return f.read(1) == b"\n"


def _check_whole_lines(root: Path) -> None:
    """Without a manifest, at least catch a file cut mid-line."""
    for name in RECORDING_FILES:
        if not name.endswith(".csv"):
            continue
        try:
            f = _open_member(root, name)
        except FileNotFoundError:
            continue
        with f:
            if not _ends_whole(f):
                raise RecordingError(f"{root / name}: its last line is cut off (no newline at the end): the file "
                                     f"was truncated; {_restore_hint(root)}")


def _refuse_partial_folder(root: Path) -> None:
    if _looks_partial(root):
        raise RecordingError(f"{root}: a folder left by a save that never finished (killed before its "
                             f"{MANIFEST_NAME} was written): it is half-written and nothing can vouch for it; "
                             f"delete it and record again")


def _no_manifest(root: Path) -> RecordingError:
    return RecordingError(f"{root / MANIFEST_NAME}: missing, so nothing vouches that the files are whole (every "
                          f"folder reclaimlab saves has one); {_restore_hint(root)}. Only if you know they are "
                          f"whole (a folder saved before manifests), vouch for it with "
                          f"`{WRITE_MANIFEST_COMMAND} {root}`, or load it unverified with "
                          f"load(..., require_manifest=False)")


def write_manifest(path: str | os.PathLike, *, force: bool = False) -> str:
    """Write manifest.json for an existing recording folder (atomically); returns what it did.

    The folder must load (partial allowed) so that a broken one is never vouched for, nor one left by
    a save that never finished; one whose manifest already matches is left alone; one whose manifest
    does not match is refused unless `force` (the files were changed on purpose).
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


def load(path: str | os.PathLike, *, allow_partial: bool = False, require_manifest: bool = True,
         verify_manifest: bool = True, why_shown: str | None = None) -> Recording:
    """Read and validate a recording folder; RecordingError names the file, the problem and the fix.

    why_shown: why the caller shows this recording (e.g. "recorded mode was asked for"); it becomes
    the Recording's `why_shown`, and meta stays exactly as the run wrote it.

    Its manifest.json is checked first; a folder without one is refused unless the caller asks for
    it with `require_manifest=False`: it then loads with a RecordingWarning, labelled in the
    Recording's `unverified` (and so in its banner). Then the values: meta's types, every number
    finite and >= 0, t_s strictly increasing, events inside the samples' time span, and the events
    a complete recording of its experiment marks (schema.EVENTS).
    verify_manifest=False skips the manifest (write_manifest, which is about to write one).
    """
    root = Path(path)
    if not root.is_dir():
        raise RecordingError(f"{root}: no such recording folder")
    unverified = ""
    if not (verify_manifest and verify(root)):
        _refuse_partial_folder(root)
        if verify_manifest:
            if require_manifest:
                raise _no_manifest(root)
            unverified = f"no {MANIFEST_NAME}, so nothing vouches that its files are whole"
            warnings.warn(f"{root}: {unverified}; loaded unverified because require_manifest=False asked for it. "
                          f"If they are whole, add one with `{WRITE_MANIFEST_COMMAND} {root}`",
                          RecordingWarning, stacklevel=2)
        _check_whole_lines(root)
    meta = _read_meta(root, allow_partial)
    samples = _read_samples(root, meta)
    events = _read_events(root, meta, samples)
    buddy = (_read_buddyinfo(root) if os.path.lexists(root / "buddyinfo.csv") else _empty(BUDDY_COLUMNS))
    maps = _read_physmaps(root, meta, samples) if os.path.lexists(root / PHYSMAP_FILE) else []
    return Recording(samples=samples, events=events, meta=meta, buddyinfo=buddy, path=root, physmaps=maps,
                     why_shown=why_shown or f"loaded from {root}", unverified=unverified)


def _read_meta(root: Path, allow_partial: bool) -> dict[str, Any]:
    meta_path = root / "meta.json"
    try:
        meta = read_json(meta_path, what="recording's meta.json")
    except FileNotFoundError:
        raise RecordingError(f"{meta_path}: missing; a recording folder needs meta.json") from None
    if not isinstance(meta, dict):
        raise RecordingError(f"{meta_path}: must hold a JSON object, found {type(meta).__name__}")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise RecordingError(f"{meta_path}: missing keys {', '.join(missing)}")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise RecordingError(f"{meta_path}: schema_version {meta['schema_version']!r}, this reclaimlab reads "
                             f"{SCHEMA_VERSION}; upgrade reclaimlab or record again")
    problem = schema.meta_problem(meta)
    if problem:
        raise RecordingError(f"{meta_path}: {problem}; the file is corrupt or forged; {_restore_hint(root)}")
    if not meta["complete"] and not allow_partial:
        raise RecordingError(f"{meta_path}: marked partial (the run was interrupted: "
                             f"{meta.get('interrupted', 'no reason given')}); it cannot stand in for a whole run")
    return schema.upgrade(meta)  # results written under older names read as today's


def _read_samples(root: Path, meta: dict[str, Any]) -> pd.DataFrame:
    path = root / "samples.csv"
    samples = _read_csv(root, "samples.csv", required=["t_s"])
    problem = schema.problem(meta, samples.columns)
    if problem:
        raise RecordingError(f"{root}: {problem} (this reclaimlab does not read it as a recording: made by "
                             f"another version, or edited; {_restore_hint(root)})")
    if samples.empty:
        raise RecordingError(f"{path}: has no samples")
    t = samples["t_s"]
    if t.isna().any():
        raise RecordingError(f"{path}: t_s has empty cells (first at line {_line(t.isna())}); the file is "
                             f"corrupt; {_restore_hint(root)}")
    _check_amounts(root, path, samples, list(samples.columns))
    repeats = t.diff() <= 0
    if repeats.any():
        i = int(repeats.to_numpy().argmax())
        raise RecordingError(f"{path}: t_s goes backwards or repeats at line {i + 2} ({float(t.iloc[i]):g} s after "
                             f"{float(t.iloc[i - 1]):g} s); each sample's time follows the one before, so the file is "
                             f"corrupt; {_restore_hint(root)}")
    return samples


def _read_events(root: Path, meta: dict[str, Any], samples: pd.DataFrame) -> pd.DataFrame:
    path = root / "events.csv"
    events = _read_csv(root, "events.csv", required=EVENT_COLUMNS)
    if events.empty:  # a run without marks (e.g. `reclaimlab watch`): pandas reads the header as text
        events = events.astype({"t_s": "float64"})
    _check_amounts(root, path, events, ["t_s"])
    events["detail"] = events["detail"].astype(object).fillna("").astype(str)  # all-empty reads as float NaN
    events["kind"] = events["kind"].astype(object).fillna("").astype(str)
    first_s, last_s = float(samples["t_s"].iloc[0]), float(samples["t_s"].iloc[-1])
    slack_s = max(EVENT_SLACK_S, 2.0 / float(meta["sample_hz"]))
    outside = (events["t_s"] < first_s - slack_s) | (events["t_s"] > last_s + slack_s)
    if outside.any():
        i = int(outside.to_numpy().argmax())
        raise RecordingError(f"{path}: line {i + 2}: event {events['kind'].iloc[i]!r} at t_s={float(events['t_s'].iloc[i]):g} "
                             f"lies outside the samples' time span ({first_s:g} to {last_s:g} s in samples.csv): "
                             f"the samples were cut short or the files do not belong together; {_restore_hint(root)}")
    needed = schema.EVENTS.get(str(meta.get("experiment")), ()) if meta["complete"] else ()
    lacking = [kind for kind in needed if kind not in set(events["kind"])]
    if lacking:
        raise RecordingError(f"{path}: no {', '.join(repr(k) for k in lacking)} event, which every complete "
                             f"{meta['experiment']} recording marks (its lab times the story from "
                             f"{', '.join(needed)}); it has: {', '.join(dict.fromkeys(events['kind'])) or 'none'}; "
                             f"{_untrusted(root)}")
    return events


def _read_buddyinfo(root: Path) -> pd.DataFrame:
    path = root / "buddyinfo.csv"
    buddy = _read_csv(root, "buddyinfo.csv", required=BUDDY_COLUMNS)
    _check_amounts(root, path, buddy, ["t_s", "order", "free_blocks"])
    return buddy


def _read_physmaps(root: Path, meta: dict[str, Any], samples: pd.DataFrame) -> list:
    """physmap.json's maps, each checked (recording.physmap.decode_steps) against the samples' span and MemTotal."""
    with _open_member(root, PHYSMAP_FILE) as f:
        text = f.read()
    total = samples["mem_total_kib"].dropna() if "mem_total_kib" in samples.columns else pd.Series(dtype="float64")
    try:
        return _physmap.decode_steps(
            text, str(root / PHYSMAP_FILE), span_s=(float(samples["t_s"].iloc[0]), float(samples["t_s"].iloc[-1])),
            mem_total_kib=int(total.max()) if len(total) else None,
            slack_s=max(EVENT_SLACK_S, 2.0 / float(meta["sample_hz"])))
    except RecordingError as exc:
        raise RecordingError(f"{exc}; {_restore_hint(root)}") from None


def _line(bad: pd.Series) -> int:
    """The file line of the first True row (line 1 is the header)."""
    return int(bad.to_numpy().argmax()) + 2


def _check_amounts(root: Path, path: Path, df: pd.DataFrame, columns: list[str]) -> None:
    """Every given cell of these columns a finite number >= 0 (an empty cell means "not measured")."""
    for column in columns:
        cells = df[column]
        numbers = pd.to_numeric(cells, errors="coerce")
        text = cells.notna() & numbers.isna()
        if text.any():
            raise RecordingError(f"{path}: non-numeric values in column(s) {column}: line {_line(text)} holds "
                                 f"{cells[text].iloc[0]!r} (an empty cell means not measured); the file is "
                                 f"corrupt; {_restore_hint(root)}")
        bad = ~np.isfinite(numbers.to_numpy(dtype="float64", na_value=0.0)) | (numbers < 0).to_numpy()
        if bad.any():
            bad = pd.Series(bad, index=df.index)
            raise RecordingError(f"{path}: column {column}, line {_line(bad)} holds {float(numbers[bad].iloc[0]):g}, but "
                                 f"it holds only finite amounts >= 0; the file is corrupt; {_restore_hint(root)}")


def _read_csv(root: Path, name: str, required: list[str]) -> pd.DataFrame:
    path = root / name
    try:
        with _open_member(root, name) as f:
            # Only an empty cell is "not measured": a written nan or inf is a value, checked by the caller.
            df = pd.read_csv(f, keep_default_na=False, na_values=[""])
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
