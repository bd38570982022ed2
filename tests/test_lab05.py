"""The shipped recordings of lab 05 (the kit's own VM) show what the lab says they show.

Recorded mode only: these are assertions on data/recordings/, no VM is booted. The lab's text
quotes numbers computed from the same recordings; these checks keep the claims behind the words
true when a recording is replaced.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from reclaimlab.present import analysis
from reclaimlab.recording import datasets
from reclaimlab.experiments import harness as experiments
from reclaimlab.paths import recordings_dir

LAB = Path(__file__).resolve().parents[1] / "labs" / "05_be_the_host.ipynb"
MAX_BYTES = 2_000_000
USED = [("calloc-reclaim", True), ("calloc-reclaim", False), ("page-cache", True), ("refault", True),
        ("refault", False), ("compaction", True)]


def vm_rec(name: str, reporting: bool):
    return experiments.run(name, "recorded", guest="vm", quiet=True, reporting=reporting)


def falls_to(rec, t0_s: float, within_s: float) -> float:
    """Lowest host_vm_rss_kib in (t0, t0 + within]."""
    s = rec.samples
    w = s[(s["t_s"] > t0_s) & (s["t_s"] <= t0_s + within_s)]
    return float(w["host_vm_rss_kib"].min())


@pytest.mark.parametrize("name,reporting", USED, ids=[f"{n}-reporting-{'on' if r else 'off'}" for n, r in USED])
def test_each_recording_is_a_complete_kit_vm_run_of_modest_size(name, reporting):
    rec = vm_rec(name, reporting)
    assert rec.meta["guest_kind"] == "kit-vm" and rec.complete
    assert rec.meta["parameters"]["reporting"] is reporting
    assert rec.meta["free_page_reporting"] == ("on" if reporting else "off")
    for col in ("host_vm_rss_kib", "host_vm_rss_anon_kib", "anon_kib", "mem_free_kib", "reportable_free_kib"):
        assert rec.samples[col].notna().all(), f"{name}: {col} has gaps"
    size = sum(p.stat().st_size for p in rec.path.iterdir())
    assert size <= MAX_BYTES, f"{rec.path}: {size} bytes"


def test_with_reporting_on_the_host_gets_the_memory_back_within_15_s():
    rec = vm_rec("calloc-reclaim", True)
    r = rec.meta["results"]
    t_free = analysis.when(rec, "free")
    touched = r["free_host_peak_kib"] - r["host_rss_before_kib"]
    assert touched >= 0.9 * rec.meta["parameters"]["size_bytes"] / 1024, "the touch did not reach the host"
    returned = r["free_host_peak_kib"] - falls_to(rec, t_free, 15.0)
    assert returned >= 0.7 * touched, f"only {returned / touched:.0%} of the touched memory came back within 15 s"


def test_with_reporting_off_the_host_keeps_it():
    rec = vm_rec("calloc-reclaim", False)
    r = rec.meta["results"]
    t_free = analysis.when(rec, "free")
    touched = r["free_host_peak_kib"] - r["host_rss_before_kib"]
    assert touched > 500 * 1024
    returned = r["free_host_peak_kib"] - falls_to(rec, t_free, 15.0)
    assert returned < 0.05 * touched
    assert float(rec.samples["t_s"].iloc[-1]) - t_free >= 10.0, "watched too briefly to say it stays"


def test_reporting_on_falls_in_steps_about_2_s_apart():
    rec = vm_rec("calloc-reclaim", True)
    t_free = analysis.when(rec, "free")
    s = rec.samples[rec.samples["t_s"] > t_free]
    d = s["host_vm_rss_kib"].diff()
    steps = s["t_s"][d < -64 * 1024].tolist()
    assert len(steps) >= 2
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert all(1.5 <= g <= 2.6 for g in gaps), gaps


def test_dropping_the_guests_cache_gives_the_host_memory_back():
    rec = vm_rec("page-cache", True)
    r = rec.meta["results"]
    t_write = analysis.when(rec, "write_file")
    rise = r["drop_caches_host_peak_kib"] - analysis.value_at(rec, "host_vm_rss_kib", t_write)
    fall = r["drop_caches_host_peak_kib"] - r["drop_caches_host_rss_after_kib"]
    assert rise > 500 * 1024 and fall >= 0.7 * rise
    assert r["read_file_cold_s"] > 2 * r["read_file_cached_s"]


def test_refault_costs_only_when_the_host_took_the_pages():
    on, off = vm_rec("refault", True).meta["results"], vm_rec("refault", False).meta["results"]
    assert on["hot_touch_gb_per_s"] >= 2 * on["cold_touch_gb_per_s"]
    assert off["cold_touch_gb_per_s"] >= 0.6 * off["hot_touch_gb_per_s"]
    assert on["hot_host_back_s"] is not None and off["hot_host_back_s"] is None


def test_compaction_lets_the_host_take_what_fragmentation_kept():
    rec = vm_rec("compaction", True)
    r = rec.meta["results"]
    t_frag, t_comp = analysis.when(rec, "fragment"), analysis.when(rec, "compact")
    stuck = lambda t: analysis.value_at(rec, "mem_free_kib", t) - analysis.value_at(rec, "reportable_free_kib", t)
    assert stuck(t_comp) - stuck(t_frag) > 256 * 1024, "the fragmenter left little unreportable free memory"
    assert abs(r["fragmented_host_rss_kib"] - analysis.value_at(rec, "host_vm_rss_kib", t_comp)) < 16 * 1024
    assert r["compaction_returned_kib"] > 128 * 1024
    order = rec.meta["page_reporting_order"]
    assert analysis.free_kib_at_least(rec, "compacted", order) > analysis.free_kib_at_least(rec, "fragmented", order)


def test_the_index_lists_the_vm_recordings():
    index = datasets.read_index(recordings_dir())
    vm = {(e["experiment"], e["parameters"].get("reporting")) for e in index if e.get("guest_kind") == "kit-vm"}
    assert set(USED) <= vm


def test_the_lab_runs_exactly_what_these_tests_check():
    """The lab's run_vm(...) calls, read as Python (not as text), are the runs USED names: no more, no fewer."""
    cells = json.loads(LAB.read_text(encoding="utf-8"))["cells"]
    calls = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_vm":
                kwargs = {k.arg: k.value for k in node.keywords if k.arg}
                reporting = ast.literal_eval(kwargs["reporting"]) if "reporting" in kwargs else True
                calls.add((ast.literal_eval(node.args[0]), reporting))
    assert calls == set(USED)
