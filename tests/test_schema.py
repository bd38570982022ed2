"""The one result schema: shipped recordings fit it, save() and load() enforce it, old names read through aliases."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reclaimlab.recording import recording, schema
from reclaimlab.paths import recordings_dir

SHIPPED = sorted(p.parent for p in recordings_dir().glob("*/*/meta.json"))


@pytest.mark.parametrize("folder", SHIPPED, ids=[f"{p.parent.name}/{p.name}" for p in SHIPPED])
def test_every_shipped_recording_fits_the_schema(folder: Path) -> None:
    rec = recording.load(folder)
    assert schema.problem(rec.meta, rec.samples.columns) is None


def test_every_sample_column_and_result_has_a_unit() -> None:
    assert all(schema.SAMPLE_COLUMNS.values())
    for experiment, results in schema.RESULTS.items():
        for key, unit in results.items():
            assert unit, (experiment, key)
            if key.endswith("_kib"):
                assert unit in ("KiB", "KiB by label"), key   # by label: {label: KiB}, as per_cpu_free_kib
            if key.endswith("_bytes"):
                assert unit == "bytes", key
            if key.endswith("_s") and not key.endswith("_per_s"):
                assert unit == "s", key
    for col, unit in schema.SAMPLE_COLUMNS.items():
        suffix = {"_kib": "KiB", "_bytes": "bytes", "_s": "s", "_pages": "pages", "_count": "count"}
        assert unit == next(u for s, u in suffix.items() if col.endswith(s)), col


def test_aliases_point_at_declared_names() -> None:
    for experiment, aliases in schema.ALIASES.items():
        for old, new in aliases.items():
            assert schema.unit_of_result(experiment, new) is not None, (experiment, new)
            assert schema.unit_of_result(experiment, old) is None, f"{old} is both an alias and a name"


def _rec(experiment: str = "page-cache", **results) -> recording.Recording:
    meta = {"schema_version": 1, "experiment": experiment, "mode": "live", "complete": True,
            "kernel_release": "6.18", "guest_kind": "vm", "sample_hz": 10.0, "tool_version": "0",
            "date_utc": "2026-11-26T00:00:00Z", "results": results}
    return recording.Recording(samples=pd.DataFrame({"t_s": [0.0, 0.1], "cached_kib": [1, 2]}), meta=meta)


def test_save_refuses_an_undeclared_result_naming_it(tmp_path: Path) -> None:
    with pytest.raises(recording.RecordingError, match="'drop_caches_9_s'.*schema.RESULTS"):
        recording.save(_rec(drop_caches_9_s=1.0), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_save_refuses_an_old_name_and_says_the_new_one(tmp_path: Path) -> None:
    with pytest.raises(recording.RecordingError, match="write 'drop_caches_3_s'"):
        recording.save(_rec(drop_caches_s=1.0), tmp_path / "r")


def test_save_refuses_an_undeclared_column_and_a_wrong_type(tmp_path: Path) -> None:
    rec = _rec()
    rec.samples["mystery"] = [1, 2]
    with pytest.raises(recording.RecordingError, match="sample column.*mystery"):
        recording.save(rec, tmp_path / "a")
    with pytest.raises(recording.RecordingError, match="'file_bytes'.*must be bytes"):
        recording.save(_rec(file_bytes="big"), tmp_path / "b")
    rec = _rec()
    rec.meta["colour"] = "red"
    with pytest.raises(recording.RecordingError, match="meta key.*colour"):
        recording.save(rec, tmp_path / "c")


def test_load_reads_old_vm_names_through_aliases(tmp_path: Path) -> None:
    vm = next(p for p in SHIPPED if p.parent.name == "page-cache" and "vm" in p.name)
    copy = tmp_path / "old"
    shutil.copytree(vm, copy)
    meta = json.loads((copy / "meta.json").read_text())
    results = meta["results"]
    results["drop_caches_s"] = results.pop("drop_caches_3_s", 0.5)
    (copy / "meta.json").write_text(json.dumps(meta))
    (copy / "manifest.json").unlink()  # as a recording of that time: written before manifests
    rec = recording.load(copy, require_manifest=False)  # asked for: no manifest then
    assert rec.meta["results"]["drop_caches_3_s"] == results["drop_caches_s"]
    assert "drop_caches_s" not in rec.meta["results"]


def test_where_both_names_exist_todays_wins() -> None:
    meta = schema.upgrade({"experiment": "refault", "results": {"touch_first_s": 2.0, "first_touch_s": 1.9}})
    assert meta["results"] == {"touch_first_s": 2.0}


def test_a_corrupt_meta_key_in_a_folder_is_named_on_load(tmp_path: Path) -> None:
    copy = tmp_path / "r"
    shutil.copytree(SHIPPED[0], copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["results"]["not_a_result_kib"] = 1
    (copy / "meta.json").write_text(json.dumps(meta))
    (copy / "manifest.json").unlink()  # else the manifest refuses the edit first, naming the file
    with pytest.raises(recording.RecordingError, match="not_a_result_kib"):
        recording.load(copy, require_manifest=False)
