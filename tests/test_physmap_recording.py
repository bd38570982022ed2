"""Maps of physical memory in a Recording: saved as physmap.json under the manifest, loaded and checked like
every other file (bounded, valid codec, a block count that fits the guest), absent from older recordings."""
from __future__ import annotations

import json
import os
import zlib
import base64

import numpy as np
import pandas as pd
import pytest

from reclaimlab.probe import physmap
from reclaimlab.recording import physmap as codec
from reclaimlab.recording import recording
from reclaimlab.recording.recording import Recording, RecordingError
from reclaimlab.sampling.sampler import Sampler, max_gap_during

from test_physmap import fake_proc, guest_words, snapshot

pytestmark = pytest.mark.usefixtures("demo_experiment")  # its recordings are of the tests' own experiment

def make_recording(maps: int = 2) -> Recording:
    n = 20
    samples = pd.DataFrame({"t_s": [i / 10 for i in range(n)], "mem_total_kib": [16000] * n,
                            "mem_free_kib": [9000] * n})
    events = pd.DataFrame({"t_s": [0.5], "kind": ["touch"], "detail": [""]})
    meta = {"schema_version": recording.SCHEMA_VERSION, "experiment": "demo", "parameters": {}, "mode": "live",
            "complete": True, "kernel_release": "6.18.44", "guest_kind": "vm", "sample_hz": 10.0,
            "tool_version": "0.1.0", "date_utc": "2026-12-06T07:00:00Z"}
    steps = [codec.MapStep(label, 0.3 + i, 0.6, snapshot(), 40 if i else None)
             for i, label in enumerate(["before", "touched", "freed"][:maps])]
    return Recording(samples=samples, events=events, meta=meta, physmaps=steps)


def forge(folder, doc) -> None:
    """Write physmap.json and a manifest that vouches for it: what a hostile recording looks like."""
    (folder / codec.STEPS_FILE).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    (folder / recording.MANIFEST_NAME).write_text(recording._manifest_text(folder))


def test_maps_round_trip_under_the_manifest(tmp_path):
    out = recording.save(make_recording(), tmp_path / "rec")
    assert json.loads((out / recording.MANIFEST_NAME).read_text())["files"].keys() >= {codec.STEPS_FILE}
    back = recording.load(out)
    assert [(m.label, m.t_s, m.ours_pages) for m in back.physmaps] == [("before", 0.3, None), ("touched", 1.3, 40)]
    first = back.physmaps[0].snapshot
    assert np.array_equal(first.counts, snapshot().counts) and first.free_reported_kib == snapshot().free_reported_kib


def test_a_recording_without_maps_writes_no_file_and_loads(tmp_path):
    out = recording.save(make_recording(maps=0), tmp_path / "rec")
    assert not (out / codec.STEPS_FILE).exists()
    assert recording.load(out).physmaps == []


def test_a_map_file_added_after_the_save_is_refused(tmp_path):
    out = recording.save(make_recording(maps=0), tmp_path / "rec")
    (out / codec.STEPS_FILE).write_text(codec.encode_steps(make_recording().physmaps))
    with pytest.raises(RecordingError, match="physmap.json: not in manifest.json"):
        recording.load(out)


def saved_doc(tmp_path):
    out = recording.save(make_recording(), tmp_path / "rec")
    return out, json.loads((out / codec.STEPS_FILE).read_text())


def test_a_corrupt_map_is_one_clear_error_naming_the_map(tmp_path):
    out, doc = saved_doc(tmp_path)
    doc["maps"][1]["map"]["counts_by_class"]["zlib_base64"] = base64.b64encode(b"not zlib").decode()
    forge(out, doc)
    with pytest.raises(RecordingError, match=r"physmap.json: map 1 \('touched'\): counts_by_class is not zlib data"):
        recording.load(out)


def test_a_map_whose_blocks_do_not_add_up_is_refused(tmp_path):
    out, doc = saved_doc(tmp_path)
    counts = snapshot().counts.T.copy()
    counts[0, 0] += 1
    doc["maps"][0]["map"]["counts_by_class"]["zlib_base64"] = base64.b64encode(zlib.compress(counts.tobytes())).decode()
    forge(out, doc)
    with pytest.raises(RecordingError, match="block 0 holds 513 pages"):
        recording.load(out)


def test_a_block_count_that_does_not_fit_the_guest_is_refused_before_decoding(tmp_path):
    out, doc = saved_doc(tmp_path)
    doc["maps"][0]["map"]["pfn_end"] = 1 << 30  # 4 TiB of addresses for a guest whose MemTotal is 16 MB
    forge(out, doc)
    with pytest.raises(RecordingError, match="MemTotal is 16,000 KiB.*not this guest's map"):
        recording.load(out)


def test_a_map_outside_the_samples_time_is_refused(tmp_path):
    out, doc = saved_doc(tmp_path)
    doc["maps"][0]["t_s"] = 99.0
    forge(out, doc)
    with pytest.raises(RecordingError, match="outside the samples' time span"):
        recording.load(out)


@pytest.mark.parametrize("bad, match", [
    ({"format": "something else"}, "not the maps of a recording"),
    ({"format": codec.STEPS_FORMAT, "version": 2, "maps": []}, "version 2"),
    ({"format": codec.STEPS_FORMAT, "version": 1, "maps": [{}] * (codec.MAX_STEPS + 1)}, "1 to 64 maps"),
    ({"format": codec.STEPS_FORMAT, "version": 1, "maps": [{"label": "x" * 65}]}, "label must be"),
    ({"format": codec.STEPS_FORMAT, "version": 1, "maps": [{"label": "a", "t_s": 0.5, "read_s": -1}]}, "read_s"),
    ("[" * 100_000, "nested too deep|not valid JSON"),
])
def test_hostile_map_files_are_clear_errors(tmp_path, bad, match):
    out = recording.save(make_recording(), tmp_path / "rec")
    forge(out, bad)
    with pytest.raises(RecordingError, match=match):
        recording.load(out)


def test_a_map_file_above_its_bound_is_not_read(tmp_path, monkeypatch):
    out = recording.save(make_recording(), tmp_path / "rec")
    monkeypatch.setattr(codec, "MAX_STEPS_FILE_BYTES", 1000)
    with pytest.raises(RecordingError, match="physmap.json: .*more than"):
        recording.load(out)


# --- the sampler takes them -------------------------------------------------------------------

def test_the_sampler_takes_a_map_beside_each_buddyinfo_snapshot(tmp_path):
    roots = fake_proc(tmp_path, guest_words())
    s = Sampler(hz=20, roots=roots, cgroup=False, physmap=True).start()
    s.snapshot_buddyinfo("before")
    s.snapshot_physmap("alone")
    rec = s.stop()
    assert [m.label for m in rec.physmaps] == ["before", "alone"]
    assert rec.physmaps[0].snapshot.pfn_end == 4096 and "physmap_unavailable" not in rec.meta
    cost = rec.meta["sampler_cost"]
    assert cost["physmap_snapshots"] == 2 and cost["physmap_max_gap_s"] > 0


def test_without_page_flags_the_sampler_records_no_map_and_says_why(tmp_path):
    roots = fake_proc(tmp_path, guest_words())
    os.unlink(roots.proc / "kpageflags")
    s = Sampler(hz=20, roots=roots, cgroup=False, physmap=True).start()
    assert s.snapshot_buddyinfo("before") is not None and s.snapshot_physmap("again") is None
    rec = s.stop()
    assert rec.physmaps == [] and "kpageflags: not found" in rec.meta["physmap_unavailable"]
    saved = recording.load(recording.save(rec, tmp_path / "rec"))
    assert saved.physmaps == [] and "kpageflags" in saved.meta["physmap_unavailable"]


def test_max_gap_during_takes_the_gaps_that_overlap_a_span():
    t = pd.Series([0.0, 0.1, 0.2, 0.9, 1.0, 1.1])
    assert max_gap_during(t, [(0.25, 0.8)]) == 0.7
    assert max_gap_during(t, [(1.0, 1.05)]) == 0.1
    assert max_gap_during(t, []) is None


# --- the shipped recordings carry them; the labs show them --------------------------------------

@pytest.mark.parametrize("experiment, labels", [
    ("calloc-reclaim", ["before", "touched", "freed", "observed"]),
    ("compaction", ["before", "fragmented", "compacted", "released", "observed"]),
])
def test_the_shipped_local_runs_carry_a_map_per_step_each_below_100_kb(experiment, labels):
    from reclaimlab.recording import datasets
    rec = datasets.find(experiment)
    assert [m.label for m in rec.physmaps] == labels
    text = (rec.path / codec.STEPS_FILE).read_text()
    assert len(text) / len(labels) < 100_000
    ours = [m for m in rec.physmaps if m.ours_pages]
    assert ours and all(m.snapshot.has_ours.any() for m in ours)  # the workload's pages located while it ran
    assert rec.meta["sampler_cost"]["physmap_max_gap_s"] <= 2.5 / rec.meta["sample_hz"]  # the sampler kept pace


def test_the_alt_text_says_what_changed_from_step_to_step():
    from reclaimlab.present import physmap_chart
    before = snapshot()
    counts = before.counts.copy()
    counts[2:4, physmap.FrameClass.FREE] = counts[2:4, physmap.FrameClass.FREE_REPORTED]  # 4 MiB no longer reported
    counts[2:4, physmap.FrameClass.FREE_REPORTED] = 0
    after = physmap.Snapshot(counts, before.free_order, before.free_blocks, 4096, 9, before.pfn_end, before.time_utc,
                             before.kernel_release)
    steps = [codec.MapStep("a", 0.0, 0.5, before), codec.MapStep("b", 1.0, 0.5, after)]
    text = physmap_chart.steps_alt_text(steps, {"a": "first", "b": "second"})
    assert "8 blocks of 2.00 MiB" in text
    assert "From first to second: free and reported 4.00 MiB to 0 B; free not reported 1.00 MiB to 5.00 MiB." in text


def test_the_lab_shows_the_maps_as_an_offline_image_with_that_alt_text(tmp_path):
    from reclaimlab.notebook import lab
    rec = recording.load(recording.save(make_recording(), tmp_path / "rec"))
    html = lab.physical_memory_html(rec, {"before": "before", "touched": "touched"})
    assert html.count("<img") == 1 and 'src="data:image/png;base64,' in html and "From before to touched" in html


def test_the_lab_says_why_where_a_recording_has_no_maps(tmp_path):
    from reclaimlab.notebook import lab
    old = recording.load(recording.save(make_recording(maps=0), tmp_path / "old"))
    html = lab.physical_memory_html(old, {"before": "before"})
    assert "<img" not in html and "made before reclaimlab recorded maps" in html
    rec = make_recording(maps=0)
    rec.meta["physmap_unavailable"] = "/proc/kpageflags: permission denied: mapping physical memory needs root"
    rec.path = tmp_path  # shown as recorded: no live fallback
    html = lab.physical_memory_html(rec, {"before": "before"})
    assert "<img" not in html and "needs root" in html


def test_a_live_run_without_maps_shows_the_shipped_runs_and_says_so():
    from reclaimlab.notebook import lab
    rec = make_recording(maps=0)
    rec.meta.update(experiment="calloc-reclaim", physmap_unavailable="/proc/kpageflags: permission denied")
    html = lab.physical_memory_html(rec, {"before": "before", "freed": "freed"})
    assert "permission denied" in html and "Shown instead: the shipped calloc-reclaim recording of 2026-12-06" in html
    assert html.count("<img") == 1


@pytest.mark.live
def test_a_live_calloc_run_maps_the_buffer_touched_and_freed_without_stalling_the_sampler(live_calloc_512mib):
    size_kib = 512 * 1024
    rec = live_calloc_512mib  # run("calloc-reclaim", mode="live", size="512MiB", hold_s=1.0, observe_s=15)
    if os.geteuid() != 0:
        assert rec.physmaps == [] and "kpageflags" in rec.meta["physmap_unavailable"]
        return
    maps = {m.label: m for m in rec.physmaps}
    assert list(maps) == ["before", "touched", "freed", "observed"]
    ours = {label: m.snapshot.class_kib()[physmap.FrameClass.OURS] for label, m in maps.items()}
    assert ours["touched"] >= 0.9 * size_kib and ours["freed"] < 0.1 * size_kib and ours["observed"] == 0
    assert all(len(codec.encode(m.snapshot)) <= 100_000 for m in rec.physmaps)
    period_s = 1 / rec.meta["sample_hz"]
    assert rec.meta["sampler_cost"]["physmap_max_gap_s"] <= 2.5 * period_s  # the goal: 2 periods
