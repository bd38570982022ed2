"""The shipped recordings: present for every experiment, valid, honest, and showing what the labs claim."""
from __future__ import annotations

import json

import pytest

from reclaimlab.present import analysis
from reclaimlab.recording import datasets, recording
from reclaimlab.experiments import harness as experiments
from reclaimlab.paths import recordings_dir

ROOT = recordings_dir()
ENTRIES = datasets.read_index(ROOT)
LOCAL = [e for e in ENTRIES if e["guest_kind"] != datasets.VM_GUEST_KIND]


def _load(entry) -> recording.Recording:
    return recording.load(ROOT / entry["path"])


def test_index_is_exactly_what_the_folders_hold(tmp_path):
    rebuilt = datasets._entries(ROOT)
    assert json.loads((ROOT / datasets.INDEX_NAME).read_text())["recordings"] == rebuilt


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["path"] for e in ENTRIES])
def test_every_shipped_recording_has_a_matching_manifest(entry):
    # A recording added without one fails here: `python -m reclaimlab.recording.recording --write-manifest DIR` adds it.
    assert recording.verify(ROOT / entry["path"]), f"{entry['path']}: no manifest.json"


def test_a_shipped_recording_without_its_manifest_is_refused(tmp_path):
    import shutil
    entry = LOCAL[0]
    copy = tmp_path / "recordings"
    shutil.copytree(ROOT, copy)
    (copy / entry["path"] / recording.MANIFEST_NAME).unlink()
    with pytest.raises(recording.RecordingError, match=r"manifest\.json: missing.*--write-manifest"):
        datasets.find(entry["experiment"], entry["parameters"], root=copy)


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_has_a_complete_local_recording(name):
    rec = datasets.find(name)
    assert rec.complete and len(rec.samples) > 10


@pytest.mark.parametrize("policy", ["gradual", "dropCache"])
def test_both_auto_reclaim_policies_are_recorded(policy):
    rec = datasets.find("auto-reclaim", {"policy": policy})
    assert rec.meta["parameters"]["policy"] == policy


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["path"])
def test_recording_is_small_valid_and_says_where_it_was_made(entry):
    folder = ROOT / entry["path"]
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 2_000_000
    rec = _load(entry)
    meta = rec.meta
    for key in ("kernel_release", "guest_kind", "hypervisor", "date_utc", "tool_version", "sample_hz"):
        assert meta.get(key), f"{folder}: meta lacks {key}"
    # Never dressed up as WSL: only a WSL kernel may claim to be WSL.
    assert (meta["guest_kind"] == "wsl2") == ("microsoft" in meta["kernel_release"].lower())
    assert not {"user", "hostname", "host_name", "username"} & set(meta)


def test_calloc_reclaim_recording_shows_the_story():
    rec = datasets.find("calloc-reclaim")
    size_kib = rec.meta["results"]["size_bytes"] / 1024
    t_calloc, t_touch, t_free, t_end = (analysis.when(rec, k) for k in ("calloc", "touch", "free", "end"))
    # calloc alone: the allocator's own RssAnon barely moves, nor (in the moment after) does the guest's.
    assert analysis.change(rec, "workload_rss_anon_kib", t_calloc - 0.05, t_touch - 0.05) < 0.05 * size_kib
    assert analysis.change(rec, "anon_kib", t_calloc - 0.05, t_calloc + 0.3) < 0.05 * size_kib
    assert analysis.peak_change(rec, "workload_rss_anon_kib", t_touch - 0.05, t_free) >= 0.9 * size_kib
    assert analysis.peak_change(rec, "anon_kib", t_touch - 0.05, t_free) >= 0.9 * size_kib
    assert analysis.change(rec, "host_reported_kib", t_free, t_end) >= 0.5 * size_kib


def test_refault_recording_touched_cold_after_the_host_took_the_pages():
    rec = datasets.find("refault")
    r = rec.meta["results"]
    # Reporting can stall on fragmentation (42-65 % on a long-used guest, measured on the kit's dev guest, 2026-11), but a large share must be back...
    assert r["reported_before_cold_kib"] >= 0.3 * r["size_bytes"] / 1024
    # ...and touching it again must cost clearly more than the hot touch did.
    assert r["cold_touch_gb_per_s"] < 0.5 * r["hot_touch_gb_per_s"]


def test_page_cache_recording_drops_cache_and_slab():
    from reclaimlab.present.findings import page_cache
    rec = datasets.find("page-cache")
    # Our file's own pages (not the guest's Cached, which holds every program's files) were dropped...
    assert page_cache.dropped(rec, 1)[0].verdict == "nearly_all"
    assert page_cache.dropped(rec, 3)[0].verdict == "nearly_all"
    # ...and level 2 freed most of the reclaimable slab.
    assert page_cache.slab_at_level_2(rec).verdict in ("nearly_all", "most")


def test_compaction_recording_restores_reportable_blocks():
    rec = datasets.find("compaction")
    order = rec.meta["page_reporting_order"]
    assert analysis.blocks_at_least(rec, "fragmented", order) < analysis.blocks_at_least(rec, "before", order)
    assert analysis.blocks_at_least(rec, "compacted", order) > analysis.blocks_at_least(rec, "fragmented", order)


def test_the_index_says_how_long_each_recording_ran():
    from reclaimlab.recording import datasets, recording
    from reclaimlab.paths import recordings_dir
    for entry in datasets.read_index():
        rec = recording.load(recordings_dir() / entry["path"])
        assert entry["duration_s"] == pytest.approx(float(rec.samples["t_s"].iloc[-1]), abs=1e-3)


@pytest.mark.parametrize("how", ["recorded", "replayed"])
def test_showing_a_recording_leaves_its_meta_as_the_run_wrote_it(how):
    """Why a recording is shown is the Recording's own fact (why_shown); meta is never patched afterwards."""
    entry = next(e for e in datasets.read_index(recordings_dir()) if e["experiment"] == "refault"
                 and e.get("guest_kind") != datasets.VM_GUEST_KIND and e.get("complete"))
    folder = recordings_dir() / entry["path"]
    on_disk = json.loads((folder / "meta.json").read_text())
    if how == "recorded":
        rec = experiments.run("refault", mode="recorded", quiet=True)
        assert rec.why_shown == "recorded mode was asked for"
    else:
        rec = experiments.run("refault", mode="recorded", recording=folder, quiet=True)
        assert rec.why_shown == f"replaying a recording you chose ({folder.name})"
    assert rec.path == folder
    assert rec.meta == recording.schema.upgrade(on_disk)
    assert rec.meta["mode_reason"] == on_disk["mode_reason"]  # why the run was live, as recorded


def test_a_live_recording_is_shown_for_the_reason_its_run_gave():
    from reclaimlab.recording.recorder import Recorder
    made = Recorder("watch", {}, "live", 10.0, {"guest_kind": "vm", "kernel_release": "6.1"})
    made.rows.append({"t_s": 0.0, "mem_free_kib": 1})
    rec = made.finish(mode_reason="live: this guest can run it")
    assert rec.why_shown == rec.meta["mode_reason"] == "live: this guest can run it"
