"""Hostile recording folders: each one refused at the boundary with an error that names the file, the
problem and the fix, never loaded as if whole, never a traceback from inside the labs.

Each case starts from a copy of a shipped recording; where a case needs a forged manifest (someone who
edits a file and re-writes manifest.json to match), it is written with the project's own
`recording._manifest_text`, as save() writes it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reclaimlab.notebook import lab
from reclaimlab.paths import recordings_dir
from reclaimlab.recording import datasets, recording
from reclaimlab.recording.recording import RecordingError

SHIPPED = recordings_dir()


def copy_of(tmp_path: Path, experiment: str = "calloc-reclaim", name_has: str = "local", to: str = "rec") -> Path:
    source = next(p for p in sorted((SHIPPED / experiment).iterdir()) if name_has in p.name)
    return Path(shutil.copytree(source, tmp_path / to))


def forge_manifest(folder: Path) -> None:
    """What someone who edits a recording and re-vouches for it writes: a manifest matching the files."""
    (folder / recording.MANIFEST_NAME).write_text(recording._manifest_text(folder))


def edit_csv(folder: Path, name: str, change) -> None:
    df = pd.read_csv(folder / name, keep_default_na=False, dtype=str)
    change(df)
    df.to_csv(folder / name, index=False)
    forge_manifest(folder)


def edit_meta(folder: Path, **values) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(values)
    (folder / "meta.json").write_text(json.dumps(meta))
    forge_manifest(folder)


def manifest_listing(folder: Path, name: str) -> None:
    manifest = json.loads((folder / recording.MANIFEST_NAME).read_text())
    manifest["files"][name] = {"bytes": 1, "rows": None, "sha256": "0" * 64}
    (folder / recording.MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.fixture
def opened(monkeypatch):
    """Every path os.open is asked for during the test."""
    paths: list[str] = []
    real = os.open

    def spy(path, *args, **kwargs):
        paths.append(str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", spy)
    return paths


# --- a manifest names only the files inside its own folder --------------------------------------------

def test_manifest_naming_a_parent_path_is_refused_unopened(tmp_path, opened):
    """hostile-inputs review, case 3: a manifest listing ../../secret never opens that file."""
    secret = tmp_path / "secret"
    secret.write_text("root:$6$hash\n")
    rec = copy_of(tmp_path, to="a/rec")
    manifest_listing(rec, "../../secret")
    with pytest.raises(RecordingError, match=r"lists '\.\./\.\./secret', a path outside the recording's folder.*"
                                             r"not trustworthy"):
        recording.load(rec)
    assert not any("secret" in p for p in opened)


def test_manifest_naming_an_absolute_path_is_refused_unopened(tmp_path, opened):
    """hostile-inputs review, case 3: a manifest listing /etc/shadow never opens it."""
    rec = copy_of(tmp_path)
    manifest_listing(rec, "/etc/shadow")
    with pytest.raises(RecordingError, match=r"lists '/etc/shadow', a path outside.*not trustworthy"):
        recording.verify(rec)
    assert "/etc/shadow" not in opened


def test_manifest_naming_a_file_a_recording_does_not_have_is_refused(tmp_path):
    """hostile-inputs review, case 3: a manifest listing any other name (here notes.txt) is refused."""
    rec = copy_of(tmp_path)
    manifest_listing(rec, "notes.txt")
    with pytest.raises(RecordingError, match=r"lists 'notes\.txt', which is not a file of a recording"):
        recording.load(rec)


def test_a_file_that_is_a_symlink_out_of_the_folder_is_refused(tmp_path):
    """hostile-inputs review, case 3: samples.csv as a link to a file elsewhere is never followed."""
    rec = copy_of(tmp_path)
    elsewhere = tmp_path / "elsewhere.csv"
    shutil.move(rec / "samples.csv", elsewhere)
    (rec / "samples.csv").symlink_to(elsewhere)  # same bytes: the old manifest would have matched
    with pytest.raises(RecordingError, match=r"samples\.csv: a symbolic link"):
        recording.load(rec)


# --- index.json paths stay under data/ ------------------------------------------------------------------

def _data_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED, tmp_path / "recordings"))


def _point_index(root: Path, experiment: str, path: str) -> None:
    index = json.loads((root / datasets.INDEX_NAME).read_text())
    for entry in index["recordings"]:
        if entry["experiment"] == experiment:
            entry["path"] = path
    (root / datasets.INDEX_NAME).write_text(json.dumps(index))


def test_index_entry_leaving_the_data_folder_is_refused(tmp_path):
    """hostile-inputs review, case 5: an index.json path ../../outside is refused, never shown as RECORDED."""
    root = _data_copy(tmp_path)
    copy_of(tmp_path, to="outside/run")
    _point_index(root, "calloc-reclaim", "../outside/run")
    with pytest.raises(RecordingError, match=r"path '\.\./outside/run' is not <experiment>/<id> inside the data "
                                             r"folder.*rebuild"):
        datasets.find("calloc-reclaim", root=root)


def test_index_entry_with_an_absolute_path_is_refused(tmp_path):
    """hostile-inputs review, case 5: an index.json path that is absolute is refused."""
    root = _data_copy(tmp_path)
    outside = copy_of(tmp_path, to="outside")
    _point_index(root, "calloc-reclaim", str(outside))
    with pytest.raises(RecordingError, match=r"is not a relative path"):
        datasets.read_index(root)


def test_index_entry_through_a_link_out_of_the_data_folder_is_refused(tmp_path):
    """hostile-inputs review, case 5: a folder inside data/ that is a link to a run elsewhere is refused."""
    root = _data_copy(tmp_path)
    outside = copy_of(tmp_path, to="outside")
    (root / "calloc-reclaim" / "linked").symlink_to(outside, target_is_directory=True)
    _point_index(root, "calloc-reclaim", "calloc-reclaim/linked")
    with pytest.raises(RecordingError, match=r"leads outside the data folder"):
        datasets.find("calloc-reclaim", root=root)


# --- partial or hidden folders are never indexed, found or offered -----------------------------------------

def _killed_save(root: Path) -> Path:
    """What save() leaves when killed: a hidden .NAME.<pid>.<random>.partial folder, no manifest, samples cut."""
    partial = root / "calloc-reclaim" / ".20261201T000000Z-local.999999.abc.partial"
    shutil.copytree(next((root / "calloc-reclaim").glob("*local")), partial)
    (partial / recording.MANIFEST_NAME).unlink()
    lines = (partial / "samples.csv").read_text().splitlines(keepends=True)
    (partial / "samples.csv").write_text("".join(lines[:20]))
    return partial


def test_a_killed_saves_partial_folder_is_never_indexed_or_found(tmp_path):
    """hostile-inputs review, case 6: the hidden .partial folder of a killed save is not indexed; find() skips it."""
    root = _data_copy(tmp_path)
    partial = _killed_save(root)
    datasets.rebuild_index(root)
    assert all(not e["path"].split("/")[1].startswith(".") for e in datasets.read_index(root))
    rec = datasets.find("calloc-reclaim", root=root)
    assert rec.path != partial and rec.path.parent == root / "calloc-reclaim"


def test_a_killed_saves_partial_folder_never_loads_nor_is_vouched_for(tmp_path):
    """hostile-inputs review, case 6: loading the .partial folder never advises --write-manifest; vouching is refused."""
    partial = _killed_save(_data_copy(tmp_path))
    for attempt in (lambda: recording.load(partial), lambda: recording.load(partial, require_manifest=False),
                    lambda: recording.write_manifest(partial)):
        with pytest.raises(RecordingError, match=r"left by a save that never finished") as info:
            attempt()
        assert "--write-manifest" not in str(info.value)
    assert not (partial / recording.MANIFEST_NAME).exists()


def test_a_folder_without_manifest_loads_only_when_asked_and_labelled(tmp_path):
    """hostile-inputs review, case 6: no manifest.json is refused by default, and loads only with require_manifest=False, labelled."""
    rec_dir = copy_of(tmp_path)
    (rec_dir / recording.MANIFEST_NAME).unlink()
    with pytest.raises(RecordingError, match=r"manifest\.json: missing, so nothing vouches"):
        recording.load(rec_dir)
    with pytest.warns(recording.RecordingWarning, match="require_manifest=False asked for it"):
        rec = recording.load(rec_dir, require_manifest=False)
    assert "UNVERIFIED" in rec.describe_source() and "older reclaimlab" not in rec.unverified
    with pytest.raises(lab.LabParameterError, match=r"manifest\.json: missing"):
        lab.setup(show=False, recordings={"calloc-reclaim": str(rec_dir)})


# --- lab recordings: a replayed folder must be what its key asks for ---------------------------------------

@pytest.fixture
def no_replays():
    yield  # nothing to undo: a lab's recordings travel in its context (there is no module-level table)


def test_a_policy_selector_refuses_a_run_of_another_policy(tmp_path, no_replays):
    """hostile-inputs review, case 8: {"auto-reclaim:policy=dropCache": a gradual run} is refused, naming both."""
    gradual = copy_of(tmp_path, "auto-reclaim", "gradual-newer")
    with pytest.raises(lab.LabParameterError, match=r"recorded with policy='gradual', but the key asks for "
                                                    r"policy=dropCache"):
        lab.setup(show=False, recordings={"auto-reclaim:policy=dropCache": str(gradual)})
    drop = copy_of(tmp_path, "auto-reclaim", "dropCache-newer", to="drop")
    ctx = lab.setup(show=False, recordings={"auto-reclaim:policy=dropCache": str(drop)})
    assert ctx.recordings == {"auto-reclaim:policy=dropCache": str(drop)}


def test_an_unknown_selector_is_refused_listing_the_known_ones(tmp_path, no_replays):
    """hostile-inputs review, case 8: a misspelt selector (polcy=) is refused, never silently unused."""
    drop = copy_of(tmp_path, "auto-reclaim", "dropCache-newer")
    with pytest.raises(lab.LabParameterError, match=r"'polcy=dropCache' is not <parameter>=<value>.*parameters: .*"
                                                    r"policy.*variant"):
        lab.setup(show=False, recordings={"auto-reclaim:polcy=dropCache": str(drop)})


def test_a_vm_key_refuses_a_local_run(tmp_path, no_replays):
    """hostile-inputs review, case 8: {"vm:calloc-reclaim": a local run} is refused with the reason (no KeyError)."""
    local = copy_of(tmp_path)
    with pytest.raises(lab.LabParameterError, match=r"not in the kit's VM: a 'vm:' key takes a run of the kit's VM"):
        lab.setup(show=False, recordings={"vm:calloc-reclaim": str(local)})


def test_a_tail_cut_at_a_line_boundary_without_manifest_is_refused(tmp_path, no_replays):
    """hostile-inputs review, case 8: samples cut 10 s before the end at a line boundary, no manifest: refused, even unverified."""
    rec_dir = copy_of(tmp_path)
    (rec_dir / recording.MANIFEST_NAME).unlink()
    samples = pd.read_csv(rec_dir / "samples.csv")
    samples[samples["t_s"] <= samples["t_s"].iloc[-1] - 10].to_csv(rec_dir / "samples.csv", index=False)
    with pytest.raises(lab.LabParameterError, match=r"manifest\.json: missing"):
        lab.setup(show=False, recordings={"calloc-reclaim": str(rec_dir)})
    with pytest.raises(RecordingError, match=r"event 'end' at t_s=.* lies outside the samples' time span"):
        with pytest.warns(recording.RecordingWarning):
            recording.load(rec_dir, require_manifest=False)


# --- load() checks values, not only hashes (each with a forged manifest) -------------------------------

def test_a_nan_written_in_a_memory_column_is_refused(tmp_path):
    """hostile-inputs review, case 9: a literal nan in mem_free_kib is refused, naming column and line."""
    rec = copy_of(tmp_path)
    edit_csv(rec, "samples.csv", lambda df: df.__setitem__("mem_free_kib", df["mem_free_kib"].where(df.index != 3, "nan")))
    with pytest.raises(RecordingError, match=r"samples\.csv: non-numeric values in column\(s\) mem_free_kib: line 5 "
                                             r"holds 'nan'"):
        recording.load(rec)


def test_an_infinite_memory_value_is_refused(tmp_path):
    """hostile-inputs review, case 9: inf in cached_kib is refused."""
    rec = copy_of(tmp_path)
    edit_csv(rec, "samples.csv", lambda df: df.__setitem__("cached_kib", df["cached_kib"].where(df.index != 7, "inf")))
    with pytest.raises(RecordingError, match=r"column cached_kib, line 9 holds inf, but it holds only finite amounts"):
        recording.load(rec)


def test_a_negative_memory_value_is_refused(tmp_path):
    """hostile-inputs review, case 9: a negative anon_kib is refused."""
    rec = copy_of(tmp_path)
    edit_csv(rec, "samples.csv", lambda df: df.__setitem__("anon_kib", df["anon_kib"].where(df.index != 0, "-5")))
    with pytest.raises(RecordingError, match=r"column anon_kib, line 2 holds -5"):
        recording.load(rec)


def test_a_repeated_sample_time_is_refused(tmp_path):
    """hostile-inputs review, case 9: t_s that stays constant (a repeated time) is refused."""
    rec = copy_of(tmp_path)
    edit_csv(rec, "samples.csv", lambda df: df.__setitem__("t_s", df["t_s"].where(df.index != 4, df["t_s"][3])))
    with pytest.raises(RecordingError, match=r"t_s goes backwards or repeats at line 6"):
        recording.load(rec)


def test_a_negative_sample_time_is_refused(tmp_path):
    """hostile-inputs review, case 9: a negative t_s is refused."""
    rec = copy_of(tmp_path)
    edit_csv(rec, "samples.csv", lambda df: df.__setitem__("t_s", df["t_s"].where(df.index != 0, "-1")))
    with pytest.raises(RecordingError, match=r"column t_s, line 2 holds -1"):
        recording.load(rec)


def test_an_event_outside_the_samples_time_span_is_refused(tmp_path):
    """hostile-inputs review, case 9: an event 500 s after the last sample is refused."""
    rec = copy_of(tmp_path)
    edit_csv(rec, "events.csv", lambda df: df.__setitem__("t_s", df["t_s"].where(df["kind"] != "free", "500")))
    with pytest.raises(RecordingError, match=r"events\.csv: line \d: event 'free' at t_s=500.* outside the samples' "
                                             r"time span"):
        recording.load(rec)


def test_complete_as_the_text_false_is_refused(tmp_path):
    """hostile-inputs review, case 9: meta "complete": "false" (text) never loads as complete."""
    rec = copy_of(tmp_path)
    edit_meta(rec, complete="false")
    with pytest.raises(RecordingError, match=r"meta\.json: meta key 'complete' must be bool.*'false'"):
        recording.load(rec)


def test_results_null_is_refused(tmp_path):
    """hostile-inputs review, case 9: meta "results": null is refused at load, not an AttributeError in a lab."""
    rec = copy_of(tmp_path)
    edit_meta(rec, results=None)
    with pytest.raises(RecordingError, match=r"meta key 'results' is null; it must be object"):
        recording.load(rec)


def test_parameters_as_a_list_is_refused(tmp_path):
    """hostile-inputs review, case 9: meta "parameters" as a list is refused."""
    rec = copy_of(tmp_path)
    edit_meta(rec, parameters=["size", "3GB"])
    with pytest.raises(RecordingError, match=r"meta key 'parameters' must be object"):
        recording.load(rec)


def test_date_as_a_number_is_refused(tmp_path):
    """hostile-inputs review, case 9: meta "date_utc" as an int is refused."""
    rec = copy_of(tmp_path)
    edit_meta(rec, date_utc=20261126)
    with pytest.raises(RecordingError, match=r"meta key 'date_utc' must be text"):
        recording.load(rec)


def test_date_that_is_not_a_timestamp_is_refused(tmp_path):
    """hostile-inputs review, case 9: meta "date_utc" as text that is no date is refused."""
    rec = copy_of(tmp_path)
    edit_meta(rec, date_utc="yesterday")
    with pytest.raises(RecordingError, match=r"'date_utc' must be an ISO 8601 date and time.*'yesterday'"):
        recording.load(rec)


def test_a_removed_free_event_is_refused_at_load(tmp_path):
    """hostile-inputs review, case 13: a calloc-reclaim run without its free event is refused at load, not a KeyError in analysis."""
    rec = copy_of(tmp_path)
    edit_csv(rec, "events.csv", lambda df: df.drop(df.index[df["kind"] == "free"], inplace=True))
    with pytest.raises(RecordingError, match=r"events\.csv: no 'free' event, which every complete calloc-reclaim "
                                             r"recording marks"):
        recording.load(rec)


# --- deeply nested JSON and huge files refused early --------------------------------------------------

def test_meta_json_nested_deeply_is_refused(tmp_path):
    """hostile-inputs review, case 11: a meta.json nested 100,000 deep is a clear error, not a RecursionError."""
    rec = copy_of(tmp_path)
    (rec / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    forge_manifest(rec)
    with pytest.raises(RecordingError, match=r"meta\.json: not readable as JSON \(nested too deeply"):
        recording.load(rec)


def test_manifest_json_nested_deeply_is_refused(tmp_path):
    """hostile-inputs review, case 11: a manifest.json nested 100,000 deep is a clear error, no forging needed."""
    rec = copy_of(tmp_path)
    (rec / recording.MANIFEST_NAME).write_text('{"files": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(RecordingError, match=r"manifest\.json: not readable as JSON \(nested too deeply"):
        recording.load(rec)


def test_a_huge_samples_csv_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """hostile-inputs review, case 13: a 200 MB samples.csv is refused by its size, before hashing or parsing."""
    rec = copy_of(tmp_path)
    with open(rec / "samples.csv", "r+b") as f:
        f.truncate(200_000_000)  # sparse: costs no disk
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("read a file it should have refused"))
    real_entry = recording._file_entry

    def entry(f, is_csv):
        assert os.fstat(f.fileno()).st_size < 10**6, "hashed a file it should have refused"
        return real_entry(f, is_csv)
    monkeypatch.setattr(recording, "_file_entry", entry)
    with pytest.raises(RecordingError, match=r"samples\.csv: 190\.73 MiB, more than a recording.s samples\.csv may hold "
                                             r"\(64\.00 MiB\), so it was not read"):
        recording.load(rec)


def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(tmp_path):
    """hostile-inputs review, case 12 (its FIFO, for recordings): samples.csv as a FIFO is refused at once."""
    rec = copy_of(tmp_path)
    (rec / "samples.csv").unlink()
    os.mkfifo(rec / "samples.csv")
    with pytest.raises(RecordingError, match=r"samples\.csv: not a regular file"):
        recording.load(rec)


def test_every_shipped_recording_loads_with_the_value_checks():
    """The value checks' tolerances fit every real recording the kit ships."""
    for entry in datasets.read_index():
        assert recording.load(SHIPPED / entry["path"]).complete


def test_an_unverified_recording_says_so_in_its_banner(tmp_path):
    """hostile-inputs review, case 6: a folder loaded without manifest is labelled unverified in the lab's banner."""
    rec_dir = copy_of(tmp_path)
    (rec_dir / recording.MANIFEST_NAME).unlink()
    with pytest.warns(recording.RecordingWarning):
        rec = recording.load(rec_dir, require_manifest=False)
    assert "<b>Unverified</b>: no manifest.json" in lab.banner_html(rec)
    assert "Unverified" not in lab.banner_html(recording.load(copy_of(tmp_path, to="whole")))
