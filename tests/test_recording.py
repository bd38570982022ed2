"""Recording: round trip, atomic save (even when the writer dies), clear errors on load."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reclaimlab.recording import recording
from reclaimlab.recording.recording import Recording, RecordingError

LIB = Path(__file__).resolve().parent.parent / "lib"


def make_meta(**over) -> dict:
    # refault: a declared experiment (the schema refuses others) whose required events are touch and free
    meta = {"schema_version": recording.SCHEMA_VERSION, "experiment": "refault", "parameters": {"size": "1GiB"},
            "mode": "live", "complete": True, "kernel_release": "6.18.44-fc", "guest_kind": "vm",
            "hypervisor": "Firecracker (KVM)", "sample_hz": 10.0, "tool_version": "0.1.0",
            "date_utc": "2025-11-25T18:00:00Z"}
    meta.update(over)
    return meta


def make_recording(n: int = 5, **meta) -> Recording:
    samples = pd.DataFrame({
        "t_s": [i / 10 for i in range(n)],
        "mem_total_kib": [24684084] * n,
        "anon_kib": [13168 + i * 1_000_000 for i in range(n)],
        "cgroup_file_bytes": [4902912.0 if i % 2 == 0 else np.nan for i in range(n)],
        "host_reported_kib": [25_999_999_999 + i for i in range(n)],
    })
    events = pd.DataFrame({"t_s": [0.15, 0.3], "kind": ["touch", "free"], "detail": ["1 GiB", ""]})
    buddy = pd.DataFrame({"t_s": [0.0, 0.0], "label": ["before", "before"], "zone": ["Node 0 Normal"] * 2,
                          "order": [0, 1], "free_blocks": [1936, 392]})
    return Recording(samples=samples, events=events, meta=make_meta(**meta), buddyinfo=buddy)


@pytest.fixture
def saved(tmp_path) -> Path:
    return recording.save(make_recording(), tmp_path / "rec")


@pytest.fixture
def unverified(saved) -> Path:
    """A recording as an older reclaimlab saved it (no manifest): load() relies on its own checks."""
    (saved / recording.MANIFEST_NAME).unlink()
    return saved


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.endswith(".partial"))


# --- round trip -------------------------------------------------------------------------------

def test_round_trip_keeps_every_value(tmp_path):
    rec = make_recording()
    rec.meta["parameters"].update(numpy_value=np.int64(7), not_a_number=float("nan"))
    out = recording.save(rec, tmp_path / "rec")
    back = recording.load(out)
    assert back.path == out and back.is_recorded and back.complete
    pd.testing.assert_frame_equal(back.samples, rec.samples, check_dtype=False)
    pd.testing.assert_frame_equal(back.events, rec.events, check_dtype=False)
    pd.testing.assert_frame_equal(back.buddyinfo, rec.buddyinfo, check_dtype=False)
    assert back.meta["parameters"]["numpy_value"] == 7 and back.meta["parameters"]["not_a_number"] is None
    # Plain files that pandas alone reads; meta.json is strict JSON (no NaN tokens).
    assert sorted(p.name for p in out.iterdir()) == ["buddyinfo.csv", "events.csv", "manifest.json", "meta.json",
                                                     "samples.csv"]
    json.loads((out / "meta.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert pd.read_csv(out / "samples.csv")["anon_kib"].iloc[-1] == 13168 + 4_000_000


def test_large_values_in_gappy_columns_keep_full_precision(tmp_path):
    rec = make_recording()
    rec.samples["mem_free_kib"] = [24449361.0, np.nan, 24449362.0, 123456789012.0, np.nan]
    back = recording.load(recording.save(rec, tmp_path / "rec"))
    assert back.samples["mem_free_kib"].iloc[0] == 24449361
    assert back.samples["mem_free_kib"].iloc[3] == 123456789012


def test_empty_existing_folder_is_used(tmp_path):
    (tmp_path / "rec").mkdir()
    recording.save(make_recording(), tmp_path / "rec")
    assert recording.load(tmp_path / "rec").complete


# --- refusing a bad destination ---------------------------------------------------------------

def test_existing_non_empty_out_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for call in (recording.save, lambda _rec, o: recording.check_out(o)):
        with pytest.raises(RecordingError, match="already exists"):
            call(make_recording(), out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordingError, match="already exists"):
        recording.save(make_recording(), tmp_path / "file")


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_unwritable_out_is_a_recording_error(tmp_path, where):
    if where == "under-a-file":
        (tmp_path / "plain").write_text("x")
        out = tmp_path / "plain" / "rec"
    else:
        out = Path("/proc/reclaimlab-test/rec")
    with pytest.raises(RecordingError, match=str(out)):
        recording.check_out(out)
    with pytest.raises(RecordingError, match=str(out)):
        recording.save(make_recording(), out)
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only-mode folders")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RecordingError, match="cannot write"):
            recording.check_out(ro / "rec")
    finally:
        ro.chmod(0o700)


def test_check_out_creates_nothing(tmp_path):
    out = tmp_path / "a" / "b" / "rec"
    assert recording.check_out(out) == out
    assert list(tmp_path.iterdir()) == []


# --- atomic save ------------------------------------------------------------------------------

def test_a_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    real = recording._write

    def failing(path: Path, text: str) -> None:
        if path.name == "samples.csv":
            real(path, text[: len(text) // 2])
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(recording, "_write", failing)
    with pytest.raises(RecordingError, match="nothing was saved"):
        recording.save(make_recording(), tmp_path / "rec")
    assert not (tmp_path / "rec").exists() and leftovers(tmp_path) == []


def test_ctrl_c_mid_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(path: Path, text: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(recording, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        recording.save(make_recording(), tmp_path / "rec")
    assert not (tmp_path / "rec").exists() and leftovers(tmp_path) == []


HANGING_WRITER = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from reclaimlab.recording import recording
from test_recording import make_recording
real = recording._write
def write_then_hang(path, text):
    real(path, text)
    Path(sys.argv[2]).write_text(path.name)   # tell the test: one file is on disk, more to come
    time.sleep(60)
recording._write = write_then_hang
recording.save(make_recording(), sys.argv[1])
"""

HUGE_WRITER = r"""
import sys
sys.path.insert(0, sys.argv[2])
import pandas as pd
from reclaimlab.recording import recording
from test_recording import make_recording
rec = make_recording()
n = 3_000_000
rec.samples = pd.DataFrame({"t_s": [i / 1000 for i in range(n)], "anon_kib": range(n), "free_kib": range(n)})
recording.save(rec, sys.argv[1])
"""


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(LIB), str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


def test_writer_killed_midway_leaves_no_recording_under_the_final_name(tmp_path):
    out, ready = tmp_path / "rec", tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", HANGING_WRITER, str(out), str(ready), str(LIB)],
                             env=_child_env())
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), "the writer never started writing"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert not out.exists()
    # What was written sits only in the hidden .partial folder, never under the final name.
    partial = leftovers(tmp_path)
    assert len(partial) == 1 and (tmp_path / partial[0] / "meta.json").exists()
    with pytest.raises(RecordingError, match="no such recording"):
        recording.load(out)


def test_huge_writer_killed_during_save_leaves_no_recording(tmp_path):
    out = tmp_path / "rec"
    child = subprocess.Popen([sys.executable, "-c", HUGE_WRITER, str(out), str(LIB)], env=_child_env())
    try:
        deadline = time.monotonic() + 60
        while not leftovers(tmp_path) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if child.poll() is not None:
            pytest.skip("the writer finished before it could be killed (a very fast disk)")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert not out.exists()
    with pytest.raises(RecordingError):
        recording.load(out)


# --- loading: each problem names its file ---------------------------------------------------------

def test_corrupt_meta_json(unverified):
    (unverified / "meta.json").write_text('{"experiment": "demo", ')
    with pytest.raises(RecordingError, match=r"meta\.json: not valid JSON"):
        recording.load(unverified, require_manifest=False)


def test_meta_json_that_is_not_an_object(unverified):
    (unverified / "meta.json").write_text("[1, 2]")
    with pytest.raises(RecordingError, match=r"meta\.json: must hold a JSON object"):
        recording.load(unverified, require_manifest=False)


def test_meta_missing_keys_and_wrong_schema(unverified):
    meta = json.loads((unverified / "meta.json").read_text())
    del meta["kernel_release"]
    (unverified / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match=r"meta\.json: missing keys kernel_release"):
        recording.load(unverified, require_manifest=False)
    meta["kernel_release"], meta["schema_version"] = "x", 99
    (unverified / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match=r"meta\.json: schema_version 99"):
        recording.load(unverified, require_manifest=False)


def test_missing_meta_json(unverified):
    (unverified / "meta.json").unlink()
    with pytest.raises(RecordingError, match=r"meta\.json: missing"):
        recording.load(unverified, require_manifest=False)


def test_corrupt_samples_csv(unverified):
    (unverified / "samples.csv").write_bytes(b"t_s,anon_kib\n0.0,1\n\xff\xfe\x00garbage,,,,\n1,2,3,4,5\n")
    with pytest.raises(RecordingError, match=r"samples\.csv: not a readable CSV"):
        recording.load(unverified, require_manifest=False)


def test_samples_csv_missing_t_s(unverified):
    df = pd.read_csv(unverified / "samples.csv").drop(columns=["t_s"])
    df.to_csv(unverified / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: missing column\(s\) t_s"):
        recording.load(unverified, require_manifest=False)


def test_events_csv_missing_kind(unverified):
    pd.DataFrame({"t_s": [0.1], "detail": [""]}).to_csv(unverified / "events.csv", index=False)
    with pytest.raises(RecordingError, match=r"events\.csv: missing column\(s\) kind"):
        recording.load(unverified, require_manifest=False)


def test_missing_samples_csv(unverified):
    (unverified / "samples.csv").unlink()
    with pytest.raises(RecordingError, match=r"samples\.csv: missing"):
        recording.load(unverified, require_manifest=False)


def test_backwards_time(unverified):
    df = pd.read_csv(unverified / "samples.csv")
    df.loc[3, "t_s"] = 0.05
    df.to_csv(unverified / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: t_s goes backwards"):
        recording.load(unverified, require_manifest=False)


def test_empty_time_cell(unverified):
    df = pd.read_csv(unverified / "samples.csv")
    df.loc[2, "t_s"] = np.nan
    df.to_csv(unverified / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: t_s has empty cells"):
        recording.load(unverified, require_manifest=False)


def test_non_numeric_sample_values(unverified):
    df = pd.read_csv(unverified / "samples.csv")
    df["anon_kib"] = df["anon_kib"].astype(object)
    df.loc[1, "anon_kib"] = "lots"
    df.to_csv(unverified / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: non-numeric values in column\(s\) anon_kib"):
        recording.load(unverified, require_manifest=False)


def test_no_samples(unverified):
    (unverified / "samples.csv").write_text("t_s,anon_kib\n")
    with pytest.raises(RecordingError, match=r"samples\.csv: has no samples"):
        recording.load(unverified, require_manifest=False)


def test_partial_recording_is_refused_unless_asked_for(tmp_path):
    out = recording.save(make_recording(complete=False, interrupted="KeyboardInterrupt (Ctrl-C)"), tmp_path / "p")
    with pytest.raises(RecordingError, match=r"meta\.json: marked partial .*Ctrl-C"):
        recording.load(out)
    rec = recording.load(out, allow_partial=True)
    assert not rec.complete and len(rec.samples) == 5


def test_not_a_folder(tmp_path):
    with pytest.raises(RecordingError, match="no such recording folder"):
        recording.load(tmp_path / "nothing")


def test_save_removes_partials_of_killed_writers_but_not_of_live_ones(tmp_path):
    dead = tmp_path / ".rec.999999999.abc.partial"   # no such pid: its writer was killed mid-save
    alive = tmp_path / f".rec.{os.getpid()}.def.partial"  # a writer still running
    for d in (dead, alive):
        d.mkdir()
        (d / "samples.csv").write_text("t_s\n0\n")
    recording.save(make_recording(), tmp_path / "rec")
    assert not dead.exists()
    assert alive.exists()
    assert recording.load(tmp_path / "rec").complete


# --- the manifest: a recording cut short, edited, missing a file or given one loads never -------------

def test_save_writes_a_manifest_that_load_checks(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    assert set(manifest["files"]) == {"meta.json", "samples.csv", "events.csv", "buddyinfo.csv"}
    assert manifest["files"]["samples.csv"]["rows"] == 5 and manifest["files"]["events.csv"]["rows"] == 2
    assert manifest["files"]["meta.json"]["rows"] is None
    assert recording.verify(saved) is True
    recording.load(saved, require_manifest=True)  # no warning, no error


def test_samples_cut_in_half_is_refused_naming_the_file(tmp_path):
    # The case: half of samples.csv loaded silently, its last value a cut-off number.
    out = recording.save(make_recording(n=40), tmp_path / "rec")
    data = (out / "samples.csv").read_bytes()
    (out / "samples.csv").write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=r"rec/samples\.csv: cut short \(truncated\): \d+ bytes, \d+ rows, "
                                             r"but manifest\.json says \d+ bytes, 40 rows") as info:
        recording.load(out)
    assert "git checkout" in str(info.value) and "record it again" in str(info.value)


def test_samples_cut_at_a_line_boundary_is_refused(saved):
    lines = (saved / "samples.csv").read_text().splitlines(keepends=True)
    (saved / "samples.csv").write_text("".join(lines[:-2]))
    with pytest.raises(RecordingError, match=r"samples\.csv: cut short .* 3 rows, .* 5 rows"):
        recording.load(saved)


def test_one_edited_value_is_refused(saved):
    text = (saved / "samples.csv").read_text()
    (saved / "samples.csv").write_text(text.replace("1013168", "1013169", 1))
    with pytest.raises(RecordingError, match=r"samples\.csv: changed since it was saved \(edited\)"):
        recording.load(saved)


def test_edited_meta_is_refused(saved):
    meta = json.loads((saved / "meta.json").read_text())
    meta["hypervisor"] = "Hyper-V (WSL 2)"  # dressing a recording up as WSL
    (saved / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    with pytest.raises(RecordingError, match=r"meta\.json: changed since it was saved"):
        recording.load(saved)


def test_dropped_file_is_refused(saved):
    (saved / "buddyinfo.csv").unlink()
    with pytest.raises(RecordingError, match=r"buddyinfo\.csv: missing, but manifest\.json lists it"):
        recording.load(saved)


def test_added_recording_file_is_refused_but_other_files_are_ignored(tmp_path):
    rec = make_recording()
    rec.buddyinfo = rec.buddyinfo.iloc[0:0]
    out = recording.save(rec, tmp_path / "rec")
    (out / "notes.txt").write_text("load() never reads this\n")
    recording.load(out)
    (out / "buddyinfo.csv").write_text("t_s,label,zone,order,free_blocks\n0,before,Normal,0,1\n")
    with pytest.raises(RecordingError, match=r"buddyinfo\.csv: not in manifest\.json, so it was added after"):
        recording.load(out)


def test_corrupt_manifest_is_refused(saved):
    (saved / "manifest.json").write_text('{"files": ')
    with pytest.raises(RecordingError, match=r"manifest\.json: not valid JSON"):
        recording.load(saved)
    (saved / "manifest.json").write_text('{"files": {"samples.csv": {}}}')
    with pytest.raises(RecordingError, match=r"manifest\.json: not a reclaimlab manifest"):
        recording.load(saved)


def test_no_manifest_loads_only_when_asked_and_labelled_unverified(unverified):
    with pytest.raises(RecordingError, match=r"manifest\.json: missing, so nothing vouches"):
        recording.load(unverified)  # the default: a folder without a manifest is refused
    with pytest.warns(recording.RecordingWarning, match=r"no manifest\.json.*`python -m reclaimlab\.recording\.recording "
                                                         r"--write-manifest .*rec`"):
        rec = recording.load(unverified, require_manifest=False)
    assert len(rec.samples) == 5
    assert rec.unverified and "UNVERIFIED: no manifest.json" in rec.describe_source()
    assert recording.load(recording.save(make_recording(), unverified.parent / "whole")).unverified == ""


def test_no_manifest_still_catches_a_cut_mid_line(unverified):
    data = (unverified / "samples.csv").read_bytes()
    (unverified / "samples.csv").write_bytes(data[:-4])  # "...1918976\n" becomes "...191"
    with pytest.raises(RecordingError, match=r"samples\.csv: its last line is cut off"):
        recording.load(unverified, require_manifest=False)


def test_write_manifest_command_adds_leaves_and_refuses(unverified, capsys):
    before = {p.name: p.read_bytes() for p in unverified.iterdir()}
    assert recording.main(["--write-manifest", str(unverified)]) == 0
    assert "wrote manifest.json" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in unverified.iterdir() if p.name != "manifest.json"} == before
    recording.load(unverified, require_manifest=True)
    assert recording.main(["--write-manifest", str(unverified)]) == 0
    assert "already matches; unchanged" in capsys.readouterr().out
    assert recording.main(["--check", str(unverified)]) == 0
    text = (unverified / "events.csv").read_text()
    (unverified / "events.csv").write_text(text.replace("1 GiB", "2 GiB"))
    assert recording.main(["--write-manifest", str(unverified)]) == 1  # never vouches for a changed folder
    assert "events.csv: changed since it was saved" in capsys.readouterr().err
    assert recording.main(["--write-manifest", "--force", str(unverified)]) == 0
    recording.load(unverified, require_manifest=True)


def test_write_manifest_refuses_a_folder_that_does_not_load(unverified, capsys):
    data = (unverified / "samples.csv").read_bytes()
    (unverified / "samples.csv").write_bytes(data[:-3])
    assert recording.main(["--write-manifest", str(unverified)]) == 1
    assert "last line is cut off" in capsys.readouterr().err
    assert not (unverified / "manifest.json").exists()


def test_module_runs_as_a_command(unverified):
    done = subprocess.run([sys.executable, "-m", "reclaimlab.recording.recording", "--write-manifest", str(unverified)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(LIB)})
    assert done.returncode == 0, done.stderr
    assert (unverified / "manifest.json").exists() and "RuntimeWarning" not in done.stderr


def test_per_cpu_figures_by_snapshot_label_save_and_load(tmp_path):
    from reclaimlab.recording import datasets
    rec = datasets.find("calloc-reclaim")
    rec.meta["results"]["per_cpu_free_kib"] = {"observed": 1016732, "start": 3764}
    back = recording.load(recording.save(rec, tmp_path / "rec"))
    assert back.meta["results"]["per_cpu_free_kib"] == {"observed": 1016732, "start": 3764}
    rec.meta["results"]["per_cpu_free_kib"] = {"observed": "lots"}
    with pytest.raises(recording.RecordingError, match="per_cpu_free_kib"):
        recording.save(rec, tmp_path / "bad")
