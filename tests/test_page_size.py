"""Recordings state their page size (meta page_size_bytes); every figure in pages or buddy blocks reads it,
and a recording that does not state it (made before 2026-12-06) is read as 4096-byte pages."""
from __future__ import annotations

import os

from reclaimlab.present import analysis
from reclaimlab.recording import datasets, provenance


def test_a_local_recording_states_this_machines_page_size(tree_copy):
    meta = provenance.build_meta("watch", {}, "live", 10.0, guest_info={}, roots=tree_copy("firecracker-vm"))
    assert meta["page_size_bytes"] == os.sysconf("SC_PAGE_SIZE")


def test_the_page_size_is_read_from_meta_and_4096_where_it_is_not_stated():
    assert provenance.page_bytes({}) == 4096 and provenance.page_kib({}) == 4
    assert provenance.page_bytes({"page_size_kib": 16}) == 16384          # the kit's VM's older key
    assert provenance.page_bytes({"page_size_bytes": 65536, "page_size_kib": 4}) == 65536


def test_blocks_are_sized_by_the_recordings_page_size():
    rec = datasets.find("compaction")
    label = str(rec.buddyinfo["label"].iloc[0])
    rec.meta.pop("page_size_bytes", None)
    rec.meta.pop("page_size_kib", None)
    at_4k = analysis.free_kib_at_least(rec, label, 0)
    rec.meta["page_size_bytes"] = 16384
    assert at_4k > 0 and analysis.free_kib_at_least(rec, label, 0) == 4 * at_4k
