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

from reclaimlab import recording
from reclaimlab.recording import Recording, RecordingError

LIB = Path(__file__).resolve().parent.parent / "lib"


def make_meta(**over) -> dict:
    meta = {"schema_version": recording.SCHEMA_VERSION, "experiment": "demo", "parameters": {"size": "1GiB"},
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


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.endswith(".partial"))


# --- round trip -------------------------------------------------------------------------------

def test_round_trip_keeps_every_value(tmp_path):
    rec = make_recording()
    rec.meta["numpy_value"] = np.int64(7)
    rec.meta["not_a_number"] = float("nan")
    out = recording.save(rec, tmp_path / "rec")
    back = recording.load(out)
    assert back.path == out and back.is_recorded and back.complete
    pd.testing.assert_frame_equal(back.samples, rec.samples, check_dtype=False)
    pd.testing.assert_frame_equal(back.events, rec.events, check_dtype=False)
    pd.testing.assert_frame_equal(back.buddyinfo, rec.buddyinfo, check_dtype=False)
    assert back.meta["numpy_value"] == 7 and back.meta["not_a_number"] is None
    # Plain files that pandas alone reads; meta.json is strict JSON (no NaN tokens).
    assert sorted(p.name for p in out.iterdir()) == ["buddyinfo.csv", "events.csv", "meta.json", "samples.csv"]
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
from reclaimlab import recording
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
from reclaimlab import recording
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

def test_corrupt_meta_json(saved):
    (saved / "meta.json").write_text('{"experiment": "demo", ')
    with pytest.raises(RecordingError, match=r"meta\.json: not valid JSON"):
        recording.load(saved)


def test_meta_json_that_is_not_an_object(saved):
    (saved / "meta.json").write_text("[1, 2]")
    with pytest.raises(RecordingError, match=r"meta\.json: must hold a JSON object"):
        recording.load(saved)


def test_meta_missing_keys_and_wrong_schema(saved):
    meta = json.loads((saved / "meta.json").read_text())
    del meta["kernel_release"]
    (saved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match=r"meta\.json: missing keys kernel_release"):
        recording.load(saved)
    meta["kernel_release"], meta["schema_version"] = "x", 99
    (saved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match=r"meta\.json: schema_version 99"):
        recording.load(saved)


def test_missing_meta_json(saved):
    (saved / "meta.json").unlink()
    with pytest.raises(RecordingError, match=r"meta\.json: missing"):
        recording.load(saved)


def test_corrupt_samples_csv(saved):
    (saved / "samples.csv").write_bytes(b"t_s,anon_kib\n0.0,1\n\xff\xfe\x00garbage,,,,\n1,2,3,4,5\n")
    with pytest.raises(RecordingError, match=r"samples\.csv: not a readable CSV"):
        recording.load(saved)


def test_samples_csv_missing_t_s(saved):
    df = pd.read_csv(saved / "samples.csv").drop(columns=["t_s"])
    df.to_csv(saved / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: missing column\(s\) t_s"):
        recording.load(saved)


def test_events_csv_missing_kind(saved):
    pd.DataFrame({"t_s": [0.1], "detail": [""]}).to_csv(saved / "events.csv", index=False)
    with pytest.raises(RecordingError, match=r"events\.csv: missing column\(s\) kind"):
        recording.load(saved)


def test_missing_samples_csv(saved):
    (saved / "samples.csv").unlink()
    with pytest.raises(RecordingError, match=r"samples\.csv: missing"):
        recording.load(saved)


def test_backwards_time(saved):
    df = pd.read_csv(saved / "samples.csv")
    df.loc[3, "t_s"] = 0.05
    df.to_csv(saved / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: t_s goes backwards"):
        recording.load(saved)


def test_empty_time_cell(saved):
    df = pd.read_csv(saved / "samples.csv")
    df.loc[2, "t_s"] = np.nan
    df.to_csv(saved / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: t_s has empty cells"):
        recording.load(saved)


def test_non_numeric_sample_values(saved):
    df = pd.read_csv(saved / "samples.csv")
    df["anon_kib"] = df["anon_kib"].astype(object)
    df.loc[1, "anon_kib"] = "lots"
    df.to_csv(saved / "samples.csv", index=False)
    with pytest.raises(RecordingError, match=r"samples\.csv: non-numeric values in column\(s\) anon_kib"):
        recording.load(saved)


def test_no_samples(saved):
    (saved / "samples.csv").write_text("t_s,anon_kib\n")
    with pytest.raises(RecordingError, match=r"samples\.csv: has no samples"):
        recording.load(saved)


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
