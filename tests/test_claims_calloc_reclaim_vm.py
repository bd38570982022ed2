"""Lab 01's claims on a run in the kit's VM: the same story, the host's view from QEMU's resident memory."""
from __future__ import annotations

import pytest

from reclaimlab.paths import recordings_dir
from reclaimlab.present.findings import calloc_reclaim
from reclaimlab.recording.recording import load


@pytest.fixture(scope="module")
def on():
    return load(recordings_dir() / "calloc-reclaim" / "20261206T182144Z-vm-reporting-on")


@pytest.fixture(scope="module")
def off():
    return load(recordings_dir() / "calloc-reclaim" / "20261206T182204Z-vm-reporting-off")


def test_calloc_touch_free_are_measured_on_the_guests_anonpages(on):
    assert calloc_reclaim.calloc(on).verdict == "next_to_nothing"
    touch = calloc_reclaim.touch(on)
    assert touch.verdict == "nearly_all" and "GB/s" in touch.sentence and "AnonPages" in touch.sentence
    assert calloc_reclaim.free(on).verdict == "returned"
    assert calloc_reclaim.whole_guest(on).verdict == "one_program"


def test_reporting_on_gives_qemus_memory_back_in_batches(on):
    r = calloc_reclaim.reporting(on)
    assert r.verdict == "returned" and "QEMU's resident memory" in r.sentence and "reporting on" in r.sentence
    # the run's own figure: 93.4 % back by the time the watch stopped (results.free_host_returned_fraction)
    assert r.value == pytest.approx(on.meta["results"]["free_host_returned_fraction"], abs=0.03)
    b = calloc_reclaim.batches(on)
    assert b.verdict in ("as_documented", "sooner", "later") and b.evidence["n"] >= 2


def test_reporting_off_keeps_it_with_the_host_and_says_so(off):
    r = calloc_reclaim.reporting(off)
    assert r.verdict == "stalled" and "reporting off" in r.sentence and "-" not in r.sentence.split("by only")[1][:8]
    assert calloc_reclaim.batches(off).verdict == "none"
