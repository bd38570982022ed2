"""Labs 00-02 say only what the run in front of them shows: each case below is a statement two reviews of
the labs found false or misleading (read against a live run on a fresh guest, and as a teacher would),
recreated on a shipped recording or an edited copy of one, or read from the lab's static text."""
from __future__ import annotations

import copy
from pathlib import Path
import json
import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from reclaimlab.notebook import banner, exercises
from reclaimlab.paths import labs_dir
from reclaimlab.present import analysis, charts
from reclaimlab.present.findings import calloc_reclaim, page_cache, refault
from reclaimlab.probe.consent_source import consent_source
from reclaimlab.recording import datasets
from reclaimlab.recording.recording import Recording

MIB = 1024


def edited(rec: Recording) -> Recording:
    return type(rec)(samples=rec.samples.copy(), events=rec.events.copy(), meta=copy.deepcopy(rec.meta),
                     buddyinfo=None if rec.buddyinfo is None else rec.buddyinfo.copy())


def markdown(stem: str) -> str:
    nb = json.loads(next(labs_dir().glob(f"{stem}_*.ipynb")).read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"])


def cell(stem: str, cell_id: str) -> str:
    nb = json.loads(next(labs_dir().glob(f"{stem}_*.ipynb")).read_text())
    return next("".join(c["source"]) for c in nb["cells"] if c.get("id") == cell_id)


# ---------------------------------------------------------------- lab 01: refault

def test_refault_slower_names_no_cause_it_did_not_measure():
    """Teaching review: a cold touch 4.5x slower with 44 % reported was called "the price of giving memory back"."""
    rec = datasets.find("refault")
    c = refault.cold_vs_hot(rec)
    assert c.verdict == "slower"
    assert "price of giving memory back" not in c.sentence
    assert "not measured here" in c.sentence and "fresh mapping" in c.sentence
    reported = analysis.mib(rec.meta["results"]["reported_before_cold_kib"])
    assert f"whole guest had reported {reported}" in c.sentence and "not only our buffer's" in c.sentence


def test_cold_touch_slower_than_the_first_says_so_and_names_no_cause():
    """Live-run review: a cold touch slower than the very first one (here 0.20 against 0.28 GB/s) was explained as a refault."""
    rec = edited(datasets.find("refault"))
    rec.meta["results"].update(first_touch_gb_per_s=0.28, hot_touch_gb_per_s=0.65, cold_touch_gb_per_s=0.20)
    rec.meta["results"]["reported_before_cold_kib"] = 0.34 * refault.size_kib(rec)
    first = refault.cold_vs_first(rec)
    assert first.verdict == "slower" and "even the very first one (0.28 GB/s)" in first.sentence
    assert "not measured here" in first.sentence
    assert "price of giving memory back" not in refault.cold_vs_hot(rec).sentence


def test_refault_section_promises_no_cost_in_static_text():
    """Teaching review: lab 01's section 4, outcome and keypoint promised the cold touch measures the refault's price."""
    text = markdown("01")
    assert "The price of giving memory back" not in text and "after the host has taken them back" not in text
    assert "where maps allow, counts reported frames" in cell("01", "c40")


# ---------------------------------------------------------------- lab 01: why reporting stopped short

def _reported_share(rec: Recording, share: float) -> Recording:
    t_free, s = analysis.when(rec, "free"), rec.samples
    base = float(rec.at(t_free)["host_reported_kib"])
    s["host_reported_kib"] = s["host_reported_kib"].astype(float)
    s.loc[s["t_s"] > t_free, "host_reported_kib"] = base + share * calloc_reclaim.size_kib(rec)
    return rec


def test_small_blocks_are_no_reason_when_larger_free_blocks_exceeded_what_was_missing():
    """Teaching review: "1,496 MiB sat in blocks smaller than order 9" blamed beside 5,324 MiB in blocks of order 9 and up."""
    rec = _reported_share(edited(datasets.find("calloc-reclaim")), 0.5)   # half of it reported
    c = calloc_reclaim.reporting(rec)
    assert c.verdict == "partial"
    missing_kib = 0.5 * calloc_reclaim.size_kib(rec)
    assert c.evidence["large_block_free_kib"] > missing_kib   # more than was missing sat in large free blocks
    assert "small_blocks" not in c.evidence["reasons"] and "large_blocks_left" in c.evidence["reasons"]
    assert "blocks smaller than order" not in c.sentence
    assert "not measured here" in c.sentence and "mm/page_reporting.c" in c.sentence


def test_small_blocks_are_named_where_large_free_blocks_ran_short():
    """Teaching review: the small-block reason stays where free memory at the reporting order did not suffice."""
    rec = _reported_share(edited(datasets.find("calloc-reclaim")), 0.30)
    b = rec.buddyinfo
    snap = b["label"] == "observed"
    b.loc[snap & (b["order"] >= 9), "free_blocks"] = 0   # the freed memory left in blocks below order 9
    b.loc[snap & (b["order"] == 8), "free_blocks"] = 4000
    c = calloc_reclaim.reporting(rec)
    assert "small_blocks" in c.evidence["reasons"] and "large_blocks_left" not in c.evidence["reasons"]
    assert "blocks smaller than order 9" in c.sentence and "compact memory" in c.sentence


def test_batches_count_includes_the_first_and_says_so():
    """Live-run review: "the first report came 2.1 s after free; then 8 batches" where the 8 included the first."""
    c = calloc_reclaim.batches(datasets.find("calloc-reclaim"))
    n = len(c.evidence["batch_kib"])
    assert f"{n} batches in all, the first included" in c.sentence and "then " not in c.sentence


def test_lab01_text_states_how_wsl_sets_the_order_and_what_scanf_waits_for():
    """Teaching review: "newer WSL builds report from order 5" and "press a key" for scanf("%d")."""
    text = markdown("01")
    assert "newer WSL builds" not in text and "partition-teardown fix" in text
    assert "press a key" not in text and "type a number and press\nEnter" in text


def test_lab01_names_no_recording_machine_in_text_a_live_run_prints():
    """Live-run review: "the kernel of the VMs these recordings were made on" was printed in a live run."""
    assert "these recordings were made" not in markdown("01")


def test_glossary_order_follows_the_windows_build():
    """Teaching review: the glossary repeated "newer WSL builds set 5"."""
    text = (labs_dir().parent / "docs" / "glossary.md").read_text()
    assert "newer WSL builds set 5" not in text and "partition-teardown deadlock, 9 on others" in text


# ---------------------------------------------------------------- seed question 1: one answer

def test_lab01_keypoint_puts_the_2gb_vm_on_the_page_cache_like_lab02():
    """Teaching review: lab 01 blamed the blog's "vmmem 2 GB while free says 50 MB" on the reporting delay."""
    k1, k2 = cell("01", "c40"), cell("02", "c32")
    assert "that is how a VM can look 2 GB big" not in k1
    assert "said 50 MB was the page cache: lab 02" in k1
    assert "page cache" in k2.split("4. The VM looked 2 GB big")[1]


# ---------------------------------------------------------------- lab 01: its chart

def test_lab01_chart_plots_the_figure_the_claims_quote_and_its_alt_text_names_it():
    """Teaching review: the chart plotted RssAnon while the text quoted the cgroup, and the alt text omitted it."""
    rec = datasets.find("calloc-reclaim")
    assert "its own memory cgroup" in calloc_reclaim.calloc(rec).sentence
    alt = charts.describe(charts.workload_memory(rec).to_dict())
    assert "Our allocator's own memory cgroup (dashed)" in alt and "RssAnon" not in alt


# ---------------------------------------------------------------- lab 02

def _slab_run(fall_kib: float, guest_dropped_kib: float) -> Recording:
    """A drop_caches=1 at 10 s that dropped our 1,000 MiB file and the guest `guest_dropped_kib`."""
    samples = pd.DataFrame({"t_s": [0.0, 9.9, 15.9, 17.0],
                            "cached_kib": [9000 * MIB, 9000 * MIB] + [9000 * MIB - guest_dropped_kib] * 2,
                            "slab_reclaimable_kib": [500 * MIB, 500 * MIB] + [500 * MIB - fall_kib] * 2,
                            "anon_kib": [100 * MIB] * 4, "workload_file_resident_kib": [1000 * MIB, 1000 * MIB, 0, 0]})
    events = pd.DataFrame({"t_s": [1.0, 10.0, 16.0], "kind": ["write_file", "drop_caches", "walk_fs"],
                           "detail": ["", "1", ""]})
    return Recording(samples=samples, events=events,
                     meta={"experiment": "page-cache", "results": {"file_bytes": 1000 * MIB * 1024}, "parameters": {}})


def test_slab_fall_of_106_mib_is_within_the_measured_bound():
    """Live-run review: "up to 103 MiB ... the fall is within that range" beside a fall of 106 MiB (3,763 MiB dropped)."""
    c = page_cache.slab_at_level_1(_slab_run(106.3 * MIB, 3763 * MIB))
    assert c.evidence["expected_high_kib"] == pytest.approx(3763 * 31 / 1024 * MIB)
    assert c.verdict == "buffer_heads" and "within that range" in c.sentence


def test_slab_fall_outside_the_bound_never_says_within():
    """Teaching review: "36 MiB for our file's pages" (buffer heads alone) sat beside a 39 MiB fall called within."""
    c = page_cache.slab_at_level_1(datasets.find("page-cache"))
    low = c.evidence["expected_low_kib"]
    assert low == pytest.approx(page_cache.SLAB_KIB_PER_KIB * c.evidence["ours_dropped_kib"])
    assert c.evidence["slab_fall_kib"] < low
    assert c.verdict == "near" and "within that range" not in c.sentence and "below that range" in c.sentence


def test_lab02_text_quotes_the_measured_rate_not_the_net_fall():
    """Teaching review: "27.9 + 3.1 ... about 28 MiB" (28 was the net fall, unsaid) and 584-byte xarray nodes."""
    text = cell("02", "c15") + cell("02", "c15-more")  # the slab paragraph is go-further (issue 25)
    assert "about 28 MiB" not in text and "31 MiB per GiB" in text
    assert "584 bytes" not in text and "576 bytes per 64 pages" in text


def test_cached_rise_after_level_2_is_not_called_the_drops_effect():
    """Teaching review: "+111 MiB Cached at level 2" was another program 5 s later, shown as the drop's context."""
    c = page_cache.slab_at_level_2(datasets.find("page-cache"))
    assert c.evidence["cached_change_kib"] > 100 * MIB
    assert "Cached rose by" in c.sentence and "not this drop" in c.sentence


def test_drop_caches_is_not_said_to_drop_every_clean_page():
    """Both reviews: "drop_caches drops every clean cached page": mapped, dirty and Shmem pages stay."""
    rec = datasets.find("page-cache")
    guest = page_cache.dropped(rec, 1)[1]
    assert guest.verdict == "others_too" and "every clean cached page" not in guest.sentence
    assert "unmapped" in guest.sentence
    assert "Only **clean** pages (on disk already) that no process maps" in cell("02", "c15")


def test_what_stayed_after_level_1_is_read_from_this_run():
    """Live-run review: a run kept 385 MiB cached after level 1, unexplained: Shmem and Dirty are named from the run."""
    rec = datasets.find("page-cache")
    c = page_cache.stayed(rec, 1)
    assert c.verdict == "named" and "Shmem" in c.sentence
    assert c.evidence["cached_kib"] == pytest.approx(c.evidence["shmem_kib"] + c.evidence["dirty_kib"]
                                                     + max(c.value - c.evidence["shmem_kib"] - c.evidence["dirty_kib"], 0))
    rec2 = edited(rec)
    rec2.samples = rec2.samples.drop(columns=["shmem_kib"])
    assert page_cache.stayed(rec2, 1).verdict == "unnamed"


def _host_after_drop_at(rec: Recording, share: float, last_report_before_next_s: float) -> Recording:
    """Reports after drop_caches=1 reach `share` of what it freed, the last one that long before the next step."""
    w = page_cache.around_drop(rec, 1)
    s = rec.samples
    freed = w["cached_kib_before"] - w["cached_kib_after"]
    s["host_reported_kib"] = s["host_reported_kib"].astype(float)
    base = w["host_reported_kib_before"]
    after = s["t_s"] > w["t0_s"]
    s.loc[after, "host_reported_kib"] = base + 0.2 * share * freed
    s.loc[after & (s["t_s"] >= w["t1_s"] - last_report_before_next_s), "host_reported_kib"] = base + share * freed
    return rec


def test_host_after_drop_names_the_short_watch_not_a_busy_guest():
    """Live-run review: 38 % back in 7 s was blamed on a busy guest or small blocks; the watch was shorter than reporting."""
    rec = _host_after_drop_at(edited(datasets.find("page-cache")), 0.38, 1.0)
    c = page_cache.host_after_drop(rec)
    assert c.verdict == "some" and c.evidence["pace"] == "still_reporting"
    assert "busy guest" not in c.sentence and "below the reporting order (lab 03)" not in c.sentence
    assert "Reports were still coming" in c.sentence


def test_host_after_drop_without_a_sign_says_not_measured():
    """Live-run review: a cause nothing in the run showed was named; with reports stopped early it is "not measured here"."""
    rec = _host_after_drop_at(edited(datasets.find("page-cache")), 0.38, 5.0)
    c = page_cache.host_after_drop(rec)
    assert c.evidence["pace"] == "stopped" and "not measured here" in c.sentence


# ---------------------------------------------------------------- lab 00 and the banners: consent

def test_consent_from_the_environment_names_the_environment():
    """Live-run review: lab 00 printed "System-wide changes are allowed (allow_system_changes=False)"."""
    env = {"RECLAIMLAB_ALLOW_SYSTEM_CHANGES": "1"}
    assert consent_source(None, env) == "RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1 in the environment"
    assert consent_source(True, {}) == "allow_system_changes=True"
    assert consent_source(None, {}) is None


def test_lab00_consent_sentence_names_its_source(monkeypatch):
    """Live-run review: the consent sentence quoted the parameter when the environment variable gave consent."""
    from reclaimlab.notebook.context import LabContext
    monkeypatch.setenv("RECLAIMLAB_ALLOW_SYSTEM_CHANGES", "1")
    said = banner.consent_sentence(LabContext(mode="recorded", allow_system_changes=False))
    assert "**allowed**" in said and "RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1" in said and "=False" not in said
    monkeypatch.delenv("RECLAIMLAB_ALLOW_SYSTEM_CHANGES")
    assert "**not allowed**" in banner.consent_sentence(LabContext(mode="recorded", allow_system_changes=False))
    assert "consent_sentence(ctx)" in cell("00", "c17")


def test_live_banner_says_live_once():
    """Live-run review: the banner read "Why live: live: this guest can run it"."""
    rec = edited(datasets.find("page-cache"))
    live = Recording(samples=rec.samples, events=rec.events, meta={**rec.meta, "mode": "live"},
                     why_shown="live: this guest can run it")
    line = banner.why_line(live)
    if live.is_recorded:
        pytest.skip("a Recording made in memory counts as recorded here")
    assert line == "Why live: this guest can run it"


# ---------------------------------------------------------------- lab 00: the seed story picture

def _polyline_points(el) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in el.get("points").split()]


def _ys_at(points: list[tuple[float, float]], x: float) -> list[float]:
    """Every y a polyline takes at x (a vertical step gives two)."""
    ys = []
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 == x1 == x:
            ys += [y0, y1]
        elif min(x0, x1) <= x <= max(x0, x1) and x0 != x1:
            ys.append(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return ys


def test_seed_story_host_line_never_goes_below_guest_memory_in_use():
    """Teaching review: after compaction the host line ended below "guest memory in use" (a host backs at least that)."""
    root = ET.parse(labs_dir().parent / "docs" / "img" / "seed-story.svg").getroot()
    lines = [el for el in root.iter() if el.tag.endswith("polyline")]
    guest = _polyline_points(next(el for el in lines if el.get("stroke-dasharray")))
    host = [p for el in lines if el.get("stroke") == "#c62828" for p in _polyline_points(el)]
    xs = sorted({x for x, _ in guest + host})
    checked = 0
    for x in xs:
        host_ys, guest_ys = _ys_at(host, x), _ys_at(guest, x)
        if host_ys and guest_ys:
            # SVG's y grows downwards: lower on the picture is a larger y
            assert max(host_ys) <= max(guest_ys) and min(host_ys) <= min(guest_ys), x
            checked += 1
    assert checked > 20


def test_glossary_vmmem_shrinks_by_host_action_too():
    """Teaching review: the glossary said vmmem shrinks "only when the guest returns memory or the VM stops"."""
    text = (labs_dir().parent / "docs" / "glossary.md").read_text()
    assert "shrinks only when" not in text and "balloon it inflates" in text and "working set" in text


# ---------------------------------------------------------------- lab 01's exercise solution

def test_reportable_solution_runs_on_a_run_without_a_snapshot(capsys):
    """Teaching review: solutions/01_reportable.py checked `rec`, so on a run without a buddyinfo snapshot it raised."""
    rec = edited(datasets.find("calloc-reclaim"))
    rec.buddyinfo = None
    rec_ex = exercises.with_snapshot(rec)
    snap = exercises.buddy_snapshot(rec_ex)
    code = (labs_dir() / "solutions" / "01_reportable.py").read_text()
    exec(compile(code, "01_reportable.py", "exec"), {"exercises": exercises, "rec": rec, "rec_ex": rec_ex, "snap": snap})
    assert re.search(r"\brec\b(?!_ex)", code.split("exercises.check_reportable", 1)[1]) is None


def test_what_stayed_after_level_1_names_mapped_and_writeback_where_the_run_has_them():
    """Fresh-guest read: 419 MiB of the 452 MiB that stayed cached were "not told apart" (no Mapped column). The
    sampler now records Mapped and Writeback; the sentence names them, and what none of them covers as a floor."""
    rec = edited(datasets.find("page-cache"))
    t = page_cache._settled(rec, page_cache.around_drop(rec, 1))
    kept = float(rec.samples.loc[(rec.samples["t_s"] - t).abs().idxmin(), "cached_kib"])
    shmem = float(rec.samples.loc[(rec.samples["t_s"] - t).abs().idxmin(), "shmem_kib"])
    rec.samples["writeback_kib"] = 0.0
    rec.samples["mapped_kib"] = kept - shmem - 100 * 1024.0   # 100 MiB left, less what Dirty holds
    c = page_cache.stayed(rec, 1)
    assert c.verdict == "mapped" and "Mapped" in c.sentence and "under writeback" in c.sentence
    floor = kept - shmem - c.evidence["dirty_kib"] - c.evidence["mapped_kib"]
    assert c.evidence["rest_at_least_kib"] == pytest.approx(floor)
    assert f"At least **{analysis.mib(floor)}** is none of these" in c.sentence and "not measured here" in c.sentence
    rec.samples["mapped_kib"] = kept
    assert "cover all of it" in page_cache.stayed(rec, 1).sentence


def test_a_real_run_with_the_mapped_column_names_what_stayed():
    """Issue 24 (c), a real run here (2026-12-07 00:50 UTC, corpus case page-cache-mapped): Cached kept 223 MiB
    after drop_caches=1, 219 MiB of it Mapped and 10 MiB Shmem."""
    from reclaimlab.recording import recording as recording_mod
    rec = recording_mod.load(Path(__file__).parent / "fixtures" / "recordings" / "page-cache-mapped")
    c = page_cache.stayed(rec, 1)
    assert c.verdict == "mapped" and "**223 MiB**: 219 MiB of it Mapped" in c.sentence
    assert "10 MiB Shmem" in c.sentence and "cover all of it" in c.sentence
