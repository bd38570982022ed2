"""The recorded datasets in data/recordings/: finding the one an experiment falls back to.

Layout: data/recordings/<experiment>/<id>/ (a Recording folder each) and
data/recordings/index.json, which `rebuild_index()` writes from the folders so it
can never disagree with them (a test checks that). Hidden folders (a `.NAME.<pid>.*.partial`
left by a killed save) are never indexed, and an index entry whose path leaves the data folder
is refused, never shown.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from . import recording
from ..paths import recordings_dir

INDEX_NAME = "index.json"


def _entries(root: Path) -> list[dict[str, Any]]:
    out = []
    for meta_path in sorted(root.glob("*/*/meta.json")):
        rec_dir = meta_path.parent
        if _hidden(rec_dir.relative_to(root)):
            continue  # a save in progress or killed: never a recording to offer
        meta = recording.read_json(meta_path, what="recording's meta.json")
        out.append({
            "experiment": meta.get("experiment"),
            "id": rec_dir.name,
            "path": str(rec_dir.relative_to(root)),
            "parameters": meta.get("parameters", {}),
            "guest_kind": meta.get("guest_kind"),
            "hypervisor": meta.get("hypervisor"),
            "kernel_release": meta.get("kernel_release"),
            "date_utc": meta.get("date_utc"),
            "complete": meta.get("complete"),
            "duration_s": meta.get("duration_s", _last_t_s(rec_dir)),
        })
    return out


def _last_t_s(rec_dir: Path) -> float | None:
    """How long a recording made before meta carried duration_s ran: its last sample's t_s."""
    try:
        with open(rec_dir / "samples.csv", "rb") as f:
            header = f.readline().decode().strip().split(",")
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            last = f.read().decode(errors="replace").strip().splitlines()[-1].split(",")
        return round(float(last[header.index("t_s")]), 3)
    except (OSError, ValueError, IndexError):
        return None


def rebuild_index(root: Path | None = None) -> Path:
    """Write index.json from the recording folders (atomically)."""
    root = root or recordings_dir()
    entries = _entries(root)
    text = json.dumps({"recordings": entries}, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".index.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, root / INDEX_NAME)
    return root / INDEX_NAME


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _path_problem(root: Path, rel: Any) -> str | None:
    """Why an index entry's path is not a recording folder inside `root` (None: it is)."""
    if not isinstance(rel, str) or "\0" in rel or os.path.isabs(rel):
        return "is not a relative path"
    parts = Path(rel).parts
    if len(parts) != 2 or ".." in parts or _hidden(Path(rel)):
        return "is not <experiment>/<id> inside the data folder"
    if not (root / rel).resolve().is_relative_to(root.resolve()):
        return "leads outside the data folder (through a link)"
    return None


def read_index(root: Path | None = None) -> list[dict[str, Any]]:
    """The entries of index.json. One whose path leaves the data folder (or names a hidden folder) is
    refused with the whole index: rebuild_index never writes one, so the index was edited or forged."""
    root = root or recordings_dir()
    path = root / INDEX_NAME
    fix = (f"restore it (`git checkout -- {path}`) or rebuild it from the folders "
           f"(reclaimlab.recording.datasets.rebuild_index())")
    try:
        entries = recording.read_json(path, what=f"recordings {INDEX_NAME}")["recordings"]
    except FileNotFoundError:
        raise recording.RecordingError(f"{path}: missing; the recorded datasets are not installed "
                                       "(run from a checkout of reclaimlab, or set RECLAIMLAB_DATA)") from None
    except (KeyError, TypeError) as exc:
        raise recording.RecordingError(f"{path}: corrupt (no list of recordings: {exc}); {fix}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise recording.RecordingError(f"{path}: corrupt (its recordings are not a list of objects); {fix}")
    for entry in entries:
        problem = _path_problem(root, entry.get("path"))
        if problem:
            raise recording.RecordingError(f"{path}: the entry with path {entry.get('path')!r} {problem}, so it "
                                           f"is not one of the shipped recordings and is never shown; {fix}")
    return entries


VM_GUEST_KIND = "kit-vm"


def find(experiment: str, selectors: dict[str, Any] | None = None, root: Path | None = None,
         guest_kind: str | None = None, why_shown: str | None = None,
         defaults: dict[str, Any] | None = None) -> recording.Recording:
    """Load the recording of `experiment` whose parameters match every selector (first match).

    guest_kind "kit-vm" picks recordings made in the kit's own VM; otherwise those made on a guest
    the notebook ran on. `defaults` (the experiment's): a recording made before a parameter existed
    ran with its default, so a selector on that parameter compares the default.
    """
    defaults = defaults or {}
    root = root or recordings_dir()
    selectors = selectors or {}
    in_vm = guest_kind == VM_GUEST_KIND
    candidates = [e for e in read_index(root) if e["experiment"] == experiment and e.get("complete")
                  and (e.get("guest_kind") == VM_GUEST_KIND) == in_vm]
    if not candidates:
        where = " in the kit's VM" if in_vm else ""
        raise recording.RecordingError(f"no recording of {experiment!r}{where} in {root}; record one with "
                                       f"`reclaimlab record {experiment}{' --guest vm' if in_vm else ''} --to-data`")
    matching = [e for e in candidates
                if all(e["parameters"].get(k, defaults.get(k)) == v for k, v in selectors.items())]
    if not matching:
        have = "; ".join(", ".join(f"{k}={e['parameters'].get(k)!r}" for k in selectors) for e in candidates)
        raise recording.RecordingError(f"no recording of {experiment!r} with "
                                       f"{', '.join(f'{k}={v!r}' for k, v in selectors.items())}; recorded: {have}")
    rec = recording.load(root / matching[0]["path"], require_manifest=True, why_shown=why_shown)
    _check_is_what_was_asked(rec, experiment, selectors, in_vm, defaults)
    return rec


def _check_is_what_was_asked(rec: recording.Recording, experiment: str, selectors: dict[str, Any],
                             in_vm: bool, defaults: dict[str, Any] | None = None) -> None:
    """The folder's own meta must say what the index said: a recording shown is the one asked for."""
    meta, params = rec.meta, rec.meta.get("parameters") or {}
    wrong = [f"experiment {meta.get('experiment')!r}"] if meta.get("experiment") != experiment else []
    if (meta.get("guest_kind") == VM_GUEST_KIND) != in_vm:
        wrong.append(f"guest_kind {meta.get('guest_kind')!r}")
    defaults = defaults or {}
    wrong += [f"{k}={params.get(k)!r}" for k, v in selectors.items() if params.get(k, defaults.get(k)) != v]
    if wrong:
        raise recording.RecordingError(f"{rec.path}: its meta.json says {', '.join(wrong)}, but {INDEX_NAME} "
                                       f"listed it for {experiment!r}"
                                       + (f" with {', '.join(f'{k}={v!r}' for k, v in selectors.items())}" if selectors else "")
                                       + "; the index no longer matches the folders: rebuild it "
                                         "(reclaimlab.recording.datasets.rebuild_index())")
