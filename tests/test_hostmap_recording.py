"""The host's map of the kit's VM in a Recording: stored beside the guest's map of the same step in
physmap.json (an optional "host" member of each entry), loaded and checked like the guest's, and a file
without it (local runs, recordings before 2026-12-06) loads as before."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reclaimlab.probe.residency import HostMap
from reclaimlab.recording import physmap as codec
from reclaimlab.recording import recording
from reclaimlab.recording.recording import RecordingError
from reclaimlab.vm import hostmap

from test_physmap_recording import forge, make_recording

pytestmark = pytest.mark.usefixtures("demo_experiment")  # its recordings are of the tests' own experiment


def host_of(snap, resident=(512, 0, 3, 0, 512, 512, 0, 0)) -> HostMap:
    """A host map of the test guest's 8 blocks: the host holds blocks 0, 4, 5 and three pages of block 2."""
    assert len(resident) == snap.blocks
    return HostMap(np.array(resident, dtype=np.uint32), np.zeros(snap.blocks, dtype=np.uint32),
                   snap.block_order, snap.page_bytes, snap.pfn_end)


def with_host(tmp_path):
    rec = make_recording()
    rec.physmaps = [codec.MapStep(m.label, m.t_s, m.read_s, m.snapshot, m.ours_pages, host_of(m.snapshot), 0.012)
                    for m in rec.physmaps]
    out = recording.save(rec, tmp_path / "rec")
    return out, json.loads((out / codec.STEPS_FILE).read_text())


def test_the_host_map_round_trips_beside_the_guests(tmp_path):
    out, _ = with_host(tmp_path)
    back = recording.load(out).physmaps
    assert [m.host_read_s for m in back] == [0.012, 0.012]
    host = back[1].host
    assert host.resident_pages.tolist() == [512, 0, 3, 0, 512, 512, 0, 0] and host.pages == back[1].snapshot.pfn_end
    assert host.resident_kib == (512 * 3 + 3) * 4
    # the same agreement as before saving: blocks 2 and 3 are reported by the guest; the host holds 3 pages of 2
    a = hostmap.agreement(back[1].snapshot, host)
    assert (a.both, a.guest_only) == (1, 1)


def test_an_entry_without_a_host_map_loads_as_before(tmp_path):
    out, doc = with_host(tmp_path)
    del doc["maps"][0]["host"], doc["maps"][0]["host_read_s"]
    forge(out, doc)
    back = recording.load(out).physmaps
    assert back[0].host is None and back[1].host is not None


def _packed(values, dtype="<u4"):
    import base64
    import zlib
    a = np.array(values, dtype=dtype)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "zlib_base64": base64.b64encode(zlib.compress(a.tobytes())).decode()}


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.update(resident_pages=_packed([512, 0, 3, 0, 513, 512, 0, 0])),
     r"map 1 \('touched'\): host resident_pages of block 4 is 513, more than the block's 512 pages"),
    (lambda h: h.update(block_order=5), "the host's map has blocks of order 5.*cannot be laid side by side"),
    (lambda h: h.update(pages=1 << 40), r"map 1 \('touched'\) host: pages is"),
    (lambda h: h.update(swapped_pages=_packed([0] * 9)), "swapped_pages has shape \\[9\\], expected \\[8\\]"),
    (lambda h: h.update(format="x"), "host must be a JSON object with \"format\""),
    (lambda h: h["resident_pages"].update(zlib_base64="bm90IHpsaWI="), "resident_pages is not zlib data"),
])
def test_a_corrupt_host_map_is_one_clear_error_naming_the_map(tmp_path, edit, match):
    out, doc = with_host(tmp_path)
    edit(doc["maps"][1]["host"])
    forge(out, doc)
    with pytest.raises(RecordingError, match=match):
        recording.load(out)


def test_a_host_map_without_its_read_time_is_refused(tmp_path):
    out, doc = with_host(tmp_path)
    doc["maps"][0]["host_read_s"] = "soon"
    forge(out, doc)
    with pytest.raises(RecordingError, match="host_read_s is 'soon'"):
        recording.load(out)
