"""The recorded datasets in data/recordings/: finding the one an experiment falls back to.

Layout: data/recordings/<experiment>/<id>/ (a Recording folder each) and
data/recordings/index.json, which `rebuild_index()` writes from the folders so it
can never disagree with them (a test checks that).
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
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise recording.RecordingError(f"{meta_path}: unreadable ({exc})") from None
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


def read_index(root: Path | None = None) -> list[dict[str, Any]]:
    root = root or recordings_dir()
    path = root / INDEX_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))["recordings"]
    except FileNotFoundError:
        raise recording.RecordingError(f"{path}: missing; the recorded datasets are not installed "
                                       "(run from a checkout of reclaimlab, or set RECLAIMLAB_DATA)") from None
    except (json.JSONDecodeError, KeyError) as exc:
        raise recording.RecordingError(f"{path}: corrupt ({exc}); run `reclaimlab record --reindex`") from None


VM_GUEST_KIND = "kit-vm"


def find(experiment: str, selectors: dict[str, Any] | None = None, root: Path | None = None,
         guest_kind: str | None = None, why_shown: str | None = None) -> recording.Recording:
    """Load the recording of `experiment` whose parameters match every selector (first match).

    guest_kind "kit-vm" picks recordings made in the kit's own VM; otherwise those made on a guest
    the notebook ran on.
    """
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
                if all(e["parameters"].get(k) == v for k, v in selectors.items())]
    if not matching:
        have = "; ".join(", ".join(f"{k}={e['parameters'].get(k)!r}" for k in selectors) for e in candidates)
        raise recording.RecordingError(f"no recording of {experiment!r} with "
                                       f"{', '.join(f'{k}={v!r}' for k, v in selectors.items())}; recorded: {have}")
    return recording.load(root / matching[0]["path"], require_manifest=True, why_shown=why_shown)
