"""Labs 01 and 05 executed with papermill (recorded mode) carry their claims machine-readably, with
the verdicts the findings give on the shipped recordings; and lab 01's experiment, live beside a
second program allocating 2 GiB, still tells calloc, touch and free truthfully."""
from __future__ import annotations

import subprocess
import sys

import pytest

from reclaimlab.present import claims
from reclaimlab.recording import datasets
from reclaimlab.experiments import harness as experiments
from reclaimlab.probe import sources
from reclaimlab.present.findings import calloc_reclaim, refault, vm


def _executed(executed_lab, stem):
    # the copy the labs check executed in this session (tests/conftest.py), not a run of its own
    return claims.by_key(claims.from_notebook(executed_lab(stem, "recorded")))


@pytest.mark.slow
def test_lab01_recorded_claims(executed_lab):
    found = _executed(executed_lab, "01")
    expected = {c.key: c.verdict for c in calloc_reclaim.all_claims(datasets.find("calloc-reclaim"))
                + refault.all_claims(datasets.find("refault"))}
    assert {k: found[k]["verdict"] for k in expected} == expected
    assert found["calloc_reclaim.calloc"]["verdict"] == "next_to_nothing"
    for c in found.values():
        assert "Run this lab live on a guest with free page reporting" not in c["sentence"]


@pytest.mark.slow
def test_lab05_recorded_claims(executed_lab):
    found = _executed(executed_lab, "05")
    on = datasets.find("calloc-reclaim", {"reporting": True}, guest_kind="kit-vm")
    off = datasets.find("calloc-reclaim", {"reporting": False}, guest_kind="kit-vm")
    rf_on = datasets.find("refault", {"reporting": True}, guest_kind="kit-vm")
    rf_off = datasets.find("refault", {"reporting": False}, guest_kind="kit-vm")
    expected = {c.key: c.verdict for c in [vm.boot(on), vm.host_return(on, "on"), vm.host_return(off, "off"),
                                           vm.on_vs_off(on, off), vm.first_step(on), vm.step_budget(on),
                                           *refault.all_claims(rf_on), vm.refault_control(rf_on, rf_off)]}
    assert {k: found[k]["verdict"] for k in expected} == expected
    assert found["vm.boot"]["value"] == pytest.approx(on.meta["boot_s"])
    assert {"vm.page_cache", "vm.cold_read", "vm.compaction"} <= set(found)
    # the guest's map beside the host's: one offline image per run, the agreement computed from the shipped maps
    import html

    import nbformat

    from reclaimlab.present import physmap_chart
    nb = nbformat.read(executed_lab("05", "recorded"), as_version=4)
    text = html.unescape("".join("".join(o.get("data", {}).get("text/html", "")) for c in nb.cells
                                 if c.cell_type == "code" for o in c.get("outputs", [])))
    for rec in (on, off):
        after = {m.label: m for m in rec.physmaps}["after"]
        assert physmap_chart.agreement_sentence(after.snapshot, after.host) in text
    assert text.count("The host's map of the VM's RAM") >= 4   # calloc on/off, compaction order 5/9 (alt texts)


ALLOCATE_2GIB = """
import ctypes, sys, time
libc = ctypes.CDLL("libc.so.6")
n = 2 << 30
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:   # allocate, touch and free 2 GiB again and again: a busy neighbour
    p = libc.malloc(ctypes.c_size_t(n))
    ctypes.memset(p, 1, n)
    time.sleep(1.0)
    libc.free(ctypes.c_void_p(p))
    time.sleep(0.5)
"""


@pytest.mark.live
def test_lab01_live_beside_a_program_allocating_2gib():
    blocker = experiments.live_blocker(experiments.get("calloc-reclaim"), "local", None)
    if blocker:
        pytest.skip(f"calloc-reclaim cannot run live here: {blocker}")
    available_kib = sources.meminfo(sources.Roots.from_env())["MemAvailable"]
    if available_kib < 8 * 1024 * 1024:
        pytest.skip(f"only {available_kib // 1024} MiB available: 2 GiB beside a 1 GiB run would not be safe")
    neighbour = subprocess.Popen([sys.executable, "-c", ALLOCATE_2GIB, "60"])
    try:
        rec = experiments.run("calloc-reclaim", "live", size="1GiB", observe_s=8.0, hold_s=1.0, tail_s=0.5,
                              quiet=True)
    finally:
        neighbour.kill()
        neighbour.wait()
    by = {c.key: c for c in calloc_reclaim.all_claims(rec)}
    assert by["calloc_reclaim.calloc"].verdict == "next_to_nothing", by["calloc_reclaim.calloc"].sentence
    assert by["calloc_reclaim.touch"].verdict == "nearly_all"
    assert by["calloc_reclaim.free"].verdict == "returned"
    # the whole guest is context: with the neighbour it may be "busy", and then it says so
    wg = by["calloc_reclaim.whole_guest"]
    assert wg.verdict in ("busy", "matches")
    if wg.verdict == "busy":
        assert "other programs" in wg.sentence
    # reporting: whatever happened, a verdict with a reason where it stopped short
    rep = by["calloc_reclaim.reporting"]
    if rep.verdict in ("partial", "stalled"):
        assert "To see the full effect" in rep.sentence
